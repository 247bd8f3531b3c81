package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

	"github.com/jwtauthz/jwtauthz/pkg/policy"
)

// MaxClockSkew bounds clock_skew: beyond a few minutes, "expired" stops meaning anything.
const MaxClockSkew = 300 * time.Second

// supportedAlgs is every algorithm a provider may allow. HS* are refused with their own
// message: a shared secret in a JWKS is the classic key-confusion hole (RFC 8725 §3.1).
var supportedAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

// reservedHeaders may never be identity headers: Envoy ignores or rejects mutations of
// pseudo-headers and host, and hop-by-hop or framing headers would corrupt the request.
var reservedHeaders = map[string]bool{
	"host": true, "authorization": true, "cookie": true, "content-length": true,
	"transfer-encoding": true, "connection": true, "te": true, "upgrade": true,
	"keep-alive": true, "proxy-connection": true, "content-type": true,
	"x-envoy-auth-headers-to-remove": true,
}

// reservedMetadataKeys are written by jwtauthz itself into dynamic metadata.
var reservedMetadataKeys = map[string]bool{"provider": true, "iss": true, "sub": true, "reason": true}

// Validate returns every problem in a defaulted config. Call ApplyDefaults first.
func Validate(c *configv1.Config) Problems { return ValidateWith(c, nil) }

// ValidateWith is Validate for a config that runs beside providers added in code (dev mode's
// "dev"), which rules may name.
func ValidateWith(c *configv1.Config, extraProviders []string) Problems {
	v := &validator{}
	v.server(c.GetServer())
	if c.Realm != "" && !isQuotable(c.Realm) {
		v.add("realm", "must be printable ASCII without '\"' or '\\' (it is quoted in WWW-Authenticate)")
	}
	if n := c.GetTokenCache().GetMaxEntries(); n > 1_000_000 {
		v.add("token_cache.max_entries", fmt.Sprintf("must be at most 1000000 (each entry holds a token of up to max_token_bytes), got %d", n))
	}
	if n := c.GetMaxTokenBytes(); n < 256 || n > 1<<20 {
		v.add("max_token_bytes", fmt.Sprintf("must be between 256 and 1048576, got %d", n))
	}
	if l := c.GetLogging(); l != nil {
		switch l.Level {
		case "debug", "info", "warn", "error":
		default:
			v.add("logging.level", fmt.Sprintf("must be one of debug, info, warn, error; got %q", l.Level))
		}
		switch l.Format {
		case "json", "text":
		default:
			v.add("logging.format", fmt.Sprintf("must be json or text; got %q", l.Format))
		}
		if r := l.GetAllowSampleRate(); r < 0 || r > 1 {
			v.add("logging.allow_sample_rate", "must be between 0 and 1")
		}
	}
	if t := c.GetTracing(); t.GetOtlpEndpoint() != "" {
		v.add("tracing.otlp_endpoint", "tracing is not supported in this release; leave it empty")
	}
	if r := c.GetTracing().GetSampleRatio(); r < 0 || r > 1 {
		v.add("tracing.sample_ratio", "must be between 0 and 1")
	}
	switch c.CorsPreflight {
	case "", "allow":
	default:
		v.add("cors_preflight", fmt.Sprintf(`must be "allow" or empty; got %q`, c.CorsPreflight))
	}
	if c.Shadow {
		v.warn("shadow", "every request is allowed; denies are only logged and counted")
	}
	names := make([]string, 0, len(c.Providers))
	for n := range c.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	if _, problems, _ := policy.Compile(Rules(c), append(names, extraProviders...)); len(problems) > 0 {
		for _, p := range problems {
			v.ps = append(v.ps, &Problem{Path: p.Path, Message: p.Message, Warning: p.Warning})
		}
	}
	issuers := map[string]string{}
	tokenHeaderOwner := map[string]string{} // lower-case from_headers name -> first provider reading it
	type headerRead struct{ provider, prefix string }
	reads := map[string][]headerRead{} // lower-case from_headers name -> every provider reading it
	for _, n := range names {
		for i, h := range c.Providers[n].GetFromHeaders() {
			name := strings.ToLower(h.GetName())
			if tokenHeaderOwner[name] == "" {
				tokenHeaderOwner[name] = n
			}
			// Every provider's token locations are read on every request, and a credential
			// found twice is a 400 (multiple_tokens): prefixes of one header must not overlap
			// unless they are the same scheme.
			pre := strings.ToLower(h.GetValuePrefix())
			for _, r := range reads[name] {
				lr := strings.ToLower(r.prefix)
				if r.provider != n && lr != pre && (strings.HasPrefix(lr, pre) || strings.HasPrefix(pre, lr)) {
					v.add(fmt.Sprintf("providers.%s.from_headers[%d].value_prefix", pathKey(n), i),
						fmt.Sprintf("providers.%s reads %s with value_prefix %q: one credential would match both; use the same scheme or different headers", pathKey(r.provider), name, r.prefix))
					break
				}
			}
			reads[name] = append(reads[name], headerRead{n, h.GetValuePrefix()})
		}
	}
	for _, n := range names {
		p := c.Providers[n]
		path := "providers." + pathKey(n)
		if !validName(n) {
			v.add(path, "provider names use letters, digits, '_', '-' and '.', at most 64 characters")
		}
		if p == nil {
			v.add(path, "must be a mapping")
			continue
		}
		v.provider(path, p)
		v.identityVsTokenHeaders(path, n, p, tokenHeaderOwner)
		if p.Issuer != "" {
			if other, dup := issuers[p.Issuer]; dup {
				v.add(path+".issuer", fmt.Sprintf("same issuer as providers.%s; the token's iss must pick exactly one provider", pathKey(other)))
			} else {
				issuers[p.Issuer] = n
			}
		}
	}
	return v.ps
}

