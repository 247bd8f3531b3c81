package token

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// The verified-token cache (cache.go). Its one rule, checked by every test here through an
// oracle: a cached answer is always the answer a fresh, uncached verification gives at the same
// instant with the same keys. The seam is Verifier.onVerify, which counts full verifications,
// so that a hit is seen to skip the parse, the key lookup and the signature.

// testClock is a clock a test sets and moves, backwards too.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// swapSource is a KeySource whose set the test replaces, as a refresh installs a new one, and
// which counts Current calls. RefreshForKID refuses, like a cooldown.
type swapSource struct {
	mu       sync.Mutex
	set      *jwks.Set
	err      error
	currents int
}

func (s *swapSource) Current() (*jwks.Set, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.currents++
	if s.err != nil {
		return nil, s.err
	}
	return s.set, nil
}

func (s *swapSource) RefreshForKID(context.Context) (*jwks.Set, error) {
	return nil, fmt.Errorf("swap: %w", jwks.ErrRefreshRefused)
}

func (s *swapSource) install(set *jwks.Set, err error) {
	s.mu.Lock()
	s.set, s.err = set, err
	s.mu.Unlock()
}

func (s *swapSource) currentCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.currents
}

// cacheRig is a cached Verifier, an uncached oracle over the same provider settings, keys and
// clock, and counters of full verifications and of cache lookups.
type cacheRig struct {
	src          *swapSource
	clk          *testClock
	cache        *Cache
	v, oracle    *Verifier
	verifies     atomic.Int64
	hits, misses atomic.Int64
}

