package authz

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// Payload is one verified payload placed in dynamic metadata under Key.
type Payload struct {
	Key    string
	Claims map[string]any
}

// Context-extension keys an Envoy route may set (contract "Per-route settings").
const (
	extProvider     = "jwtauthz.provider"
	extScopes       = "jwtauthz.scopes"
	extAllowMissing = "jwtauthz.allow_missing"
	extDisabled     = "jwtauthz.disabled"
)

func (a *Authorizer) decide(ctx context.Context, r *Request) Decision {
	if a.o.CORSPreflight && isPreflight(r) {
		// A browser's preflight never carries credentials (Fetch standard); the real
		// request that follows is checked.
		return a.allowWithout(ReasonCORSPreflight)
	}
	if r.Problem != "" {
		return a.misconfigured(r.Problem)
	}
	req, d, done := a.requirement(r)
	if done {
		return d
	}
	if req == nil {
		// A rule without requires: no token needed, identity headers still stripped.
		return a.allowWithout(ReasonNotRequired)
	}
	if req.OneToken() {
		// One token meets this requirement, so one credential is all a request may carry
		// across its providers' locations (X5, X6): a header plus an access_token
		// parameter is a 400, whichever provider each belongs to.
		var srcs []token.Source
		for _, name := range req.Providers() {
			if p := a.providers[name]; p != nil {
				for _, s := range p.Sources {
					if !slices.Contains(srcs, s) {
						srcs = append(srcs, s)
					}
				}
			}
		}
		if _, err := token.Extract(srcs, r.Headers, r.Query, a.o.MaxTokenBytes); errors.Is(err, token.ErrMultipleTokens) {
			return a.deny(ReasonMultipleTokens, "")
		}
	}
	ev := &evaluation{a: a, r: r, byProvider: map[string]lookupResult{}, byToken: map[string]verifyResult{}}
	res := req.Eval(ctx, ev.lookup)
	if res.Err != nil {
		return a.denyErr(res.Err, ev.hint)
	}
	if len(res.Providers) == 0 {
		return a.allowWithout(ReasonNotRequired) // allow_missing and no token at all
	}
	return a.allowTokens(res.Providers, ev)
}

// requirement picks the requirement for r: the first matching rule's, overridden by Envoy's
// per-route context extensions. done is true when that step already decided.
//
// The extensions are validated like config: a value jwtauthz cannot read, an unknown
// "jwtauthz." key (a typo of jwtauthz.scopes would otherwise drop a scope check) or an
// unknown provider is a 403 route_misconfigured, never a silent allow.
func (a *Authorizer) requirement(r *Request) (req *policy.Requirement, d Decision, done bool) {
	ext := r.ContextExtensions
	if bad := unknownExtensions(ext); bad != "" {
		return nil, a.misconfigured(fmt.Sprintf("unknown context extension %q (known: %s, %s, %s, %s)", truncate(bad, 64), extProvider, extScopes, extAllowMissing, extDisabled)), true
	}
	disabled, _, err := extBool(ext, extDisabled)
	if err != nil {
		return nil, a.misconfigured(err.Error()), true
	}
	if disabled {
		return nil, a.allowWithout(ReasonNotRequired), true
	}
	allowMissing, amSet, err := extBool(ext, extAllowMissing)
	if err != nil {
		return nil, a.misconfigured(err.Error()), true
	}
	scopes := strings.Fields(ext[extScopes])
	for _, sc := range scopes {
		if !policy.ValidScope(sc) {
			return nil, a.misconfigured(fmt.Sprintf("%s: %q is not a scope (RFC 6749 §3.3)", extScopes, truncate(sc, 64))), true
		}
	}
	prov, provSet := ext[extProvider]
	if provSet && a.providers[prov] == nil {
		// Like jwt_authn's unknown requirement_name: the route is broken, and an allow
		// would be a hole (contract: 403 route_misconfigured). An empty value is as
		// unknown as a misspelt one.
		return nil, a.misconfigured(fmt.Sprintf("%s names unknown provider %q", extProvider, truncate(prov, 64))), true
	}
	req, idx, err := a.policy.MatchRequest(r.Method, r.Host, r.Path)
	if err != nil {
		d := a.deny(ReasonAmbiguousPath, "")
		d.Detail = "the raw and a normalized reading of the path select different rules; enable Envoy's normalize_path, merge_slashes and path_with_escaped_slashes_action"
		return nil, d, true
	}
	if !provSet && len(scopes) == 0 && !amSet {
		return req, Decision{}, false
	}
	base := req
	if amSet && !allowMissing && base != nil {
		base = base.WithoutAllowMissing()
	}
	if provSet {
		// jwtauthz.provider narrows: the token must be this provider's AND meet the matched
		// rule's requirement, scopes and claims included. Replacing the rule instead would let
		// a route setting silently drop a rule's scope check (attack finding F3). With no rule
		// (or a rule without requires) the provider alone is the requirement.
		named := &policy.Requirement{Provider: prov, Scopes: scopes}
		if base == nil || idx < 0 {
			named.AllowMissing = allowMissing
			return named, Decision{}, false
		}
		return &policy.Requirement{All: []*policy.Requirement{base, named}, AllowMissing: allowMissing}, Decision{}, false
	}
	// jwtauthz.scopes adds to the rule's requirement (a rule without one, or no rule, takes
	// the default: a valid token from any provider); jwtauthz.allow_missing sets it.
	if base == nil {
		base = a.policy.Default()
	}
	return &policy.Requirement{Any: []*policy.Requirement{base}, Scopes: scopes, AllowMissing: allowMissing}, Decision{}, false
}