type validator struct{ ps Problems }

func (v *validator) add(path, msg string) {
	v.ps = append(v.ps, &Problem{Path: path, Message: msg})
}

func (v *validator) warn(path, msg string) {
	v.ps = append(v.ps, &Problem{Path: path, Message: msg, Warning: true})
}

func (v *validator) server(s *configv1.Server) {
	if s == nil {
		return
	}
	v.address("server.grpc_address", s.GetGrpcAddress(), false)
	v.address("server.http_address", s.GetHttpAddress(), true)
	v.address("server.admin_address", s.GetAdminAddress(), false)
	if t := s.GetTls(); t != nil {
		if (t.CertFile == "") != (t.KeyFile == "") {
			v.add("server.tls", "cert_file and key_file go together")
		}
		if t.ClientCaFile != "" && t.CertFile == "" {
			v.add("server.tls.client_ca_file", "needs cert_file and key_file: client certificates are only asked for over TLS")
		}
		v.file("server.tls.cert_file", t.CertFile)
		v.file("server.tls.key_file", t.KeyFile)
		v.file("server.tls.client_ca_file", t.ClientCaFile)
	}
	if fa := s.GetForwardAuth(); fa != nil {
		for _, h := range []struct{ path, name string }{
			{"server.forward_auth.method_header", fa.MethodHeader},
			{"server.forward_auth.uri_header", fa.UriHeader},
			{"server.forward_auth.host_header", fa.HostHeader},
		} {
			if h.name != "" && !validHeaderName(strings.ToLower(h.name)) {
				v.add(h.path, fmt.Sprintf("%q is not a valid header name", h.name))
			}
		}
	}
	v.duration("server.drain_delay", s.DrainDelay, 0, time.Hour)
	v.duration("server.drain_timeout", s.DrainTimeout, time.Second, time.Hour)
}

func (v *validator) address(path, addr string, mayBeEmpty bool) {
	if addr == "" {
		if !mayBeEmpty {
			v.add(path, "must not be empty")
		}
		return
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		v.add(path, fmt.Sprintf("must be host:port or :port with a port number from 0 to 65535, got %q", addr))
	}
}

