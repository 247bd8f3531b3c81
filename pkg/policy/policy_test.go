package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/go-jose/go-jose/v4/json"
)

// Stand-ins for what pkg/authz's lookup returns besides the policy errors: a token that is
// bad for the provider (expired) and one no provider knows (wrong issuer). The authz tests
// run the same combinations with real tokens.
var (
	errExpired       = errors.New("token: expired")
	errUnknownIssuer = errors.New("token: issuer unknown")
)

// tok is what one provider's lookup finds in a request.
type tok struct {
	claims map[string]any
	err    error
}

var (
	missing = tok{err: fmt.Errorf("no bearer token (%w)", ErrNoToken)}
	expired = tok{err: errExpired}
	// wrongIss: a token from an issuer no provider trusts.
	wrongIss = tok{err: errUnknownIssuer}
	// others: a valid token, but another provider's (a shared header).
	others = tok{err: fmt.Errorf("not this provider's (%w)", ErrWrongProvider)}
)

func valid(claims map[string]any) tok {
	if claims == nil {
		claims = map[string]any{}
	}
	return tok{claims: claims}
}

// lookupOf answers from a fixed table; a provider not in it has no token.
func lookupOf(toks map[string]tok) Lookup {
	return func(_ context.Context, provider string) (map[string]any, error) {
		t, ok := toks[provider]
		if !ok {
			return nil, missing.err
		}
		return t.claims, t.err
	}
}

// classOf names an Eval error: "" (met), no_token, wrong_provider, expired, wrong_issuer,
// scope, claims.
func classOf(err error) string {
	var se *ScopeError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &se):
		return "scope"
	case errors.Is(err, ErrClaimsNotAllowed):
		return "claims"
	case errors.Is(err, ErrNoToken):
		return "no_token"
	case errors.Is(err, ErrWrongProvider):
		return "wrong_provider"
	case errors.Is(err, errExpired):
		return "expired"
	case errors.Is(err, errUnknownIssuer):
		return "wrong_issuer"
	}
	return "other: " + err.Error()
}

// requirement compiles one RequirementSpec against providers a and b.
func requirement(t *testing.T, s *RequirementSpec) *Requirement {
	t.Helper()
	p := compile(t, RuleSpec{Match: MatchSpec{Prefix: "/"}, Requires: s})
	r, _ := p.Match("GET", "h", "/")
	return r
}