// unknownExtensions returns the first (in sorted order) "jwtauthz." key it does not know.
// Other keys belong to other services sharing the filter and are ignored.
func unknownExtensions(ext map[string]string) string {
	bad := ""
	for k := range ext {
		if !strings.HasPrefix(k, "jwtauthz.") {
			continue
		}
		switch k {
		case extProvider, extScopes, extAllowMissing, extDisabled:
		default:
			if bad == "" || k < bad {
				bad = k
			}
		}
	}
	return bad
}

// extBool reads a "true"/"false" extension; set is false when the key is absent.
func extBool(ext map[string]string, key string) (v, set bool, err error) {
	s, set := ext[key]
	switch {
	case !set:
		return false, false, nil
	case s == "true":
		return true, true, nil
	case s == "false":
		return false, true, nil
	}
	return false, true, fmt.Errorf("%s must be \"true\" or \"false\", got %q", key, truncate(s, 64))
}

func (a *Authorizer) misconfigured(detail string) Decision {
	d := a.deny(ReasonRouteMisconfigured, "")
	d.Detail = detail
	return d
}

// evaluation memoizes one request's token lookups: each provider's sources are read once and
// each distinct token is verified once, whatever the requirement tree asks.
type evaluation struct {
	a          *Authorizer
	r          *Request
	byProvider map[string]lookupResult
	byToken    map[string]verifyResult
	hint       string // a provider the request's tokens belong to, for metrics and Retry-After
}

type lookupResult struct {
	tok  *token.Token
	cred token.Credential
	err  error
}

type verifyResult struct {
	tok *token.Token
	err error
}

// Errors a lookup returns besides the token package's, joined so that both the policy ranking
// (errors.Is policy.ErrNoToken...) and the reason mapping (token sentinels) see them.
func noToken(err error) error { return fmt.Errorf("%w (%w)", err, policy.ErrNoToken) }

func wrongProvider(want string) error {
	return fmt.Errorf("%w: the token is not %s's (%w)", token.ErrIssuerUnknown, want, policy.ErrWrongProvider)
}

func (ev *evaluation) lookup(ctx context.Context, name string) (map[string]any, error) {
	if res, ok := ev.byProvider[name]; ok {
		return claimsOf(res)
	}
	res := ev.find(ctx, name)
	ev.byProvider[name] = res
	return claimsOf(res)
}

func claimsOf(res lookupResult) (map[string]any, error) {
	if res.err != nil {
		return nil, res.err
	}
	return res.tok.Claims, nil
}

