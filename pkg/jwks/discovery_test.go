package jwks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// oidcIDP serves a discovery document and a JWKS on a random port, counting each.
type oidcIDP struct {
	*httptest.Server
	docHits, jwksHits atomic.Int64

	mu   sync.Mutex
	doc  http.HandlerFunc
	keys http.HandlerFunc
}

func newOIDCIDP(t *testing.T, tls bool) *oidcIDP {
	t.Helper()
	p := &oidcIDP{keys: serve(kidDoc(t, "a"))}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		doc, keys := p.doc, p.keys
		p.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "/.well-known/openid-configuration"):
			p.docHits.Add(1)
			doc(w, r)
		case r.URL.Path == "/keys":
			p.jwksHits.Add(1)
			keys(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	if tls {
		p.Server = httptest.NewTLSServer(h)
	} else {
		p.Server = httptest.NewServer(h)
	}
	t.Cleanup(p.Close)
	return p
}

// serveDoc answers a discovery document with the given members.
func (p *oidcIDP) serveDoc(t *testing.T, members map[string]any) {
	t.Helper()
	body, err := json.Marshal(members)
	if err != nil {
		t.Fatal(err)
	}
	p.handleDoc(serve(body))
}

func (p *oidcIDP) handleDoc(h http.HandlerFunc) {
	p.mu.Lock()
	p.doc = h
	p.mu.Unlock()
}

func (p *oidcIDP) handleKeys(h http.HandlerFunc) {
	p.mu.Lock()
	p.keys = h
	p.mu.Unlock()
}

type testDiscovery struct {
	*Discovery
	tr  *testRemote // the embedded Remote with the test hooks
	log *syncWriter
}