// TestRequirements runs each requirement shape against valid, missing, expired and
// wrong-issuer tokens (and a token of the other provider), asserting which providers met it
// and the class of the error.
func TestRequirements(t *testing.T) {
	adminScope := map[string]any{"scope": "read admin"}
	readScope := map[string]any{"scope": "read"}
	type cas struct {
		name      string
		toks      map[string]tok
		providers []string
		class     string
	}
	groups := []struct {
		req   *RequirementSpec
		cases []cas
	}{
		{&RequirementSpec{Provider: "a"}, []cas{
			{"valid", map[string]tok{"a": valid(nil)}, []string{"a"}, ""},
			{"missing", nil, nil, "no_token"},
			{"expired", map[string]tok{"a": expired}, nil, "expired"},
			{"wrong issuer", map[string]tok{"a": wrongIss}, nil, "wrong_issuer"},
			{"the other provider's token", map[string]tok{"a": others, "b": valid(nil)}, nil, "wrong_provider"},
		}},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}}, []cas{
			{"a valid", map[string]tok{"a": valid(nil)}, []string{"a"}, ""},
			{"b valid", map[string]tok{"b": valid(nil)}, []string{"b"}, ""},
			{"b valid, a wrong (shared header)", map[string]tok{"a": others, "b": valid(nil)}, []string{"b"}, ""},
			{"both valid: the first branch", map[string]tok{"a": valid(nil), "b": valid(nil)}, []string{"a"}, ""},
			{"a expired, b valid", map[string]tok{"a": expired, "b": valid(nil)}, []string{"b"}, ""},
			{"missing", nil, nil, "no_token"},
			{"a expired", map[string]tok{"a": expired}, nil, "expired"},
			{"b expired", map[string]tok{"b": expired}, nil, "expired"},
			{"wrong issuer", map[string]tok{"a": wrongIss, "b": wrongIss}, nil, "wrong_issuer"},
			{"b expired, read where a looks too", map[string]tok{"a": others, "b": expired}, nil, "expired"},
		}},
		{&RequirementSpec{All: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}}, []cas{
			{"both valid", map[string]tok{"a": valid(nil), "b": valid(nil)}, []string{"a", "b"}, ""},
			{"a only", map[string]tok{"a": valid(nil)}, nil, "no_token"},
			{"b only", map[string]tok{"b": valid(nil)}, nil, "no_token"},
			{"missing", nil, nil, "no_token"},
			{"a valid, b expired", map[string]tok{"a": valid(nil), "b": expired}, nil, "expired"},
			{"a expired, b valid", map[string]tok{"a": expired, "b": valid(nil)}, nil, "expired"},
			{"a wrong issuer, b valid", map[string]tok{"a": wrongIss, "b": valid(nil)}, nil, "wrong_issuer"},
		}},
		{&RequirementSpec{Provider: "a", AllowMissing: true}, []cas{
			{"valid", map[string]tok{"a": valid(nil)}, []string{"a"}, ""},
			{"missing passes with no provider", nil, nil, ""},
			{"expired does not pass", map[string]tok{"a": expired}, nil, "expired"},
			{"wrong issuer does not pass", map[string]tok{"a": wrongIss}, nil, "wrong_issuer"},
			{"the other provider's token does not pass", map[string]tok{"a": others}, nil, "wrong_provider"},
		}},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}, AllowMissing: true}, []cas{
			{"a valid", map[string]tok{"a": valid(nil)}, []string{"a"}, ""},
			{"b valid", map[string]tok{"b": valid(nil)}, []string{"b"}, ""},
			{"missing", nil, nil, ""},
			{"b expired", map[string]tok{"b": expired}, nil, "expired"},
			{"a wrong issuer", map[string]tok{"a": wrongIss}, nil, "wrong_issuer"},
		}},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "a", AllowMissing: true}, {Provider: "b"}}}, []cas{
			{"allow_missing on a branch: missing passes", nil, nil, ""},
			{"b expired: a bad token is never ignored", map[string]tok{"b": expired}, nil, "expired"},
			{"b valid", map[string]tok{"b": valid(nil)}, []string{"b"}, ""},
			{"a expired", map[string]tok{"a": expired}, nil, "expired"},
		}},
		{&RequirementSpec{Provider: "a", Scopes: []string{"admin"}}, []cas{
			{"valid with scope", map[string]tok{"a": valid(adminScope)}, []string{"a"}, ""},
			{"valid without scope", map[string]tok{"a": valid(readScope)}, nil, "scope"},
			{"valid with no scope claim", map[string]tok{"a": valid(nil)}, nil, "scope"},
			{"missing", nil, nil, "no_token"},
			{"expired", map[string]tok{"a": expired}, nil, "expired"},
			{"wrong issuer", map[string]tok{"a": wrongIss}, nil, "wrong_issuer"},
		}},
		{&RequirementSpec{Provider: "a", Claims: map[string][]any{"role": {"admin", "owner"}}}, []cas{
			{"string claim equal", map[string]tok{"a": valid(map[string]any{"role": "owner"})}, []string{"a"}, ""},
			{"string claim other", map[string]tok{"a": valid(map[string]any{"role": "viewer"})}, nil, "claims"},
			{"array claim contains", map[string]tok{"a": valid(map[string]any{"role": []any{"viewer", "admin"}})}, []string{"a"}, ""},
			{"array claim lacks", map[string]tok{"a": valid(map[string]any{"role": []any{"viewer"}})}, nil, "claims"},
			{"claim absent", map[string]tok{"a": valid(nil)}, nil, "claims"},
			{"missing", nil, nil, "no_token"},
			{"expired", map[string]tok{"a": expired}, nil, "expired"},
			{"wrong issuer", map[string]tok{"a": wrongIss}, nil, "wrong_issuer"},
		}},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}, Scopes: []string{"admin"}}, []cas{
			{"a with scope", map[string]tok{"a": valid(adminScope)}, []string{"a"}, ""},
			{"a without, b with: b's branch", map[string]tok{"a": valid(readScope), "b": valid(adminScope)}, []string{"b"}, ""},
			{"neither has it", map[string]tok{"a": valid(readScope), "b": valid(readScope)}, nil, "scope"},
			{"missing", nil, nil, "no_token"},
			{"b expired", map[string]tok{"b": expired}, nil, "expired"},
		}},
		{&RequirementSpec{All: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}, Scopes: []string{"admin"}}, []cas{
			{"both with scope", map[string]tok{"a": valid(adminScope), "b": valid(adminScope)}, []string{"a", "b"}, ""},
			{"b without", map[string]tok{"a": valid(adminScope), "b": valid(readScope)}, nil, "scope"},
		}},
	}
	for _, g := range groups {
		r := requirement(t, g.req)
		for _, c := range g.cases {
			t.Run(fmt.Sprintf("%s/%s", describe(g.req), c.name), func(t *testing.T) {
				res := r.Eval(context.Background(), lookupOf(c.toks))
				if got := classOf(res.Err); got != c.class {
					t.Errorf("error class %q (%v), want %q", got, res.Err, c.class)
				}
				if !reflect.DeepEqual(res.Providers, c.providers) {
					t.Errorf("providers %v, want %v", res.Providers, c.providers)
				}
			})
		}
	}
}