func newCacheRig(t testing.TB, maxEntries int, mods ...func(*Provider)) *cacheRig {
	t.Helper()
	r := &cacheRig{src: &swapSource{set: fx(t).set}, clk: &testClock{now: testNow}}
	r.cache = NewCache(CacheOptions{MaxEntries: maxEntries, OnLookup: func(hit bool) {
		if hit {
			r.hits.Add(1)
		} else {
			r.misses.Add(1)
		}
	}})
	var err error
	r.v, err = NewVerifier([]*Provider{testProvider(r.src, mods...)}, Options{Now: r.clk.Now, Cache: r.cache})
	if err != nil {
		t.Fatal(err)
	}
	r.v.onVerify = func() { r.verifies.Add(1) }
	r.oracle, err = NewVerifier([]*Provider{testProvider(r.src, mods...)}, Options{Now: r.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// verify verifies raw through the cache, checks that the oracle agrees (both succeed, or both
// fail with the same sentinel), and reports whether a full verification ran.
func (r *cacheRig) verify(t testing.TB, raw string) (tok *Token, full bool, err error) {
	t.Helper()
	before := r.verifies.Load()
	tok, err = r.v.Verify(context.Background(), raw)
	full = r.verifies.Load() > before
	_, want := r.oracle.Verify(context.Background(), raw)
	if (err == nil) != (want == nil) || err != nil && !sameSentinels(err, want) {
		t.Fatalf("cached verifier says %v, a fresh verification %v", err, want)
	}
	return tok, full, err
}

func sameSentinels(a, b error) bool {
	ma, mb := matchedSentinels(a), matchedSentinels(b)
	if len(ma) != len(mb) {
		return false
	}
	for i := range ma {
		if ma[i] != mb[i] {
			return false
		}
	}
	return true
}

func (r *cacheRig) counts(t testing.TB, hits, misses int64) {
	t.Helper()
	if h, m := r.hits.Load(), r.misses.Load(); h != hits || m != misses {
		t.Fatalf("OnLookup saw %d hits and %d misses, want %d and %d", h, m, hits, misses)
	}
}

// TestCacheHit: the second Verify of a token is answered from the cache with the very Token of
// the first, without parsing or verifying (no onVerify), but after consulting the key source.
func TestCacheHit(t *testing.T) {
	f := fx(t)
	for _, c := range []struct {
		name string
		s    signer
		kid  string
	}{
		{"RS256", f.rs256, "rsa"},
		{"PS384", f.ps384, "rsa"},
		{"ES256", f.es256, "p256"},
		{"ES512", f.es512, "p521"},
		{"EdDSA", f.eddsa, "ed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newCacheRig(t, 0)
			raw := f.tok(t, c.s, c.kid, map[string]any{"scope": "read write"})
			first, full, err := r.verify(t, raw)
			if err != nil || !full {
				t.Fatalf("first: err %v, full verification %v", err, full)
			}
			r.counts(t, 0, 1)
			currents := r.src.currentCalls()
			second, full, err := r.verify(t, raw)
			if err != nil || full {
				t.Fatalf("second: err %v, full verification %v; want a hit", err, full)
			}
			if second != first {
				t.Fatal("a hit returned another Token")
			}
			if second.Subject != "alice" || second.Alg != c.s.alg || second.KID != c.kid || second.Claims["scope"] != "read write" {
				t.Fatalf("cached token %+v", second)
			}
			if got := r.src.currentCalls() - currents; got != 2 { // the hit's check, and the oracle's
				t.Fatalf("Current called %d times for the hit and the oracle, want 2", got)
			}
			r.counts(t, 1, 1)
			if r.cache.Len() != 1 {
				t.Fatalf("Len %d", r.cache.Len())
			}
		})
	}
}

// TestCacheKeySetChange: an entry is used only while the provider serves the very set that
// verified it. Any other set (even with the same keys), or none, means a full verification,
// and a deny is what a fresh verification says.
func TestCacheKeySetChange(t *testing.T) {
	f := fx(t)
	k := f.k
	same := func() *jwks.Set { return f.set }
	for _, c := range []struct {
		name    string
		set     func() *jwks.Set
		err     error
		full    bool
		want    error
		refetch bool // a good set: the new verification is cached again
	}{
		{name: "same set (a 304 keeps it)", set: same},
		{name: "new set, same keys (a 200)", set: func() *jwks.Set {
			return keySet(t, jwk(t, &k.rsa.PublicKey, "rsa", ""), jwk(t, k.ed.Public(), "ed", ""))
		}, full: true, refetch: true},
		{name: "kid removed", set: func() *jwks.Set {
			return keySet(t, jwk(t, k.ed.Public(), "ed", ""))
		}, full: true, want: ErrKIDUnknown},
		{name: "kid now names another key", set: func() *jwks.Set {
			return keySet(t, jwk(t, &k.rsaB.PublicKey, "rsa", ""))
		}, full: true, want: ErrBadSignature},
		{name: "key now bound to another alg", set: func() *jwks.Set {
			return keySet(t, jwk(t, &k.rsa.PublicKey, "rsa", "PS256"))
		}, full: true, want: ErrKeyAlgMismatch},
		{name: "no usable keys (past max_stale)", err: fmt.Errorf("fake: %w", jwks.ErrKeysUnavailable), full: true, want: jwks.ErrKeysUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newCacheRig(t, 0)
			raw := f.tok(t, f.rs256, "rsa", nil)
			if _, _, err := r.verify(t, raw); err != nil {
				t.Fatal(err)
			}
			var set *jwks.Set
			if c.set != nil {
				set = c.set()
			}
			r.src.install(set, c.err)
			_, full, err := r.verify(t, raw)
			checkErr(t, err, c.want)
			if full != c.full {
				t.Fatalf("full verification %v, want %v", full, c.full)
			}
			// A deny is never cached, and a good re-verification is.
			_, full, err = r.verify(t, raw)
			checkErr(t, err, c.want)
			if wantFull := c.want != nil; full != wantFull {
				t.Fatalf("third Verify: full verification %v, want %v", full, wantFull)
			}
			if c.want != nil && r.cache.Len() != 0 {
				t.Fatalf("%d entries after a deny", r.cache.Len())
			}
			// Keys back: the token verifies again (the oracle agrees at every step).
			r.src.install(f.set, nil)
			if _, _, err := r.verify(t, raw); err != nil {
				t.Fatalf("keys restored: %v", err)
			}
		})
	}
}

// TestCacheTimeWindow: exp (with clock_skew) is checked at every hit with the injected clock,
// and an expired entry is dropped; a clock stepped back before the verification instant means a
// full verification, so nbf, iat and max_lifetime are judged again.
func TestCacheTimeWindow(t *testing.T) {
	f := fx(t)
	T := testNow
	exp := T.Add(10 * time.Minute) // the claimsJSON default; clock_skew 60s
	for _, c := range []struct {
		name   string
		mods   map[string]any
		prov   func(*Provider)
		at     time.Time
		full   bool
		want   error
		remain int // entries left after the second Verify
	}{
		{name: "well before exp", at: T.Add(5 * time.Minute), remain: 1},
		{name: "at exp", at: exp, remain: 1},
		{name: "at exp + skew", at: exp.Add(time.Minute), remain: 1},
		{name: "1s past exp + skew", at: exp.Add(time.Minute + time.Second), full: true, want: ErrExpired},
		{name: "long past exp", at: exp.Add(24 * time.Hour), full: true, want: ErrExpired},
		{name: "zero skew, 1s past exp", prov: func(p *Provider) { p.ClockSkew = 0 }, at: exp.Add(time.Second), full: true, want: ErrExpired},
		{name: "clock back, nbf still within skew", mods: map[string]any{"nbf": T.Unix()}, at: T.Add(-30 * time.Second), full: true, remain: 1},
		{name: "clock back before nbf - skew", mods: map[string]any{"nbf": T.Unix()}, at: T.Add(-61 * time.Second), full: true, want: ErrNotYetValid},
		{name: "clock back before iat - skew", mods: map[string]any{"iat": T.Unix()}, at: T.Add(-61 * time.Second), full: true, want: ErrIATFuture},
		{name: "clock back, max_lifetime exceeded", mods: map[string]any{"iat": del, "exp": T.Unix() + 300},
			prov: func(p *Provider) { p.MaxLifetime = 5 * time.Minute }, at: T.Add(-61 * time.Second), full: true, want: ErrLifetimeTooLong},
		{name: "clock forward, max_lifetime fine", mods: map[string]any{"iat": del, "exp": T.Unix() + 300},
			prov: func(p *Provider) { p.MaxLifetime = 5 * time.Minute }, at: T.Add(4 * time.Minute), remain: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newCacheRig(t, 0, c.prov)
			raw := f.tok(t, f.eddsa, "ed", c.mods)
			if _, _, err := r.verify(t, raw); err != nil {
				t.Fatal(err)
			}
			r.clk.Set(c.at)
			_, full, err := r.verify(t, raw)
			checkErr(t, err, c.want)
			if full != c.full {
				t.Fatalf("full verification %v, want %v", full, c.full)
			}
			if n := r.cache.Len(); n != c.remain {
				t.Fatalf("%d entries left, want %d", n, c.remain)
			}
			if c.want != nil {
				// And the deny holds on the next request too.
				_, full, err := r.verify(t, raw)
				checkErr(t, err, c.want)
				if !full {
					t.Fatal("a denied token was answered from the cache")
				}
			}
		})
	}
}

