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
	catchAllAt := -1
	for i, s := range specs {
		path := fmt.Sprintf("rules[%d]", i)
		m, err := compileMatch(s.Match)
		if err != nil {
			add(path+".match", err.Error(), false)
			continue
		}
		if catchAllAt >= 0 {
			add(path, fmt.Sprintf("unreachable: rules[%d] matches every request first", catchAllAt), true)
		}
		if catchAllAt < 0 && m.catchAll() {
			catchAllAt = i
		}
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
		if sc == "" || strings.ContainsAny(sc, " \t\"\\") {
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
	for i, r := range p.rules {
		if r.m.match(method, host, path) {
			return r.req, i
		}
	}
	return p.def, -1
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
func (r *Requirement) Eval(ctx context.Context, lookup Lookup) Result {
	res := r.eval(ctx, lookup)
	if res.Err != nil && r.AllowMissing && allMissing(ctx, r, lookup) {
		return Result{}
	}
	return res
}

func (r *Requirement) eval(ctx context.Context, lookup Lookup) Result {
	switch {
	case r.Provider != "":
		claims, err := lookup(ctx, r.Provider)
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
			res := sub.Eval(ctx, lookup)
			if res.Err == nil {
				return r.outer(ctx, lookup, res)
			}
			if best == nil || rank(res.Err) > rank(best) {
				best = res.Err
			}
		}
		return Result{Err: best}
	case len(r.All) > 0:
		var out Result
		for _, sub := range r.All {
			res := sub.Eval(ctx, lookup)
			if res.Err != nil {
				return res
			}
			out.Providers = append(out.Providers, res.Providers...)
		}
		return r.outer(ctx, lookup, out)
	}
	// A requirement naming nobody (the default with no provider configured) is never met:
	// fail closed as "no token", never as a vacuous "all of nothing".
	return Result{Err: ErrNoToken}
}

// outer applies scopes and claims set on an any/all node to every token that satisfied it.
func (r *Requirement) outer(ctx context.Context, lookup Lookup, res Result) Result {
	if len(r.Scopes) == 0 && len(r.Claims) == 0 {
		return res
	}
	if len(res.Providers) == 0 {
		return res
	}
	for _, p := range res.Providers {
		claims, err := lookup(ctx, p)
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

// allMissing reports whether no provider named under r has a token in the request:
// allow_missing lets a request without any token pass, never one with a bad token.
func allMissing(ctx context.Context, r *Requirement, lookup Lookup) bool {
	if r.Provider != "" {
		_, err := lookup(ctx, r.Provider)
		return errors.Is(err, ErrNoToken)
	}
	for _, sub := range append(append([]*Requirement{}, r.Any...), r.All...) {
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