// newTestDiscovery builds a Discovery for issuer with newTestRemote's settings and a captured
// JSON log.
func newTestDiscovery(t *testing.T, issuer string, client *http.Client, clk *fakeClock, insecure bool) *testDiscovery {
	t.Helper()
	td := &testDiscovery{log: &syncWriter{}}
	tr := &testRemote{fetches: make(chan FetchResult, 256), waits: make(chan time.Duration, 256), clk: clk}
	d, err := NewDiscovery(DiscoveryOptions{Issuer: issuer, AllowInsecureHTTP: insecure, Remote: RemoteOptions{
		Provider:   "oidc",
		Client:     client,
		Algorithms: testAlgs,
		Now:        clk.Now,
		After:      clk.After,
		Jitter:     func() float64 { return 0.5 },
		Logger:     slog.New(slog.NewJSONHandler(td.log, nil)),
		OnFetch:    func(res FetchResult) { tr.fetches <- res },
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr.Remote = d.Remote
	td.Discovery, td.tr = d, tr
	return td
}

func plainClient(t *testing.T) *http.Client {
	t.Helper()
	c, err := NewHTTPClient(HTTPClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logged returns the log lines with message msg.
func (d *testDiscovery) logged(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range d.log.lines(t) {
		if l["msg"] == msg {
			out = append(out, l)
		}
	}
	return out
}

// TestDiscovery (J22): the document at <issuer>/.well-known/openid-configuration names the JWKS;
// the keys come from there through the Remote machinery; the document is read once, not per
// fetch, and again after 24 hours.
func TestDiscovery(t *testing.T) {
	p := newOIDCIDP(t, false)
	issuer := p.URL + "/tenant"
	p.serveDoc(t, map[string]any{"issuer": issuer, "jwks_uri": p.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		"token_endpoint": issuer + "/token", "response_types_supported": []string{"code"}, "claims_supported": []string{"sub", "email"}})
	reqs := make(chan *http.Request, 8)
	p.handleKeys(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Clone(context.Background())
		serve(kidDoc(t, "a"))(w, r)
	})
	clk := newFakeClock()
	d := newTestDiscovery(t, issuer, plainClient(t), clk, true)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if set := mustCurrent(t, d.tr); len(set.Lookup("a")) != 1 {
		t.Fatal("kid a missing")
	}
	if got := d.JWKSURI(); got != p.URL+"/keys" {
		t.Fatalf("JWKSURI = %q", got)
	}
	if r := <-reqs; r.Header.Get("Accept") != "application/jwk-set+json, application/json" {
		t.Errorf("JWKS request Accept = %q", r.Header.Get("Accept"))
	}
	if len(d.logged(t, "the issuer signs ID tokens with none of the provider's algorithms; its tokens may all be refused")) != 0 {
		t.Error("alg warning with a matching algorithm")
	}
	for i := range 3 {
		clk.Advance(time.Hour)
		if err := d.tr.fetchNow(t); err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
	}
	if p.docHits.Load() != 1 || p.jwksHits.Load() != 4 {
		t.Fatalf("doc read %d times, JWKS %d; want 1 and 4", p.docHits.Load(), p.jwksHits.Load())
	}
	clk.Advance(DiscoveryReread - 3*time.Hour)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if p.docHits.Load() != 2 {
		t.Fatalf("doc read %d times after 24h, want 2", p.docHits.Load())
	}
}

// TestDiscoveryIssuerMismatch is T17 (J22): the document's issuer must equal the configured one
// byte for byte; a trailing slash is a different issuer. Nothing is fetched from its jwks_uri.
func TestDiscoveryIssuerMismatch(t *testing.T) {
	p := newOIDCIDP(t, false)
	tests := []struct {
		name, configured, published string
	}{
		{"document adds a trailing slash", p.URL, p.URL + "/"},
		{"document drops the trailing slash", p.URL + "/", p.URL},
		{"path: document adds a trailing slash", p.URL + "/realms/main", p.URL + "/realms/main/"},
		{"case differs", p.URL + "/Tenant", p.URL + "/tenant"},
		{"another issuer", p.URL, "https://evil.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.serveDoc(t, map[string]any{"issuer": tc.published, "jwks_uri": p.URL + "/keys"})
			docs, keys := p.docHits.Load(), p.jwksHits.Load()
			d := newTestDiscovery(t, tc.configured, plainClient(t), newFakeClock(), true)
			err := d.tr.fetchNow(t)
			if !errors.Is(err, ErrDiscoveryIssuer) {
				t.Fatalf("err = %v, want ErrDiscoveryIssuer", err)
			}
			wantUnavailable(t, d.tr)
			if p.docHits.Load() != docs+1 || p.jwksHits.Load() != keys {
				t.Fatalf("doc read %d times, JWKS %d times; want 1 and 0", p.docHits.Load()-docs, p.jwksHits.Load()-keys)
			}
			if d.JWKSURI() != "" {
				t.Fatal("jwks_uri of a refused document kept")
			}
			// Every later attempt reads the document again and refuses it again.
			d.tr.clk.Advance(time.Minute)
			if err := d.tr.fetchNow(t); !errors.Is(err, ErrDiscoveryIssuer) {
				t.Fatalf("second attempt: %v", err)
			}
			if p.jwksHits.Load() != keys {
				t.Fatal("JWKS fetched from a refused document")
			}
		})
	}
}

// TestDiscoveryDocumentChecks (J1, J3, J5, J22): the jwks_uri must be an absolute https URL
// (unless allow_insecure_http), the document at most 64 KiB, a 200, JSON with issuer and
// jwks_uri.
func TestDiscoveryDocumentChecks(t *testing.T) {
	p := newOIDCIDP(t, true)
	plain := newOIDCIDP(t, false) // an http:// JWKS
	issuer := p.URL
	doc := func(members map[string]any) http.HandlerFunc {
		b, _ := json.Marshal(members)
		return serve(b)
	}
	padded := func(n int) http.HandlerFunc {
		b, _ := json.Marshal(map[string]any{"issuer": issuer, "jwks_uri": p.URL + "/keys"})
		return serve(append(b[:len(b)-1], append(bytes.Repeat([]byte(" "), n-len(b)), '}')...))
	}
	tests := []struct {
		name     string
		doc      http.HandlerFunc
		insecure bool
		wantErr  error
	}{
		{"https jwks_uri", doc(map[string]any{"issuer": issuer, "jwks_uri": p.URL + "/keys"}), false, nil},
		{"exactly 64 KiB", padded(MaxDiscoveryBytes), false, nil},
		{"64 KiB + 1", padded(MaxDiscoveryBytes + 1), false, ErrTooLarge},
		{"http jwks_uri", doc(map[string]any{"issuer": issuer, "jwks_uri": plain.URL + "/keys"}), false, ErrDiscoveryDocument},
		{"http jwks_uri, allow_insecure_http", doc(map[string]any{"issuer": issuer, "jwks_uri": plain.URL + "/keys"}), true, nil},
		{"relative jwks_uri", doc(map[string]any{"issuer": issuer, "jwks_uri": "/keys"}), false, ErrDiscoveryDocument},
		{"jwks_uri with credentials", doc(map[string]any{"issuer": issuer, "jwks_uri": "https://u:p@" + p.Listener.Addr().String() + "/keys"}), false, ErrDiscoveryDocument},
		{"ftp jwks_uri", doc(map[string]any{"issuer": issuer, "jwks_uri": "ftp://example.com/keys"}), false, ErrDiscoveryDocument},
		{"no jwks_uri", doc(map[string]any{"issuer": issuer}), false, ErrDiscoveryDocument},
		{"no issuer", doc(map[string]any{"jwks_uri": p.URL + "/keys"}), false, ErrDiscoveryDocument},
		{"issuer not a string", doc(map[string]any{"issuer": 1, "jwks_uri": p.URL + "/keys"}), false, ErrDiscoveryDocument},
		{"not JSON", serve([]byte("<html>login</html>")), false, ErrDiscoveryDocument},
		{"duplicate issuer", serve([]byte(`{"issuer":"https://evil.example.com","issuer":"` + issuer + `","jwks_uri":"` + p.URL + `/keys"}`)), false, ErrDiscoveryDocument},
		{"404", status(http.StatusNotFound), false, ErrHTTPStatus},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://evil.example.com/.well-known/openid-configuration", http.StatusFound)
		}, false, ErrHTTPStatus},
	}
	client, err := NewHTTPClient(HTTPClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	client.Transport.(*http.Transport).TLSClientConfig.RootCAs = p.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.handleDoc(tc.doc)
			keys := p.jwksHits.Load() + plain.jwksHits.Load()
			d := newTestDiscovery(t, issuer, client, newFakeClock(), tc.insecure)
			err := d.tr.fetchNow(t)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				mustCurrent(t, d.tr)
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			wantUnavailable(t, d.tr)
			if p.jwksHits.Load()+plain.jwksHits.Load() != keys {
				t.Fatal("JWKS fetched from a refused document")
			}
		})
	}
}

