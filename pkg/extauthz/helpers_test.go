package extauthz

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

var testNow = time.Unix(1_800_000_000, 0)

const (
	issMain    = "https://idp.example.com"
	issPartner = "https://partner.example.com"
	issDown    = "https://down.example.com"
	issOther   = "https://unknown.example.com"
	audience   = "https://api.example.com"
)

// identity is every identity header of the test config, sorted.
var identity = []string{"x-partner-id", "x-user-email", "x-user-id", "x-user-scopes"}

var (
	fixtureOnce sync.Once
	fixtureErr  error
	issuers     map[string]*devissuer.Issuer
	tokens      map[string]string // name -> compact JWS, for {{token:name}} in testdata
	mintMu      sync.Mutex
	mintClock   = testNow
)

// fixtures makes the issuers (RSA-2048 is slow under -race: once per package) and the named
// tokens the golden requests refer to.
func fixtures(t testing.TB) {
	t.Helper()
	fixtureOnce.Do(func() {
		issuers = map[string]*devissuer.Issuer{}
		for _, u := range []string{issMain, issPartner, issDown, issOther} {
			var i *devissuer.Issuer
			if i, fixtureErr = devissuer.New(devissuer.Options{Issuer: u, Audience: audience, Now: func() time.Time { return mintClock }}); fixtureErr != nil {
				return
			}
			issuers[u] = i
		}
		mint := func(iss string, at time.Time, r devissuer.TokenRequest) string {
			if fixtureErr != nil {
				return ""
			}
			mintMu.Lock()
			defer mintMu.Unlock()
			mintClock = at
			defer func() { mintClock = testNow }()
			var tok string
			tok, fixtureErr = issuers[iss].Mint(r)
			return tok
		}
		tokens = map[string]string{
			"main":           mint(issMain, testNow, devissuer.TokenRequest{Sub: "alice", Scope: "read write", Extra: map[string]any{"email": "alice@example.com"}}),
			"main_rs256":     mint(issMain, testNow, devissuer.TokenRequest{Sub: "alice", Alg: "RS256"}),
			"main_bob":       mint(issMain, testNow, devissuer.TokenRequest{Sub: "bob"}),
			"main_nosub":     mint(issMain, testNow, devissuer.TokenRequest{Extra: map[string]any{"sub": nil}}),
			"main_expired":   mint(issMain, testNow.Add(-3*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour}),
			"main_crlf":      mint(issMain, testNow, devissuer.TokenRequest{Sub: "alice\r\nx-admin: 1"}),
			"partner":        mint(issPartner, testNow, devissuer.TokenRequest{Sub: "p1"}),
			"down":           mint(issDown, testNow, devissuer.TokenRequest{Sub: "alice"}),
			"unknown_issuer": mint(issOther, testNow, devissuer.TokenRequest{Sub: "alice"}),
		}
		if fixtureErr == nil {
			p, b := strings.Split(tokens["main"], "."), strings.Split(tokens["main_bob"], ".")
			tokens["main_bad_signature"] = p[0] + "." + p[1] + "." + b[2]
		}
	})
	if fixtureErr != nil {
		t.Fatalf("fixtures: %v", fixtureErr)
	}
}

// validTokens are the tokens that verify and may therefore be the reason for an allow.
func validTokens() []string {
	return []string{tokens["main"], tokens["main_rs256"], tokens["main_bob"], tokens["main_nosub"], tokens["partner"]}
}

func staticKeys(iss string) *jwks.Static {
	var keys []*jwks.Key
	for _, k := range issuers[iss].PublicKeys() {
		keys = append(keys, &jwks.Key{KID: k.KID, Alg: k.Alg, Public: k.Key})
	}
	return jwks.NewStatic(jwks.NewSet(keys))
}

type options struct {
	shadow bool
	cors   bool
}

// newAuthorizer: main (Authorization: Bearer; sub, email, scope; payload in metadata), partner
// (?access_token=; sub) and down (no keys; keys back in 1.5 s).
func newAuthorizer(t testing.TB, o options) *authz.Authorizer {
	t.Helper()
	fixtures(t)
	now := func() time.Time { return testNow }
	tp := func(name, iss string, keys token.KeySource) *token.Provider {
		return &token.Provider{
			Name: name, Issuer: iss, Audiences: []string{audience}, Algorithms: []string{"RS256", "EdDSA"},
			TokenTypes: []string{"", "JWT", "at+jwt"}, ClockSkew: time.Minute, Keys: keys,
		}
	}
	v, err := token.NewVerifier([]*token.Provider{
		tp("main", issMain, staticKeys(issMain)),
		tp("partner", issPartner, staticKeys(issPartner)),
		tp("down", issDown, jwks.NewStatic(nil)),
	}, token.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	bearer := token.Source{Kind: token.FromHeader, Name: "authorization", Prefix: "Bearer "}
	a, err := authz.New(authz.Options{
		Realm: "example",
		Providers: []authz.Provider{
			{
				Name: "main", Sources: []token.Source{bearer}, PayloadInMetadata: "jwt_payload",
				ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-user-id"}, {Claim: "email", Header: "x-user-email"}, {Claim: "scope", Header: "x-user-scopes"}},
			},
			{
				Name: "partner", Sources: []token.Source{{Kind: token.FromParam, Name: "access_token"}},
				ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-partner-id"}},
			},
			{Name: "down", Sources: []token.Source{bearer}, RetryAfter: func() time.Duration { return 1500 * time.Millisecond }},
		},
		Verifier:        v,
		CORSPreflight:   o.cors,
		Shadow:          o.shadow,
		Logger:          slog.New(slog.DiscardHandler),
		AllowSampleRate: 1,
		Now:             now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serve runs d behind a real gRPC server on an in-memory listener and returns a client.
func serve(t testing.TB, d Decider, opts ...grpc.ServerOption) authv3.AuthorizationClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(opts...)
	authv3.RegisterAuthorizationServer(gs, New(d, Options{Logger: slog.New(slog.DiscardHandler)}))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
		<-done
	})
	return authv3.NewAuthorizationClient(conn)
}
