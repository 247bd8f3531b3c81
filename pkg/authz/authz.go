package authz

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4/json"

	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// Request is one authorization question, whatever the transport.
type Request struct {
	// Transport labels logs and metrics: "grpc" or "http".
	Transport string
	Method    string
	Host      string // :authority
	Path      string // without the query string, not percent-decoded
	Query     string // raw, without '?'
	// Headers have lower-case keys; each element is one header line as received (Envoy's
	// headers map joins repeats with ",", its header_map keeps them apart).
	Headers map[string][]string
	// Principal is the downstream peer's identity (mTLS SAN), when known.
	Principal string
	// RequestID is x-request-id, for log correlation.
	RequestID string
	// ContextExtensions are Envoy's per-route settings (contract: jwtauthz.*).
	ContextExtensions map[string]string
	// Problem, set by an adapter, says the request cannot be judged as sent (a configured
	// forward-auth header missing or repeated). The answer is 403 route_misconfigured with
	// Problem in the log: a broken proxy setup fails closed, never falls back.
	Problem string
}

// Header is one header to set upstream. Names are lower-case.
type Header struct{ Name, Value string }

// Decision is the answer to a Request.
type Decision struct {
	Allow bool
	// Shadow is true when the decision was a deny that shadow mode turned into an allow.
	Shadow bool
	// Status is the HTTP status: 200 on allow, else the deny's status.
	Status int
	Reason Reason
	// ErrorCode is the body's "error" (RFC 6750 code, or unauthorized, access_denied,
	// temporarily_unavailable); empty on allow.
	ErrorCode   string
	Description string
	// Challenge is the WWW-Authenticate value; "" when the deny carries none.
	Challenge string
	// RetryAfter is set on 503: when keys may be back.
	RetryAfter time.Duration

	Provider string // the provider's name, "" when none was picked
	Issuer   string
	Subject  string

	// SetHeaders go upstream, overwriting whatever the client sent.
	SetHeaders []Header
	// RemoveHeaders are stripped from the upstream request: every identity header not set
	// here, and the token's header when the provider does not forward it.
	RemoveHeaders []string
	// RemoveQueryParams are stripped from the upstream request (a token in the query).
	RemoveQueryParams []string
	// Payloads are verified payloads for dynamic metadata, by payload_in_metadata key.
	Payloads []Payload
	// Detail explains a deny in logs only (never sent): what was misconfigured or ambiguous.
	Detail string
}

// ClaimHeader projects one claim onto one upstream header.
type ClaimHeader struct{ Claim, Header string }

// Provider is a provider's token locations and identity projection. Verification policy lives
// in the token.Verifier; Name ties the two together.
type Provider struct {
	Name                 string
	Sources              []token.Source
	Forward              bool
	ClaimToHeaders       []ClaimHeader
	ForwardPayloadHeader string
	PayloadInMetadata    string
	// RetryAfter says when keys may be back, for the Retry-After of a 503; nil means 1s.
	RetryAfter func() time.Duration
}

// Observer receives every decision, for metrics.
type Observer interface {
	ObserveDecision(transport, decision string, reason Reason, provider string, d time.Duration)
}

// Options configure an Authorizer.
type Options struct {
	Realm         string // WWW-Authenticate realm; default "jwtauthz"
	Providers     []Provider
	Verifier      *token.Verifier
	MaxTokenBytes int  // default 8192
	CORSPreflight bool // cors_preflight: allow
	Shadow        bool // decide, log and count, but always allow
	Logger        *slog.Logger
	// AllowSampleRate is the fraction of allow decisions logged; denies (and shadow denies)
	// are always logged. The zero value logs no allow decision: pass the config's
	// logging.allow_sample_rate, which defaults to 1.0.
	AllowSampleRate float64
	Observer        Observer
	Now             func() time.Time
	// Policy holds the route rules; nil means no rules: every request needs a valid token
	// from some provider.
	Policy *policy.Policy
}

// Authorizer decides. It is immutable after New and safe for concurrent use.
type Authorizer struct {
	o         Options
	providers map[string]*Provider
	sources   []token.Source
	identity  []string // every identity header name, sorted
	policy    *policy.Policy
	names     []string // provider names in configured order
}

