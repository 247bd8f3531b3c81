package jwks_test

// The cache rules that need a whole verification to observe: unknown-kid floods (T11), bad
// signatures (T12) and provider isolation (T18), driven through the real token.Verifier over
// jwks.Remote, with the fake clock of the remote tests and counting httptest IdPs.

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
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

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

const audience = "https://api.example.com"

// signer is one Ed25519 key with a kid.
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
	pub := s.priv.Public().(ed25519.PublicKey)
	return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub), "kid": s.kid, "alg": "EdDSA", "use": "sig"}
}

// mint signs a token for iss at now with header kid (which may differ from the key's own).
func (s *signer) mint(t testing.TB, iss, kid string, now time.Time) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: s.priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(map[string]any{
		"iss": iss, "aud": audience, "sub": "alice", "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// keyIDP is a counting JWKS server on a random port that publishes a list of signers.
type keyIDP struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	keys []*signer
	gate chan struct{} // when set, requests wait for it to close
}

func newKeyIDP(t *testing.T, keys ...*signer) *keyIDP {
	t.Helper()
	p := &keyIDP{keys: keys}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		gate := p.gate
		var entries []any
		for _, k := range p.keys {
			entries = append(entries, k.jwk())
		}
		p.mu.Unlock()
		if gate != nil {
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": entries})
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *keyIDP) publish(keys ...*signer) {
	p.mu.Lock()
	p.keys = keys
	p.mu.Unlock()
}

// hold makes requests wait until the returned release is called.
func (p *keyIDP) hold() (release func()) {
	g := make(chan struct{})
	p.mu.Lock()
	p.gate = g
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.gate = nil
			p.mu.Unlock()
			close(g)
		})
	}
}

