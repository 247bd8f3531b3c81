package jwks

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// idp is a counting JWKS server on a random port (house style §19); tests switch its handler.
type idp struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	h    http.HandlerFunc
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{h: status(http.StatusInternalServerError)}
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

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { http.Error(w, http.StatusText(code), code) }
}

// serve answers 200 with body and the given header name/value pairs.
func serve(body []byte, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		_, _ = w.Write(body)
	}
}

// kidDoc is a JWK Set with one P-256 key under each kid.
func kidDoc(t testing.TB, kids ...string) []byte {
	t.Helper()
	var entries []any
	for _, kid := range kids {
		entries = append(entries, jwk(t, tk(t).p256.Public(), kid, "ES256"))
	}
	return doc(t, entries...)
}

type testRemote struct {
	*Remote
	fetches chan FetchResult   // every attempt, in order
	waits   chan time.Duration // every wait Run starts
	clk     *fakeClock
}

// newTestRemote builds a Remote on p with the fake clock, a fixed jitter of 0.5 (which makes the
// ±10 % schedule jitter exactly 0 and the backoff half its step) and the contract's defaults.
func newTestRemote(t *testing.T, p *idp, clk *fakeClock, opts ...func(*RemoteOptions)) *testRemote {
	t.Helper()
	client, err := NewHTTPClient(HTTPClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &testRemote{fetches: make(chan FetchResult, 256), waits: make(chan time.Duration, 256), clk: clk}
	o := RemoteOptions{
		Provider:   "test",
		URI:        p.URL + "/jwks.json",
		Client:     client,
		Algorithms: testAlgs,
		Now:        clk.Now,
		After:      clk.After,
		Jitter:     func() float64 { return 0.5 },
		Logger:     slog.New(slog.DiscardHandler),
		OnFetch: func(res FetchResult) {
			select {
			case tr.fetches <- res:
			default:
				panic("fetch results not drained")
			}
		},
	}
	for _, f := range opts {
		f(&o)
	}
	r, err := NewRemote(o)
	if err != nil {
		t.Fatal(err)
	}
	r.scheduled = func(d time.Duration) {
		select {
		case tr.waits <- d:
		default:
			panic("schedule hook not drained")
		}
	}
	tr.Remote = r
	return tr
}

// run starts Run and stops it (and checks that it returned) when the test ends.
func (r *testRemote) run(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (r *testRemote) nextFetch(t *testing.T) FetchResult {
	t.Helper()
	select {
	case res := <-r.fetches:
		return res
	case <-time.After(10 * time.Second):
		t.Fatal("no fetch within 10s")
	}
	return FetchResult{}
}

func (r *testRemote) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-r.waits:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("Run scheduled nothing within 10s")
	}
	return 0
}

// fetchNow runs one fetch as Run does on schedule, and waits for it.
func (r *testRemote) fetchNow(t *testing.T) error {
	t.Helper()
	c, err := r.startOrJoin(false)
	if err != nil {
		t.Fatal(err)
	}
	<-c.done
	<-r.fetches
	return c.err
}

func (r *testRemote) state() (failures int, nextAttempt, nextRefresh time.Time, inflight bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failures, r.nextAttempt, r.nextRefresh, r.inflight != nil
}

func mustCurrent(t *testing.T, r *testRemote) *Set {
	t.Helper()
	set, err := r.Current()
	if err != nil {
		t.Fatalf("Current: %v", err)
	}
	if !r.Ready() {
		t.Fatal("Current has keys but Ready is false")
	}
	return set
}

func wantUnavailable(t *testing.T, r *testRemote) {
	t.Helper()
	if set, err := r.Current(); !errors.Is(err, ErrKeysUnavailable) || set != nil {
		t.Fatalf("Current = %v, %v; want ErrKeysUnavailable", set, err)
	}
	if r.Ready() {
		t.Fatal("Ready without keys")
	}
}

// TestColdStartBackoff is T1 (J18, J20): with the IdP down, no keys and not ready; attempts
// every 1 s, 2 s, 4 s... (here with a jitter draw near 1); keys and readiness after the first
// success.
func TestColdStartBackoff(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	const f = 0.999
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.Jitter = func() float64 { return f } })
	r.run(t)

	step := time.Second
	for n := 1; n <= 5; n++ {
		if res := r.nextFetch(t); !errors.Is(res.Err, ErrHTTPStatus) {
			t.Fatalf("attempt %d: %v, want ErrHTTPStatus", n, res.Err)
		}
		wantUnavailable(t, r)
		wait := r.nextWait(t)
		if wait != Backoff(n, 5*time.Minute, f) || wait > step || wait < step*9/10 {
			t.Fatalf("attempt %d: waits %s, want %s (just under %s)", n, wait, Backoff(n, 5*time.Minute, f), step)
		}
		if ra := r.RetryAfter(); ra != max(time.Second, wait.Round(time.Second)) {
			t.Fatalf("RetryAfter = %s after a %s backoff", ra, wait)
		}
		if n == 5 {
			p.handle(serve(kidDoc(t, "a")))
		}
		clk.Advance(wait)
		step *= 2
	}
	if res := r.nextFetch(t); res.Err != nil || res.Keys != 1 || res.Trigger != "schedule" {
		t.Fatalf("after recovery: %+v", res)
	}
	if set := mustCurrent(t, r); len(set.Lookup("a")) != 1 {
		t.Fatal("kid a missing after recovery")
	}
	if got := p.hits.Load(); got != 6 {
		t.Fatalf("%d requests, want 6", got)
	}
	// No cache headers: refresh_interval (3600 s), jittered by +9.98 %.
	if wait := r.nextWait(t); wait != jitter(time.Hour, f) {
		t.Fatalf("next refresh in %s, want %s", wait, jitter(time.Hour, f))
	}
}

