package forwardauth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/extauthz"
	"github.com/jwtauthz/jwtauthz/pkg/forwardauth"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

var now = time.Unix(1_800_000_000, 0)

func setup(t *testing.T, keys token.KeySource) (*authz.Authorizer, *devissuer.Issuer) {
	t.Helper()
	iss, err := devissuer.New(devissuer.Options{Issuer: "https://issuer.example.com", Audience: "api", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if keys == nil {
		var ks []*jwks.Key
		for _, k := range iss.PublicKeys() {
			ks = append(ks, &jwks.Key{KID: k.KID, Alg: k.Alg, Public: k.Key})
		}
		keys = jwks.NewStatic(jwks.NewSet(ks))
	}
	v, err := token.NewVerifier([]*token.Provider{{
		Name: "idp", Issuer: iss.IssuerURL(), Audiences: []string{"api"}, Algorithms: []string{"EdDSA", "RS256"},
		TokenTypes: []string{"", "JWT"}, ClockSkew: time.Minute, Keys: keys,
	}}, token.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Options{
		Realm: "r", Verifier: v, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now },
		Providers: []authz.Provider{{
			Name:           "idp",
			Sources:        []token.Source{{Kind: token.FromHeader, Name: "authorization", Prefix: "Bearer "}, {Kind: token.FromParam, Name: "access_token"}},
			ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-user-id"}, {Claim: "scope", Header: "x-user-scopes"}},
			RetryAfter:     func() time.Duration { return 1500 * time.Millisecond },
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, iss
}

type unavailable struct{}

func (unavailable) Current() (*jwks.Set, error) { return nil, jwks.ErrKeysUnavailable }
func (unavailable) RefreshForKID(context.Context) (*jwks.Set, error) {
	return nil, jwks.ErrRefreshRefused
}

// wire is what a client of either adapter observes.
type wire struct {
	status    int
	challenge string
	retry     string
	body      string
	set       string // "k=v;k=v"
	remove    string // "a, b"
}

func viaHTTP(t *testing.T, a *authz.Authorizer, method, target string, hdr map[string]string) wire {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	forwardauth.New(a, forwardauth.Options{}).ServeHTTP(rec, req)
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	w := wire{status: res.StatusCode, challenge: res.Header.Get("WWW-Authenticate"), retry: res.Header.Get("Retry-After"), body: string(body), remove: res.Header.Get(forwardauth.HeadersToRemove)}
	if res.StatusCode == 200 {
		var kv []string
		for _, h := range []string{"x-user-id", "x-user-scopes"} {
			if v := res.Header.Get(h); v != "" {
				kv = append(kv, h+"="+v)
			}
		}
		w.set = strings.Join(kv, ";")
		if ct := res.Header.Get("Content-Type"); ct != "" {
			t.Errorf("allow carries content-type %q", ct)
		}
	} else if res.Header.Get("Content-Type") != "application/json" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("deny headers %v", res.Header)
	}
	return w
}

func viaGRPC(a *authz.Authorizer, method, target string, hdr map[string]string) wire {
	h := map[string]string{":method": method, ":path": target, ":authority": "api.example.com"}
	for k, v := range hdr {
		h[strings.ToLower(k)] = v
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Method: method, Path: target, Host: "api.example.com", Headers: h}}}}
	resp := extauthz.Response(a.Decide(context.Background(), extauthz.Request(req)))
	if ok := resp.GetOkResponse(); ok != nil {
		var kv []string
		for _, x := range ok.GetHeaders() {
			kv = append(kv, x.GetHeader().GetKey()+"="+x.GetHeader().GetValue())
		}
		return wire{status: 200, set: strings.Join(kv, ";"), remove: strings.Join(ok.GetHeadersToRemove(), ", ")}
	}
	d := resp.GetDeniedResponse()
	w := wire{status: int(d.GetStatus().GetCode()), body: d.GetBody()}
	for _, x := range d.GetHeaders() {
		switch x.GetHeader().GetKey() {
		case "www-authenticate":
			w.challenge = x.GetHeader().GetValue()
		case "retry-after":
			w.retry = x.GetHeader().GetValue()
		}
	}
	return w
}

// TestAdaptersAgree runs one golden table through both front doors (house-style 4): the HTTP
// answer must carry exactly what the gRPC CheckResponse says.
func TestAdaptersAgree(t *testing.T) {
	a, iss := setup(t, nil)
	tok, err := iss.Mint(devissuer.TokenRequest{Sub: "alice", Scope: "read write"})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := devissuer.New(devissuer.Options{Issuer: "https://other.example.com", Now: func() time.Time { return now }})
	foreign, _ := other.Mint(devissuer.TokenRequest{Sub: "mallory", Aud: "api"})
	invalid := `Bearer realm="r", error="invalid_token", error_description="The access token is invalid"`
	cases := []struct {
		name   string
		method string
		target string
		hdr    map[string]string
		want   wire
	}{
		{"allow", "GET", "/orders", map[string]string{"Authorization": "Bearer " + tok, "X-User-Id": "spoof"},
			wire{status: 200, set: "x-user-id=alice;x-user-scopes=read write", remove: "authorization"}},
		{"allow via query", "POST", "/orders?access_token=" + tok, nil,
			wire{status: 200, set: "x-user-id=alice;x-user-scopes=read write"}},
		{"missing", "GET", "/", nil,
			wire{status: 401, challenge: `Bearer realm="r"`, body: `{"error":"unauthorized","error_description":"An access token is required"}`}},
		{"basic", "GET", "/", map[string]string{"Authorization": "Basic YTpi"},
			wire{status: 401, challenge: `Bearer realm="r"`, body: `{"error":"unauthorized","error_description":"The Bearer authentication scheme is required"}`}},
		{"header and param", "GET", "/?access_token=" + tok, map[string]string{"Authorization": "Bearer " + tok},
			wire{status: 400, challenge: `Bearer realm="r", error="invalid_request", error_description="The request carries more than one access token"`,
				body: `{"error":"invalid_request","error_description":"The request carries more than one access token"}`}},
		{"unknown issuer", "GET", "/", map[string]string{"Authorization": "Bearer " + foreign},
			wire{status: 401, challenge: invalid, body: `{"error":"invalid_token","error_description":"The access token is invalid"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := viaHTTP(t, a, tc.method, tc.target, tc.hdr)
			g := viaGRPC(a, tc.method, tc.target, tc.hdr)
			if h != tc.want {
				t.Errorf("HTTP  %+v\nwant  %+v", h, tc.want)
			}
			if g != tc.want {
				t.Errorf("gRPC  %+v\nwant  %+v", g, tc.want)
			}
		})
	}
}

func TestKeysUnavailable503BothDoors(t *testing.T) {
	a, iss := setup(t, unavailable{})
	tok, _ := iss.Mint(devissuer.TokenRequest{Sub: "alice"})
	hdr := map[string]string{"Authorization": "Bearer " + tok}
	want := wire{status: 503, retry: "2", body: `{"error":"temporarily_unavailable","error_description":"Tokens cannot be verified right now; retry later"}`}
	if h := viaHTTP(t, a, "GET", "/", hdr); h != want {
		t.Errorf("HTTP %+v, want %+v", h, want)
	}
	if g := viaGRPC(a, "GET", "/", hdr); g != want {
		t.Errorf("gRPC %+v, want %+v", g, want)
	}
}

// TestForwardedURI: nginx and Caddy send the original request in headers, not the request line.
func TestForwardedURI(t *testing.T) {
	r := httptest.NewRequest("GET", "/auth", nil)
	r.Header.Set("X-Forwarded-Method", "DELETE")
	r.Header.Set("X-Forwarded-Uri", "/admin/users?id=7")
	r.Header.Set("X-Forwarded-Host", "api.example.com")
	r.Header.Set("X-Request-Id", "rid")
	req := forwardauth.Request(r)
	if req.Method != "DELETE" || req.Path != "/admin/users" || req.Query != "id=7" || req.Host != "api.example.com" || req.RequestID != "rid" || req.Transport != "http" {
		t.Fatalf("%+v", req)
	}
	r = httptest.NewRequest("PUT", "/v1/x?y=1", nil)
	r.Header.Set("X-Original-Uri", "/orig?z=2")
	if req := forwardauth.Request(r); req.Method != "PUT" || req.Path != "/orig" || req.Query != "z=2" {
		t.Fatalf("%+v", req)
	}
	r = httptest.NewRequest("PATCH", "/plain?q=1", nil)
	if req := forwardauth.Request(r); req.Method != "PATCH" || req.Path != "/plain" || req.Query != "q=1" {
		t.Fatalf("%+v", req)
	}
}

// TestCancelledRequestWritesNothing: a proxy that gave up never gets a late allow.
func TestCancelledRequestWritesNothing(t *testing.T) {
	a, iss := setup(t, nil)
	tok, _ := iss.Mint(devissuer.TokenRequest{Sub: "alice"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	forwardauth.New(a, forwardauth.Options{}).ServeHTTP(rec, req)
	if rec.Header().Get("x-user-id") != "" || rec.Code == http.StatusOK && rec.Body.Len() > 0 {
		t.Fatalf("cancelled request got %d %v", rec.Code, rec.Header())
	}
	if rec.Header().Get("x-user-id") != "" {
		t.Fatal("identity leaked on a cancelled request")
	}
}