// remoteFor builds a Remote on p with the fake clock and the contract's defaults (60s
// kid_miss_cooldown, 1h refresh without cache headers), runs it, and waits for its first fetch.
func remoteFor(t *testing.T, clk *jwks.FakeClock, p *keyIDP, name string, lim *jwks.Limiter) (*jwks.Remote, <-chan jwks.FetchResult) {
	t.Helper()
	// Not jwks.NewHTTPClient: its 3 s response-header timeout runs on the real clock, and the
	// flood tests hold a fetch at the IdP until 10,000 callers have joined it, which under
	// -race on a loaded 2-core machine takes longer than that (the fetch then failed and late
	// callers were refused instead of joining). The fetch deadline is Timeout below.
	client := &http.Client{
		Transport: &http.Transport{},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	fetches := make(chan jwks.FetchResult, 16)
	r, err := jwks.NewRemote(jwks.RemoteOptions{
		Provider: name, URI: p.URL + "/jwks.json", Client: client, Algorithms: []string{"EdDSA"},
		Timeout: 10 * time.Minute, // a held or hung IdP stays so for the whole test, however slow the machine (a real-clock timeout)
		Limiter: lim, Now: clk.Now, After: clk.After, Jitter: func() float64 { return 0.5 },
		Logger: slog.New(slog.DiscardHandler),
		OnFetch: func(res jwks.FetchResult) {
			select {
			case fetches <- res:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	if res := next(t, fetches); res.Err != nil {
		t.Fatalf("%s: first fetch: %v", name, res.Err)
	}
	clk.WaitPending(t, time.Hour, 1) // Run waits for its next refresh
	return r, fetches
}

func next(t *testing.T, ch <-chan jwks.FetchResult) jwks.FetchResult {
	t.Helper()
	select {
	case res := <-ch:
		return res
	case <-time.After(time.Minute): // a safety net for loaded machines, not a sleep
		t.Fatal("no fetch within a minute")
	}
	return jwks.FetchResult{}
}

func verifier(t *testing.T, clk *jwks.FakeClock, providers map[string]token.KeySource) *token.Verifier {
	t.Helper()
	var ps []*token.Provider
	for iss, keys := range providers {
		ps = append(ps, &token.Provider{
			Name: strings.TrimPrefix(iss, "https://"), Issuer: iss, Audiences: []string{audience}, Algorithms: []string{"EdDSA"},
			TokenTypes: []string{"", "JWT"}, ClockSkew: time.Minute, Keys: keys,
		})
	}
	v, err := token.NewVerifier(ps, token.Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// verifyAll verifies every token concurrently, one goroutine each, and returns the errors. It
// fails the test if they have not all returned within 60s: the fake clock never moves meanwhile,
// so a caller waiting on a timer would never return.
func verifyAll(t *testing.T, v *token.Verifier, toks []string) []error {
	t.Helper()
	errs := make([]error, len(toks))
	var wg sync.WaitGroup
	for i, tok := range toks {
		wg.Go(func() { _, errs[i] = v.Verify(context.Background(), tok) })
	}
	waitGroup(t, &wg, 5*time.Minute)
	return errs
}

func waitGroup(t *testing.T, wg *sync.WaitGroup, d time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("callers still blocked after %s", d)
	}
}

// forge builds a compact token from a header and claims with a random 64-byte signature (an
// Ed25519 signature's size): what an attacker without the IdP's key can send. Cheaper than
// signing 10,000 tokens under the race detector, and the same to the verifier, which never
// learns a signature is wrong without checking it against a key.
func forge(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, ed25519.SignatureSize)
	_, _ = rand.Read(sig)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(h) + "." + enc(c) + "." + enc(sig)
}

func claimsAt(iss, sub string, now time.Time) map[string]any {
	return map[string]any{"iss": iss, "aud": audience, "sub": sub, "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix()}
}

func randomKID(int) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func wantAll(t *testing.T, phase string, errs []error, want error) {
	t.Helper()
	for i, err := range errs {
		if !errors.Is(err, want) {
			t.Fatalf("%s: token %d: %v, want %v", phase, i, err, want)
		}
	}
}

// TestKIDFlood is T11 (J16) at full size: 10,000 concurrent tokens, each with a random kid,
// signed by an attacker's key and passing every cheap check. Within one kid_miss_cooldown they
// cost the IdP one fetch; callers refused by the cooldown wait for nothing (the fake clock never
// moves, so a waiting caller would never return); after the cooldown, one more fetch.
func TestKIDFlood(t *testing.T) {
	const n = 10000
	const iss = "https://idp.example.com"
	clk := jwks.NewFakeClock()
	good := newSigner(t, "k1")
	p := newKeyIDP(t, good)
	r, fetches := remoteFor(t, clk, p, "idp", jwks.NewLimiter(10, clk.Now))
	v := verifier(t, clk, map[string]token.KeySource{iss: r})
	if _, err := v.Verify(context.Background(), good.mint(t, iss, "k1", clk.Now())); err != nil {
		t.Fatalf("genuine token: %v", err)
	}
	toks := make([]string, n)
	for i := range toks {
		toks[i] = forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": randomKID(i)}, claimsAt(iss, "alice", clk.Now()))
	}
	clk.Advance(61 * time.Second) // past the cooldown of the first fetch: one fetch is allowed

	// Phase 1: the first caller starts a fetch, held at the IdP until all 10,000 have joined it.
	release := p.hold()
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, tok := range toks {
		wg.Go(func() { _, errs[i] = v.Verify(context.Background(), tok) })
	}
	clk.WaitPending(t, jwks.KIDWait, n) // every caller is parked on the one fetch
	release()
	waitGroup(t, &wg, 5*time.Minute)
	wantAll(t, "joined", errs, token.ErrKIDUnknown)
	if res := next(t, fetches); res.Trigger != "kid" || res.Err != nil {
		t.Fatalf("kid fetch %+v", res)
	}
	if got := p.hits.Load(); got != 2 {
		t.Fatalf("%d requests for %d unknown kids, want 1 (+1 at start)", got, n)
	}

	// Phase 2: within the cooldown, 10,000 more are refused at once: no fetch, no timer.
	parked := clk.PendingOf(jwks.KIDWait)
	start := time.Now()
	wantAll(t, "refused", verifyAll(t, v, toks), token.ErrKIDUnknown)
	t.Logf("%d refused checks in %s", n, time.Since(start))
	if got := p.hits.Load(); got != 2 {
		t.Fatalf("%d requests after the refused flood, want 2", got)
	}
	if clk.PendingOf(jwks.KIDWait) != parked {
		t.Fatal("a refused caller started waiting")
	}

	// Phase 3: one cooldown later, the flood buys exactly one more fetch.
	clk.Advance(60 * time.Second)
	wantAll(t, "next cooldown", verifyAll(t, v, toks), token.ErrKIDUnknown)
	if got := p.hits.Load(); got != 3 {
		t.Fatalf("%d requests after a second cooldown, want 3", got)
	}
	if _, err := v.Verify(context.Background(), good.mint(t, iss, "k1", clk.Now())); err != nil {
		t.Fatalf("genuine token after the flood: %v", err)
	}
}

// TestBadSignatureNoFetch is T12 (J16): 10,000 concurrent tokens naming a known kid with a bad
// signature (another key's, or a genuine token's signature over an altered payload) are refused
// with bad_signature and cause no fetch, although the cooldown has passed and a kid miss would
// be allowed one.
func TestBadSignatureNoFetch(t *testing.T) {
	const n = 10000
	const iss = "https://idp.example.com"
	clk := jwks.NewFakeClock()
	good, attacker := newSigner(t, "k1"), newSigner(t, "attacker")
	p := newKeyIDP(t, good)
	r, _ := remoteFor(t, clk, p, "idp", jwks.NewLimiter(10, clk.Now))
	v := verifier(t, clk, map[string]token.KeySource{iss: r})
	clk.Advance(61 * time.Second)

	// A third signed by another key under the known kid, a third with random signature bytes,
	// a third a genuine signature over an altered payload.
	var bad []string
	for i := range n / 3 {
		bad = append(bad, attacker.mint(t, iss, "k1", clk.Now()))
		bad = append(bad, forge(t, map[string]any{"alg": "EdDSA", "typ": "JWT", "kid": "k1"}, claimsAt(iss, "admin-"+randomKID(i), clk.Now())))
	}
	genuine := good.mint(t, iss, "k1", clk.Now())
	parts := strings.Split(genuine, ".")
	for i := len(bad); i < n; i++ {
		payload, _ := json.Marshal(claimsAt(iss, "admin-"+randomKID(i), clk.Now()))
		bad = append(bad, parts[0]+"."+base64.RawURLEncoding.EncodeToString(payload)+"."+parts[2])
	}
	wantAll(t, "bad signatures", verifyAll(t, v, bad), token.ErrBadSignature)
	if got := p.hits.Load(); got != 1 {
		t.Fatalf("%d requests, want 1 (the first fetch only)", got)
	}
	if clk.PendingOf(jwks.KIDWait) != 0 {
		t.Fatal("a bad signature waited on a fetch")
	}
	// The door was open all along: an unknown kid would have fetched.
	_, err := v.Verify(context.Background(), attacker.mint(t, iss, "unknown", clk.Now()))
	if !errors.Is(err, token.ErrKIDUnknown) || p.hits.Load() != 2 {
		t.Fatalf("unknown kid: %v, %d requests; want kid_unknown after a fetch", err, p.hits.Load())
	}
}

// TestProviderIsolation is T18 (J21): provider A's IdP hangs (its refresh and its unknown-kid
// fetch never complete, its callers are parked on that fetch) while provider B verifies,
// refreshes on schedule and picks up a rotation as if A did not exist. A keeps serving its last
// good set.
func TestProviderIsolation(t *testing.T) {
	const issA, issB = "https://a.example.com", "https://b.example.com"
	clk := jwks.NewFakeClock()
	a1, a2, b1, b2 := newSigner(t, "a1"), newSigner(t, "a2"), newSigner(t, "b1"), newSigner(t, "b2")
	pa, pb := newKeyIDP(t, a1), newKeyIDP(t, b1)
	lim := jwks.NewLimiter(10, clk.Now) // shared, as in the server
	ra, fa := remoteFor(t, clk, pa, "a", lim)
	rb, fb := remoteFor(t, clk, pb, "b", lim)
	v := verifier(t, clk, map[string]token.KeySource{issA: ra, issB: rb})

	release := pa.hold()
	t.Cleanup(release)
	pa.publish(a1, a2)
	// Both Run loops must have parked their hour-long timers before the clock moves: remoteFor
	// for B returns as soon as one such timer exists, and A's already did (a CI run once
	// advanced before B parked, and B's refresh never came).
	clk.WaitPending(t, time.Hour, 2)
	// Both scheduled refreshes come due: A's hangs at the IdP, B's completes.
	clk.Advance(time.Hour)
	if res := next(t, fb); res.Err != nil || res.Trigger != "schedule" {
		t.Fatalf("B's scheduled refresh: %+v", res)
	}
	// A rotated: its new-kid callers join A's hung fetch and park on it.
	const parkedA = 100
	var wg sync.WaitGroup
	errsA := make([]error, parkedA)
	for i := range parkedA {
		tok := a2.mint(t, issA, "a2", clk.Now())
		wg.Go(func() { _, errsA[i] = v.Verify(context.Background(), tok) })
	}
	clk.WaitPending(t, jwks.KIDWait, parkedA)

	// Meanwhile B's checks complete without the clock moving: nothing of A's is in their way.
	start := time.Now()
	for i := range 200 {
		if _, err := v.Verify(context.Background(), b1.mint(t, issB, "b1", clk.Now())); err != nil {
			t.Fatalf("B check %d while A hangs: %v", i, err)
		}
	}
	t.Logf("200 B checks in %s with %d A callers parked", time.Since(start), parkedA)
	// A's own known keys still verify: the last good set is kept through the hang.
	if _, err := v.Verify(context.Background(), a1.mint(t, issA, "a1", clk.Now())); err != nil {
		t.Fatalf("A's known key while its IdP hangs: %v", err)
	}

	// A's callers give up after KIDWait (2s) with kid_unknown; A's fetch is still in flight.
	clk.Advance(jwks.KIDWait)
	waitGroup(t, &wg, 10*time.Second)
	wantAll(t, "A parked", errsA, token.ErrKIDUnknown)

	// B rotates: one kid-triggered fetch past B's cooldown, then allow.
	pb.publish(b1, b2)
	clk.Advance(time.Minute)
	if _, err := v.Verify(context.Background(), b2.mint(t, issB, "b2", clk.Now())); err != nil {
		t.Fatalf("B's rotated key while A hangs: %v", err)
	}
	if res := next(t, fb); res.Err != nil || res.Trigger != "kid" {
		t.Fatalf("B's kid fetch: %+v", res)
	}
	if pa.hits.Load() != 2 || pb.hits.Load() != 3 {
		t.Fatalf("requests: A %d (want 2: start + the hung one), B %d (want 3)", pa.hits.Load(), pb.hits.Load())
	}
	select {
	case res := <-fa:
		t.Fatalf("A's hung fetch ended: %+v", res)
	default:
	}
	if !ra.Ready() || !rb.Ready() {
		t.Fatal("a provider lost its keys")
	}
}

// TestRotationKIDRemovedDenied is T10 (J13) through the verifier: once a good refresh no longer
// lists a kid, its tokens are refused with kid_unknown at once, and asking again within the
// cooldown fetches nothing.
func TestRotationKIDRemovedDenied(t *testing.T) {
	const iss = "https://idp.example.com"
	clk := jwks.NewFakeClock()
	k1, k2 := newSigner(t, "k1"), newSigner(t, "k2")
	p := newKeyIDP(t, k1, k2)
	r, fetches := remoteFor(t, clk, p, "idp", jwks.NewLimiter(10, clk.Now))
	v := verifier(t, clk, map[string]token.KeySource{iss: r})
	if _, err := v.Verify(context.Background(), k2.mint(t, iss, "k2", clk.Now())); err != nil {
		t.Fatalf("k2 before the removal: %v", err)
	}
	p.publish(k1)
	clk.Advance(time.Hour) // the scheduled refresh
	if res := next(t, fetches); res.Err != nil || res.Keys != 1 {
		t.Fatalf("refresh %+v", res)
	}
	for range 3 {
		if _, err := v.Verify(context.Background(), k2.mint(t, iss, "k2", clk.Now())); !errors.Is(err, token.ErrKIDUnknown) {
			t.Fatalf("k2 after the removal: %v, want kid_unknown", err)
		}
	}
	if _, err := v.Verify(context.Background(), k1.mint(t, iss, "k1", clk.Now())); err != nil {
		t.Fatalf("k1: %v", err)
	}
	if n := p.hits.Load(); n != 2 {
		t.Fatalf("%d requests, want 2", n)
	}
}