// TestFailureKeepsSet is T2 (J4, J18): a 500 after a good fetch keeps the set and backs off.
func TestFailureKeepsSet(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a"), "Cache-Control", "max-age=600"))
	r := newTestRemote(t, p, clk)
	r.run(t)
	if res := r.nextFetch(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	good := mustCurrent(t, r)
	if wait := r.nextWait(t); wait != 600*time.Second {
		t.Fatalf("refresh in %s, want 600s (max-age)", wait)
	}
	p.handle(status(http.StatusInternalServerError))
	clk.Advance(600 * time.Second)
	for n := 1; n <= 3; n++ {
		if res := r.nextFetch(t); !errors.Is(res.Err, ErrHTTPStatus) {
			t.Fatalf("failure %d: %v", n, res.Err)
		}
		if set := mustCurrent(t, r); set != good {
			t.Fatal("the last good set was replaced after a failed fetch")
		}
		wait := r.nextWait(t)
		if want := Backoff(n, 5*time.Minute, 0.5); wait != want {
			t.Fatalf("failure %d: retry in %s, want %s", n, wait, want)
		}
		if n == 3 {
			// Before the clock moves: the retry starts as soon as it does.
			p.handle(serve(kidDoc(t, "b"), "Cache-Control", "max-age=600"))
		}
		clk.Advance(wait)
	}
	if res := r.nextFetch(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	if set := mustCurrent(t, r); set == good || len(set.Lookup("b")) != 1 {
		t.Fatal("the set was not replaced after recovery")
	}
	if f, _, _, _ := r.state(); f != 0 {
		t.Fatalf("failures = %d after a success", f)
	}
}

// TestBadDocumentKeepsSet is T3 at the cache level (J7, J12): a document that parses to no usable
// key is a failed refresh; the last good set stays.
func TestBadDocumentKeepsSet(t *testing.T) {
	k := tk(t)
	tests := []struct {
		name    string
		h       http.HandlerFunc
		wantErr error
	}{
		{"invalid JSON", serve([]byte(`{"keys":[`)), ErrBadDocument},
		{"HTML page", serve([]byte(`<html>maintenance</html>`), "Content-Type", "text/html"), ErrBadDocument},
		{"empty keys", serve([]byte(`{"keys":[]}`)), ErrNoUsableKey},
		{"only unusable keys", serve(doc(t, jwk(t, k.rsa1024.Public(), "small", ""), map[string]any{"kty": "oct", "k": "c2VjcmV0"})), ErrNoUsableKey},
		{"too many keys", serve(doc(t, make([]any, MaxKeysPerSet+1)...)), ErrTooManyKeys},
		{"404", status(http.StatusNotFound), ErrHTTPStatus},
		{"204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }, ErrHTTPStatus},
		{"304 without a validator sent", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotModified) }, ErrHTTPStatus},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			p := newIDP(t)
			p.handle(serve(kidDoc(t, "a")))
			r := newTestRemote(t, p, clk)
			if err := r.fetchNow(t); err != nil {
				t.Fatal(err)
			}
			good := mustCurrent(t, r)
			p.handle(tc.h)
			for range 2 {
				clk.Advance(time.Hour)
				c, _ := r.startOrJoin(false)
				<-c.done
				res := <-r.fetches
				if !errors.Is(c.err, tc.wantErr) || !errors.Is(res.Err, tc.wantErr) {
					t.Fatalf("fetch error %v, want %v", c.err, tc.wantErr)
				}
				if set := mustCurrent(t, r); set != good {
					t.Fatal("the last good set was replaced")
				}
			}
			if f, _, _, _ := r.state(); f != 2 {
				t.Fatalf("failures = %d, want 2", f)
			}
		})
	}
}

// TestSkipsReported: the skipped keys of a fetch reach OnFetch (metrics), also when the fetch
// fails for lack of a usable key.
func TestSkipsReported(t *testing.T) {
	k := tk(t)
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(doc(t, jwk(t, k.p256.Public(), "good", ""), jwk(t, k.rsa2048, "private", ""))))
	r := newTestRemote(t, p, clk)
	c, _ := r.startOrJoin(false)
	<-c.done
	res := <-r.fetches
	if res.Err != nil || res.Keys != 1 || len(res.Skipped) != 1 || res.Skipped[0].Reason != SkipPrivate || res.Provider != "test" {
		t.Fatalf("result %+v", res)
	}
	p.handle(serve(doc(t, jwk(t, k.rsa2048, "private", ""))))
	c, _ = r.startOrJoin(false)
	<-c.done
	res = <-r.fetches
	if !errors.Is(res.Err, ErrNoUsableKey) || res.Keys != 0 || len(res.Skipped) != 1 {
		t.Fatalf("result %+v", res)
	}
}

// TestBodySizeCap is T4 (J5): max_bytes is accepted, one byte more is a failed refresh.
func TestBodySizeCap(t *testing.T) {
	const maxBytes = 4096
	body := kidDoc(t, "a")
	pad := func(n int) []byte {
		return append(append([]byte{}, body...), bytes.Repeat([]byte(" "), n-len(body))...)
	}
	tests := []struct {
		name    string
		h       http.HandlerFunc
		wantErr error
	}{
		{"exactly max_bytes", serve(pad(maxBytes)), nil},
		{"max_bytes+1", serve(pad(maxBytes + 1)), ErrTooLarge},
		{"max_bytes+1, chunked", func(w http.ResponseWriter, _ *http.Request) {
			b := pad(maxBytes + 1)
			_, _ = w.Write(b[:100])
			w.(http.Flusher).Flush()
			_, _ = w.Write(b[100:])
		}, ErrTooLarge},
		{"8 MiB", serve(pad(8 << 20)), ErrTooLarge},
		{"endless", func(w http.ResponseWriter, r *http.Request) {
			// Reading stops at the cap, long before the (default 5s) timeout.
			chunk := bytes.Repeat([]byte(" "), 1024)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t)
			p.handle(tc.h)
			r := newTestRemote(t, p, newFakeClock(), func(o *RemoteOptions) { o.MaxBytes = maxBytes })
			err := r.fetchNow(t)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				mustCurrent(t, r)
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			wantUnavailable(t, r)
		})
	}
}

// TestSlowBody is T5 (J2): a body trickled over 30 s is cut at the per-attempt timeout (1 s
// here). The only test on the real clock: the fetch deadline is a context deadline. Both
// handlers would complete a valid document after 30 s, so without the timeout the fetch would
// succeed instead of failing with a deadline error.
func TestSlowBody(t *testing.T) {
	const trickleFor = 30 * time.Second
	good := kidDoc(t, "a")
	tests := []struct {
		name string
		h    func(done <-chan struct{}) http.HandlerFunc
	}{
		{"one byte, then the rest after 30s", func(done <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(good[:1])
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-done:
				case <-time.After(trickleFor):
					_, _ = w.Write(good[1:])
				}
			}
		}},
		{"a byte every 100ms for 30s", func(done <-chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(good[:1])
				w.(http.Flusher).Flush()
				tick := time.NewTicker(100 * time.Millisecond) // the attacker's pace, not test sync
				defer tick.Stop()
				end := time.After(trickleFor)
				for {
					select {
					case <-r.Context().Done():
						return
					case <-done:
						return
					case <-end:
						_, _ = w.Write(good[1:])
						return
					case <-tick.C:
						_, _ = w.Write([]byte(" "))
						w.(http.Flusher).Flush()
					}
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t)
			done := make(chan struct{})
			t.Cleanup(func() { close(done) }) // runs before p.Close: releases the handler
			p.handle(tc.h(done))
			r := newTestRemote(t, p, newFakeClock(), func(o *RemoteOptions) { o.Timeout = time.Second })
			start := time.Now()
			err := r.fetchNow(t)
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want a deadline error", err)
			}
			// Far from the 30 s the body takes; loose upward because the machine may be busy.
			if elapsed < 900*time.Millisecond || elapsed > trickleFor/2 {
				t.Fatalf("fetch took %s, want about the 1s timeout", elapsed)
			}
			wantUnavailable(t, r)
		})
	}
}

