package authz

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// The clock of every test: verifier and issuers agree on it unless a test mints in the past.
var testNow = time.Unix(1_800_000_000, 0)

const (
	issMain    = "https://idp.example.com"
	issPartner = "https://partner.example.com"
	issDown    = "https://down.example.com"
	issOther   = "https://unknown.example.com"
	audience   = "https://api.example.com"
	realm      = "example"
)

// Issuers are expensive (RSA-2048), so the package makes them once. mintAt serialises the
// shared clock they read.
var (
	issuersOnce sync.Once
	issuers     map[string]*devissuer.Issuer
	issuersErr  error
	mintMu      sync.Mutex
	mintClock   = testNow
)

func issuer(t testing.TB, iss string) *devissuer.Issuer {
	t.Helper()
	issuersOnce.Do(func() {
		issuers = map[string]*devissuer.Issuer{}
		for _, u := range []string{issMain, issPartner, issDown, issOther} {
			var i *devissuer.Issuer
			i, issuersErr = devissuer.New(devissuer.Options{Issuer: u, Audience: audience, Now: func() time.Time { return mintClock }})
			if issuersErr != nil {
				return
			}
			issuers[u] = i
		}
	})
	if issuersErr != nil {
		t.Fatalf("devissuer.New: %v", issuersErr)
	}
	return issuers[iss]
}

// mint signs a real token at testNow.
func mint(t testing.TB, iss string, r devissuer.TokenRequest) string {
	t.Helper()
	return mintAt(t, iss, testNow, r)
}

func mintAt(t testing.TB, iss string, at time.Time, r devissuer.TokenRequest) string {
	t.Helper()
	i := issuer(t, iss)
	mintMu.Lock()
	mintClock = at
	tok, err := i.Mint(r)
	mintClock = testNow
	mintMu.Unlock()
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return tok
}

func staticKeys(t testing.TB, iss string) *jwks.Static {
	t.Helper()
	var keys []*jwks.Key
	for _, k := range issuer(t, iss).PublicKeys() {
		keys = append(keys, &jwks.Key{KID: k.KID, Alg: k.Alg, Public: k.Key})
	}
	return jwks.NewStatic(jwks.NewSet(keys))
}

var (
	bearer      = token.Source{Kind: token.FromHeader, Name: "authorization", Prefix: "Bearer "}
	accessParam = token.Source{Kind: token.FromParam, Name: "access_token"}
	cookie      = token.Source{Kind: token.FromCookie, Name: "session_token"}
	// partnerHeader is read only with setup.partnerHeader.
	partnerHeader = token.Source{Kind: token.FromHeader, Name: "x-partner-token"}
)

// mainClaimHeaders is the main provider's projection; its order is the order of SetHeaders.
var mainClaimHeaders = []ClaimHeader{
	{Claim: "sub", Header: "x-user-id"},
	{Claim: "email", Header: "x-user-email"},
	{Claim: "scope", Header: "x-user-scopes"},
	{Claim: "groups", Header: "x-user-groups"},
	{Claim: "address", Header: "x-user-address"},
	{Claim: "level", Header: "x-user-level"},
}

// allIdentity is every identity header of testProviders, sorted.
var allIdentity = []string{
	"x-jwt-payload", "x-partner-id", "x-user-address", "x-user-email", "x-user-groups",
	"x-user-id", "x-user-level", "x-user-scopes",
}

// setup describes one Authorizer under test.
type setup struct {
	forwardMain   bool
	shadow        bool
	cors          bool
	maxTokenBytes int
	retryAfter    func() time.Duration
	observer      Observer
	logger        *slog.Logger
	// rules, when set, are compiled over main, partner and down into Options.Policy.
	rules []policy.RuleSpec
	// partnerHeader makes partner also read a raw token from the x-partner-token header.
	partnerHeader bool
	// tokenCache, when set, is the verifier's token cache.
	tokenCache *token.Cache
}

// newAuthorizer builds three providers: main (Authorization: Bearer, every projection), partner
// (?access_token= or the session_token cookie; x-partner-id) and down (keys never loaded).
func newAuthorizer(t testing.TB, s setup) *Authorizer {
	t.Helper()
	now := func() time.Time { return testNow }
	tp := func(name, iss string, keys token.KeySource) *token.Provider {
		return &token.Provider{
			Name: name, Issuer: iss, Audiences: []string{audience},
			Algorithms: []string{"RS256", "EdDSA"}, TokenTypes: []string{"", "JWT", "at+jwt"},
			ClockSkew: 60 * time.Second, Keys: keys,
		}
	}
	v, err := token.NewVerifier([]*token.Provider{
		tp("main", issMain, staticKeys(t, issMain)),
		tp("partner", issPartner, staticKeys(t, issPartner)),
		tp("down", issDown, jwks.NewStatic(nil)),
	}, token.Options{Now: now, Cache: s.tokenCache})
	if err != nil {
		t.Fatal(err)
	}
	logger := s.logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var pol *policy.Policy
	if s.rules != nil {
		var problems []policy.Problem
		pol, problems, err = policy.Compile(s.rules, []string{"main", "partner", "down"})
		if err != nil {
			t.Fatalf("policy.Compile: %v %+v", err, problems)
		}
	}
	partnerSources := []token.Source{accessParam, cookie}
	if s.partnerHeader {
		partnerSources = append(partnerSources, partnerHeader)
	}
	a, err := New(Options{
		Realm:  realm,
		Policy: pol,
		Providers: []Provider{
			{
				Name: "main", Sources: []token.Source{bearer}, Forward: s.forwardMain,
				ClaimToHeaders: mainClaimHeaders, ForwardPayloadHeader: "x-jwt-payload", PayloadInMetadata: "jwt_payload",
			},
			{
				Name: "partner", Sources: partnerSources,
				ClaimToHeaders: []ClaimHeader{{Claim: "sub", Header: "x-partner-id"}},
			},
			{Name: "down", Sources: []token.Source{bearer}, RetryAfter: s.retryAfter},
		},
		Verifier:      v,
		MaxTokenBytes: s.maxTokenBytes,
		CORSPreflight: s.cors,
		Shadow:        s.shadow,
		Logger:        logger,
		// Every allow is logged, as with the config default (logging.allow_sample_rate 1.0).
		AllowSampleRate: 1,
		Observer:        s.observer,
		Now:             now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// req builds a GET request with the given header pairs and a raw query.
func req(query string, kv ...string) *Request {
	r := &Request{Transport: "grpc", Method: "GET", Host: "api.example.com", Path: "/v1/orders", Query: query, Headers: map[string][]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		k := strings.ToLower(kv[i])
		r.Headers[k] = append(r.Headers[k], kv[i+1])
	}
	return r
}

func decide(t testing.TB, a *Authorizer, r *Request) Decision {
	t.Helper()
	return a.Decide(context.Background(), r)
}
