package token

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// TestCacheOverRemote drives the cache over a real jwks.Remote and an httptest IdP with ETags:
// a 304 keeps the very *jwks.Set, so entries stay usable; a 200 installs a new one, even with
// the same keys, so each token is verified in full once more; a 200 without the token's kid
// denies it at once.
func TestCacheOverRemote(t *testing.T) {
	f := fx(t)
	type doc struct {
		etag string
		body []byte
	}
	jwksDoc := func(keys ...map[string]any) []byte {
		b, err := json.Marshal(map[string]any{"keys": keys})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	edKey := jwk(t, f.k.ed.Public(), "ed", "")
	rsaKey := jwk(t, &f.k.rsa.PublicKey, "rsa", "")
	var (
		mu  sync.Mutex
		cur = doc{`"v1"`, jwksDoc(edKey, rsaKey)}
	)
	serve := func(d doc) {
		mu.Lock()
		cur = d
		mu.Unlock()
	}
	var requests, notModified atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		mu.Lock()
		d := cur
		mu.Unlock()
		w.Header().Set("ETag", d.etag)
		w.Header().Set("Cache-Control", "max-age=300")
		if r.Header.Get("If-None-Match") == d.etag {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(d.body)
	}))
	t.Cleanup(idp.Close)

	// The clock: Run's waits are handed to the test, which moves the clock and fires them.
	clk := &testClock{now: testNow}
	type timer struct {
		d  time.Duration
		ch chan time.Time
	}
	timers := make(chan timer, 8)
	fetched := make(chan jwks.FetchResult, 8)
	r, err := jwks.NewRemote(jwks.RemoteOptions{
		Provider: "test", URI: idp.URL, Algorithms: allAlgs,
		Now: clk.Now, Jitter: func() float64 { return 0.5 }, Logger: slog.New(slog.DiscardHandler),
		After: func(d time.Duration) <-chan time.Time {
			ch := make(chan time.Time, 1)
			timers <- timer{d, ch}
			return ch
		},
		OnFetch: func(res jwks.FetchResult) { fetched <- res },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	// next waits for a fetch and for Run to wait again; refresh moves the clock to that wait's
	// end and fires it.
	next := func(want string) timer {
		t.Helper()
		select {
		case res := <-fetched:
			if res.Err != nil || res.Result() != want {
				t.Fatalf("fetch: %v %s, want %s", res.Err, res.Result(), want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no fetch")
		}
		return <-timers
	}
	refresh := func(tm timer) {
		clk.Set(clk.Now().Add(tm.d))
		tm.ch <- clk.Now()
	}

	rig := &cacheRig{clk: clk}
	rig.cache = NewCache(CacheOptions{})
	rig.v, err = NewVerifier([]*Provider{testProvider(r)}, Options{Now: clk.Now, Cache: rig.cache})
	if err != nil {
		t.Fatal(err)
	}
	rig.v.onVerify = func() { rig.verifies.Add(1) }
	rig.oracle, err = NewVerifier([]*Provider{testProvider(r)}, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	step := func(name, raw string, wantFull bool, want error) {
		t.Helper()
		_, full, err := rig.verify(t, raw)
		checkErr(t, err, want)
		if full != wantFull {
			t.Fatalf("%s: full verification %v, want %v", name, full, wantFull)
		}
	}

	raw := f.tok(t, f.eddsa, "ed", map[string]any{"exp": testNow.Unix() + 3600})
	tm := next(jwks.ResultOK)
	step("first", raw, true, nil)
	step("again", raw, false, nil)

	refresh(tm) // If-None-Match "v1": 304, the same set
	tm = next(jwks.ResultNotModified)
	step("after a 304", raw, false, nil)

	serve(doc{`"v2"`, jwksDoc(edKey, rsaKey)}) // same keys, a new document: a new set
	refresh(tm)
	tm = next(jwks.ResultOK)
	step("after a 200 with the same keys", raw, true, nil)
	step("again", raw, false, nil)

	serve(doc{`"v3"`, jwksDoc(rsaKey)}) // the IdP retires "ed"
	refresh(tm)
	next(jwks.ResultOK)
	step("after the kid was retired", raw, true, ErrKIDUnknown)
	step("still retired", raw, true, ErrKIDUnknown)
	if notModified.Load() != 1 || requests.Load() != 4 {
		t.Fatalf("IdP saw %d requests, %d answered 304; want 4 and 1", requests.Load(), notModified.Load())
	}
}