func (v *validator) file(path, name string) {
	if name == "" {
		return
	}
	if _, err := os.Stat(name); err != nil {
		v.add(path, fmt.Sprintf("cannot read %q: %v", name, unwrapPathError(err)))
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// duration checks d is valid and within [lo, hi]; nil (unset) is fine.
func (v *validator) duration(path string, d *durationpb.Duration, lo, hi time.Duration) {
	if d == nil {
		return
	}
	if err := d.CheckValid(); err != nil {
		v.add(path, "is not a valid duration")
		return
	}
	x := d.AsDuration()
	if x < lo {
		if lo == 0 {
			v.add(path, fmt.Sprintf("must not be negative, got %s", jsonDuration(x)))
		} else {
			v.add(path, fmt.Sprintf("must be at least %s, got %s", jsonDuration(lo), jsonDuration(x)))
		}
	} else if x > hi {
		v.add(path, fmt.Sprintf("must be at most %s, got %s", jsonDuration(hi), jsonDuration(x)))
	}
}

// jsonDuration writes d the way users write durations in the file: "300s", "0.5s".
func jsonDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

func (v *validator) provider(path string, p *configv1.Provider) {
	switch {
	case p.Issuer == "":
		v.add(path+".issuer", "is required (compared byte for byte with the token's iss)")
	case strings.TrimSpace(p.Issuer) != p.Issuer || hasControl(p.Issuer):
		v.add(path+".issuer", "must not have leading or trailing spaces or control characters")
	}
	switch {
	case len(p.Audiences) == 0 && !p.AllowAnyAudience:
		v.add(path+".audiences", "at least one audience is required (or set allow_any_audience: true to accept tokens meant for any API)")
	case len(p.Audiences) > 0 && p.AllowAnyAudience:
		v.add(path+".allow_any_audience", "cannot be combined with audiences: choose one")
	}
	for i, a := range p.Audiences {
		if a == "" {
			v.add(fmt.Sprintf("%s.audiences[%d]", path, i), "must not be empty")
		}
	}
	if p.AllowAnyAudience {
		v.warn(path+".allow_any_audience", "tokens issued for any audience are accepted")
	}

	sources := 0
	if p.RemoteJwks != nil {
		sources++
		r := p.RemoteJwks
		v.jwksURI(path+".remote_jwks.uri", r.Uri, r.AllowInsecureHttp)
		v.fetchKnobs(path+".remote_jwks", r.RefreshInterval, r.MinRefreshInterval, r.MaxRefreshInterval, r.KidMissCooldown, r.MaxStale, r.Timeout, r.MaxBytes)
		v.file(path+".remote_jwks.ca_file", r.CaFile)
		if r.AllowInsecureHttp {
			v.warn(path+".remote_jwks.allow_insecure_http", "keys may be fetched over plain HTTP")
		}
	}
	if p.Discovery != nil {
		sources++
		d := p.Discovery
		if p.Issuer != "" {
			v.discoveryIssuer(path+".issuer", p.Issuer, d.AllowInsecureHttp)
		}
		v.fetchKnobs(path+".discovery", d.RefreshInterval, d.MinRefreshInterval, d.MaxRefreshInterval, d.KidMissCooldown, d.MaxStale, d.Timeout, d.MaxBytes)
		v.file(path+".discovery.ca_file", d.CaFile)
		if d.AllowInsecureHttp {
			v.warn(path+".discovery.allow_insecure_http", "the discovery document and keys may be fetched over plain HTTP")
		}
	}
	if p.LocalJwks != nil {
		sources++
		l := p.LocalJwks
		switch {
		case (l.Inline == "") == (l.File == ""):
			v.add(path+".local_jwks", "set exactly one of inline or file")
		case l.File != "":
			v.file(path+".local_jwks.file", l.File)
		}
	}
	if sources != 1 {
		v.add(path, "set exactly one key source: remote_jwks, discovery or local_jwks")
	}

	seenAlg := map[string]bool{}
	for i, a := range p.Algorithms {
		ap := fmt.Sprintf("%s.algorithms[%d]", path, i)
		switch {
		case strings.HasPrefix(strings.ToUpper(a), "HS"):
			v.add(ap, pathKey(a)+" is not supported: symmetric algorithms would let anyone holding the public JWKS forge tokens")
		case strings.EqualFold(a, "none"):
			v.add(ap, `"none" is never accepted`)
		case !supportedAlgs[a]:
			v.add(ap, fmt.Sprintf("unknown algorithm %q (supported: RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA; names are case-sensitive)", a))
		case seenAlg[a]:
			v.add(ap, "listed twice")
		}
		seenAlg[a] = true
	}
	for i, t := range p.TokenTypes {
		if hasControl(t) || strings.ContainsAny(t, " \t") {
			v.add(fmt.Sprintf("%s.token_types[%d]", path, i), "must not contain spaces or control characters")
		}
	}
	v.duration(path+".clock_skew", p.ClockSkew, 0, MaxClockSkew)
	if p.MaxLifetime != nil && p.MaxLifetime.AsDuration() != 0 {
		v.duration(path+".max_lifetime", p.MaxLifetime, time.Second, 10*365*24*time.Hour)
	}
	for i, c := range p.RequiredClaims {
		if c == "" {
			v.add(fmt.Sprintf("%s.required_claims[%d]", path, i), "must not be empty")
		}
	}

	tokenHeaders := map[string]bool{}
	for i, h := range p.FromHeaders {
		hp := fmt.Sprintf("%s.from_headers[%d]", path, i)
		name := strings.ToLower(h.GetName())
		switch {
		case !validHeaderName(name):
			v.add(hp+".name", fmt.Sprintf("%q is not a valid header name", h.GetName()))
		case tokenHeaders[name]:
			v.add(hp+".name", "listed twice")
		}
		tokenHeaders[name] = true
		if !isQuotable(h.GetValuePrefix()) {
			v.add(hp+".value_prefix", "must be printable ASCII")
		}
	}
	for i, n := range p.FromParams {
		if n == "" || strings.ContainsAny(n, "&=#? ") || hasControl(n) {
			v.add(fmt.Sprintf("%s.from_params[%d]", path, i), "must be a plain query parameter name")
		}
	}
	for i, n := range p.FromCookies {
		if !validHeaderName(strings.ToLower(n)) {
			v.add(fmt.Sprintf("%s.from_cookies[%d]", path, i), "must be a valid cookie name")
		}
	}

	setHeaders := map[string]bool{}
	checkIdentityHeader := func(hp, h string) {
		switch {
		case h != strings.ToLower(h):
			v.add(hp, fmt.Sprintf("header names must be lower-case (Envoy and gRFC A92 drop others); use %q", strings.ToLower(h)))
		case !validHeaderName(h):
			v.add(hp, fmt.Sprintf("%q is not a valid header name", h))
		case reservedHeaders[h]:
			v.add(hp, fmt.Sprintf("%q cannot be an identity header", h))
		case tokenHeaders[h]:
			v.add(hp, "is also a token header (from_headers); identity headers are stripped from every request")
		case setHeaders[h]:
			v.add(hp, "is set twice by this provider")
		}
		setHeaders[h] = true
	}
	for i, ch := range p.ClaimToHeaders {
		hp := fmt.Sprintf("%s.claim_to_headers[%d]", path, i)
		if ch.GetClaim() == "" {
			v.add(hp+".claim", "must not be empty")
		}
		checkIdentityHeader(hp+".header", ch.GetHeader())
	}
	if p.ForwardPayloadHeader != "" {
		checkIdentityHeader(path+".forward_payload_header", p.ForwardPayloadHeader)
	}
	if reservedMetadataKeys[p.PayloadInMetadata] {
		v.add(path+".payload_in_metadata", fmt.Sprintf("%q is written by jwtauthz itself; pick another key", p.PayloadInMetadata))
	}
}

// identityVsTokenHeaders reports an identity header of one provider that another provider reads
// its token from: identity headers are stripped from (or overwritten on) every request, so that
// provider's tokens would vanish or be replaced by a claim value. The same provider's conflict is
// reported by provider.
func (v *validator) identityVsTokenHeaders(path, name string, p *configv1.Provider, owner map[string]string) {
	own := map[string]bool{}
	for _, h := range p.FromHeaders {
		own[strings.ToLower(h.GetName())] = true
	}
	check := func(hp, h string) {
		if o := owner[h]; o != "" && !own[h] && o != name {
			v.add(hp, fmt.Sprintf("is the token header of providers.%s (from_headers); identity headers are stripped from every request", pathKey(o)))
		}
	}
	for i, ch := range p.ClaimToHeaders {
		check(fmt.Sprintf("%s.claim_to_headers[%d].header", path, i), ch.GetHeader())
	}
	if p.ForwardPayloadHeader != "" {
		check(path+".forward_payload_header", p.ForwardPayloadHeader)
	}
}

func (v *validator) jwksURI(path, raw string, insecure bool) {
	if raw == "" {
		v.add(path, "is required")
		return
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		v.add(path, fmt.Sprintf("must be an absolute https URL, got %q", raw))
	case u.User != nil:
		v.add(path, "must not carry credentials")
	case u.Fragment != "":
		v.add(path, "must not have a fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && insecure:
	case u.Scheme == "http":
		v.add(path, "must be https (set allow_insecure_http: true to allow plain http, for local development only)")
	default:
		v.add(path, fmt.Sprintf("must be https, got scheme %q", u.Scheme))
	}
}

// discoveryIssuer checks that an issuer can be the base of its discovery document
// (<issuer>/.well-known/openid-configuration, OpenID Connect Discovery 1.0 §4): an https URL,
// without query or fragment (§3 of the same spec says an issuer has neither).
func (v *validator) discoveryIssuer(path, raw string, insecure bool) {
	const why = "discovery reads <issuer>/.well-known/openid-configuration, so the issuer "
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		v.add(path, why+fmt.Sprintf("must be an absolute https URL, got %q", raw))
	case u.User != nil:
		v.add(path, why+"must not carry credentials")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		v.add(path, why+"must not have a query or a fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && insecure:
	case u.Scheme == "http":
		v.add(path, why+"must be https (set discovery.allow_insecure_http: true to allow plain http, for local development only)")
	default:
		v.add(path, why+fmt.Sprintf("must be https, got scheme %q", u.Scheme))
	}
}

func (v *validator) fetchKnobs(path string, refresh, minR, maxR, cooldown, stale, timeout *durationpb.Duration, maxBytes uint32) {
	const year = 365 * 24 * time.Hour
	v.duration(path+".refresh_interval", refresh, time.Second, year)
	v.duration(path+".min_refresh_interval", minR, time.Second, year)
	v.duration(path+".max_refresh_interval", maxR, time.Second, year)
	v.duration(path+".kid_miss_cooldown", cooldown, time.Second, year)
	v.duration(path+".max_stale", stale, time.Second, 10*year)
	v.duration(path+".timeout", timeout, time.Second, 5*time.Minute)
	if minR != nil && maxR != nil && minR.AsDuration() > maxR.AsDuration() {
		v.add(path+".min_refresh_interval", "must not exceed max_refresh_interval")
	}
	if maxBytes < 1024 || maxBytes > 64<<20 {
		v.add(path+".max_bytes", fmt.Sprintf("must be between 1024 and 67108864, got %d", maxBytes))
	}
}

func validName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// validHeaderName reports whether h is an RFC 9110 token (a field name), not a pseudo-header.
func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func isQuotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
