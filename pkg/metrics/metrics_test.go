package metrics

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// series gathers reg and returns the jwtauthz_jwks_* samples as "name{k=v,...} value" lines.
func series(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "jwtauthz_jwks_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue()
			if m.GetCounter() != nil {
				v = m.GetCounter().GetValue()
			}
			out = append(out, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(labels, ","), v))
		}
	}
	sort.Strings(out)
	return out
}

// TestKeySetMetrics: the contract's key-set series, on an injected registry: fetch counters
// created at zero per provider and result, gauges read at scrape time, skipped keys by reason.
func TestKeySetMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	keys := 0
	var last time.Time
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	m.KeySet("idp", func() int { return keys }, func() (time.Duration, bool) { return now.Sub(last), !last.IsZero() })
	expect := func(want ...string) {
		t.Helper()
		if got := series(t, reg); !reflect.DeepEqual(got, want) {
			t.Fatalf("series:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	expect(
		"jwtauthz_jwks_age_seconds{provider=idp} -1",
		"jwtauthz_jwks_fetches_total{provider=idp,result=error} 0",
		"jwtauthz_jwks_fetches_total{provider=idp,result=not_modified} 0",
		"jwtauthz_jwks_fetches_total{provider=idp,result=ok} 0",
		"jwtauthz_jwks_keys{provider=idp} 0",
	)
	m.ObserveFetch("idp", "error")
	m.ObserveFetch("idp", "ok", "symmetric", "rsa_too_small", "symmetric")
	m.ObserveFetch("idp", "not_modified")
	keys, last = 3, now.Add(-90*time.Second)
	expect(
		"jwtauthz_jwks_age_seconds{provider=idp} 90",
		"jwtauthz_jwks_fetches_total{provider=idp,result=error} 1",
		"jwtauthz_jwks_fetches_total{provider=idp,result=not_modified} 1",
		"jwtauthz_jwks_fetches_total{provider=idp,result=ok} 1",
		"jwtauthz_jwks_keys_skipped_total{provider=idp,reason=rsa_too_small} 1",
		"jwtauthz_jwks_keys_skipped_total{provider=idp,reason=symmetric} 2",
		"jwtauthz_jwks_keys{provider=idp} 3",
	)
	// A second provider gets its own series; two Metrics on two registries never collide.
	m.KeySet("other", func() int { return 1 }, func() (time.Duration, bool) { return 0, true })
	if n := len(series(t, reg)); n != 7+5 {
		t.Fatalf("%d series with two providers, want 12", n)
	}
	New(prometheus.NewRegistry()).KeySet("idp", func() int { return 0 }, func() (time.Duration, bool) { return 0, false })
}

// TestTokenCacheCounters: ObserveTokenCache (token.CacheOptions.OnLookup) moves the contract's
// two counters, which exist at zero from the start.
func TestTokenCacheCounters(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	value := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatalf("%s not exposed", name)
		return 0
	}
	if h, n := value("jwtauthz_token_cache_hits_total"), value("jwtauthz_token_cache_misses_total"); h != 0 || n != 0 {
		t.Fatalf("at start: %g hits, %g misses", h, n)
	}
	for _, hit := range []bool{false, true, true, false, true} {
		m.ObserveTokenCache(hit)
	}
	if h, n := value("jwtauthz_token_cache_hits_total"), value("jwtauthz_token_cache_misses_total"); h != 3 || n != 2 {
		t.Fatalf("%g hits, %g misses; want 3 and 2", h, n)
	}
}
