package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const aud = "https://api.example.com"

// TestReadinessAndLiveness (J19, J20, J21): /readyz and gRPC health (both services) are ready
// only while every provider holds a usable set younger than max_stale; /healthz never looks at
// an IdP; a provider whose IdP is down answers 503 while the others keep allowing.
func TestReadinessAndLiveness(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t) // down
	k1, s1 := newSigner(t, "k1"), newSigner(t, "s1")
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, file, jwksDoc(t, []*signer{s1}))
	s := startServer(t, clk, fmt.Sprintf(`
providers:
  idp:
    issuer: %q
    audiences: [%q]
    remote_jwks: {uri: %q, allow_insecure_http: true, max_stale: "600s"}
  steady:
    issuer: "https://steady.example.com"
    audiences: [%q]
    local_jwks: {file: %q}
`, p.URL, aud, p.URL+"/jwks.json", aud, file))
	idpTok := func() string { return k1.mint(t, p.URL, clk.Now(), nil) }
	steadyTok := func() string { return s1.mint(t, "https://steady.example.com", clk.Now(), nil) }
	live := func() {
		t.Helper()
		if code, body := s.get(t, "/healthz"); code != http.StatusOK || body != "ok\n" {
			t.Fatalf("/healthz = %d %q: liveness must not depend on an IdP", code, body)
		}
	}
	notReady := func(why string) {
		t.Helper()
		if code, body := s.get(t, "/readyz"); code != http.StatusServiceUnavailable || body != "no usable keys for: idp\n" {
			t.Fatalf("%s: /readyz = %d %q", why, code, body)
		}
		if code, reason := s.check(t, idpTok()); code != http.StatusServiceUnavailable || reason != "keys_unavailable" {
			t.Fatalf("%s: idp token: %d %s, want 503 keys_unavailable", why, code, reason)
		}
		if code, reason := s.check(t, steadyTok()); code != http.StatusOK {
			t.Fatalf("%s: the other provider's token: %d %s, want an allow", why, code, reason)
		}
		live()
	}

	// Cold start, IdP down: the first attempt failed, the retry and the file poll are pending.
	clk.waitTimers(t, 2)
	notReady("IdP down at start")
	for _, svc := range []string{"", authv3.Authorization_ServiceDesc.ServiceName} {
		if st := s.health(t, svc); st != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("health %q = %v while idp has no keys", svc, st)
		}
	}

	// The IdP comes back: the retry (at most 1s of backoff) installs keys, readiness follows.
	p.serveKeys(jwksDoc(t, []*signer{k1}))
	clk.Advance(time.Second)
	s.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if code, body := s.get(t, "/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/readyz = %d %q with keys", code, body)
	}
	if code, reason := s.check(t, idpTok()); code != http.StatusOK {
		t.Fatalf("idp token with keys: %d %s", code, reason)
	}

	// The IdP fails again and max_stale passes without a good fetch (the refresh, due at
	// max_stale/2, fails against the down IdP): keys dropped, 503, not ready, still alive.
	p.down()
	clk.Advance(600 * time.Second)
	if code, _ := s.check(t, idpTok()); code != http.StatusOK {
		t.Fatal("keys dropped at exactly max_stale")
	}
	clk.Advance(time.Second)
	// Nothing fetches (no check has run yet): /readyz answers from the keys' age at once, and
	// gRPC health follows on its own within a second.
	if code, _ := s.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d past max_stale", code)
	}
	s.waitHealth(t, healthpb.HealthCheckResponse_NOT_SERVING)
	notReady("past max_stale")

	// The scheduled refresh finds the IdP back: ready again.
	p.serveKeys(jwksDoc(t, []*signer{k1}))
	clk.Advance(time.Hour)
	s.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	if code, _ := s.get(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz = %d after recovery", code)
	}
	live()
}