func (ev *evaluation) find(ctx context.Context, name string) lookupResult {
	p := ev.a.providers[name]
	if p == nil {
		return lookupResult{err: wrongProvider(name)}
	}
	cred, err := token.Extract(p.Sources, ev.r.Headers, ev.r.Query, ev.a.o.MaxTokenBytes)
	if err != nil {
		if errors.Is(err, token.ErrMissingToken) || errors.Is(err, token.ErrUnsupportedScheme) {
			err = noToken(err)
		}
		return lookupResult{err: err}
	}
	vr, ok := ev.byToken[cred.Token]
	if !ok {
		tok, err := ev.a.o.Verifier.Verify(ctx, cred.Token)
		vr = verifyResult{tok: tok, err: err}
		ev.byToken[cred.Token] = vr
	}
	owner := ""
	if vr.tok != nil && vr.tok.Provider != nil {
		owner = vr.tok.Provider.Name
		if ev.hint == "" {
			ev.hint = owner
		}
	}
	switch {
	case owner != "" && owner != name:
		// Valid or not, this token is another provider's: for this branch it is the
		// wrong token, not a bad one (that provider's own branch reports its fault).
		return lookupResult{err: wrongProvider(name)}
	case vr.err != nil:
		return lookupResult{err: vr.err}
	}
	return lookupResult{tok: vr.tok, cred: cred}
}

// denyErr maps a requirement failure to a deny.
func (a *Authorizer) denyErr(err error, provider string) Decision {
	var se *policy.ScopeError
	switch {
	case errors.As(err, &se):
		d := a.deny(ReasonInsufficientScope, provider)
		// RFC 6750 §3: scope names the scopes needed; no description in the challenge
		// (contract table).
		d.Challenge = `Bearer realm="` + a.o.Realm + `", error="insufficient_scope", scope="` + strings.Join(se.Required, " ") + `"`
		return d
	case errors.Is(err, policy.ErrClaimsNotAllowed):
		d := a.deny(ReasonClaimsNotAllowed, provider)
		d.Challenge = `Bearer realm="` + a.o.Realm + `", error="insufficient_scope"`
		return d
	}
	return a.deny(ReasonFor(err), provider)
}

// allowWithout allows with no token: every identity header is stripped.
func (a *Authorizer) allowWithout(reason Reason) Decision {
	d := Decision{Allow: true, Status: 200, Reason: reason}
	d.RemoveHeaders = append(d.RemoveHeaders, a.identity...)
	return d
}

// allowTokens allows with the identity of the tokens that met the requirement, in order: a
// header set by an earlier provider is not overwritten by a later one.
func (a *Authorizer) allowTokens(providers []string, ev *evaluation) Decision {
	d := Decision{Allow: true, Status: 200, Reason: ReasonOK}
	set := map[string]bool{}
	seen := map[string]bool{}
	for _, name := range providers {
		if seen[name] {
			continue
		}
		seen[name] = true
		res := ev.byProvider[name]
		p, tok := a.providers[name], res.tok
		if d.Provider == "" {
			d.Provider, d.Issuer, d.Subject = p.Name, tok.Issuer, tok.Subject
			if _, _, safe := claimValue(tok.Subject); !safe {
				// sub also goes into dynamic metadata (access logs) and our logs: a
				// control byte there could forge log lines.
				d.Subject = ""
			}
		}
		for _, ch := range p.ClaimToHeaders {
			v, ok, safe := claimValue(tok.Claims[ch.Claim])
			if !safe {
				// An identity value with CR, LF or NUL could split or smuggle headers
				// upstream (envoy-notes R11): deny rather than pass it on.
				return a.deny(ReasonUnsafeClaimValue, p.Name)
			}
			if ok && v != "" && !set[ch.Header] {
				d.SetHeaders = append(d.SetHeaders, Header{Name: ch.Header, Value: v})
				set[ch.Header] = true
			}
		}
		if h := p.ForwardPayloadHeader; h != "" && !set[h] {
			d.SetHeaders = append(d.SetHeaders, Header{Name: h, Value: base64.RawURLEncoding.EncodeToString(tok.Payload)})
			set[h] = true
		}
		if p.PayloadInMetadata != "" {
			d.Payloads = append(d.Payloads, Payload{Key: p.PayloadInMetadata, Claims: tok.Claims})
		}
	}
	for _, h := range a.identity {
		if !set[h] {
			d.RemoveHeaders = append(d.RemoveHeaders, h)
		}
	}
	for _, name := range providers {
		if p := a.providers[name]; !p.Forward {
			src := ev.byProvider[name].cred.Source
			switch src.Kind {
			case token.FromHeader:
				if !set[src.Name] && !slices.Contains(d.RemoveHeaders, src.Name) {
					d.RemoveHeaders = append(d.RemoveHeaders, src.Name)
				}
			case token.FromParam:
				if !slices.Contains(d.RemoveQueryParams, src.Name) {
					d.RemoveQueryParams = append(d.RemoveQueryParams, src.Name)
				}
			}
		}
	}
	return d
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