// TestRedirectNotFollowed is T6 (J3): a 3xx is a failed refresh and its target is never asked.
func TestRedirectNotFollowed(t *testing.T) {
	target := newIDP(t)
	target.handle(serve(kidDoc(t, "evil")))
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		p := newIDP(t)
		p.handle(func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, target.URL+"/jwks.json", code) })
		r := newTestRemote(t, p, newFakeClock())
		if err := r.fetchNow(t); !errors.Is(err, ErrHTTPStatus) {
			t.Errorf("%d: err = %v, want ErrHTTPStatus", code, err)
		}
		wantUnavailable(t, r)
	}
	if n := target.hits.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// TestGzipBomb is T7 (J5): the cap counts decompressed bytes.
func TestGzipBomb(t *testing.T) {
	const maxBytes = 64 << 10
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		_, _ = w.Write(b)
		_ = w.Close()
		return buf.Bytes()
	}
	body := kidDoc(t, "a")
	bomb := gz(append(append([]byte{}, body[:len(body)-1]...), append(bytes.Repeat([]byte(" "), 4<<20), '}')...))
	if len(bomb) >= maxBytes {
		t.Fatalf("the bomb is %d bytes compressed: not a bomb", len(bomb))
	}
	tests := []struct {
		name    string
		body    []byte
		wantErr error
	}{
		{"small gzip body", gz(body), nil},
		{"gzip bomb", bomb, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newIDP(t)
			p.handle(func(w http.ResponseWriter, r *http.Request) {
				if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
					http.Error(w, "no gzip", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Encoding", "gzip")
				_, _ = w.Write(tc.body)
			})
			r := newTestRemote(t, p, newFakeClock(), func(o *RemoteOptions) { o.MaxBytes = maxBytes })
			if err := r.fetchNow(t); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestRequest checks the request itself (J1): GET, Accept, User-Agent, nothing else of ours.
func TestRequest(t *testing.T) {
	p := newIDP(t)
	reqs := make(chan *http.Request, 1)
	body := kidDoc(t, "a")
	p.handle(func(w http.ResponseWriter, r *http.Request) {
		reqs <- r.Clone(context.Background())
		serve(body)(w, r)
	})
	r := newTestRemote(t, p, newFakeClock(), func(o *RemoteOptions) { o.UserAgent = "jwtauthz/1.2.3" })
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	got := <-reqs
	if got.Method != http.MethodGet || got.URL.Path != "/jwks.json" {
		t.Errorf("%s %s", got.Method, got.URL.Path)
	}
	if a := got.Header.Get("Accept"); a != "application/jwk-set+json, application/json" {
		t.Errorf("Accept = %q", a)
	}
	if ua := got.Header.Get("User-Agent"); ua != "jwtauthz/1.2.3" {
		t.Errorf("User-Agent = %q", ua)
	}
	for _, h := range []string{"Cookie", "Authorization"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s sent: %q", h, v)
		}
	}
}

// TestCAFile: the client trusts ca_file on top of the system roots (J1), and refuses a server
// it cannot verify.
func TestCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(serve(kidDoc(t, "a")))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below is expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	fetch := func(client *http.Client) error {
		r, err := NewRemote(RemoteOptions{URI: srv.URL, Client: client, Algorithms: testAlgs, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.fetch(context.Background(), attempt{})
		return err
	}
	withCA, err := NewHTTPClient(HTTPClientOptions{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if err := fetch(withCA); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}
	plain, _ := NewHTTPClient(HTTPClientOptions{})
	if err := fetch(plain); err == nil {
		t.Fatal("a server signed by an unknown CA was trusted")
	}
	notPEM := filepath.Join(dir, "not.pem")
	_ = os.WriteFile(notPEM, []byte("hello"), 0o600)
	if _, err := NewHTTPClient(HTTPClientOptions{CAFile: notPEM}); err == nil {
		t.Error("a ca_file without a certificate was accepted")
	}
	if _, err := NewHTTPClient(HTTPClientOptions{CAFile: filepath.Join(dir, "missing.pem")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing ca_file: %v", err)
	}
}

// TestRotationKIDAdded is T9 (J16): a kid published before the schedule comes due is fetched by
// one kid-triggered refresh, which also moves the schedule.
func TestRotationKIDAdded(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a"), "Cache-Control", "max-age=600"))
	r := newTestRemote(t, p, clk)
	r.run(t)
	if res := r.nextFetch(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	t0 := clk.Now()
	if wait := r.nextWait(t); wait != 600*time.Second {
		t.Fatalf("refresh in %s", wait)
	}
	p.handle(serve(kidDoc(t, "a", "b"), "Cache-Control", "max-age=600"))
	clk.Advance(100 * time.Second) // past kid_miss_cooldown (60s), before the schedule
	if set, _ := r.Current(); len(set.Lookup("b")) != 0 {
		t.Fatal("b present before any refresh")
	}
	set, err := r.RefreshForKID(context.Background())
	if err != nil {
		t.Fatalf("RefreshForKID: %v", err)
	}
	if len(set.Lookup("b")) != 1 || len(set.Lookup("a")) != 1 {
		t.Fatal("the new set lacks a or b")
	}
	if res := r.nextFetch(t); res.Trigger != "kid" || res.Err != nil {
		t.Fatalf("kid fetch result %+v", res)
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// Run was woken and recomputed: the refresh is now due 600s after the kid fetch.
	if wait := r.nextWait(t); wait != 600*time.Second {
		t.Fatalf("after the kid fetch, refresh in %s, want 600s", wait)
	}
	clk.Advance(600 * time.Second)
	if res := r.nextFetch(t); res.Trigger != "schedule" || res.Err != nil {
		t.Fatalf("scheduled fetch %+v", res)
	}
	r.mu.Lock()
	last := r.lastSuccess
	r.mu.Unlock()
	if want := t0.Add(700 * time.Second); !last.Equal(want) {
		t.Fatalf("scheduled fetch at +%s, want +700s", last.Sub(t0))
	}
}

// TestRotationKIDRemoved is T10 (J13): a good refresh replaces the set, so a kid removed upstream
// disappears at once, and asking for it again within the cooldown is refused.
func TestRotationKIDRemoved(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a", "b"), "Cache-Control", "max-age=600"))
	r := newTestRemote(t, p, clk)
	r.run(t)
	r.nextFetch(t)
	if set := mustCurrent(t, r); len(set.Lookup("a")) != 1 {
		t.Fatal("a missing")
	}
	p.handle(serve(kidDoc(t, "b"), "Cache-Control", "max-age=600"))
	clk.Advance(r.nextWait(t))
	if res := r.nextFetch(t); res.Err != nil {
		t.Fatal(res.Err)
	}
	set := mustCurrent(t, r)
	if len(set.Lookup("a")) != 0 || len(set.Lookup("b")) != 1 || set.Len() != 1 {
		t.Fatalf("after removal: a=%d b=%d len=%d", len(set.Lookup("a")), len(set.Lookup("b")), set.Len())
	}
	if _, err := r.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("RefreshForKID for the removed kid: %v, want ErrRefreshRefused", err)
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// TestKIDStorm is T11 scaled (J16): 1,000 concurrent unknown-kid callers share one fetch; then,
// within kid_miss_cooldown, 1,000 more are refused at once and fetch nothing.
func TestKIDStorm(t *testing.T) {
	const callers = 1000
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a")))
	r := newTestRemote(t, p, clk)
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second)

	gate := make(chan struct{})
	rotated := kidDoc(t, "a", "b")
	p.handle(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-gate:
		case <-req.Context().Done():
			return
		}
		serve(rotated)(w, req)
	})
	waitAll := func(f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { f(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("callers still blocked after 20s")
		}
	}

	// Phase 1: everyone starts or joins the one fetch, held at the IdP until all are parked.
	var sets []*Set
	var errs []error
	var wg sync.WaitGroup
	sets, errs = make([]*Set, callers), make([]error, callers)
	for i := range callers {
		wg.Go(func() { sets[i], errs[i] = r.RefreshForKID(context.Background()) })
	}
	clk.waitPending(t, KIDWait, callers)
	close(gate)
	waitAll(wg.Wait)
	for i := range callers {
		if errs[i] != nil || len(sets[i].Lookup("b")) != 1 {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests for %d callers, want 1 (+1 initial)", n, callers)
	}
	<-r.fetches

	// Phase 2: within the cooldown, refused at once: no fetch, no wait on any timer.
	pendingBefore := clk.pendingOf(KIDWait)
	start := time.Now()
	for i := range callers {
		wg.Go(func() { sets[i], errs[i] = r.RefreshForKID(context.Background()) })
	}
	waitAll(wg.Wait)
	elapsed := time.Since(start)
	for i := range callers {
		if !errors.Is(errs[i], ErrRefreshRefused) || sets[i] != nil {
			t.Fatalf("caller %d within the cooldown: %v", i, errs[i])
		}
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests after the refused storm, want 2", n)
	}
	if clk.pendingOf(KIDWait) != pendingBefore {
		t.Fatal("a refused caller started waiting")
	}
	t.Logf("%d refused callers in %s", callers, elapsed)

	// After the cooldown, the next miss may fetch again.
	clk.Advance(60 * time.Second)
	if _, err := r.RefreshForKID(context.Background()); err != nil {
		t.Fatalf("after the cooldown: %v", err)
	}
	if n := p.hits.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
}

// TestKIDFetchFailure (J16, J18): a failed kid-triggered fetch does not start the cooldown, but
// the backoff refuses kid-triggered fetches until it ends; the in-flight call is cleared.
func TestKIDFetchFailure(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a")))
	r := newTestRemote(t, p, clk)
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	good := mustCurrent(t, r)
	clk.Advance(61 * time.Second)
	p.handle(status(http.StatusServiceUnavailable))

	refresh := func() error {
		t.Helper()
		set, err := r.RefreshForKID(context.Background())
		if err == nil && set == nil {
			t.Fatal("nil set without an error")
		}
		return err
	}
	if err := refresh(); !errors.Is(err, ErrHTTPStatus) {
		t.Fatalf("first kid fetch: %v, want ErrHTTPStatus", err)
	}
	<-r.fetches
	if f, next, _, inflight := r.state(); f != 1 || inflight || !next.Equal(clk.Now().Add(500*time.Millisecond)) {
		t.Fatalf("failures %d, in flight %v, next attempt +%s", f, inflight, next.Sub(clk.Now()))
	}
	if set := mustCurrent(t, r); set != good {
		t.Fatal("set replaced by a failed fetch")
	}
	// Within the backoff: refused, nothing fetched.
	if err := refresh(); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("within the backoff: %v", err)
	}
	clk.Advance(499 * time.Millisecond)
	if err := refresh(); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("1ms before the backoff ends: %v", err)
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
	// The backoff is over; had the failure started a cooldown (60s), this would be refused.
	clk.Advance(time.Millisecond)
	if err := refresh(); !errors.Is(err, ErrHTTPStatus) {
		t.Fatalf("after the backoff: %v, want a second fetch", err)
	}
	<-r.fetches
	if n := p.hits.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	// Second backoff step: 1s.
	clk.Advance(999 * time.Millisecond)
	if err := refresh(); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("within the second backoff: %v", err)
	}
	clk.Advance(time.Millisecond)
	p.handle(serve(kidDoc(t, "a", "b")))
	if err := refresh(); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	<-r.fetches
	if f, _, _, _ := r.state(); f != 0 {
		t.Fatalf("failures = %d after a success", f)
	}
	// The success starts the cooldown.
	clk.Advance(59 * time.Second)
	if err := refresh(); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("within the cooldown: %v", err)
	}
	if n := p.hits.Load(); n != 4 {
		t.Fatalf("%d requests, want 4", n)
	}
}

// TestKIDWaitBounded (J16): a caller waits at most KIDWait, or until its context ends, for a
// fetch; the fetch itself goes on and installs its set for everyone.
func TestKIDWaitBounded(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a")))
	r := newTestRemote(t, p, clk)
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	clk.Advance(61 * time.Second)
	gate := make(chan struct{})
	entered := make(chan struct{}, 1)
	p.handle(func(w http.ResponseWriter, req *http.Request) {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-req.Context().Done():
			return
		}
		serve(kidDoc(t, "a", "b"))(w, req)
	})

	// A caller whose context has already ended starts nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.RefreshForKID(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v", err)
	}
	if _, _, _, inflight := r.state(); inflight || p.hits.Load() != 1 {
		t.Fatal("a fetch started for a request that was already over")
	}

	type result struct {
		set *Set
		err error
	}
	call := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			set, err := r.RefreshForKID(ctx)
			ch <- result{set, err}
		}()
		return ch
	}
	get := func(ch <-chan result) result {
		t.Helper()
		select {
		case res := <-ch:
			return res
		case <-time.After(10 * time.Second):
			t.Fatal("RefreshForKID still blocked after 10s")
		}
		return result{}
	}

	first := call(context.Background())
	clk.waitPending(t, KIDWait, 1)
	<-entered
	// A second caller joins and gives up when its request context ends.
	ctx, cancel = context.WithCancel(context.Background())
	second := call(ctx)
	clk.waitPending(t, KIDWait, 2)
	cancel()
	if res := get(second); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", res.err)
	}
	// The first gives up after KIDWait.
	clk.Advance(KIDWait)
	if res := get(first); !errors.Is(res.err, ErrRefreshRefused) {
		t.Fatalf("after KIDWait: %v", res.err)
	}
	if _, _, _, inflight := r.state(); !inflight {
		t.Fatal("the fetch was abandoned with its callers")
	}
	// A third caller still joins the same fetch, which now completes.
	third := call(context.Background())
	clk.waitPending(t, KIDWait, 1)
	close(gate)
	if res := get(third); res.err != nil || len(res.set.Lookup("b")) != 1 {
		t.Fatalf("joined caller: %v", res.err)
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}