// TestKeyMetrics scrapes /metrics for the contract's key-set series (J18): fetches by result
// (ok, not_modified after an ETag revalidation, error), usable keys, skipped keys by reason, and
// the set's age; for a remote, an inline and a file provider.
func TestKeyMetrics(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	k1, f1, f2 := newSigner(t, "k1"), newSigner(t, "f1"), newSigner(t, "f2")
	oct := map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}
	enc := k1.jwk()
	enc["kid"], enc["use"] = "enc", "enc"
	body := jwksDoc(t, []*signer{k1}, oct, enc)
	p.handle(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(body)
	})
	file := filepath.Join(t.TempDir(), "jwks.json")
	writeFile(t, file, jwksDoc(t, []*signer{f1}))
	inline, _ := json.Marshal(string(jwksDoc(t, []*signer{f2}, oct)))
	s := startServer(t, clk, fmt.Sprintf(`
providers:
  idp:
    issuer: %q
    audiences: [%q]
    remote_jwks: {uri: %q, allow_insecure_http: true, max_stale: "1000s"}
  file:
    issuer: "https://file.example.com"
    audiences: [%q]
    local_jwks: {file: %q}
  inline:
    issuer: "https://inline.example.com"
    audiences: [%q]
    local_jwks: {inline: %s}
`, p.URL, aud, p.URL+"/jwks.json", aud, file, aud, inline))
	want := func(series map[string]string) {
		t.Helper()
		for k, v := range series {
			s.waitMetric(t, k, v)
		}
	}
	fetches := func(provider, result string) string {
		return fmt.Sprintf(`jwtauthz_jwks_fetches_total{provider=%q,result=%q}`, provider, result)
	}
	gauge := func(name, provider string) string { return fmt.Sprintf(`%s{provider=%q}`, name, provider) }
	skipped := func(provider, reason string) string {
		return fmt.Sprintf(`jwtauthz_jwks_keys_skipped_total{provider=%q,reason=%q}`, provider, reason)
	}

	want(map[string]string{
		fetches("idp", "ok"): "1", fetches("idp", "not_modified"): "0", fetches("idp", "error"): "0",
		gauge("jwtauthz_jwks_keys", "idp"): "1", gauge("jwtauthz_jwks_age_seconds", "idp"): "0",
		skipped("idp", "symmetric"): "1", skipped("idp", "wrong_use"): "1",
		fetches("file", "ok"): "1", gauge("jwtauthz_jwks_keys", "file"): "1", gauge("jwtauthz_jwks_age_seconds", "file"): "0",
		fetches("inline", "ok"): "1", gauge("jwtauthz_jwks_keys", "inline"): "1", skipped("inline", "symmetric"): "1",
	})

	// The scheduled refresh (max-age 300s, ±10 % jitter) revalidates: 304, not_modified,
	// nothing re-parsed.
	clk.waitTimers(t, 2) // the refresh and the file poll: Advance fires both
	clk.Advance(330 * time.Second)
	want(map[string]string{
		fetches("idp", "not_modified"): "1", fetches("idp", "ok"): "1", skipped("idp", "symmetric"): "1",
		gauge("jwtauthz_jwks_age_seconds", "idp"): "0", gauge("jwtauthz_jwks_age_seconds", "inline"): "330",
	})

	// A bad write of the file is counted as an error and keeps its keys; the next good one loads.
	writeFile(t, file, []byte(`{"keys":[`))
	clk.waitTimers(t, 2)
	clk.Advance(5 * time.Second)
	want(map[string]string{fetches("file", "error"): "1", gauge("jwtauthz_jwks_keys", "file"): "1"})
	if code, _ := s.check(t, f1.mint(t, "https://file.example.com", clk.Now(), nil)); code != http.StatusOK {
		t.Fatal("the file's last good key was dropped by a bad write")
	}
	writeFile(t, file, jwksDoc(t, []*signer{f1, f2}))
	clk.waitTimers(t, 2)
	clk.Advance(5 * time.Second)
	want(map[string]string{fetches("file", "ok"): "2", gauge("jwtauthz_jwks_keys", "file"): "2", gauge("jwtauthz_jwks_age_seconds", "file"): "0"})
	if code, _ := s.check(t, f2.mint(t, "https://file.example.com", clk.Now(), nil)); code != http.StatusOK {
		t.Fatal("the key added to the file is not used")
	}

	// The IdP fails at the next refresh: an error, the keys kept, the age growing.
	p.down()
	clk.waitTimers(t, 2)
	clk.Advance(330 * time.Second)
	want(map[string]string{
		fetches("idp", "error"): "1", gauge("jwtauthz_jwks_keys", "idp"): "1",
		gauge("jwtauthz_jwks_age_seconds", "idp"): "340", gauge("jwtauthz_jwks_age_seconds", "file"): "330",
	})
	// Past max_stale (1000s) the set is dropped: no usable keys.
	clk.waitTimers(t, 2)
	clk.Advance(700 * time.Second)
	want(map[string]string{gauge("jwtauthz_jwks_keys", "idp"): "0", gauge("jwtauthz_jwks_age_seconds", "idp"): "1040"})
	if v, err := s.metric(t, `jwtauthz_token_cache_hits_total`); err != nil || v != "0" {
		t.Errorf("token cache counter: %q %v", v, err)
	}
}

