package server

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/config"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/metrics"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// keySource is a provider's keys as the server manages them.
type keySource interface {
	token.KeySource
	Ready() bool
}

type builtProvider struct {
	name   string
	source keySource
	// run refreshes the keys in the background until its context ends (remote_jwks, discovery,
	// local_jwks.file); nil for keys that never change.
	run func(context.Context)
	// retryAfter feeds the Retry-After of a 503 (sources that fetch); nil otherwise.
	retryAfter func() time.Duration

	mu          sync.Mutex
	lastSuccess time.Time // the last good fetch or read, for jwtauthz_jwks_age_seconds
}

func (p *builtProvider) setLastSuccess(t time.Time) {
	p.mu.Lock()
	p.lastSuccess = t
	p.mu.Unlock()
}

func (p *builtProvider) getLastSuccess() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSuccess
}

// keyCount is the number of usable keys served now: 0 without a set or past max_stale.
func (p *builtProvider) keyCount() int {
	set, err := p.source.Current()
	if err != nil {
		return 0
	}
	return set.Len()
}

// core is everything the listeners serve, built from one config.
type core struct {
	authz     *authz.Authorizer
	providers []*builtProvider
}

// ready reports whether every provider has usable keys (J20).
func (c *core) ready() bool {
	for _, p := range c.providers {
		if !p.source.Ready() {
			return false
		}
	}
	return true
}

// notReady names the providers without usable keys.
func (c *core) notReady() []string {
	var out []string
	for _, p := range c.providers {
		if !p.source.Ready() {
			out = append(out, p.name)
		}
	}
	return out
}

type buildOptions struct {
	cfg      *configv1.Config
	extra    []extraProvider // in-process providers (dev mode)
	logger   *slog.Logger
	metrics  *metrics.Metrics
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time // nil: time.After
	limiter  *jwks.Limiter
	onUpdate func() // after every fetch or file read: readiness may have changed
	version  string
}

// extraProvider is a provider whose keys live in process (the dev issuer's).
type extraProvider struct {
	name   string
	cfg    *configv1.Provider
	static *jwks.Static
}