// TestLimiterAcrossRemotes (J16): the global cap counts kid-triggered fetches of every provider,
// and a failed fetch gives its token back.
func TestLimiterAcrossRemotes(t *testing.T) {
	clk := newFakeClock()
	lim := NewLimiter(1, clk.Now)
	pa, pb := newIDP(t), newIDP(t)
	pa.handle(serve(kidDoc(t, "a")))
	pb.handle(serve(kidDoc(t, "b")))
	withLimiter := func(o *RemoteOptions) { o.Limiter = lim }
	a, b := newTestRemote(t, pa, clk, withLimiter), newTestRemote(t, pb, clk, withLimiter)
	// Scheduled fetches never take a token.
	if a.fetchNow(t) != nil || b.fetchNow(t) != nil {
		t.Fatal("initial fetches failed")
	}
	clk.Advance(61 * time.Second)
	if _, err := a.RefreshForKID(context.Background()); err != nil {
		t.Fatalf("a: %v", err)
	}
	<-a.fetches
	if _, err := b.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("b over the cap: %v", err)
	}
	if pa.hits.Load() != 2 || pb.hits.Load() != 1 {
		t.Fatalf("hits a=%d b=%d", pa.hits.Load(), pb.hits.Load())
	}

	clk.Advance(61 * time.Second) // one token back
	pa.handle(status(http.StatusBadGateway))
	if _, err := a.RefreshForKID(context.Background()); !errors.Is(err, ErrHTTPStatus) {
		t.Fatalf("a failing: %v", err)
	}
	<-a.fetches
	// a's failure returned its token: b may fetch.
	if _, err := b.RefreshForKID(context.Background()); err != nil {
		t.Fatalf("b after a's failure: %v", err)
	}
	<-b.fetches
	clk.Advance(time.Second) // a's backoff is over, but the bucket is empty
	if _, err := a.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("a over the cap: %v", err)
	}
	if pa.hits.Load() != 3 || pb.hits.Load() != 2 {
		t.Fatalf("hits a=%d b=%d", pa.hits.Load(), pb.hits.Load())
	}
}

