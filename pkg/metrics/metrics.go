// Package metrics defines jwtauthz's Prometheus collectors (contract.md "Metrics") on an
// injected registerer: no globals, so tests and several servers in one process never collide.
// Label values come only from fixed sets (reason codes, provider names), never from requests.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
)

// Metrics holds every collector.
type Metrics struct {
	Checks        *prometheus.CounterVec
	CheckDuration *prometheus.HistogramVec
	Fetches       *prometheus.CounterVec
	KeysSkipped   *prometheus.CounterVec
	CacheHits     prometheus.Counter
	CacheMisses   prometheus.Counter
	Reloads       *prometheus.CounterVec
	reg           prometheus.Registerer
}

// New registers the collectors, plus the Go and process collectors, on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		Checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwtauthz_checks_total", Help: "Authorization decisions by transport, decision, reason code and provider.",
		}, []string{"transport", "decision", "reason", "provider"}),
		CheckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "jwtauthz_check_duration_seconds", Help: "Time to decide, by transport and decision.",
			// Microsecond-scale buckets: a cached-key check takes tens of microseconds.
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 250e-3, 1, 2.5},
		}, []string{"transport", "decision"}),
		Fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwtauthz_jwks_fetches_total", Help: "JWKS fetch attempts (reads, for a local file) by provider and result: ok, error, not_modified.",
		}, []string{"provider", "result"}),
		KeysSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwtauthz_jwks_keys_skipped_total", Help: "Keys left out of a fetched set, by reason.",
		}, []string{"provider", "reason"}),
		CacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jwtauthz_token_cache_hits_total", Help: "Verified-token cache hits.",
		}),
		CacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jwtauthz_token_cache_misses_total", Help: "Verified-token cache misses.",
		}),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jwtauthz_config_reloads_total", Help: "Configuration reloads by result.",
		}, []string{"result"}),
	}
	reg.MustRegister(m.Checks, m.CheckDuration, m.Fetches, m.KeysSkipped, m.CacheHits, m.CacheMisses, m.Reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveDecision implements authz.Observer.
func (m *Metrics) ObserveDecision(transport, decision string, reason authz.Reason, provider string, d time.Duration) {
	m.Checks.WithLabelValues(transport, decision, string(reason), provider).Inc()
	m.CheckDuration.WithLabelValues(transport, decision).Observe(d.Seconds())
}

// ObserveTokenCache counts one verified-token cache lookup; it is token.CacheOptions.OnLookup.
func (m *Metrics) ObserveTokenCache(hit bool) {
	if hit {
		m.CacheHits.Inc()
		return
	}
	m.CacheMisses.Inc()
}

// Fetch results, the result label of jwtauthz_jwks_fetches_total (contract.md).
var fetchResults = []string{"ok", "error", "not_modified"}

// KeySet registers a provider's key-set gauges, both computed at scrape time so that they can
// never lag behind the cache: jwtauthz_jwks_keys from keys (0 once the set is past max_stale),
// and jwtauthz_jwks_age_seconds, the time since the last good fetch, from age (-1 before the
// first, when ok is false). It also creates the provider's fetch counters at zero, so that
// rate() and increase() see the first failure. Call it once per provider.
func (m *Metrics) KeySet(provider string, keys func() int, age func() (d time.Duration, ok bool)) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jwtauthz_jwks_keys", Help: "Usable keys in the provider's current set (0 while it has none).",
		ConstLabels: prometheus.Labels{"provider": provider},
	}, func() float64 { return float64(keys()) }))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "jwtauthz_jwks_age_seconds", Help: "Seconds since the provider's last good JWKS fetch (-1 before the first).",
		ConstLabels: prometheus.Labels{"provider": provider},
	}, func() float64 {
		d, ok := age()
		if !ok {
			return -1
		}
		return d.Seconds()
	}))
	for _, r := range fetchResults {
		m.Fetches.WithLabelValues(provider, r)
	}
}

// ObserveFetch counts one fetch of a provider's keys (one read, for a local file) with its result
// (ok, error, not_modified) and the reason of each key it skipped.
func (m *Metrics) ObserveFetch(provider, result string, skipReasons ...string) {
	m.Fetches.WithLabelValues(provider, result).Inc()
	for _, r := range skipReasons {
		m.KeysSkipped.WithLabelValues(provider, r).Inc()
	}
}