// TestCacheErrorsNeverCached: a token that fails verification costs a full verification every
// time it is presented, and leaves nothing in the cache.
func TestCacheErrorsNeverCached(t *testing.T) {
	f := fx(t)
	for _, c := range []struct {
		name string
		raw  string
		want error
	}{
		{"bad signature", f.tok(t, f.attacker, "rsa", nil), ErrBadSignature},
		{"expired", f.tok(t, f.rs256, "rsa", map[string]any{"exp": testNow.Unix() - 61}), ErrExpired},
		{"not yet valid", f.tok(t, f.rs256, "rsa", map[string]any{"nbf": testNow.Unix() + 61}), ErrNotYetValid},
		{"wrong audience", f.tok(t, f.eddsa, "ed", map[string]any{"aud": "other"}), ErrAudMismatch},
		{"unknown issuer", f.tok(t, f.eddsa, "ed", map[string]any{"iss": "https://evil.example"}), ErrIssuerUnknown},
		{"unknown kid", f.tok(t, f.eddsa, "nope", nil), ErrKIDUnknown},
		{"sender-constrained", f.tok(t, f.eddsa, "ed", map[string]any{"cnf": map[string]any{"jkt": "x"}}), ErrSenderConstrained},
		{"malformed", "a.b.c", ErrBadEncoding},
		{"not a JWS", "garbage", ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newCacheRig(t, 0)
			for i := 1; i <= 3; i++ {
				_, full, err := r.verify(t, c.raw)
				checkErr(t, err, c.want)
				if !full {
					t.Fatalf("attempt %d answered from the cache", i)
				}
			}
			if r.verifies.Load() != 3 || r.cache.Len() != 0 {
				t.Fatalf("%d verifications, %d entries; want 3 and 0", r.verifies.Load(), r.cache.Len())
			}
			r.counts(t, 0, 3)
		})
	}
}

