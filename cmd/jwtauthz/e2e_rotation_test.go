//go:build integration

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
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
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
)

// rotatingIDP is an IdP that rotates its signing key: it publishes the next key beside the
// current one, signs with the next key from then on, and drops the old key after an overlap. Its
// JWKS answers carry Cache-Control: max-age=300, so the only fetches within the test are the one
// at start and those a new kid triggers. It also serves an OpenID Connect discovery document.
type rotatingIDP struct {
	srv  *httptest.Server
	eras []*devissuer.Issuer // era i signs with eras[i]; all share the issuer URL

	mu        sync.Mutex
	published []*devissuer.Issuer
	era       int
	fetchedAt []time.Time // arrival of each JWKS request
	docHits   atomic.Int64
}

func newRotatingIDP(t *testing.T, eras int) *rotatingIDP {
	t.Helper()
	p := &rotatingIDP{}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	for range eras {
		iss, err := devissuer.New(devissuer.Options{Issuer: p.srv.URL, Audience: "https://api.example.com"})
		if err != nil {
			t.Fatal(err)
		}
		p.eras = append(p.eras, iss)
	}
	p.published = p.eras[:1]
	return p
}

func (p *rotatingIDP) serve(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/.well-known/openid-configuration":
		p.docHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/.well-known/jwks.json"})
	case "/.well-known/jwks.json":
		p.mu.Lock()
		p.fetchedAt = append(p.fetchedAt, time.Now())
		var keys []json.RawMessage
		for _, iss := range p.published {
			var doc struct{ Keys []json.RawMessage }
			_ = json.Unmarshal(iss.JWKS(), &doc)
			keys = append(keys, doc.Keys...)
		}
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=300")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	default:
		http.NotFound(w, r)
	}
}

// rotate publishes the next era's keys beside the current ones and signs with them from now on.
// The old keys are dropped after overlap.
func (p *rotatingIDP) rotate(overlap time.Duration) {
	p.mu.Lock()
	next := p.eras[p.era+1]
	p.published = []*devissuer.Issuer{p.eras[p.era], next}
	p.era++
	p.mu.Unlock()
	time.AfterFunc(overlap, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if len(p.published) == 2 && p.published[1] == next {
			p.published = []*devissuer.Issuer{next}
		}
	})
}

// mint signs a fresh token with the current era's key, alternating EdDSA and RS256 by era.
func (p *rotatingIDP) mint() (string, int, error) {
	p.mu.Lock()
	era := p.era
	p.mu.Unlock()
	alg := "EdDSA"
	if era%2 == 1 {
		alg = "RS256"
	}
	tok, err := p.eras[era].Mint(devissuer.TokenRequest{Sub: fmt.Sprintf("user-%d", era), Alg: alg, TTL: time.Minute})
	return tok, era, err
}

func (p *rotatingIDP) fetchTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.fetchedAt...)
}

// streamStats counts one provider's checks; goroutines record, the test reads after they end.
type streamStats struct {
	mu      sync.Mutex
	allowed map[int]int // era -> allowed checks
	denied  []string
}

func (s *streamStats) record(era int, ok bool, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ok {
		s.allowed[era]++
	} else if len(s.denied) < 20 {
		s.denied = append(s.denied, detail)
	} else {
		s.denied = append(s.denied[:20], "...")
	}
}