func describe(s *RequirementSpec) string {
	out := ""
	switch {
	case s.Provider != "":
		out = s.Provider
	case len(s.Any) > 0:
		out = "any"
	case len(s.All) > 0:
		out = "all"
	}
	if s.AllowMissing {
		out += "+allow_missing"
	}
	if len(s.Scopes) > 0 {
		out += "+scopes"
	}
	if len(s.Claims) > 0 {
		out += "+claims"
	}
	return out
}

// TestAnyErrorRanking: when no branch of any is met, the answer is the most informative
// failure: a valid token lacking a scope or claim (403) > a bad token (401 invalid_token) >
// another provider's token > no token at all; ties go to the earlier branch.
func TestAnyErrorRanking(t *testing.T) {
	three := &RequirementSpec{Any: []*RequirementSpec{
		{Provider: "a", Scopes: []string{"admin"}},
		{Provider: "b", Claims: map[string][]any{"role": {"admin"}}},
	}}
	r := requirement(t, three)
	cases := []struct {
		name  string
		toks  map[string]tok
		class string
	}{
		{"none", nil, "no_token"},
		{"wrong provider beats missing", map[string]tok{"a": others}, "wrong_provider"},
		{"wrong provider beats missing, either order", map[string]tok{"b": others}, "wrong_provider"},
		{"bad beats wrong provider", map[string]tok{"a": others, "b": expired}, "expired"},
		{"bad beats missing", map[string]tok{"b": wrongIss}, "wrong_issuer"},
		{"tie between two bad tokens: the first branch", map[string]tok{"a": wrongIss, "b": expired}, "wrong_issuer"},
		{"scope beats bad", map[string]tok{"a": valid(nil), "b": expired}, "scope"},
		{"claims beat bad", map[string]tok{"a": expired, "b": valid(nil)}, "claims"},
		{"scope and claims: the first branch", map[string]tok{"a": valid(nil), "b": valid(nil)}, "scope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := r.Eval(context.Background(), lookupOf(c.toks))
			if got := classOf(res.Err); got != c.class {
				t.Errorf("class %q (%v), want %q", got, res.Err, c.class)
			}
		})
	}
}