// TestTokenURLsNeverFetched is T16 (J23): URLs a token names (jku, x5u) and keys it carries (jwk)
// are never used, whether the token verifies, names an unknown kid (which does fetch, from the
// configured JWKS only) or carries a bad signature. The recording server sees nothing.
func TestTokenURLsNeverFetched(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	rec := newIDP(t)
	k1, attacker := newSigner(t, "k1"), newSigner(t, "attacker")
	p.serveKeys(jwksDoc(t, []*signer{k1}))
	rec.serveKeys(jwksDoc(t, []*signer{attacker})) // what an attacker's jku would serve
	s := startServer(t, clk, fmt.Sprintf(`
providers:
  idp:
    issuer: %q
    audiences: [%q]
    remote_jwks: {uri: %q, allow_insecure_http: true}
`, p.URL, aud, p.URL+"/jwks.json"))
	s.waitHealth(t, healthpb.HealthCheckResponse_SERVING)
	clk.Advance(61 * time.Second) // past kid_miss_cooldown: an unknown kid may fetch
	urls := map[string]any{"jku": rec.URL + "/jwks.json", "x5u": rec.URL + "/cert.pem"}
	withJWK := map[string]any{"jku": rec.URL + "/jwks.json", "kid": "attacker", "jwk": attacker.jwk()}
	tests := []struct {
		name       string
		tok        string
		wantStatus int
		wantReason string
	}{
		{"genuine token naming jku and x5u", k1.mint(t, p.URL, clk.Now(), urls), http.StatusOK, "ok"},
		{"unknown kid naming jku and x5u", attacker.mint(t, p.URL, clk.Now(), urls), http.StatusUnauthorized, "kid_unknown"},
		{"bad signature naming jku", attacker.mint(t, p.URL, clk.Now(), map[string]any{"kid": "k1", "jku": rec.URL}), http.StatusUnauthorized, "bad_signature"},
		{"embedded jwk and jku", attacker.mint(t, p.URL, clk.Now(), withJWK), http.StatusUnauthorized, "kid_unknown"},
		{"no kid, jku only", attacker.mint(t, p.URL, clk.Now(), map[string]any{"kid": "", "jku": rec.URL}), http.StatusUnauthorized, "bad_signature"},
	}
	for _, tc := range tests {
		code, reason := s.check(t, tc.tok)
		if code != tc.wantStatus || (tc.wantReason != "" && reason != tc.wantReason) {
			t.Errorf("%s: %d %s, want %d %s", tc.name, code, reason, tc.wantStatus, tc.wantReason)
		}
	}
	if n := rec.hits.Load(); n != 0 {
		t.Fatalf("the URL named by tokens got %d requests", n)
	}
	// The unknown kid fetched once, from the configured JWKS (the second miss is in the cooldown).
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("the configured JWKS got %d requests, want 2", n)
	}
}

// TestDiscoveryProvider (J22, T17 through the server): a discovery provider finds its keys at
// the jwks_uri of its issuer's document; one whose document names the issuer with a trailing
// slash is refused, never fetches keys, answers 503 and keeps the service not ready.
func TestDiscoveryProvider(t *testing.T) {
	clk := newFakeClock()
	k1, k2 := newSigner(t, "k1"), newSigner(t, "k2")
	good, slash := newIDP(t), newIDP(t)
	oidc := func(p *idp, issuer string, keys *signer) {
		doc, _ := json.Marshal(map[string]any{"issuer": issuer, "jwks_uri": p.URL + "/keys"})
		p.handle(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/.well-known/openid-configuration":
				_, _ = w.Write(doc)
			case "/keys":
				_, _ = w.Write(jwksDoc(t, []*signer{keys}))
			default:
				http.NotFound(w, r)
			}
		})
	}
	oidc(good, good.URL, k1)
	oidc(slash, slash.URL+"/", k2)
	s := startServer(t, clk, fmt.Sprintf(`
providers:
  good:
    issuer: %q
    audiences: [%q]
    discovery: {allow_insecure_http: true}
  slash:
    issuer: %q
    audiences: [%q]
    discovery: {allow_insecure_http: true}
`, good.URL, aud, slash.URL, aud))
	clk.waitTimers(t, 2) // good waits for its refresh, slash for its retry
	if code, reason := s.check(t, k1.mint(t, good.URL, clk.Now(), nil)); code != http.StatusOK {
		t.Fatalf("discovered keys: %d %s", code, reason)
	}
	if code, reason := s.check(t, k2.mint(t, slash.URL, clk.Now(), nil)); code != http.StatusServiceUnavailable || reason != "keys_unavailable" {
		t.Fatalf("refused discovery: %d %s", code, reason)
	}
	if code, body := s.get(t, "/readyz"); code != http.StatusServiceUnavailable || body != "no usable keys for: slash\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if good.hits.Load() != 2 || slash.hits.Load() != 1 {
		t.Fatalf("requests: good %d (want doc + keys), slash %d (want the doc only)", good.hits.Load(), slash.hits.Load())
	}
	if !strings.Contains(s.logs.String(), "discovery document names another issuer") {
		t.Fatalf("the refusal is not logged:\n%s", s.logs.String())
	}
}