// TestCacheDisabled: without Options.Cache every Verify is a full verification.
func TestCacheDisabled(t *testing.T) {
	f := fx(t)
	v := newTestVerifier(t, testProvider(&swapSource{set: f.set}))
	var n atomic.Int64
	v.onVerify = func() { n.Add(1) }
	raw := f.tok(t, f.eddsa, "ed", nil)
	for range 3 {
		if _, err := v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 3 {
		t.Fatalf("%d full verifications for 3 calls without a cache", n.Load())
	}
}

// TestCacheOtherVerifier: one Cache shared by two Verifiers (a reload) never lets one answer with
// the other's entry: the new config may refuse what the old accepted.
func TestCacheOtherVerifier(t *testing.T) {
	f := fx(t)
	src := &swapSource{set: f.set}
	cache := NewCache(CacheOptions{})
	now := func() time.Time { return testNow }
	old, err := NewVerifier([]*Provider{testProvider(src)}, Options{Now: now, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	reloaded, err := NewVerifier([]*Provider{testProvider(src, func(p *Provider) { p.Audiences = []string{"other"} })}, Options{Now: now, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	reloaded.onVerify = func() { n.Add(1) }
	raw := f.tok(t, f.eddsa, "ed", nil)
	if _, err := old.Verify(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	_, err = reloaded.Verify(context.Background(), raw)
	checkErr(t, err, ErrAudMismatch)
	if n.Load() != 1 {
		t.Fatal("the reloaded verifier was answered from the old one's entry")
	}
}

// TestCacheBounded: 2x MaxEntries distinct valid tokens never hold more than MaxEntries, the
// oldest go first, and the shards' sizes add up to MaxEntries exactly.
func TestCacheBounded(t *testing.T) {
	f := fx(t)
	for _, size := range []int{0, 1, 2, 3, 16, 17, 100} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := newCacheRig(t, size)
			want := size
			if want == 0 {
				want = DefaultCacheEntries
			}
			total := 0
			for i := range r.cache.shards {
				total += r.cache.shards[i].size
			}
			if total != want {
				t.Fatalf("shard sizes add up to %d, want %d", total, want)
			}
			if size == 0 {
				return // 20,000 signatures would only repeat the small cases
			}
			var toks []string
			for i := range 2 * size {
				raw := f.tok(t, f.eddsa, "ed", map[string]any{"jti": fmt.Sprint(i)})
				toks = append(toks, raw)
				if _, full, err := r.verify(t, raw); err != nil || !full {
					t.Fatalf("token %d: %v, full %v", i, err, full)
				}
				if n := r.cache.Len(); n > size {
					t.Fatalf("after %d tokens: %d entries, max %d", i+1, n, size)
				}
			}
			// The newest insertion is always still there.
			if _, full, _ := r.verify(t, toks[len(toks)-1]); full {
				t.Fatal("the newest token was evicted")
			}
			if size == 1 {
				if _, full, _ := r.verify(t, toks[0]); !full {
					t.Fatal("the oldest token survived in a cache of one")
				}
			}
		})
	}
}

// TestCacheConcurrent runs hits, misses, evictions (a cache smaller than the working set), key
// set swaps and bad tokens from many goroutines: run with -race. Every answer must be the one a
// fresh verification gives; every Verify counts exactly one hit or miss.
func TestCacheConcurrent(t *testing.T) {
	f := fx(t)
	r := newCacheRig(t, 3)
	good := []string{
		f.tok(t, f.rs256, "rsa", nil),
		f.tok(t, f.es256, "p256", nil),
		f.tok(t, f.eddsa, "ed", nil),
		f.tok(t, f.eddsa, "ed", map[string]any{"sub": "bob"}),
	}
	bad := []string{
		f.tok(t, f.attacker, "rsa", nil),
		f.tok(t, f.eddsa, "ed", map[string]any{"exp": testNow.Unix() - 600}),
	}
	// Another set with the same keys: swapping between the two is a refresh each time.
	other := keySet(t, jwk(t, &f.k.rsa.PublicKey, "rsa", ""), jwk(t, &f.k.p256.PublicKey, "p256", ""), jwk(t, f.k.ed.Public(), "ed", ""))
	const workers, rounds = 8, 150
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if w == 0 && i%25 == 0 {
					if i%50 == 0 {
						r.src.install(other, nil)
					} else {
						r.src.install(f.set, nil)
					}
				}
				raw := good[(w+i)%len(good)]
				if i%7 == 0 {
					raw = bad[i%len(bad)]
				}
				tok, err := r.v.Verify(context.Background(), raw)
				isGood := raw != bad[0] && raw != bad[1]
				switch {
				case isGood && err != nil:
					errs <- fmt.Errorf("good token denied: %w", err)
					return
				case !isGood && err == nil:
					errs <- errors.New("bad token allowed")
					return
				case isGood && tok.Subject == "":
					errs <- errors.New("token without subject")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if total := r.hits.Load() + r.misses.Load(); total != workers*rounds {
		t.Fatalf("%d lookups counted for %d calls", total, workers*rounds)
	}
	if r.hits.Load() == 0 || r.cache.Len() > 3 {
		t.Fatalf("%d hits, %d entries", r.hits.Load(), r.cache.Len())
	}
}
