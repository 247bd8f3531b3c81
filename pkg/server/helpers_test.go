package server

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwtauthz/pkg/config"
)

// fakeClock drives key schedules, backoff, max_stale and file polls (Options.Now and
// Options.After): time moves only when a test calls Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []fakeTimer
	added   chan struct{} // closed and replaced each time a timer is added
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), added: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.pending = append(c.pending, fakeTimer{at: c.now.Add(d), ch: ch})
	close(c.added)
	c.added = make(chan struct{})
	return ch
}

// Advance moves the clock by d and fires every timer now due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.pending[:0]
	for _, tm := range c.pending {
		if tm.at.After(c.now) {
			kept = append(kept, tm)
			continue
		}
		tm.ch <- c.now
	}
	c.pending = kept
}

// waitTimers blocks until at least n timers are pending: the loops that set them are parked.
func (c *fakeClock) waitTimers(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(time.Minute) // a safety net for slow machines, not a sleep
	for {
		c.mu.Lock()
		have, added := len(c.pending), c.added
		c.mu.Unlock()
		if have >= n {
			return
		}
		select {
		case <-added:
		case <-deadline:
			t.Fatalf("waited 10s for %d pending timers, have %d", n, have)
		}
	}
}

// syncWriter collects log output.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// signer is an Ed25519 key with a kid.
type signer struct {
	kid  string
	priv ed25519.PrivateKey
}

func newSigner(t testing.TB, kid string) *signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{kid: kid, priv: priv}
}

func (s *signer) jwk() map[string]any {
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": s.kid, "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(s.priv.Public().(ed25519.PublicKey))}
}

// mint signs a token for iss, valid at now, with extra header members (kid defaults to the
// key's; kid "" leaves it out).
func (s *signer) mint(t testing.TB, iss string, now time.Time, header map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if _, ok := header["kid"]; !ok {
		opts = opts.WithHeader("kid", s.kid)
	}
	for k, v := range header {
		if k == "kid" && v == "" {
			continue
		}
		opts = opts.WithHeader(jose.HeaderKey(k), v)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: s.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(map[string]any{
		"iss": iss, "aud": "https://api.example.com", "sub": "alice", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// jwksDoc is a JWK Set of the signers' public keys, plus any raw extra entries.
func jwksDoc(t testing.TB, keys []*signer, extra ...map[string]any) []byte {
	t.Helper()
	var entries []any
	for _, k := range keys {
		entries = append(entries, k.jwk())
	}
	for _, e := range extra {
		entries = append(entries, e)
	}
	b, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// idp is a counting IdP on a random port: its handler is switched by the test.
type idp struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	h    http.HandlerFunc
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{h: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) }}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		h := p.h
		p.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *idp) handle(h http.HandlerFunc) {
	p.mu.Lock()
	p.h = h
	p.mu.Unlock()
}

func (p *idp) down() {
	p.handle(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) })
}

// serveKeys answers a JWKS with the given response headers (name, value pairs).
func (p *idp) serveKeys(body []byte, header ...string) {
	p.handle(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		_, _ = w.Write(body)
	})
}

// testServer is a running Run on ":0" listeners with the fake clock.
type testServer struct {
	Addrs
	clk  *fakeClock
	logs *syncWriter
	cc   *grpc.ClientConn
}

// startServer loads yamlConfig (the listener addresses and drain knobs are added here), runs
// the server, and stops it when the test ends.
func startServer(t *testing.T, clk *fakeClock, yamlConfig string) *testServer {
	t.Helper()
	full := "server: {grpc_address: \"127.0.0.1:0\", http_address: \"127.0.0.1:0\", admin_address: \"127.0.0.1:0\", drain_delay: \"0s\", drain_timeout: \"5s\"}\n" + yamlConfig
	cfg, _, err := config.LoadBytes([]byte(full))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, full)
	}
	ts := &testServer{clk: clk, logs: &syncWriter{}}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			Config: cfg, Logger: slog.New(slog.NewJSONHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			Now: clk.Now, After: clk.After, Version: "test", Listening: func(a Addrs) { listening <- a },
		})
	}()
	select {
	case ts.Addrs = <-listening:
	case err := <-done:
		cancel()
		t.Fatalf("Run returned at start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("Run did not start listening")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10s of its context ending")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", ts.logs.String())
		}
	})
	cc, err := grpc.NewClient(ts.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ts.cc = cc
	return ts
}

// get requests a path of the admin listener.
func (s *testServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + s.Admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// check asks the gRPC listener about a request carrying tok, and returns the HTTP status of the
// decision (200 for an allow) and its reason code.
func (s *testServer) check(t *testing.T, tok string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(s.cc).Check(ctx, &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Host: "api.example.com", Path: "/orders", Scheme: "https",
			Headers: map[string]string{":method": "GET", ":path": "/orders", ":authority": "api.example.com", "authorization": "Bearer " + tok},
		}},
	}})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	reason := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()
	if resp.GetOkResponse() != nil {
		return http.StatusOK, reason
	}
	return int(resp.GetDeniedResponse().GetStatus().GetCode()), reason
}

// health is the gRPC health status of service.
func (s *testServer) health(t *testing.T, service string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	resp, err := healthpb.NewHealthClient(s.cc).Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		t.Fatalf("health %q: %v", service, err)
	}
	return resp.Status
}

// waitHealth follows the gRPC health Watch stream of both services until they report want.
func (s *testServer) waitHealth(t *testing.T, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	for _, svc := range []string{"", authv3.Authorization_ServiceDesc.ServiceName} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := healthpb.NewHealthClient(s.cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				cancel()
				t.Fatalf("health %q never became %v: %v", svc, want, err)
			}
			if resp.Status == want {
				break
			}
		}
		cancel()
	}
}

// metric returns the value of one exposition line of /metrics ("name{labels}"), or an error when
// it is absent.
func (s *testServer) metric(t *testing.T, series string) (string, error) {
	t.Helper()
	code, body := s.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v, nil
		}
	}
	return "", errors.New(series + " not exposed")
}

// waitMetric waits until series has value want.
func (s *testServer) waitMetric(t *testing.T, series, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := s.metric(t, series)
		if err == nil && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: %s = %q (%v), want %s", series, v, err, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path string, body []byte) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