// buildCore turns the config into the decision core. Errors here are configuration errors
// (exit 1): a local JWKS with no usable key, an unreadable ca_file.
func buildCore(o buildOptions) (*core, error) {
	c := &core{}
	var tps []*token.Provider
	var aps []authz.Provider
	add := func(p *configv1.Provider, bp *builtProvider) {
		name := bp.name
		c.providers = append(c.providers, bp)
		tps = append(tps, &token.Provider{
			Name:             name,
			Issuer:           p.Issuer,
			Audiences:        p.Audiences,
			AllowAnyAudience: p.AllowAnyAudience,
			Algorithms:       p.Algorithms,
			TokenTypes:       p.TokenTypes,
			ClockSkew:        p.GetClockSkew().AsDuration(),
			MaxLifetime:      p.GetMaxLifetime().AsDuration(),
			RequiredClaims:   p.RequiredClaims,
			Keys:             bp.source,
		})
		ap := authz.Provider{
			Name:                 name,
			Forward:              p.Forward,
			ForwardPayloadHeader: p.ForwardPayloadHeader,
			PayloadInMetadata:    p.PayloadInMetadata,
			RetryAfter:           bp.retryAfter,
		}
		for _, h := range p.FromHeaders {
			ap.Sources = append(ap.Sources, token.Source{Kind: token.FromHeader, Name: strings.ToLower(h.Name), Prefix: h.ValuePrefix})
		}
		for _, n := range p.FromParams {
			ap.Sources = append(ap.Sources, token.Source{Kind: token.FromParam, Name: n})
		}
		for _, n := range p.FromCookies {
			ap.Sources = append(ap.Sources, token.Source{Kind: token.FromCookie, Name: n})
		}
		for _, ch := range p.ClaimToHeaders {
			ap.ClaimToHeaders = append(ap.ClaimToHeaders, authz.ClaimHeader{Claim: ch.Claim, Header: ch.Header})
		}
		aps = append(aps, ap)
		if o.metrics != nil {
			o.metrics.KeySet(name, bp.keyCount, func() (time.Duration, bool) {
				t := bp.getLastSuccess()
				return o.now().Sub(t), !t.IsZero()
			})
		}
	}

	for _, name := range sortedNames(o.cfg.Providers) {
		p := o.cfg.Providers[name]
		bp := &builtProvider{name: name}
		// onFetch follows every fetch (every read of a local file): key-set age, metrics,
		// readiness.
		onFetch := func(res jwks.FetchResult) {
			if res.Err == nil {
				bp.setLastSuccess(o.now())
			}
			if o.metrics != nil {
				o.metrics.ObserveFetch(name, res.Result(), skipReasons(res.Skipped)...)
			}
			if o.onUpdate != nil {
				o.onUpdate()
			}
		}
		switch {
		case p.RemoteJwks != nil:
			ro, err := remoteOptions(name, "remote_jwks", p, p.RemoteJwks, o, onFetch)
			if err != nil {
				return nil, err
			}
			ro.URI = p.RemoteJwks.Uri
			r, err := jwks.NewRemote(ro)
			if err != nil {
				return nil, fmt.Errorf("providers.%s.remote_jwks: %w", name, err)
			}
			bp.source, bp.run, bp.retryAfter = r, r.Run, r.RetryAfter
		case p.Discovery != nil:
			ro, err := remoteOptions(name, "discovery", p, p.Discovery, o, onFetch)
			if err != nil {
				return nil, err
			}
			d, err := jwks.NewDiscovery(jwks.DiscoveryOptions{Issuer: p.Issuer, AllowInsecureHTTP: p.Discovery.AllowInsecureHttp, Remote: ro})
			if err != nil {
				return nil, fmt.Errorf("providers.%s.discovery: %w", name, err)
			}
			bp.source, bp.run, bp.retryAfter = d, d.Run, d.RetryAfter
		case p.LocalJwks != nil && p.LocalJwks.File != "":
			f, err := jwks.NewFile(jwks.FileOptions{
				Provider: name, Path: p.LocalJwks.File, Algorithms: p.Algorithms, MaxBytes: config.DefaultMaxBytes,
				After: o.after, Logger: o.logger, OnLoad: onFetch, // polled every jwks.DefaultFilePoll
			})
			if err != nil {
				return nil, fmt.Errorf("providers.%s.local_jwks.file: %w", name, err)
			}
			bp.source, bp.run = f, f.Run
		case p.LocalJwks != nil:
			set, skips, err := jwks.Parse([]byte(p.LocalJwks.Inline), p.Algorithms)
			for _, s := range skips {
				o.logger.Warn("local jwks key skipped", "provider", name, "index", s.Index, "kid", s.KID, "reason", s.Reason, "detail", s.Detail)
			}
			if o.metrics != nil {
				o.metrics.ObserveFetch(name, fetchResult(err), skipReasons(skips)...)
			}
			if err != nil {
				return nil, fmt.Errorf("providers.%s.local_jwks.inline: %w", name, err)
			}
			bp.source = jwks.NewStatic(set)
			bp.setLastSuccess(o.now())
		default:
			return nil, fmt.Errorf("providers.%s: no supported key source", name)
		}
		add(p, bp)
	}
	for _, e := range o.extra {
		bp := &builtProvider{name: e.name, source: e.static}
		bp.setLastSuccess(o.now())
		add(e.cfg, bp)
	}

	to := token.Options{Now: o.now}
	if tc := o.cfg.GetTokenCache(); tc.GetEnabled() {
		co := token.CacheOptions{MaxEntries: int(tc.GetMaxEntries())}
		if o.metrics != nil {
			co.OnLookup = o.metrics.ObserveTokenCache
		}
		to.Cache = token.NewCache(co)
	}
	v, err := token.NewVerifier(tps, to)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range c.providers {
		names = append(names, p.name)
	}
	// Rule warnings (unreachable rules) were logged with the config's other warnings by
	// server.Run; only errors matter here.
	pol, problems, err := policy.Compile(config.Rules(o.cfg), names)
	if err != nil {
		var msgs []string
		for _, p := range problems {
			if !p.Warning {
				msgs = append(msgs, p.Path+": "+p.Message)
			}
		}
		return nil, fmt.Errorf("%s", strings.Join(msgs, "\n"))
	}
	ao := authz.Options{
		Realm:           o.cfg.Realm,
		Providers:       aps,
		Verifier:        v,
		MaxTokenBytes:   int(o.cfg.GetMaxTokenBytes()),
		CORSPreflight:   o.cfg.CorsPreflight == "allow",
		Shadow:          o.cfg.Shadow,
		Logger:          o.logger,
		AllowSampleRate: o.cfg.GetLogging().GetAllowSampleRate(),
		Now:             o.now,
		Policy:          pol,
	}
	if o.metrics != nil {
		ao.Observer = o.metrics
	}
	a, err := authz.New(ao)
	if err != nil {
		return nil, err
	}
	c.authz = a
	return c, nil
}