// TestScopeError: the error lists every required scope (the challenge's scope="...").
func TestScopeError(t *testing.T) {
	r := requirement(t, &RequirementSpec{Provider: "a", Scopes: []string{"admin", "write"}})
	res := r.Eval(context.Background(), lookupOf(map[string]tok{"a": valid(map[string]any{"scope": "admin read"})}))
	var se *ScopeError
	if !errors.As(res.Err, &se) || !reflect.DeepEqual(se.Required, []string{"admin", "write"}) {
		t.Fatalf("err %v, want a ScopeError for [admin write]", res.Err)
	}
	if res.Err.Error() != "policy: insufficient scope, need admin write" {
		t.Errorf("message %q", res.Err.Error())
	}
}

// TestScopes: scope (space-separated, RFC 9068 §2.2.3) and scp (string or array); all listed
// scopes are required.
func TestScopes(t *testing.T) {
	cases := []struct {
		name   string
		claims map[string]any
		need   []string
		ok     bool
	}{
		{"scope string", map[string]any{"scope": "read admin"}, []string{"admin"}, true},
		{"scope string, extra spaces", map[string]any{"scope": "  read   admin "}, []string{"admin"}, true},
		{"scope string lacking", map[string]any{"scope": "read administrator"}, []string{"admin"}, false},
		{"scope is case-sensitive", map[string]any{"scope": "Admin"}, []string{"admin"}, false},
		{"scp string", map[string]any{"scp": "admin"}, []string{"admin"}, true},
		{"scp space-separated string", map[string]any{"scp": "read admin"}, []string{"admin"}, true},
		{"scp array", map[string]any{"scp": []any{"read", "admin"}}, []string{"admin"}, true},
		{"scp array lacking", map[string]any{"scp": []any{"read"}}, []string{"admin"}, false},
		{"scp array with a non-string", map[string]any{"scp": []any{json.Number("1"), "admin"}}, []string{"admin"}, true},
		{"scope and scp together", map[string]any{"scope": "read", "scp": []any{"write"}}, []string{"read", "write"}, true},
		{"all required", map[string]any{"scope": "read"}, []string{"read", "write"}, false},
		{"all present", map[string]any{"scope": "write read"}, []string{"read", "write"}, true},
		{"no scope claim", map[string]any{}, []string{"admin"}, false},
		{"scope a number", map[string]any{"scope": json.Number("1")}, []string{"1"}, false},
		{"nothing required", map[string]any{}, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := checkScopes(c.claims, c.need); (err == nil) != c.ok {
				t.Errorf("checkScopes = %v, want ok %v", err, c.ok)
			}
		})
	}
}

// TestClaims: a claim must equal one of the accepted values (strings byte for byte, numbers
// by value, booleans exactly), or, as an array, contain one. Types never cross.
func TestClaims(t *testing.T) {
	cases := []struct {
		name     string
		claim    any
		accepted []any
		ok       bool
	}{
		{"string equal", "admin", []any{"admin", "owner"}, true},
		{"string second value", "owner", []any{"admin", "owner"}, true},
		{"string differs in case", "Admin", []any{"admin"}, false},
		{"string prefix is not equal", "admin2", []any{"admin"}, false},
		{"number equal", json.Number("3"), []any{float64(3)}, true},
		{"number equal, other spelling", json.Number("3.0"), []any{float64(3)}, true},
		{"number differs", json.Number("4"), []any{float64(3)}, false},
		{"number as float64", float64(3), []any{float64(3)}, true},
		{"number claim vs string value", json.Number("3"), []any{"3"}, false},
		{"string claim vs number value", "3", []any{float64(3)}, false},
		{"bool true", true, []any{true}, true},
		{"bool false", false, []any{true}, false},
		{"bool claim vs string value", true, []any{"true"}, false},
		{"array contains a string", []any{"viewer", "admin"}, []any{"admin"}, true},
		{"array contains a number", []any{json.Number("1"), json.Number("7")}, []any{float64(7)}, true},
		{"array contains a bool", []any{false, true}, []any{true}, true},
		{"array lacks", []any{"viewer"}, []any{"admin"}, false},
		{"empty array", []any{}, []any{"admin"}, false},
		{"nested array does not count", []any{[]any{"admin"}}, []any{"admin"}, false},
		{"object never matches", map[string]any{"admin": true}, []any{"admin"}, false},
		{"absent", nil, []any{"admin"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			claims := map[string]any{}
			if c.claim != nil {
				claims["role"] = c.claim
			}
			err := checkClaims(claims, map[string][]any{"role": c.accepted})
			if (err == nil) != c.ok {
				t.Errorf("checkClaims = %v, want ok %v", err, c.ok)
			}
			if err != nil && !errors.Is(err, ErrClaimsNotAllowed) {
				t.Errorf("err %v does not wrap ErrClaimsNotAllowed", err)
			}
		})
	}
	// Every listed claim must hold.
	two := map[string][]any{"role": {"admin"}, "tenant": {"acme"}}
	if err := checkClaims(map[string]any{"role": "admin", "tenant": "acme"}, two); err != nil {
		t.Errorf("both claims: %v", err)
	}
	if err := checkClaims(map[string]any{"role": "admin", "tenant": "other"}, two); err == nil {
		t.Error("one claim off: met")
	}
}