// TestLimiter: at most 10 reservations in any 60 s window (attack finding F6: a token bucket
// with a burst of 10 let 20 through in the first minute), cancels give one back.
func TestLimiter(t *testing.T) {
	clk := newFakeClock()
	l := NewLimiter(10, clk.Now)
	for i := range 10 {
		if !l.Reserve() {
			t.Fatalf("reserve %d refused", i)
		}
		clk.Advance(time.Second) // reservations at 0s..9s
	}
	if l.Reserve() {
		t.Fatal("11th reserve within a minute allowed")
	}
	clk.Advance(49 * time.Second) // now 59s: the first reservation (0s) is 59s old
	if l.Reserve() {
		t.Fatal("a slot opened before the oldest reservation left the window")
	}
	clk.Advance(time.Second) // 60s: the 0s reservation leaves the window
	if !l.Reserve() {
		t.Fatal("no slot after the oldest reservation left the window")
	}
	if l.Reserve() {
		t.Fatal("two slots opened for one expired reservation")
	}
	l.Cancel() // the last fetch failed: its slot comes back
	if !l.Reserve() {
		t.Fatal("cancel did not give the slot back")
	}
	// Over any 60 s, never more than 10, however the calls are spread.
	clk.Advance(time.Hour)
	granted := 0
	for i := 0; i < 600; i++ { // one try every 200 ms for two minutes
		if l.Reserve() {
			granted++
		}
		clk.Advance(200 * time.Millisecond)
	}
	if granted != 20 {
		t.Fatalf("%d reservations in 120 s, want 20", granted)
	}
	for range 20 {
		l.Cancel() // cancels beyond the reservations held are harmless
	}
	if n := countReserves(l); n != 10 {
		t.Fatalf("%d reservations after extra cancels, want 10", n)
	}
}

func countReserves(l *Limiter) int {
	n := 0
	for l.Reserve() {
		n++
	}
	return n
}

// TestMaxStale is T13 (J19): once the last good fetch is older than max_stale the keys are
// dropped (fail closed) and readiness goes false, until a fetch succeeds again.
func TestMaxStale(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a")))
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.MaxStale = time.Hour })
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	p.handle(status(http.StatusInternalServerError))
	clk.Advance(30 * time.Minute)
	if err := r.fetchNow(t); err == nil {
		t.Fatal("fetch succeeded")
	}
	clk.Advance(30 * time.Minute)
	mustCurrent(t, r) // exactly max_stale: still served
	clk.Advance(time.Second)
	wantUnavailable(t, r)
	if _, err := r.Current(); !strings.Contains(err.Error(), "ago") {
		t.Errorf("error does not say how old the keys are: %v", err)
	}
	if err := r.fetchNow(t); err == nil {
		t.Fatal("fetch succeeded")
	}
	wantUnavailable(t, r)
	p.handle(serve(kidDoc(t, "a")))
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	mustCurrent(t, r)
}

// TestMaxStaleWithRun: the same through Run, with the IdP failing and Run backing off.
func TestMaxStaleWithRun(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a"), "Cache-Control", "max-age=300"))
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.MaxStale = 10 * time.Minute })
	r.run(t)
	r.nextFetch(t)
	mustCurrent(t, r)
	p.handle(status(http.StatusInternalServerError))
	var elapsed time.Duration
	for elapsed <= 10*time.Minute {
		wait := r.nextWait(t)
		clk.Advance(wait)
		elapsed += wait
		if res := r.nextFetch(t); res.Err == nil {
			t.Fatal("fetch succeeded")
		}
	}
	wantUnavailable(t, r)
	if ra := r.RetryAfter(); ra < time.Second || ra > 5*time.Minute {
		t.Fatalf("RetryAfter = %s", ra)
	}
}