// TestDiscoveryRereadAfterFailures (J22): three consecutive failed JWKS attempts make the next
// attempt read the document again; a jwks_uri moved to another host is followed and logged at
// WARN. A success ends the streak: the next three failures are counted afresh.
func TestDiscoveryRereadAfterFailures(t *testing.T) {
	p := newOIDCIDP(t, false)
	moved := newOIDCIDP(t, false)
	moved.handleKeys(serve(kidDoc(t, "b")))
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys"})
	clk := newFakeClock()
	d := newTestDiscovery(t, p.URL, plainClient(t), clk, true)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	p.handleKeys(status(http.StatusNotFound))
	for n := 1; n <= 3; n++ {
		clk.Advance(time.Minute)
		if err := d.tr.fetchNow(t); !errors.Is(err, ErrHTTPStatus) {
			t.Fatalf("failure %d: %v", n, err)
		}
		if p.docHits.Load() != 1 {
			t.Fatalf("doc re-read after %d failures", n)
		}
	}
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": moved.URL + "/keys"})
	clk.Advance(time.Minute)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatalf("after the re-read: %v", err)
	}
	if p.docHits.Load() != 2 || moved.jwksHits.Load() != 1 {
		t.Fatalf("doc hits %d, moved JWKS hits %d; want 2 and 1", p.docHits.Load(), moved.jwksHits.Load())
	}
	if set := mustCurrent(t, d.tr); len(set.Lookup("b")) != 1 {
		t.Fatal("keys not from the moved jwks_uri")
	}
	warns := d.logged(t, "discovery moved jwks_uri to another host")
	if len(warns) != 1 || warns[0]["level"] != "WARN" || warns[0]["old"] != p.URL+"/keys" || warns[0]["new"] != moved.URL+"/keys" {
		t.Fatalf("host change log: %v", warns)
	}
	// The streak restarts after the success: two failures do not re-read, the third does.
	moved.handleKeys(status(http.StatusInternalServerError))
	for n := 1; n <= 3; n++ {
		clk.Advance(time.Minute)
		if err := d.tr.fetchNow(t); err == nil {
			t.Fatal("fetch succeeded")
		}
	}
	if p.docHits.Load() != 2 {
		t.Fatalf("doc hits %d after three failures, want still 2", p.docHits.Load())
	}
	clk.Advance(time.Minute)
	_ = d.tr.fetchNow(t)
	if p.docHits.Load() != 3 {
		t.Fatalf("doc hits %d after the fourth attempt, want 3", p.docHits.Load())
	}
	// Same host, other query: followed, logged at INFO only.
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": moved.URL + "/keys?v=2"})
	moved.handleKeys(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.RawQuery != "v=2" {
			status(http.StatusInternalServerError)(w, r)
			return
		}
		serve(kidDoc(t, "c"))(w, r)
	})
	for range 3 {
		clk.Advance(time.Minute)
		_ = d.tr.fetchNow(t)
	}
	if set := mustCurrent(t, d.tr); len(set.Lookup("c")) != 1 {
		t.Fatal("same-host move not followed")
	}
	if infos := d.logged(t, "discovery moved jwks_uri"); len(infos) != 1 || infos[0]["level"] != "INFO" {
		t.Fatalf("same-host move log: %v", infos)
	}
}

