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
	return setupWith(t, keys, false)
}

func setupCORS(t *testing.T) (*authz.Authorizer, *devissuer.Issuer) {
	t.Helper()
	return setupWith(t, nil, true)
}

func setupWith(t *testing.T, keys token.KeySource, cors bool) (*authz.Authorizer, *devissuer.Issuer) {
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
		Realm: "r", Verifier: v, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }, CORSPreflight: cors,
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

// TestForwardedURI: nginx, Caddy and Traefik send the original request in headers; they are
// read only when configured, so that a client cannot pick a rule with its own headers.
func TestForwardedURI(t *testing.T) {
	spoofed := func() *http.Request {
		r := httptest.NewRequest("GET", "/admin/users?id=7", nil)
		r.Header.Set("X-Forwarded-Method", "OPTIONS")
		r.Header.Set("X-Forwarded-Uri", "/public")
		r.Header.Set("X-Forwarded-Host", "other.example.com")
		r.Header.Set("X-Request-Id", "rid")
		r.Host = "api.example.com"
		return r
	}
	req := forwardauth.New(nil, forwardauth.Options{}).Request(spoofed())
	if req.Method != "GET" || req.Path != "/admin/users" || req.Query != "id=7" || req.Host != "api.example.com" || req.RequestID != "rid" || req.Transport != "http" {
		t.Fatalf("unconfigured headers changed the request: %+v", req)
	}
	caddy := forwardauth.New(nil, forwardauth.Options{MethodHeader: "X-Forwarded-Method", URIHeader: "X-Forwarded-Uri", HostHeader: "X-Forwarded-Host"})
	req = caddy.Request(spoofed())
	if req.Method != "OPTIONS" || req.Path != "/public" || req.Query != "" || req.Host != "other.example.com" {
		t.Fatalf("configured headers not read: %+v", req)
	}
	nginx := forwardauth.New(nil, forwardauth.Options{URIHeader: "X-Original-URI"})
	r := httptest.NewRequest("PUT", "/auth", nil)
	r.Header.Set("X-Original-Uri", "/orig?z=2")
	r.Header.Set("X-Forwarded-Uri", "/public") // a client's header, not configured: ignored
	if req := nginx.Request(r); req.Method != "PUT" || req.Path != "/orig" || req.Query != "z=2" {
		t.Fatalf("%+v", req)
	}
	if req := nginx.Request(r); req.Problem != "" {
		t.Fatalf("problem on a good request: %q", req.Problem)
	}
	// A configured header that is absent, empty or repeated never falls back or picks one:
	// the request is marked, and the decision is route_misconfigured (second new-user trial).
	r = httptest.NewRequest("PATCH", "/plain?q=1", nil)
	if req := nginx.Request(r); !strings.Contains(req.Problem, "X-Original-URI is missing") {
		t.Fatalf("configured header absent: %+v", req)
	}
	r = httptest.NewRequest("GET", "/auth", nil)
	r.Header.Add("X-Original-Uri", "/healthz")
	r.Header.Add("X-Original-Uri", "/admin/x")
	if req := nginx.Request(r); !strings.Contains(req.Problem, "X-Original-URI is repeated") {
		t.Fatalf("configured header repeated: %+v", req)
	}
}

// TestMisconfiguredProxyDenied: the marked request is a 403 route_misconfigured on the wire.
func TestMisconfiguredProxyDenied(t *testing.T) {
	a, iss := setup(t, nil)
	tok, _ := iss.Mint(devissuer.TokenRequest{Sub: "alice"})
	req := httptest.NewRequest("GET", "/auth", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	forwardauth.New(a, forwardauth.Options{URIHeader: "X-Original-URI"}).ServeHTTP(rec, req)
	if rec.Code != 403 || rec.Header().Get("WWW-Authenticate") != "" || !strings.Contains(rec.Body.String(), `"access_denied"`) {
		t.Fatalf("got %d %v %s, want 403 access_denied without a challenge", rec.Code, rec.Header(), rec.Body.String())
	}
}

// TestSpoofedPreflightDenied: with cors_preflight on, a client's X-Forwarded-Method: OPTIONS
// must not turn its GET into a token-less preflight (attack finding F1).
func TestSpoofedPreflightDenied(t *testing.T) {
	a, _ := setupCORS(t)
	req := httptest.NewRequest("GET", "/admin", nil)
	req.Header.Set("X-Forwarded-Method", "OPTIONS")
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	rec := httptest.NewRecorder()
	forwardauth.New(a, forwardauth.Options{}).ServeHTTP(rec, req)
	if rec.Code != 401 {
		t.Fatalf("spoofed preflight got %d, want 401", rec.Code)
	}
}

// TestCancelledRequestAborts: a client that went away mid-check gets no response at all
// (http.ErrAbortHandler), never net/http's implicit empty 200, which a proxy would read as an
// allow (attack finding F2).
func TestCancelledRequestAborts(t *testing.T) {
	a, _ := setup(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
	rec := httptest.NewRecorder()
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", r)
		}
		if rec.Code != 200 || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Fatalf("something was written: %d %v", rec.Code, rec.Header())
		}
	}()
	forwardauth.New(a, forwardauth.Options{}).ServeHTTP(rec, req)
	t.Fatal("ServeHTTP returned normally on a cancelled request")
}