// fetchConfig is what remote_jwks and discovery share: the fetch knobs.
type fetchConfig interface {
	GetRefreshInterval() *durationpb.Duration
	GetMinRefreshInterval() *durationpb.Duration
	GetMaxRefreshInterval() *durationpb.Duration
	GetKidMissCooldown() *durationpb.Duration
	GetMaxStale() *durationpb.Duration
	GetTimeout() *durationpb.Duration
	GetMaxBytes() uint32
	GetCaFile() string
}

// remoteOptions turns a provider's fetch knobs into a jwks.RemoteOptions (URI left empty).
func remoteOptions(name, block string, p *configv1.Provider, fc fetchConfig, o buildOptions, onFetch func(jwks.FetchResult)) (jwks.RemoteOptions, error) {
	client, err := jwks.NewHTTPClient(jwks.HTTPClientOptions{CAFile: fc.GetCaFile()})
	if err != nil {
		return jwks.RemoteOptions{}, fmt.Errorf("providers.%s.%s.ca_file: %w", name, block, err)
	}
	return jwks.RemoteOptions{
		Provider:           name,
		Client:             client,
		Algorithms:         p.Algorithms,
		RefreshInterval:    fc.GetRefreshInterval().AsDuration(),
		MinRefreshInterval: fc.GetMinRefreshInterval().AsDuration(),
		MaxRefreshInterval: fc.GetMaxRefreshInterval().AsDuration(),
		KIDMissCooldown:    fc.GetKidMissCooldown().AsDuration(),
		MaxStale:           fc.GetMaxStale().AsDuration(),
		Timeout:            fc.GetTimeout().AsDuration(),
		MaxBytes:           int64(fc.GetMaxBytes()),
		Limiter:            o.limiter,
		UserAgent:          "jwtauthz/" + o.version,
		Now:                o.now,
		After:              o.after,
		Logger:             o.logger,
		OnFetch:            onFetch,
	}, nil
}

func fetchResult(err error) string {
	if err != nil {
		return jwks.ResultError
	}
	return jwks.ResultOK
}

func skipReasons(skips []jwks.Skip) []string {
	out := make([]string, len(skips))
	for i, s := range skips {
		out[i] = s.Reason
	}
	return out
}

func sortedNames(m map[string]*configv1.Provider) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckConfig builds everything a config describes without starting anything, to report
// problems validation cannot see (a local JWKS with no usable key, an unreadable ca_file).
func CheckConfig(cfg *configv1.Config) error {
	_, err := buildCore(buildOptions{cfg: cfg, logger: slog.New(slog.DiscardHandler), now: time.Now, version: "check"})
	return err
}