// TestDiscoveryDocumentDown (J22): once a jwks_uri is known, a failing document does not stop
// the keys: the last jwks_uri is used, and the failure is logged.
func TestDiscoveryDocumentDown(t *testing.T) {
	p := newOIDCIDP(t, false)
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys"})
	clk := newFakeClock()
	d := newTestDiscovery(t, p.URL, plainClient(t), clk, true)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	p.handleDoc(status(http.StatusServiceUnavailable))
	p.handleKeys(serve(kidDoc(t, "a", "b")))
	clk.Advance(DiscoveryReread)
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatalf("fetch with the document down: %v", err)
	}
	if set := mustCurrent(t, d.tr); len(set.Lookup("b")) != 1 {
		t.Fatal("keys not refreshed")
	}
	if p.docHits.Load() != 2 {
		t.Fatalf("doc hits %d, want 2", p.docHits.Load())
	}
	if w := d.logged(t, "discovery document unreadable; using the last jwks_uri"); len(w) != 1 || w[0]["level"] != "WARN" {
		t.Fatalf("log: %v", w)
	}
}

// TestDiscoveryAlgWarning (J22): the document's id_token_signing_alg_values_supported missing
// every allowed algorithm is worth a warning (never a refusal: access tokens may differ).
func TestDiscoveryAlgWarning(t *testing.T) {
	p := newOIDCIDP(t, false)
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys", "id_token_signing_alg_values_supported": []string{"HS256", "RS512"}})
	d := newTestDiscovery(t, p.URL, plainClient(t), newFakeClock(), true) // testAlgs: no HS*, no RS512
	if err := d.tr.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	w := d.logged(t, "the issuer signs ID tokens with none of the provider's algorithms; its tokens may all be refused")
	if len(w) != 1 || w[0]["level"] != "WARN" {
		t.Fatalf("log: %v", w)
	}
}