// New compiles the options.
func New(o Options) (*Authorizer, error) {
	if o.Verifier == nil {
		return nil, fmt.Errorf("authz: a verifier is required")
	}
	if o.Realm == "" {
		o.Realm = "jwtauthz"
	}
	if !quotable(o.Realm) {
		// The realm goes inside a quoted-string of WWW-Authenticate (RFC 9110 §11.2); a quote,
		// backslash or control byte would break or inject into the challenge.
		return nil, fmt.Errorf("authz: realm %q must be printable ASCII without '\"' or '\\'", o.Realm)
	}
	if o.MaxTokenBytes <= 0 {
		o.MaxTokenBytes = 8192
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// Header names are compared with the lower-case keys of Request.Headers and go on the wire
	// as given (Envoy and gRFC A92 want lower case): normalise copies, never the caller's slices.
	o.Providers = slices.Clone(o.Providers)
	for i := range o.Providers {
		p := &o.Providers[i]
		p.Sources = slices.Clone(p.Sources)
		for j := range p.Sources {
			if p.Sources[j].Kind == token.FromHeader {
				p.Sources[j].Name = strings.ToLower(p.Sources[j].Name)
			}
		}
		p.ClaimToHeaders = slices.Clone(p.ClaimToHeaders)
		for j := range p.ClaimToHeaders {
			p.ClaimToHeaders[j].Header = strings.ToLower(p.ClaimToHeaders[j].Header)
		}
		p.ForwardPayloadHeader = strings.ToLower(p.ForwardPayloadHeader)
	}
	a := &Authorizer{o: o, providers: map[string]*Provider{}}
	idSet := map[string]bool{}
	for i := range o.Providers {
		p := &o.Providers[i]
		if a.providers[p.Name] != nil {
			return nil, fmt.Errorf("authz: provider %q listed twice", p.Name)
		}
		a.providers[p.Name] = p
		for j, s := range p.Sources {
			s, err := a.addSource(s)
			if err != nil {
				return nil, fmt.Errorf("authz: provider %q: %w", p.Name, err)
			}
			p.Sources[j] = s
		}
		for _, ch := range p.ClaimToHeaders {
			idSet[ch.Header] = true
		}
		if p.ForwardPayloadHeader != "" {
			idSet[p.ForwardPayloadHeader] = true
		}
	}
	for h := range idSet {
		a.identity = append(a.identity, h)
	}
	sort.Strings(a.identity)
	for _, p := range o.Providers {
		a.names = append(a.names, p.Name)
	}
	a.policy = o.Policy
	if a.policy == nil {
		pol, _, err := policy.Compile(nil, a.names)
		if err != nil {
			return nil, err
		}
		a.policy = pol
	}
	return a, nil
}

// addSource adds s to the sources read for every request and returns the source to record for
// its provider. Token extraction reads each source once and counts what it finds, so two
// providers reading one header must share one source: a scheme spelled "Bearer " by one and
// "bearer " by the other is the same source (the match is case-insensitive), and two prefixes
// where one starts the other ("" and "Bearer ", "Bearer" and "Bearer ") would find the same
// credential twice and deny every request as multiple_tokens.
func (a *Authorizer) addSource(s token.Source) (token.Source, error) {
	for _, e := range a.sources {
		if e.Kind != s.Kind || e.Name != s.Name {
			continue
		}
		if s.Kind != token.FromHeader || strings.EqualFold(e.Prefix, s.Prefix) {
			return e, nil
		}
		le, ls := strings.ToLower(e.Prefix), strings.ToLower(s.Prefix)
		if strings.HasPrefix(le, ls) || strings.HasPrefix(ls, le) {
			return s, fmt.Errorf("header %s is read with prefixes %q and %q: a credential would match both", s.Name, e.Prefix, s.Prefix)
		}
	}
	a.sources = append(a.sources, s)
	return s, nil
}

// IdentityHeaders returns every identity header name configured (for stripping).
func (a *Authorizer) IdentityHeaders() []string { return slices.Clone(a.identity) }

// Decide answers one request. It never panics on hostile input and never allows without a
// verified token (or a documented exemption: CORS preflight).
func (a *Authorizer) Decide(ctx context.Context, r *Request) Decision {
	start := a.o.Now()
	d := a.decide(ctx, r)
	if a.o.Shadow && !d.Allow {
		d = a.shadow(d)
	}
	a.record(ctx, r, &d, a.o.Now().Sub(start))
	return d
}

func isPreflight(r *Request) bool {
	return r.Method == "OPTIONS" && len(r.Headers["origin"]) > 0 && len(r.Headers["access-control-request-method"]) > 0
}

func (a *Authorizer) deny(reason Reason, provider string) Decision {
	ans := answerFor(reason)
	d := Decision{
		Status:      ans.status,
		Reason:      reason,
		ErrorCode:   ans.errorCode,
		Description: ans.description,
		Provider:    provider,
	}
	switch ans.challenge {
	case challengeBare:
		d.Challenge = `Bearer realm="` + a.o.Realm + `"`
	case challengeError:
		d.Challenge = `Bearer realm="` + a.o.Realm + `", error="` + ans.errorCode + `", error_description="` + ans.description + `"`
	}
	if reason == ReasonKeysUnavailable {
		d.RetryAfter = time.Second
		if p := a.providers[provider]; p != nil && p.RetryAfter != nil {
			d.RetryAfter = max(time.Second, p.RetryAfter())
		}
	}
	return d
}

// shadow turns a deny into an allow that still strips every identity header: the upstream must
// never see identity it could mistake for verified.
func (a *Authorizer) shadow(d Decision) Decision {
	return Decision{
		Allow: true, Shadow: true, Status: 200, Reason: d.Reason, Provider: d.Provider,
		RemoveHeaders: slices.Clone(a.identity),
	}
}

func quotable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\' {
			return false
		}
	}
	return true
}

