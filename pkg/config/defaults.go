package config

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

// Defaults from contract.md. They live in code, not in the schema, so that unset and zero stay
// distinguishable.
const (
	DefaultGRPCAddress   = ":9001"
	DefaultHTTPAddress   = ":9002"
	DefaultAdminAddress  = ":9003"
	DefaultRealm         = "jwtauthz"
	DefaultMaxTokenBytes = 8192
	DefaultCacheEntries  = 10000

	DefaultDrainDelay   = 2 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultClockSkew    = 60 * time.Second

	DefaultRefreshInterval    = 3600 * time.Second
	DefaultMinRefreshInterval = 300 * time.Second
	DefaultMaxRefreshInterval = 86400 * time.Second
	DefaultKidMissCooldown    = 60 * time.Second
	DefaultMaxStale           = 86400 * time.Second
	DefaultFetchTimeout       = 5 * time.Second
	DefaultMaxBytes           = 524288

	DefaultAllowSampleRate    = 1.0
	DefaultTracingSampleRatio = 0.01
)

// DefaultAlgorithms is the provider algorithm allowlist when none is configured: every
// asymmetric JWS algorithm go-jose verifies. HS* is never accepted (jwt-security.md §1).
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultTokenTypes accepts an absent typ, "JWT" and RFC 9068's "at+jwt".
var DefaultTokenTypes = []string{"", "JWT", "at+jwt"}

// ApplyDefaults fills every unset field with its documented default. It never overrides a value
// the user set, including explicit empty strings where "" has a meaning (http_address).
func ApplyDefaults(c *configv1.Config) {
	if c.Server == nil {
		c.Server = &configv1.Server{}
	}
	s := c.Server
	if s.GrpcAddress == nil {
		s.GrpcAddress = proto.String(DefaultGRPCAddress)
	}
	if s.HttpAddress == nil {
		s.HttpAddress = proto.String(DefaultHTTPAddress)
	}
	if s.AdminAddress == nil {
		s.AdminAddress = proto.String(DefaultAdminAddress)
	}
	if s.DrainDelay == nil {
		s.DrainDelay = durationpb.New(DefaultDrainDelay)
	}
	if s.DrainTimeout == nil {
		s.DrainTimeout = durationpb.New(DefaultDrainTimeout)
	}
	if c.Realm == "" {
		c.Realm = DefaultRealm
	}
	if c.MaxTokenBytes == nil {
		c.MaxTokenBytes = proto.Uint32(DefaultMaxTokenBytes)
	}
	if c.TokenCache == nil {
		c.TokenCache = &configv1.TokenCache{}
	}
	if c.TokenCache.Enabled == nil {
		c.TokenCache.Enabled = proto.Bool(true)
	}
	if c.TokenCache.MaxEntries == 0 {
		c.TokenCache.MaxEntries = DefaultCacheEntries
	}
	if c.Logging == nil {
		c.Logging = &configv1.Logging{}
	}
	if c.Logging.Level == "" {
		c.Logging.Level = "info"
	}
	if c.Logging.Format == "" {
		c.Logging.Format = "json"
	}
	if c.Logging.AllowSampleRate == nil {
		c.Logging.AllowSampleRate = proto.Float64(DefaultAllowSampleRate)
	}
	if c.Tracing == nil {
		c.Tracing = &configv1.Tracing{}
	}
	if c.Tracing.SampleRatio == nil {
		c.Tracing.SampleRatio = proto.Float64(DefaultTracingSampleRatio)
	}
	for _, p := range c.Providers {
		ApplyProviderDefaults(p)
	}
}

// ApplyProviderDefaults fills one provider's unset fields.
func ApplyProviderDefaults(p *configv1.Provider) {
	if p == nil {
		return
	}
	if len(p.Algorithms) == 0 {
		p.Algorithms = append([]string(nil), DefaultAlgorithms...)
	}
	if len(p.TokenTypes) == 0 {
		p.TokenTypes = append([]string(nil), DefaultTokenTypes...)
	}
	if p.ClockSkew == nil {
		p.ClockSkew = durationpb.New(DefaultClockSkew)
	}
	if p.MaxLifetime == nil {
		p.MaxLifetime = durationpb.New(0)
	}
	if len(p.FromHeaders) == 0 && len(p.FromParams) == 0 && len(p.FromCookies) == 0 {
		p.FromHeaders = []*configv1.HeaderSource{{Name: "authorization", ValuePrefix: "Bearer "}}
	}
	if r := p.RemoteJwks; r != nil {
		fetchDefaults(&r.RefreshInterval, &r.MinRefreshInterval, &r.MaxRefreshInterval, &r.KidMissCooldown, &r.MaxStale, &r.Timeout, &r.MaxBytes)
	}
	if d := p.Discovery; d != nil {
		fetchDefaults(&d.RefreshInterval, &d.MinRefreshInterval, &d.MaxRefreshInterval, &d.KidMissCooldown, &d.MaxStale, &d.Timeout, &d.MaxBytes)
	}
}

func fetchDefaults(refresh, minR, maxR, cooldown, stale, timeout **durationpb.Duration, maxBytes *uint32) {
	set := func(d **durationpb.Duration, v time.Duration) {
		if *d == nil {
			*d = durationpb.New(v)
		}
	}
	set(refresh, DefaultRefreshInterval)
	set(minR, DefaultMinRefreshInterval)
	set(maxR, DefaultMaxRefreshInterval)
	set(cooldown, DefaultKidMissCooldown)
	set(stale, DefaultMaxStale)
	set(timeout, DefaultFetchTimeout)
	if *maxBytes == 0 {
		*maxBytes = DefaultMaxBytes
	}
}