// TestE2EKeyRotationUnderLoad: the built binary against two IdPs (one through remote_jwks, one
// through discovery) that each rotate their signing key every 2 seconds, publishing the new key
// beside the old one for half a second, while clients send a steady stream of fresh tokens
// signed with the current key for 8 seconds. No valid token is denied across the rotations, and
// each IdP sees one JWKS fetch at start plus one kid-triggered fetch per rotation, never two
// within kid_miss_cooldown (jwks-cache.md J13, J16, J22).
func TestE2EKeyRotationUnderLoad(t *testing.T) {
	const (
		rotations = 3
		period    = 2 * time.Second
		overlap   = 500 * time.Millisecond
		streamFor = 7*time.Second + period/2 // last rotation at 7s, then half a period
		cooldown  = time.Second              // kid_miss_cooldown below
		workers   = 2                        // per provider
	)
	a, b := newRotatingIDP(t, rotations+1), newRotatingIDP(t, rotations+1)
	cfg := fmt.Sprintf(`
server:
  grpc_address: "127.0.0.1:0"
  http_address: ""
  admin_address: "127.0.0.1:0"
  drain_delay: "0s"
providers:
  jwks:
    issuer: %q
    audiences: ["https://api.example.com"]
    algorithms: [EdDSA, RS256]
    remote_jwks: {uri: %q, allow_insecure_http: true, kid_miss_cooldown: "1s"}
  oidc:
    issuer: %q
    audiences: ["https://api.example.com"]
    algorithms: [EdDSA, RS256]
    discovery: {allow_insecure_http: true, kid_miss_cooldown: "1s"}
`, a.srv.URL, a.srv.URL+"/.well-known/jwks.json", b.srv.URL)
	path := filepath.Join(t.TempDir(), "rotation.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := start(t, "serve", "--config", path)
	cc := dial(t, proc.grpc)
	waitHealth(t, cc, healthpb.HealthCheckResponse_SERVING)

	stats := map[*rotatingIDP]*streamStats{a: {allowed: map[int]int{}}, b: {allowed: map[int]int{}}}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for _, p := range []*rotatingIDP{a, b} {
		for range workers {
			wg.Go(func() { stream(ctx, cc, p, stats[p]) })
		}
	}
	// A rotates at about 2s, 4s, 6s; B at 3s, 5s, 7s: never both at once. A rotation within
	// kid_miss_cooldown of the IdP's last fetch would be refused by design, so on a machine that
	// stalls, a rotation waits for that too rather than test a case the cache is meant to refuse.
	t0 := time.Now()
	last := map[*rotatingIDP]time.Time{a: t0, b: t0}
	for i := range 2 * rotations {
		p, at := a, t0.Add(period*time.Duration(i/2+1))
		if i%2 == 1 {
			p, at = b, at.Add(period/2)
		}
		if fetched := p.fetchTimes(); len(fetched) > 0 {
			at = latest(at, fetched[len(fetched)-1].Add(cooldown*3/2))
		}
		at = latest(at, last[p].Add(period))
		<-time.After(time.Until(at))
		p.rotate(overlap)
		last[p] = time.Now()
	}
	<-time.After(period / 2) // the last era gets its share of the stream
	stop()
	wg.Wait()
	if took := time.Since(t0); took > 2*streamFor {
		t.Logf("the stream ran %s instead of about %s: a busy machine", took, streamFor)
	}

	for name, p := range map[string]*rotatingIDP{"jwks": a, "oidc": b} {
		s := stats[p]
		if len(s.denied) != 0 {
			t.Errorf("%s: valid tokens denied across rotations:\n  %s", name, strings.Join(s.denied, "\n  "))
		}
		total := 0
		for era := 0; era <= rotations; era++ {
			if s.allowed[era] == 0 {
				t.Errorf("%s: no token of era %d was checked: the stream did not cover every key", name, era)
			}
			total += s.allowed[era]
		}
		times := p.fetchTimes()
		t.Logf("%s: %d tokens allowed %v, %d JWKS fetches", name, total, s.allowed, len(times))
		// One fetch at start and one kid-triggered fetch per rotation, at most.
		if len(times) > 1+rotations {
			t.Errorf("%s: %d JWKS fetches for %d rotations, want at most %d", name, len(times), rotations, 1+rotations)
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < cooldown*9/10 {
				t.Errorf("%s: JWKS fetches %d and %d %s apart, within kid_miss_cooldown", name, i-1, i, gap)
			}
		}
		if got, want := scrape(t, proc.admin, fmt.Sprintf(`jwtauthz_jwks_fetches_total{provider=%q,result="ok"}`, name)), fmt.Sprint(len(times)); got != want {
			t.Errorf("%s: jwtauthz_jwks_fetches_total{result=ok} = %s, the IdP saw %s", name, got, want)
		}
	}
	if n := b.docHits.Load(); n != 1 {
		t.Errorf("the discovery document was read %d times, want once", n)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// stream sends checks with fresh tokens of p's current key until ctx ends, about every 10ms.
func stream(ctx context.Context, cc *grpc.ClientConn, p *rotatingIDP, s *streamStats) {
	client := authv3.NewAuthorizationClient(cc)
	tick := time.NewTicker(10 * time.Millisecond) // the clients' pace
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		tok, era, err := p.mint()
		if err != nil {
			s.record(era, false, "mint: "+err.Error())
			continue
		}
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.Check(rctx, envoyRequest("/orders", map[string]string{"authorization": "Bearer " + tok}))
		cancel()
		switch {
		case err != nil:
			s.record(era, false, "Check: "+err.Error())
		case resp.GetOkResponse() == nil:
			s.record(era, false, fmt.Sprintf("era %d: %d %s", era, resp.GetDeniedResponse().GetStatus().GetCode(),
				resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue()))
		default:
			s.record(era, true, "")
		}
	}
}

// scrape returns the value of one series on the admin listener's /metrics.
func scrape(t *testing.T, admin, series string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			return v
		}
	}
	return "absent"
}