func TestDiscoveryURL(t *testing.T) {
	tests := []struct {
		issuer   string
		insecure bool
		want     string // "" = error
	}{
		{"https://idp.example.com", false, "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/", false, "https://idp.example.com/.well-known/openid-configuration"},
		{"https://idp.example.com/realms/main", false, "https://idp.example.com/realms/main/.well-known/openid-configuration"},
		{"https://idp.example.com/realms/main/", false, "https://idp.example.com/realms/main/.well-known/openid-configuration"},
		{"http://127.0.0.1:9000/dev", true, "http://127.0.0.1:9000/dev/.well-known/openid-configuration"},
		{"http://127.0.0.1:9000/dev", false, ""},
		{"https://idp.example.com?tenant=1", false, ""},
		{"https://idp.example.com#x", false, ""},
		{"https://user@idp.example.com", false, ""},
		{"idp.example.com", false, ""},
		{"", false, ""},
	}
	for _, tc := range tests {
		got, err := DiscoveryURL(tc.issuer, tc.insecure)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("DiscoveryURL(%q, %v) = %q, %v; want %q", tc.issuer, tc.insecure, got, err, tc.want)
		}
	}
	if _, err := NewDiscovery(DiscoveryOptions{Issuer: "https://idp.example.com", Remote: RemoteOptions{URI: "https://idp.example.com/keys"}}); err == nil {
		t.Error("a discovery source with a URI was built")
	}
}

// TestDiscoveryRunsTheRemoteMachinery (J16, J22): a discovery source is a Remote: Run fetches at
// start and on schedule, and an unknown kid gets one shared, cooled-down fetch; the document is
// not read again for any of them.
func TestDiscoveryRunsTheRemoteMachinery(t *testing.T) {
	p := newOIDCIDP(t, false)
	p.serveDoc(t, map[string]any{"issuer": p.URL, "jwks_uri": p.URL + "/keys"})
	p.handleKeys(serve(kidDoc(t, "a"), "Cache-Control", "max-age=600"))
	clk := newFakeClock()
	d := newTestDiscovery(t, p.URL, plainClient(t), clk, true)
	d.tr.Remote.scheduled = func(w time.Duration) { d.tr.waits <- w }
	d.tr.run(t)
	if res := d.tr.nextFetch(t); res.Err != nil || res.URI != p.URL+"/keys" {
		t.Fatalf("first fetch %+v", res)
	}
	if w := d.tr.nextWait(t); w != 600*time.Second {
		t.Fatalf("next refresh in %s, want max-age 600s", w)
	}
	p.handleKeys(serve(kidDoc(t, "a", "b"), "Cache-Control", "max-age=600"))
	if _, err := d.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("within the cooldown: %v", err)
	}
	clk.Advance(61 * time.Second)
	set, err := d.RefreshForKID(context.Background())
	if err != nil || len(set.Lookup("b")) != 1 {
		t.Fatalf("kid refresh: %v", err)
	}
	if res := d.tr.nextFetch(t); res.Trigger != "kid" {
		t.Fatalf("kid fetch %+v", res)
	}
	clk.Advance(d.tr.nextWait(t))
	if res := d.tr.nextFetch(t); res.Trigger != "schedule" || res.Err != nil {
		t.Fatalf("scheduled fetch %+v", res)
	}
	if p.docHits.Load() != 1 || p.jwksHits.Load() != 3 {
		t.Fatalf("doc %d, JWKS %d requests; want 1 and 3", p.docHits.Load(), p.jwksHits.Load())
	}
}
