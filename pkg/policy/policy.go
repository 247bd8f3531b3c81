package policy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// RuleSpec is one configured rule. Requires nil means no token is needed.
type RuleSpec struct {
	Match    MatchSpec
	Requires *RequirementSpec
}

// RequirementSpec is a rule's requirement (contract rules[].requires).
type RequirementSpec struct {
	Provider     string
	Any          []*RequirementSpec
	All          []*RequirementSpec
	AllowMissing bool
	Scopes       []string
	// Claims: claim name -> accepted values (strings, float64 numbers, bools).
	Claims map[string][]any
}

// Policy is the compiled rule list. It is immutable and safe for concurrent use.
type Policy struct {
	rules []rule
	// Default applies when no rule matches: a valid token from any provider.
	def *Requirement
}

type rule struct {
	m   *matcher
	req *Requirement // nil: no token needed
}

// Problem is a rule problem with its index path, for `jwtauthz validate`.
type Problem struct {
	Path    string // "rules[2].match", relative to the config root
	Message string
	Warning bool
}

// Compile checks and compiles rules. providers are the configured provider names, in order;
// they form the default requirement (any of them) and are checked against requirement names.
// Problems include warnings (a rule shadowed by an earlier catch-all); err is set when at
// least one problem is not a warning.
func Compile(specs []RuleSpec, providers []string) (*Policy, []Problem, error) {
	known := map[string]bool{}
	var anyOf []*Requirement
	for _, p := range providers {
		known[p] = true
		anyOf = append(anyOf, &Requirement{Provider: p})
	}
	p := &Policy{def: &Requirement{Any: anyOf}}
	var problems []Problem
	failed := false
	add := func(path, msg string, warn bool) {
		problems = append(problems, Problem{Path: path, Message: msg, Warning: warn})
		failed = failed || !warn
	}
	type compiled struct {
		index int
		m     *matcher
	}
	var earlier []compiled // every rule whose match compiled, in order
	for i, s := range specs {
		path := fmt.Sprintf("rules[%d]", i)
		m, err := compileMatch(s.Match)
		if err != nil {
			add(path+".match", err.Error(), false)
			continue
		}
		for _, e := range earlier {
			if e.m.catchAll() {
				add(path, fmt.Sprintf("unreachable: rules[%d] matches every request first", e.index), true)
				break
			}
			if e.m.shadows(m) {
				add(path, fmt.Sprintf("unreachable: rules[%d] matches every request this rule matches, and comes first", e.index), true)
				break
			}
		}
		earlier = append(earlier, compiled{i, m})
		var req *Requirement
		if s.Requires != nil {
			req, err = compileRequirement(s.Requires, known, path+".requires", add)
			if err != nil {
				continue
			}
		}
		p.rules = append(p.rules, rule{m: m, req: req})
	}
	if failed {
		return nil, problems, errors.New("policy: invalid rules")
	}
	return p, problems, nil
}

func compileRequirement(s *RequirementSpec, known map[string]bool, path string, add func(string, string, bool)) (*Requirement, error) {
	r := &Requirement{Provider: s.Provider, AllowMissing: s.AllowMissing, Scopes: s.Scopes, Claims: s.Claims}
	set := 0
	if s.Provider != "" {
		set++
		if !known[s.Provider] {
			add(path+".provider", fmt.Sprintf("unknown provider %q", s.Provider), false)
			return nil, errors.New("unknown provider")
		}
	}
	if len(s.Any) > 0 {
		set++
	}
	if len(s.All) > 0 {
		set++
	}
	if set != 1 {
		add(path, "set exactly one of provider, any, all", false)
		return nil, errors.New("bad requirement")
	}
	for i, sub := range s.Any {
		c, err := compileRequirement(sub, known, fmt.Sprintf("%s.any[%d]", path, i), add)
		if err != nil {
			return nil, err
		}
		r.Any = append(r.Any, c)
	}
	for i, sub := range s.All {
		c, err := compileRequirement(sub, known, fmt.Sprintf("%s.all[%d]", path, i), add)
		if err != nil {
			return nil, err
		}
		r.All = append(r.All, c)
	}
	for i, sc := range s.Scopes {
		if !ValidScope(sc) {
			add(fmt.Sprintf("%s.scopes[%d]", path, i), "a scope is one non-empty token without spaces or quotes", false)
			return nil, errors.New("bad scope")
		}
	}
	for name, vals := range s.Claims {
		if len(vals) == 0 {
			add(path+".claims."+name, "list at least one accepted value", false)
			return nil, errors.New("bad claims")
		}
		for _, v := range vals {
			switch v.(type) {
			case string, float64, bool:
			default:
				add(path+".claims."+name, "values must be strings, numbers or booleans", false)
				return nil, errors.New("bad claims")
			}
		}
	}
	return r, nil
}

// Match returns the requirement for a request: the first matching rule's (nil when that rule
// needs no token), or the default (a valid token from any provider) when no rule matches.
// ruleIndex is -1 for the default. path is without the query string.
func (p *Policy) Match(method, host, path string) (req *Requirement, ruleIndex int) {
	return p.match(method, hostOnly(host), path)
}