// TestTTL is T14 (J14).
func TestTTL(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const (
		fallback = time.Hour
		minimum  = 300 * time.Second
		maximum  = 86400 * time.Second
	)
	httpDate := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name    string
		header  []string
		ttl     time.Duration
		clamped time.Duration
	}{
		{"max-age 10s", []string{"Cache-Control", "max-age=10"}, 10 * time.Second, minimum},
		{"max-age 7d", []string{"Cache-Control", "max-age=604800"}, 7 * 24 * time.Hour, maximum},
		{"absent", nil, fallback, fallback},
		{"no-store", []string{"Cache-Control", "no-store"}, minimum, minimum},
		{"no-cache", []string{"Cache-Control", "no-cache"}, minimum, minimum},
		{"max-age=0", []string{"Cache-Control", "max-age=0"}, minimum, minimum},
		{"no-cache wins over max-age", []string{"Cache-Control", "max-age=900, no-cache"}, minimum, minimum},
		{"public, max-age", []string{"Cache-Control", "public, max-age=900"}, 900 * time.Second, 900 * time.Second},
		{"upper case", []string{"Cache-Control", "Public, MAX-AGE=900"}, 900 * time.Second, 900 * time.Second},
		{"quoted", []string{"Cache-Control", `max-age="900"`}, 900 * time.Second, 900 * time.Second},
		{"two Cache-Control fields", []string{"Cache-Control", "public", "Cache-Control", "max-age=900"}, 900 * time.Second, 900 * time.Second},
		{"max-age minus Age", []string{"Cache-Control", "max-age=900", "Age", "100"}, 800 * time.Second, 800 * time.Second},
		{"Age beyond max-age", []string{"Cache-Control", "max-age=900", "Age", "1000"}, -100 * time.Second, minimum},
		{"invalid Age ignored", []string{"Cache-Control", "max-age=900", "Age", "-5"}, 900 * time.Second, 900 * time.Second},
		{"invalid max-age ignored", []string{"Cache-Control", "max-age=abc"}, fallback, fallback},
		{"negative max-age ignored", []string{"Cache-Control", "max-age=-5"}, fallback, fallback},
		{"huge max-age", []string{"Cache-Control", "max-age=10000000000"}, (1 << 31) * time.Second, maximum},
		{"max-age beyond int64", []string{"Cache-Control", "max-age=99999999999999999999999"}, (1 << 31) * time.Second, maximum},
		{"max-age wins over Expires", []string{"Cache-Control", "max-age=900", "Expires", httpDate(2 * time.Hour), "Date", httpDate(0)}, 900 * time.Second, 900 * time.Second},
		{"Expires minus Date", []string{"Expires", httpDate(2 * time.Hour), "Date", httpDate(0)}, 2 * time.Hour, 2 * time.Hour},
		{"Expires minus a skewed Date", []string{"Expires", httpDate(2 * time.Hour), "Date", httpDate(-time.Hour)}, 3 * time.Hour, 3 * time.Hour},
		{"Expires without Date", []string{"Expires", httpDate(2 * time.Hour)}, 2 * time.Hour, 2 * time.Hour},
		{"Expires with Cache-Control lacking max-age", []string{"Cache-Control", "public", "Expires", httpDate(2 * time.Hour)}, 2 * time.Hour, 2 * time.Hour},
		{"Expires in the past", []string{"Expires", httpDate(-time.Hour), "Date", httpDate(0)}, -time.Hour, minimum},
		{"invalid Expires", []string{"Expires", "0"}, minimum, minimum},
		{"Expires 30d", []string{"Expires", httpDate(30 * 24 * time.Hour), "Date", httpDate(0)}, 30 * 24 * time.Hour, maximum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for i := 0; i+1 < len(tc.header); i += 2 {
				h.Add(tc.header[i], tc.header[i+1])
			}
			got := TTL(h, now, fallback, minimum)
			if got != tc.ttl {
				t.Errorf("TTL = %s, want %s", got, tc.ttl)
			}
			if c := clamp(got, minimum, maximum); c != tc.clamped {
				t.Errorf("clamped = %s, want %s", c, tc.clamped)
			}
		})
	}
}

// TestScheduleFromHeaders: a fetch schedules the next one at now + clamp(TTL) (J14), and never
// later than max_stale/2: with the defaults a 7-day max-age clamps to 24 h = max_stale, so the
// refresh comes at 12 h, leaving 12 h of retries before the keys would expire.
func TestScheduleFromHeaders(t *testing.T) {
	for _, tc := range []struct {
		cc   string
		want time.Duration
	}{
		{"max-age=10", 300 * time.Second},
		{"max-age=604800", 43200 * time.Second},
		{"", time.Hour},
		{"no-store", 300 * time.Second},
		{"max-age=1800", 1800 * time.Second},
	} {
		clk := newFakeClock()
		p := newIDP(t)
		p.handle(serve(kidDoc(t, "a"), "Cache-Control", tc.cc))
		r := newTestRemote(t, p, clk)
		if err := r.fetchNow(t); err != nil {
			t.Fatal(err)
		}
		if _, _, next, _ := r.state(); next.Sub(clk.Now()) != tc.want {
			t.Errorf("Cache-Control %q: next refresh in %s, want %s", tc.cc, next.Sub(clk.Now()), tc.want)
		}
	}
}

// TestJitter is T15 (J14): every schedule within ±10 %, and actually spread.
func TestJitter(t *testing.T) {
	const d = time.Hour
	lo, hi := d*9/10, d*11/10
	if got := jitter(d, 0); got != lo {
		t.Errorf("jitter(0) = %s", got)
	}
	if got := jitter(d, 0.5); got != d {
		t.Errorf("jitter(0.5) = %s", got)
	}
	if got := jitter(d, math.Nextafter(1, 0)); got > hi || got < d {
		t.Errorf("jitter(1-ε) = %s", got)
	}
	gotLo, gotHi := hi, lo
	for range 100000 {
		got := jitter(d, rand.Float64())
		if got < lo || got > hi {
			t.Fatalf("jitter = %s, outside [%s, %s]", got, lo, hi)
		}
		gotLo, gotHi = min(gotLo, got), max(gotHi, got)
	}
	if gotLo > d*91/100 || gotHi < d*109/100 {
		t.Errorf("jitter spread only over [%s, %s]", gotLo, gotHi)
	}

	// Through the Remote, with its default random source.
	clk := newFakeClock()
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a"), "Cache-Control", "max-age=1000"))
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.Jitter = nil })
	seen := map[time.Duration]bool{}
	for range 200 {
		if err := r.fetchNow(t); err != nil {
			t.Fatal(err)
		}
		_, _, next, _ := r.state()
		wait := next.Sub(clk.Now())
		if wait < 900*time.Second || wait > 1100*time.Second {
			t.Fatalf("scheduled in %s, outside 1000s ±10%%", wait)
		}
		seen[wait] = true
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct schedules in 200", len(seen))
	}
}

