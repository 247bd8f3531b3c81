package server

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

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
	remote *jwks.Remote // nil for static sources

	mu          sync.Mutex
	lastSuccess time.Time
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
	limiter  *jwks.Limiter
	onUpdate func()
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
	add := func(name string, p *configv1.Provider, src keySource, remote *jwks.Remote) {
		bp := &builtProvider{name: name, source: src, remote: remote}
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
			Keys:             src,
		})
		ap := authz.Provider{
			Name:                 name,
			Forward:              p.Forward,
			ForwardPayloadHeader: p.ForwardPayloadHeader,
			PayloadInMetadata:    p.PayloadInMetadata,
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
		if remote != nil {
			ap.RetryAfter = remote.RetryAfter
		}
		aps = append(aps, ap)
		if o.metrics != nil {
			o.metrics.KeySetAge(name, bp.getLastSuccess, o.now)
		}
	}

	for _, name := range sortedNames(o.cfg.Providers) {
		p := o.cfg.Providers[name]
		switch {
		case p.RemoteJwks != nil:
			r, err := newRemote(name, p, o, func(res jwks.FetchResult) {
				for _, bp := range c.providers {
					if bp.name == name && res.Err == nil {
						bp.setLastSuccess(o.now())
					}
				}
			})
			if err != nil {
				return nil, err
			}
			add(name, p, r, r)
		case p.LocalJwks != nil:
			var set *jwks.Set
			var skips []jwks.Skip
			var err error
			if p.LocalJwks.File != "" {
				set, skips, err = jwks.LoadFile(p.LocalJwks.File, p.Algorithms, config.DefaultMaxBytes)
			} else {
				set, skips, err = jwks.Parse([]byte(p.LocalJwks.Inline), p.Algorithms)
			}
			for _, s := range skips {
				o.logger.Warn("local jwks key skipped", "provider", name, "index", s.Index, "kid", s.KID, "reason", s.Reason, "detail", s.Detail)
				if o.metrics != nil {
					o.metrics.KeysSkipped.WithLabelValues(name, s.Reason).Inc()
				}
			}
			if err != nil {
				return nil, fmt.Errorf("providers.%s.local_jwks: %w", name, err)
			}
			if o.metrics != nil {
				o.metrics.Keys.WithLabelValues(name).Set(float64(set.Len()))
			}
			add(name, p, jwks.NewStatic(set), nil)
			c.providers[len(c.providers)-1].setLastSuccess(o.now())
		default:
			return nil, fmt.Errorf("providers.%s: no supported key source", name)
		}
	}
	for _, e := range o.extra {
		add(e.name, e.cfg, e.static, nil)
		c.providers[len(c.providers)-1].setLastSuccess(o.now())
	}

	v, err := token.NewVerifier(tps, token.Options{Now: o.now})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range c.providers {
		names = append(names, p.name)
	}
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
	for _, p := range problems {
		o.logger.Warn("rule problem", "field", p.Path, "warning", p.Message)
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

func newRemote(name string, p *configv1.Provider, o buildOptions, onFetch func(jwks.FetchResult)) (*jwks.Remote, error) {
	r := p.RemoteJwks
	client, err := jwks.NewHTTPClient(jwks.HTTPClientOptions{CAFile: r.CaFile})
	if err != nil {
		return nil, fmt.Errorf("providers.%s.remote_jwks.ca_file: %w", name, err)
	}
	m := o.metrics
	return jwks.NewRemote(jwks.RemoteOptions{
		Provider:           name,
		URI:                r.Uri,
		Client:             client,
		Algorithms:         p.Algorithms,
		RefreshInterval:    r.GetRefreshInterval().AsDuration(),
		MinRefreshInterval: r.GetMinRefreshInterval().AsDuration(),
		MaxRefreshInterval: r.GetMaxRefreshInterval().AsDuration(),
		KIDMissCooldown:    r.GetKidMissCooldown().AsDuration(),
		MaxStale:           r.GetMaxStale().AsDuration(),
		Timeout:            r.GetTimeout().AsDuration(),
		MaxBytes:           int64(r.MaxBytes),
		Limiter:            o.limiter,
		UserAgent:          "jwtauthz/" + o.version,
		Now:                o.now,
		Logger:             o.logger,
		OnFetch: func(res jwks.FetchResult) {
			onFetch(res)
			if m != nil {
				result := "ok"
				if res.Err != nil {
					result = "error"
				} else {
					m.Keys.WithLabelValues(name).Set(float64(res.Keys))
				}
				m.Fetches.WithLabelValues(name, result).Inc()
				for _, s := range res.Skipped {
					m.KeysSkipped.WithLabelValues(name, s.Reason).Inc()
				}
			}
			if o.onUpdate != nil {
				o.onUpdate()
			}
		},
	})
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