// match is Match with host already reduced by hostOnly.
func (p *Policy) match(method, host, path string) (*Requirement, int) {
	for i := range p.rules {
		if p.rules[i].m.match(method, host, path) {
			return p.rules[i].req, i
		}
	}
	return p.def, -1
}

// ValidScope reports whether s is one RFC 6749 §3.3 scope-token: printable ASCII without
// space, '"' or '\'. Scopes are echoed in the challenge's scope="..." quoted-string
// (RFC 6750 §3), where a quote or a control byte would break or inject into the header.
func ValidScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// Default is the requirement applied when no rule matches.
func (p *Policy) Default() *Requirement { return p.def }

// Len is the number of rules.
func (p *Policy) Len() int { return len(p.rules) }

// Requirement is a compiled requirement.
type Requirement struct {
	Provider     string
	Any          []*Requirement
	All          []*Requirement
	AllowMissing bool
	Scopes       []string
	Claims       map[string][]any
}

// Lookup returns the verified claims of provider's token in this request: ErrNoToken when the
// request carries none for it, another error for a token that is bad or not this provider's.
type Lookup func(ctx context.Context, provider string) (map[string]any, error)

// ErrNoToken is what a Lookup returns when the request has no token for the provider.
var ErrNoToken = errors.New("policy: no token")

// ScopeError is a valid token lacking scopes (403 insufficient_scope with scope="...").
type ScopeError struct{ Required []string }

func (e *ScopeError) Error() string {
	return "policy: insufficient scope, need " + strings.Join(e.Required, " ")
}

// ErrClaimsNotAllowed is a valid token whose claims do not meet the rule (403).
var ErrClaimsNotAllowed = errors.New("policy: claims not allowed")

// Result of evaluating a requirement.
type Result struct {
	// Providers whose tokens satisfied the requirement, in evaluation order; empty when the
	// requirement passed with no token (allow_missing).
	Providers []string
	// Err is nil when the requirement is met.
	Err error
}

// Eval evaluates r against the request's tokens. For any, the error reported is the most
// informative one: a scope or claim failure of a valid token (403) beats a bad token (401),
// which beats a token from another provider, which beats no token at all.
//
// allow_missing, at any level, lets a request pass only when it carries no token for any
// provider r names: a bad token is never ignored because another branch allowed a missing
// one (Envoy jwt_authn: "failed if JWT is presented but invalid").
func (r *Requirement) Eval(ctx context.Context, lookup Lookup) Result {
	e := &evaluator{ctx: ctx, lookup: lookup, root: r}
	return e.eval(r)
}

// evaluator is one Eval: the lookup, and the root whose providers allow_missing looks at.
type evaluator struct {
	ctx    context.Context
	lookup Lookup
	root   *Requirement
	// noToken memoizes allMissing(root): 0 unknown, 1 no token, 2 some token.
	noToken int
}

func (e *evaluator) eval(r *Requirement) Result {
	res := e.node(r)
	if res.Err != nil && r.AllowMissing && e.rootMissing() {
		return Result{}
	}
	return res
}

func (e *evaluator) rootMissing() bool {
	if e.noToken == 0 {
		e.noToken = 2
		if allMissing(e.ctx, e.root, e.lookup) {
			e.noToken = 1
		}
	}
	return e.noToken == 1
}

func (e *evaluator) node(r *Requirement) Result {
	switch {
	case r.Provider != "":
		claims, err := e.lookup(e.ctx, r.Provider)
		if err != nil {
			return Result{Err: err}
		}
		if err := checkScopes(claims, r.Scopes); err != nil {
			return Result{Err: err}
		}
		if err := checkClaims(claims, r.Claims); err != nil {
			return Result{Err: err}
		}
		return Result{Providers: []string{r.Provider}}
	case len(r.Any) > 0:
		var best error
		for _, sub := range r.Any {
			res := e.eval(sub)
			if res.Err == nil {
				// Scopes and claims on the any node apply to the token that met the
				// branch; when they fail, a later branch's token may still do.
				if res = e.outer(r, res); res.Err == nil {
					return res
				}
			}
			if best == nil || rank(res.Err) > rank(best) {
				best = res.Err
			}
		}
		return Result{Err: best}
	case len(r.All) > 0:
		var out Result
		for _, sub := range r.All {
			res := e.eval(sub)
			if res.Err != nil {
				return res
			}
			out.Providers = append(out.Providers, res.Providers...)
		}
		return e.outer(r, out)
	}
	// A requirement naming nobody (the default with no provider configured) is never met:
	// fail closed as "no token", never as a vacuous "all of nothing".
	return Result{Err: ErrNoToken}
}

// outer applies scopes and claims set on an any/all node to every token that satisfied it.
func (e *evaluator) outer(r *Requirement, res Result) Result {
	if len(r.Scopes) == 0 && len(r.Claims) == 0 || len(res.Providers) == 0 {
		return res
	}
	for _, p := range res.Providers {
		claims, err := e.lookup(e.ctx, p)
		if err != nil {
			return Result{Err: err}
		}
		if err := checkScopes(claims, r.Scopes); err != nil {
			return Result{Err: err}
		}
		if err := checkClaims(claims, r.Claims); err != nil {
			return Result{Err: err}
		}
	}
	return res
}