// TestBackoff (J18): 1s, 2s, 4s... capped at min(min_refresh_interval, 5 min), full jitter,
// never below 250ms.
func TestBackoff(t *testing.T) {
	const f = 0.9999999
	near := func(got, want time.Duration) bool { return got <= want && got > want*999/1000 }
	var seq []time.Duration
	for n := 1; n <= 12; n++ {
		seq = append(seq, Backoff(n, 5*time.Minute, f))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300}
	for i := range want {
		if !near(seq[i], want[i]*time.Second) {
			t.Errorf("Backoff(%d) = %s, want ≈%ds", i+1, seq[i], want[i])
		}
	}
	caps := []struct {
		minRefresh, cap time.Duration
	}{
		{time.Hour, 5 * time.Minute},
		{5 * time.Minute, 5 * time.Minute},
		{10 * time.Second, 10 * time.Second},
		{time.Second, time.Second},
	}
	for _, c := range caps {
		for _, n := range []int{20, 63, 64, 1000, math.MaxInt} {
			if got := Backoff(n, c.minRefresh, f); !near(got, c.cap) {
				t.Errorf("Backoff(%d, %s) = %s, want ≈%s", n, c.minRefresh, got, c.cap)
			}
		}
	}
	if got := Backoff(1, time.Second, f); !near(got, time.Second) {
		t.Errorf("min_refresh_interval 1s, first step %s", got)
	}
	if got := Backoff(3, 10*time.Second, 0); got != 250*time.Millisecond {
		t.Errorf("floor: %s", got)
	}
	for n := 1; n <= 15; n++ {
		step := min(time.Second<<min(n-1, 20), 5*time.Minute)
		for range 1000 {
			got := Backoff(n, 5*time.Minute, rand.Float64())
			if got < 250*time.Millisecond || got >= step {
				t.Fatalf("Backoff(%d) = %s outside [250ms, %s)", n, got, step)
			}
		}
	}
}

// TestRetryAfter: the 503's Retry-After is the time to the next attempt, at least 1s.
func TestRetryAfter(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.Jitter = func() float64 { return 0.999 } })
	if ra := r.RetryAfter(); ra != time.Second {
		t.Fatalf("before any fetch: %s", ra)
	}
	for n := 1; n <= 4; n++ {
		if err := r.fetchNow(t); err == nil {
			t.Fatal("fetch succeeded")
		}
		want := max(time.Second, Backoff(n, 5*time.Minute, 0.999).Round(time.Second))
		if ra := r.RetryAfter(); ra != want {
			t.Fatalf("after %d failures: %s, want %s", n, ra, want)
		}
	}
	clk.Advance(time.Minute)
	if ra := r.RetryAfter(); ra != time.Second {
		t.Fatalf("after the backoff: %s", ra)
	}
}

// TestRunStops: Run returns when its context ends, whether waiting or fetching, waits for the
// fetch it cancels, and no fetch starts afterwards.
func TestRunStops(t *testing.T) {
	t.Run("waiting", func(t *testing.T) {
		clk := newFakeClock()
		p := newIDP(t)
		p.handle(serve(kidDoc(t, "a")))
		r := newTestRemote(t, p, clk)
		stop := r.run(t)
		r.nextFetch(t)
		r.nextWait(t)
		stop()
		clk.Advance(61 * time.Second)
		if _, err := r.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
			t.Fatalf("RefreshForKID after Run returned: %v", err)
		}
		if n := p.hits.Load(); n != 1 {
			t.Fatalf("%d requests, want 1", n)
		}
		mustCurrent(t, r) // the keys stay until max_stale
	})
	t.Run("fetching", func(t *testing.T) {
		clk := newFakeClock()
		p := newIDP(t)
		entered := make(chan struct{}, 1)
		p.handle(func(w http.ResponseWriter, req *http.Request) {
			entered <- struct{}{}
			<-req.Context().Done()
		})
		r := newTestRemote(t, p, clk)
		stop := r.run(t)
		<-entered
		stop()
		// Run waited for the cancelled fetch: its result is already reported.
		select {
		case res := <-r.fetches:
			if !errors.Is(res.Err, context.Canceled) {
				t.Fatalf("cancelled fetch: %v", res.Err)
			}
		default:
			t.Fatal("Run returned before its fetch goroutine finished")
		}
		if _, _, _, inflight := r.state(); inflight {
			t.Fatal("a fetch is still in flight")
		}
	})
	t.Run("already cancelled", func(t *testing.T) {
		p := newIDP(t)
		r := newTestRemote(t, p, newFakeClock())
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	})
}