// claimValue renders a claim for a header: strings as they are, numbers and booleans as JSON,
// arrays joined with "," (strings raw), objects as compact JSON. ok is false for a missing or
// null claim; safe is false when the value holds a control byte other than TAB.
func claimValue(v any) (s string, ok, safe bool) {
	switch x := v.(type) {
	case nil:
		return "", false, true
	case string:
		s = x
	case bool:
		s = fmt.Sprint(x)
	case json.Number:
		s = x.String()
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			if es, isStr := e.(string); isStr {
				parts = append(parts, es)
				continue
			}
			b, err := json.Marshal(e)
			if err != nil {
				return "", false, false
			}
			parts = append(parts, string(b))
		}
		s = strings.Join(parts, ",")
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false, false
		}
		s = string(b)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return "", false, false
		}
	}
	return s, true, true
}

// maxLogField bounds request-supplied log values: a 1 MB path must not make a 1 MB log line.
const maxLogField = 512

// record logs and counts the decision. The log line carries the reason code and never the
// token, the Authorization header, cookies or the query string (which may hold a token).
func (a *Authorizer) record(ctx context.Context, r *Request, d *Decision, took time.Duration) {
	label := "allow"
	switch {
	case d.Shadow:
		label = "shadow_deny"
	case !d.Allow:
		label = "deny"
	}
	prov := d.Provider
	if prov == "" {
		prov = "none"
	}
	if a.o.Observer != nil {
		a.o.Observer.ObserveDecision(r.Transport, label, d.Reason, prov, took)
	}
	level := slog.LevelInfo
	if d.Reason == ReasonRouteMisconfigured {
		level = slog.LevelError
	}
	if d.Allow && !d.Shadow && a.o.AllowSampleRate < 1 && rand.Float64() >= a.o.AllowSampleRate {
		return
	}
	// Detached from the request: a cancelled check still leaves its line.
	ctx = context.WithoutCancel(ctx)
	if !a.o.Logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("transport", r.Transport),
		slog.String("decision", label),
		slog.String("reason", string(d.Reason)),
		slog.String("provider", prov),
		slog.Int("status", d.Status),
		slog.String("method", truncate(r.Method, 64)),
		slog.String("host", truncate(r.Host, maxLogField)),
		slog.String("path", truncate(r.Path, maxLogField)),
		slog.Int64("took_us", took.Microseconds()),
	}
	if r.RequestID != "" {
		attrs = append(attrs, slog.String("request_id", truncate(r.RequestID, 128)))
	}
	if r.Principal != "" {
		attrs = append(attrs, slog.String("peer", truncate(r.Principal, maxLogField)))
	}
	if d.Subject != "" {
		attrs = append(attrs, slog.String("sub", d.Subject))
	}
	if d.Detail != "" {
		attrs = append(attrs, slog.String("detail", d.Detail))
	}
	a.o.Logger.LogAttrs(ctx, level, "decision", attrs...)
}