// allMissing reports whether no provider named under r has a token in the request.
func allMissing(ctx context.Context, r *Requirement, lookup Lookup) bool {
	if r.Provider != "" {
		_, err := lookup(ctx, r.Provider)
		return errors.Is(err, ErrNoToken)
	}
	for _, sub := range r.Any {
		if !allMissing(ctx, sub, lookup) {
			return false
		}
	}
	for _, sub := range r.All {
		if !allMissing(ctx, sub, lookup) {
			return false
		}
	}
	return true
}

// rank orders errors by how much they tell the client (see Eval).
func rank(err error) int {
	var se *ScopeError
	switch {
	case errors.As(err, &se), errors.Is(err, ErrClaimsNotAllowed):
		return 4
	case errors.Is(err, ErrNoToken):
		return 0
	case errors.Is(err, ErrWrongProvider):
		return 1
	}
	return 3
}

// ErrWrongProvider is what a Lookup returns for a valid-looking token of another provider.
var ErrWrongProvider = errors.New("policy: token from another provider")

// Scopes returns a token's scopes: "scope" (space-separated, RFC 9068 §2.2.3) or "scp"
// (string or array, as Azure AD and Okta send).
func Scopes(claims map[string]any) []string {
	var out []string
	add := func(v any) {
		switch x := v.(type) {
		case string:
			out = append(out, strings.Fields(x)...)
		case []any:
			for _, e := range x {
				if s, ok := e.(string); ok {
					out = append(out, strings.Fields(s)...)
				}
			}
		}
	}
	add(claims["scope"])
	add(claims["scp"])
	return out
}

func checkScopes(claims map[string]any, required []string) error {
	if len(required) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, s := range Scopes(claims) {
		have[s] = true
	}
	for _, s := range required {
		if !have[s] {
			return &ScopeError{Required: required}
		}
	}
	return nil
}

func checkClaims(claims map[string]any, want map[string][]any) error {
	for name, accepted := range want {
		if !claimMatches(claims[name], accepted) {
			return fmt.Errorf("%w: %s", ErrClaimsNotAllowed, name)
		}
	}
	return nil
}

func claimMatches(v any, accepted []any) bool {
	if arr, ok := v.([]any); ok {
		for _, e := range arr {
			if scalarIn(e, accepted) {
				return true
			}
		}
		return false
	}
	return scalarIn(v, accepted)
}

// scalarIn compares a claim value with the accepted values: strings byte for byte, numbers by
// value (token numbers arrive as json.Number-like strings via fmt), booleans exactly.
func scalarIn(v any, accepted []any) bool {
	for _, a := range accepted {
		switch av := a.(type) {
		case string:
			if s, ok := v.(string); ok && s == av {
				return true
			}
		case bool:
			if b, ok := v.(bool); ok && b == av {
				return true
			}
		case float64:
			if n, ok := number(v); ok && n == av {
				return true
			}
		}
	}
	return false
}

// number reads a JSON number claim: float64, or a json.Number from any decoder (a string type
// with a Float64 method).
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case interface{ Float64() (float64, error) }:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// WithoutAllowMissing returns a copy of r in which no node lets a request without a token
// pass (Envoy's jwtauthz.allow_missing: "false" on a route whose rule sets it).
func (r *Requirement) WithoutAllowMissing() *Requirement {
	c := *r
	c.AllowMissing = false
	c.Any, c.All = nil, nil
	for _, s := range r.Any {
		c.Any = append(c.Any, s.WithoutAllowMissing())
	}
	for _, s := range r.All {
		c.All = append(c.All, s.WithoutAllowMissing())
	}
	return &c
}

// Providers returns the distinct provider names r refers to, in first-seen order.
func (r *Requirement) Providers() []string {
	var out []string
	seen := map[string]bool{}
	var walk func(*Requirement)
	walk = func(n *Requirement) {
		if n.Provider != "" && !seen[n.Provider] {
			seen[n.Provider] = true
			out = append(out, n.Provider)
		}
		for _, s := range n.Any {
			walk(s)
		}
		for _, s := range n.All {
			walk(s)
		}
	}
	walk(r)
	return out
}

// OneToken reports whether a single token can meet r: no "all" node spans two providers.
// When it holds, a request carrying several credentials for r's providers is malformed
// (RFC 6750 §2: one method per request); when it does not, each provider reads its own.
func (r *Requirement) OneToken() bool {
	if len(r.All) > 0 {
		sub := &Requirement{All: nil, Any: r.All}
		if len(sub.Providers()) > 1 {
			return false
		}
	}
	for _, s := range r.Any {
		if !s.OneToken() {
			return false
		}
	}
	for _, s := range r.All {
		if !s.OneToken() {
			return false
		}
	}
	return true
}