// TestConcurrentUse runs Current, Ready, RetryAfter and RefreshForKID against Run while the IdP
// flips between good, failing and rotated answers and the clock runs; -race checks the accesses.
func TestConcurrentUse(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	handlers := []http.HandlerFunc{
		serve(kidDoc(t, "a"), "Cache-Control", "max-age=1"),
		status(http.StatusInternalServerError),
		serve(kidDoc(t, "a", "b"), "Cache-Control", "no-store"),
		serve([]byte(`{"keys":[]}`)),
	}
	p.handle(handlers[0])
	fetched := make(chan struct{}, 1)
	var fetches atomic.Int64
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) {
		o.MinRefreshInterval = time.Second
		o.MaxRefreshInterval = 2 * time.Second
		o.KIDMissCooldown = time.Second
		o.Jitter = nil
		o.OnFetch = func(FetchResult) {
			fetches.Add(1)
			select {
			case fetched <- struct{}{}:
			default:
			}
		}
	})
	r.Remote.scheduled = nil
	stopRun := r.run(t)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var refreshed, refused atomic.Int64
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if set, err := r.Current(); err == nil {
					_ = set.Lookup("a")
				}
				_ = r.Ready()
				_ = r.RetryAfter()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := r.RefreshForKID(ctx)
				cancel()
				switch {
				case err == nil:
					refreshed.Add(1)
				case errors.Is(err, ErrRefreshRefused):
					refused.Add(1)
				}
			}
		})
	}
	// Each step moves the clock past any schedule, backoff or KIDWait, then lets a fetch land
	// (or gives up on it after a moment: this paces the stress, it synchronises nothing).
	for i := range 200 {
		p.handle(handlers[i%len(handlers)])
		clk.Advance(2500 * time.Millisecond)
		select {
		case <-fetched:
		case <-time.After(50 * time.Millisecond):
		}
	}
	close(stop)
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	for done := false; !done; {
		clk.Advance(KIDWait) // release callers parked on a fetch
		select {
		case <-waitDone:
			done = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopRun()
	t.Logf("%d requests, %d fetches, %d kid refreshes served, %d refused", p.hits.Load(), fetches.Load(), refreshed.Load(), refused.Load())
	if fetches.Load() < 10 {
		t.Fatalf("only %d fetches in 200 steps", fetches.Load())
	}
}

// etagIDP answers body with an ETag, and 304 to a request whose If-None-Match names it. It
// records each request's If-None-Match.
func etagIDP(t *testing.T, p *idp, etag string, body []byte, header ...string) <-chan string {
	t.Helper()
	seen := make(chan string, 64)
	p.handle(func(w http.ResponseWriter, r *http.Request) {
		inm := r.Header.Get("If-None-Match")
		seen <- inm
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("ETag", etag)
		if inm == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return seen
}

// TestETagNotModified is J15: the validator of the set held goes back as If-None-Match, and a
// 304 is a success that keeps the set, resets its age and the failure count, starts the
// cooldown and follows the 304's cache headers.
func TestETagNotModified(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	seen := etagIDP(t, p, `"v1"`, kidDoc(t, "a"), "Cache-Control", "max-age=600")
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.MaxStale = 2 * time.Hour })
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if inm := <-seen; inm != "" {
		t.Fatalf("first fetch sent If-None-Match %q", inm)
	}
	first := mustCurrent(t, r)

	// A failure in between: the 304 that follows clears it.
	p.handle(status(http.StatusInternalServerError))
	clk.Advance(50 * time.Minute)
	if err := r.fetchNow(t); !errors.Is(err, ErrHTTPStatus) {
		t.Fatalf("failing fetch: %v", err)
	}
	seen = etagIDP(t, p, `"v1"`, kidDoc(t, "a"), "Cache-Control", "max-age=900")
	clk.Advance(time.Second)
	c, _ := r.startOrJoin(false)
	<-c.done
	res := <-r.fetches
	if c.err != nil || !res.NotModified || res.Result() != ResultNotModified || res.Keys != 1 {
		t.Fatalf("304: err %v, result %+v", c.err, res)
	}
	if inm := <-seen; inm != `"v1"` {
		t.Fatalf("If-None-Match = %q, want the ETag of the set held", inm)
	}
	if set := mustCurrent(t, r); set != first {
		t.Fatal("a 304 replaced the set")
	}
	failures, _, next, _ := r.state()
	if failures != 0 {
		t.Fatalf("failures = %d after a 304", failures)
	}
	if got := next.Sub(clk.Now()); got != 900*time.Second {
		t.Fatalf("next refresh in %s, want the 304's max-age 900s", got)
	}
	// The 304 counts as a good fetch for the cooldown...
	clk.Advance(30 * time.Second)
	if _, err := r.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Fatalf("kid refresh 30s after a 304: %v, want refused (cooldown)", err)
	}
	// ...and for the age: 2h50m after the 200, 1h59m after the 304, the set is still served.
	clk.Advance(119 * time.Minute)
	if set := mustCurrent(t, r); set != first {
		t.Fatal("set replaced")
	}
	// A kid miss asks for the whole document: an ETag that failed to change with the keys
	// must not hide a rotation.
	if _, err := r.RefreshForKID(context.Background()); err != nil {
		t.Fatalf("kid refresh after the cooldown: %v", err)
	}
	if res := <-r.fetches; res.NotModified || res.Trigger != "kid" || res.Err != nil {
		t.Fatalf("kid fetch %+v", res)
	}
	if inm := <-seen; inm != "" {
		t.Fatalf("kid-triggered fetch sent If-None-Match %q", inm)
	}

	// A new document: 200 with a new ETag replaces the set and the validator.
	seen = etagIDP(t, p, `"v2"`, kidDoc(t, "a", "b"))
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if inm := <-seen; inm != `"v1"` {
		t.Fatalf("If-None-Match = %q", inm)
	}
	if set := mustCurrent(t, r); len(set.Lookup("b")) != 1 {
		t.Fatal("new document not installed")
	}
	clk.Advance(time.Hour)
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if inm := <-seen; inm != `"v2"` {
		t.Fatalf("If-None-Match = %q, want the new ETag", inm)
	}
}

// TestETagNotSentWhenStale (J15, J19): past max_stale the set is no longer served, so a 304
// could only revive it blindly: the fetch asks for the whole document.
func TestETagNotSentWhenStale(t *testing.T) {
	clk := newFakeClock()
	p := newIDP(t)
	seen := etagIDP(t, p, `"v1"`, kidDoc(t, "a"))
	r := newTestRemote(t, p, clk, func(o *RemoteOptions) { o.MaxStale = time.Hour })
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	<-seen
	clk.Advance(time.Hour + time.Second)
	wantUnavailable(t, r)
	if err := r.fetchNow(t); err != nil {
		t.Fatal(err)
	}
	if inm := <-seen; inm != "" {
		t.Fatalf("If-None-Match %q sent for a set past max_stale", inm)
	}
	mustCurrent(t, r)
}

// TestContentTypeLogged is J6: the Content-Type is logged with the fetch and never enforced.
func TestContentTypeLogged(t *testing.T) {
	var buf syncWriter
	p := newIDP(t)
	p.handle(serve(kidDoc(t, "a"), "Content-Type", "text/plain; charset=utf-8"))
	r := newTestRemote(t, p, newFakeClock(), func(o *RemoteOptions) { o.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	if err := r.fetchNow(t); err != nil {
		t.Fatalf("text/plain JWKS refused: %v", err)
	}
	p.handle(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html>oops</html>")
	})
	if err := r.fetchNow(t); err == nil {
		t.Fatal("502 accepted")
	}
	lines := buf.lines(t)
	want := map[string]string{"jwks fetched": "text/plain; charset=utf-8", "jwks fetch failed; keeping the last good keys": "text/html"}
	for _, l := range lines {
		if ct, ok := want[l["msg"].(string)]; ok {
			if l["content_type"] != ct {
				t.Errorf("%q logged content_type %v, want %q", l["msg"], l["content_type"], ct)
			}
			delete(want, l["msg"].(string))
		}
	}
	if len(want) != 0 {
		t.Fatalf("log lines missing: %v in %v", want, lines)
	}
}

// syncWriter collects log output from several goroutines.
type syncWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// lines decodes the JSON log lines written so far.
func (w *syncWriter) lines(t *testing.T) []map[string]any {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(w.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestRefreshBeforeMaxStale: the scheduled refresh always comes before the keys expire. With
// max_refresh_interval = max_stale (the defaults), a long max-age plus jitter would otherwise
// schedule it after max_stale and answer 503 while the IdP is healthy.
func TestRefreshBeforeMaxStale(t *testing.T) {
	cases := []struct {
		name                 string
		ttl, min, max, stale time.Duration
		jitter               float64
		want                 time.Duration
	}{
		{"defaults, 7-day max-age, top jitter", 7 * 24 * time.Hour, 5 * time.Minute, 24 * time.Hour, 24 * time.Hour, 0.999, 12 * time.Hour},
		{"short max_stale beats min_refresh", time.Hour, 5 * time.Minute, 24 * time.Hour, 10 * time.Second, 0.5, 5 * time.Second},
		{"room to spare: plain clamp and jitter", time.Hour, 5 * time.Minute, 24 * time.Hour, 24 * time.Hour, 0.5, time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := refreshAfter(c.ttl, RemoteOptions{MinRefreshInterval: c.min, MaxRefreshInterval: c.max, MaxStale: c.stale, Jitter: func() float64 { return c.jitter }})
			if got != c.want {
				t.Fatalf("refreshAfter = %s, want %s", got, c.want)
			}
			if got >= c.stale {
				t.Fatalf("refresh after %s is not before max_stale %s", got, c.stale)
			}
		})
	}
}