// TestOneTokenAndProviders: a request may carry only one credential unless an all node
// spans two providers.
func TestOneTokenAndProviders(t *testing.T) {
	cases := []struct {
		spec      *RequirementSpec
		providers []string
		one       bool
	}{
		{&RequirementSpec{Provider: "a"}, []string{"a"}, true},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "b"}, {Provider: "a"}, {Provider: "b"}}}, []string{"b", "a"}, true},
		{&RequirementSpec{All: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}}, []string{"a", "b"}, false},
		{&RequirementSpec{All: []*RequirementSpec{{Provider: "a"}, {Provider: "a", Scopes: []string{"x"}}}}, []string{"a"}, true},
		{&RequirementSpec{Any: []*RequirementSpec{{Provider: "a"}, {All: []*RequirementSpec{{Provider: "a"}, {Provider: "b"}}}}}, []string{"a", "b"}, false},
	}
	for i, c := range cases {
		r := requirement(t, c.spec)
		if got := r.Providers(); !reflect.DeepEqual(got, c.providers) {
			t.Errorf("case %d: Providers %v, want %v", i, got, c.providers)
		}
		if got := r.OneToken(); got != c.one {
			t.Errorf("case %d: OneToken %v, want %v", i, got, c.one)
		}
	}
}

// TestWithoutAllowMissing: a copy with allow_missing cleared at every level; the original is
// untouched (policies are shared across requests).
func TestWithoutAllowMissing(t *testing.T) {
	r := requirement(t, &RequirementSpec{AllowMissing: true, Any: []*RequirementSpec{{Provider: "a", AllowMissing: true}, {Provider: "b"}}})
	c := r.WithoutAllowMissing()
	if c.AllowMissing || c.Any[0].AllowMissing {
		t.Errorf("copy still allows missing: %+v %+v", c, c.Any[0])
	}
	if !r.AllowMissing || !r.Any[0].AllowMissing {
		t.Error("original changed")
	}
	if res := c.Eval(context.Background(), lookupOf(nil)); classOf(res.Err) != "no_token" {
		t.Errorf("copy with no token: %v", res.Err)
	}
	if res := r.Eval(context.Background(), lookupOf(nil)); res.Err != nil {
		t.Errorf("original with no token: %v", res.Err)
	}
}

func TestValidScope(t *testing.T) {
	for s, want := range map[string]bool{
		"admin": true, "read:orders": true, "https://api.example.com/x": true, "a!#[]~": true,
		"": false, "a b": false, `a"b`: false, `a\b`: false, "a\x00": false, "a\x7f": false, "é": false,
	} {
		if got := ValidScope(s); got != want {
			t.Errorf("ValidScope(%q) = %v, want %v", s, got, want)
		}
	}
}
