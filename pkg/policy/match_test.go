package policy

import (
	"strings"
	"testing"
)

// compile builds a policy over providers "a" and "b" and fails the test on any error.
func compile(t testing.TB, specs ...RuleSpec) *Policy {
	t.Helper()
	p, problems, err := Compile(specs, []string{"a", "b"})
	if err != nil {
		t.Fatalf("Compile: %v %v", err, problems)
	}
	return p
}

// needs is a requirement naming provider a, so that a matched rule is told from "no token".
var needs = &RequirementSpec{Provider: "a"}

// TestMatchers pins each matcher to Envoy's route-matching semantics, one rule at a time:
// matched is whether the request selects the rule (else the default applies).
func TestMatchers(t *testing.T) {
	type probe struct {
		method, host, path string
		matched            bool
	}
	get := func(path string, matched bool) probe { return probe{"GET", "api.example.com", path, matched} }
	cases := []struct {
		name   string
		match  MatchSpec
		probes []probe
	}{
		{"prefix is a plain string prefix", MatchSpec{Prefix: "/healthz"}, []probe{
			get("/healthz", true), get("/healthz/", true), get("/healthz-dump", true), get("/healthzz", true),
			get("/health", false), get("/HEALTHZ", false), get("/x/healthz", false), get("", false),
		}},
		{"prefix / matches every path", MatchSpec{Prefix: "/"}, []probe{
			get("/", true), get("/anything/at/all", true),
		}},
		{"path_separated_prefix is the path or the path then /", MatchSpec{PathSeparatedPrefix: "/api"}, []probe{
			get("/api", true), get("/api/", true), get("/api/x", true), get("/api/x/y", true),
			get("/apix", false), get("/ap", false), get("/api-v2", false), get("/API", false), get("/v1/api", false),
		}},
		{"path is exact, trailing slash significant", MatchSpec{Path: "/feed"}, []probe{
			get("/feed", true), get("/feed/", false), get("/feeds", false), get("/Feed", false), get("/fee", false),
		}},
		{"safe_regex must match the whole path, without anchors", MatchSpec{SafeRegex: "/v[0-9]+/orders"}, []probe{
			get("/v1/orders", true), get("/v12/orders", true),
			get("/v1/orders/7", false), get("/x/v1/orders", false), get("/v/orders", false),
		}},
		{"safe_regex with anchors", MatchSpec{SafeRegex: "^/v[0-9]+/orders/.*$"}, []probe{
			get("/v1/orders/", true), get("/v2/orders/7/items", true),
			get("/v1/orders", false), get("/api/v1/orders/7", false),
		}},
		{"safe_regex alternation stays inside the anchors", MatchSpec{SafeRegex: "/a|/b"}, []probe{
			get("/a", true), get("/b", true), get("/ab", false), get("/a/x", false), get("/x/b", false),
		}},
		{"methods list", MatchSpec{Prefix: "/admin", Methods: []string{"POST", "DELETE"}}, []probe{
			{"POST", "h", "/admin", true}, {"DELETE", "h", "/admin/x", true},
			{"GET", "h", "/admin", false}, {"post", "h", "/admin", false}, {"PUT", "h", "/admin", false},
			{"POST", "h", "/public", false},
		}},
		{"exact host, case-insensitive, without port", MatchSpec{Prefix: "/", Hosts: []string{"API.example.com"}}, []probe{
			{"GET", "api.example.com", "/", true}, {"GET", "Api.Example.COM", "/", true},
			{"GET", "api.example.com:8443", "/", true}, {"GET", "api.example.com.", "/", true},
			{"GET", "api.example.com.:443", "/", true},
			{"GET", "www.example.com", "/", false}, {"GET", "api.example.com.evil.com", "/", false},
			{"GET", "evil-api.example.com", "/", false}, {"GET", "", "/", false},
		}},
		{"wildcard host", MatchSpec{Prefix: "/", Hosts: []string{"*.example.com"}}, []probe{
			{"GET", "a.example.com", "/", true}, {"GET", "a.b.example.com", "/", true},
			{"GET", "A.EXAMPLE.COM:8080", "/", true},
			{"GET", "example.com", "/", false}, {"GET", ".example.com", "/", false},
			{"GET", "aexample.com", "/", false}, {"GET", "a.example.com.evil.com", "/", false},
		}},
		{"IPv6 host", MatchSpec{Prefix: "/", Hosts: []string{"[::1]"}}, []probe{
			{"GET", "[::1]:8080", "/", true}, {"GET", "[::1]", "/", true},
			{"GET", "[::2]:8080", "/", false}, {"GET", "127.0.0.1:8080", "/", false},
		}},
		{"IPv6 host written without brackets", MatchSpec{Prefix: "/", Hosts: []string{"::1"}}, []probe{
			{"GET", "[::1]:8080", "/", true}, {"GET", "::1", "/", true},
		}},
		{"IPv4 host", MatchSpec{Prefix: "/", Hosts: []string{"10.0.0.1"}}, []probe{
			{"GET", "10.0.0.1:80", "/", true}, {"GET", "10.0.0.1", "/", true}, {"GET", "10.0.0.10", "/", false},
		}},
		{"several hosts", MatchSpec{Prefix: "/", Hosts: []string{"a.example.com", "*.b.example.com"}}, []probe{
			{"GET", "a.example.com", "/", true}, {"GET", "x.b.example.com", "/", true},
			{"GET", "b.example.com", "/", false}, {"GET", "x.a.example.com", "/", false},
		}},
		{"method, host and path all required", MatchSpec{PathSeparatedPrefix: "/admin", Methods: []string{"GET"}, Hosts: []string{"api.example.com"}}, []probe{
			{"GET", "api.example.com", "/admin/users", true},
			{"POST", "api.example.com", "/admin/users", false},
			{"GET", "www.example.com", "/admin/users", false},
			{"GET", "api.example.com", "/administrator", false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := compile(t, RuleSpec{Match: c.match, Requires: needs})
			for _, pr := range c.probes {
				req, i := p.Match(pr.method, pr.host, pr.path)
				if got := i == 0; got != pr.matched {
					t.Errorf("%s %s %q: matched=%v, want %v", pr.method, pr.host, pr.path, got, pr.matched)
				}
				if pr.matched && req.Provider != "a" || !pr.matched && req != p.Default() {
					t.Errorf("%s %s %q: requirement %+v", pr.method, pr.host, pr.path, req)
				}
			}
		})
	}
}

// TestFirstMatchWins: rules are tried in order and the first match decides, even when a later
// rule is more specific; no match gives the default (a valid token from any provider).
func TestFirstMatchWins(t *testing.T) {
	p := compile(t,
		RuleSpec{Match: MatchSpec{PathSeparatedPrefix: "/healthz"}},                                                                                   // 0: public
		RuleSpec{Match: MatchSpec{Prefix: "/admin", Methods: []string{"POST"}}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{"admin"}}}, // 1
		RuleSpec{Match: MatchSpec{Prefix: "/admin"}, Requires: &RequirementSpec{Provider: "b"}},                                                       // 2
		RuleSpec{Match: MatchSpec{Path: "/admin/open"}},                                                                                               // 3: shadowed by 2
		RuleSpec{Match: MatchSpec{SafeRegex: "/v[0-9]+/.*"}, Requires: &RequirementSpec{Provider: "a"}},                                               // 4
	)
	cases := []struct {
		method, path string
		rule         int
	}{
		{"GET", "/healthz", 0},
		{"GET", "/healthz/live", 0},
		{"POST", "/admin/users", 1},
		{"GET", "/admin/users", 2},
		{"GET", "/admin/open", 2},
		{"GET", "/v1/orders", 4},
		{"GET", "/orders", -1},
		{"GET", "/", -1},
	}
	for _, c := range cases {
		req, i := p.Match(c.method, "api.example.com", c.path)
		if i != c.rule {
			t.Errorf("%s %s: rule %d, want %d", c.method, c.path, i, c.rule)
		}
		switch {
		case c.rule == -1 && req != p.Default(),
			c.rule == 0 && req != nil,
			c.rule > 0 && c.rule != 3 && req == nil:
			t.Errorf("%s %s: requirement %+v", c.method, c.path, req)
		}
	}
	if d := p.Default(); len(d.Any) != 2 || d.Any[0].Provider != "a" || d.Any[1].Provider != "b" {
		t.Errorf("default %+v, want any of a, b", d)
	}
	if p.Len() != 5 {
		t.Errorf("Len %d", p.Len())
	}
}

// TestNoRules: with no rules every request takes the default, and with no provider the
// default is never met (fails closed, not a vacuous "any of nothing").
func TestNoRules(t *testing.T) {
	p := compile(t)
	if req, i := p.Match("GET", "h", "/x"); i != -1 || req != p.Default() {
		t.Fatalf("Match = %v, %d", req, i)
	}
	empty, _, err := Compile(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res := empty.Default().Eval(t.Context(), lookupOf(nil)); classOf(res.Err) != "no_token" {
		t.Fatalf("default with no providers: %v, want no_token", res.Err)
	}
}

// TestCompileProblems: every problem is reported with its path, warnings apart.
func TestCompileProblems(t *testing.T) {
	type want struct {
		path, msg string
		warning   bool
	}
	cases := []struct {
		name  string
		specs []RuleSpec
		want  []want
	}{
		{"no path matcher", []RuleSpec{{Match: MatchSpec{Methods: []string{"GET"}}}},
			[]want{{"rules[0].match", "set exactly one of", false}}},
		{"two path matchers", []RuleSpec{{Match: MatchSpec{Prefix: "/a", SafeRegex: "/a"}}},
			[]want{{"rules[0].match", "set exactly one of", false}}},
		{"relative prefix", []RuleSpec{{Match: MatchSpec{Prefix: "api"}}},
			[]want{{"rules[0].match", "paths start with '/'", false}}},
		{"relative path", []RuleSpec{{Match: MatchSpec{Path: "api"}}},
			[]want{{"rules[0].match", "paths start with '/'", false}}},
		{"separated prefix ending in /", []RuleSpec{{Match: MatchSpec{PathSeparatedPrefix: "/api/"}}},
			[]want{{"rules[0].match", "must not end with '/'", false}}},
		{"separated prefix with ?", []RuleSpec{{Match: MatchSpec{PathSeparatedPrefix: "/api?x"}}},
			[]want{{"rules[0].match", "must not end with '/' or contain '?'", false}}},
		{"bad regex", []RuleSpec{{Match: MatchSpec{SafeRegex: "/v[0-9"}}},
			[]want{{"rules[0].match", "safe_regex: error parsing regexp: missing closing ]", false}}},
		{"regex escaping its anchors", []RuleSpec{{Match: MatchSpec{SafeRegex: "/a)|(/b"}}},
			[]want{{"rules[0].match", "safe_regex: error parsing regexp", false}}},
		{"non-RE2 regex (backreference)", []RuleSpec{{Match: MatchSpec{SafeRegex: `/(a)\1`}}},
			[]want{{"rules[0].match", "safe_regex", false}}},
		{"lower-case method", []RuleSpec{{Match: MatchSpec{Prefix: "/", Methods: []string{"get"}}}},
			[]want{{"rules[0].match", `methods: "get" must be an upper-case method name`, false}}},
		{"host with a port", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{"api.example.com:443"}}}},
			[]want{{"rules[0].match", `hosts: "api.example.com:443": hosts are matched without a port; write "api.example.com"`, false}}},
		{"IPv6 host with a port", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{"[::1]:8080"}}}},
			[]want{{"rules[0].match", `hosts are matched without a port; write "::1"`, false}}},
		{"inner wildcard", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{"api.*.com"}}}},
			[]want{{"rules[0].match", `only a leading "*." wildcard`, false}}},
		{"bare star", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{"*"}}}},
			[]want{{"rules[0].match", `only a leading "*." wildcard`, false}}},
		{"empty host", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{""}}}},
			[]want{{"rules[0].match", "is not a host name", false}}},
		{"unknown provider, nested", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Any: []*RequirementSpec{{Provider: "a"}, {Provider: "c"}}}}},
			[]want{{"rules[0].requires.any[1].provider", `unknown provider "c"`, false}}},
		{"provider and any", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Any: []*RequirementSpec{{Provider: "b"}}}}},
			[]want{{"rules[0].requires", "set exactly one of provider, any, all", false}}},
		{"empty requirement", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{}}},
			[]want{{"rules[0].requires", "set exactly one of provider, any, all", false}}},
		{"scope with a space", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{"read write"}}}},
			[]want{{"rules[0].requires.scopes[0]", "a scope is one non-empty token", false}}},
		{"scope with a quote", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{`ad"min`}}}},
			[]want{{"rules[0].requires.scopes[0]", "a scope is one non-empty token", false}}},
		{"scope with a control byte", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{"ad\x01min"}}}},
			[]want{{"rules[0].requires.scopes[0]", "a scope is one non-empty token", false}}},
		{"claim without values", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Claims: map[string][]any{"role": {}}}}},
			[]want{{"rules[0].requires.claims.role", "list at least one accepted value", false}}},
		{"claim with an object value", []RuleSpec{{Match: MatchSpec{Prefix: "/"}, Requires: &RequirementSpec{Provider: "a", Claims: map[string][]any{"role": {map[string]any{}}}}}},
			[]want{{"rules[0].requires.claims.role", "values must be strings, numbers or booleans", false}}},
		{"catch-all prefix shadows later rules", []RuleSpec{{Match: MatchSpec{Prefix: "/"}}, {Match: MatchSpec{Path: "/x"}}, {Match: MatchSpec{SafeRegex: ".*"}}},
			[]want{{"rules[1]", "unreachable: rules[0] matches every request first", true}, {"rules[2]", "unreachable: rules[0] matches every request first", true}}},
		{"anchored catch-all regex", []RuleSpec{{Match: MatchSpec{SafeRegex: "^/.*$"}}, {Match: MatchSpec{Prefix: "/x"}}},
			[]want{{"rules[1]", "unreachable: rules[0] matches every request first", true}}},
		{"prefix shadows a longer path", []RuleSpec{{Match: MatchSpec{Prefix: "/admin"}, Requires: needs}, {Match: MatchSpec{Path: "/admin/open"}}},
			[]want{{"rules[1]", "unreachable: rules[0] matches every request this rule matches", true}}},
		{"separated prefix shadows a sub-path", []RuleSpec{{Match: MatchSpec{PathSeparatedPrefix: "/api"}}, {Match: MatchSpec{Prefix: "/api/v1", Methods: []string{"GET"}}}},
			[]want{{"rules[1]", "unreachable: rules[0]", true}}},
		{"wildcard host shadows a narrower host", []RuleSpec{{Match: MatchSpec{Prefix: "/", Hosts: []string{"*.example.com"}}}, {Match: MatchSpec{Prefix: "/x", Hosts: []string{"a.example.com", "*.b.example.com"}}}},
			[]want{{"rules[1]", "unreachable: rules[0]", true}}},
		{"regex shadows an exact path it matches", []RuleSpec{{Match: MatchSpec{SafeRegex: "/v[0-9]+/.*"}}, {Match: MatchSpec{Path: "/v1/x"}}},
			[]want{{"rules[1]", "unreachable: rules[0]", true}}},
		{"a rule whose match failed still shadows nothing", []RuleSpec{{Match: MatchSpec{Prefix: "bad"}}, {Match: MatchSpec{Prefix: "/"}}},
			[]want{{"rules[0].match", "paths start with '/'", false}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, problems, err := Compile(c.specs, []string{"a", "b"})
			if len(problems) != len(c.want) {
				t.Fatalf("problems %+v, want %d", problems, len(c.want))
			}
			failed := false
			for i, w := range c.want {
				p := problems[i]
				if p.Path != w.path || !strings.Contains(p.Message, w.msg) || p.Warning != w.warning {
					t.Errorf("problem %d = %+v, want %+v", i, p, w)
				}
				failed = failed || !w.warning
			}
			if (err != nil) != failed {
				t.Errorf("err = %v, want failure %v", err, failed)
			}
		})
	}
}

// TestNotShadowed: rules that only overlap are not reported.
func TestNotShadowed(t *testing.T) {
	cases := [][]RuleSpec{
		{{Match: MatchSpec{Prefix: "/admin", Methods: []string{"POST"}}}, {Match: MatchSpec{Prefix: "/admin"}}},
		{{Match: MatchSpec{Prefix: "/admin", Methods: []string{"POST"}}}, {Match: MatchSpec{Prefix: "/admin", Methods: []string{"POST", "GET"}}}},
		{{Match: MatchSpec{Prefix: "/", Hosts: []string{"a.example.com"}}}, {Match: MatchSpec{Prefix: "/"}}},
		{{Match: MatchSpec{Prefix: "/", Hosts: []string{"a.example.com"}}}, {Match: MatchSpec{Prefix: "/", Hosts: []string{"*.example.com"}}}},
		{{Match: MatchSpec{Prefix: "/", Hosts: []string{"*.b.example.com"}}}, {Match: MatchSpec{Prefix: "/", Hosts: []string{"*.example.com"}}}},
		{{Match: MatchSpec{PathSeparatedPrefix: "/api"}}, {Match: MatchSpec{Prefix: "/api"}}},
		{{Match: MatchSpec{PathSeparatedPrefix: "/api"}}, {Match: MatchSpec{Path: "/apix"}}},
		{{Match: MatchSpec{Path: "/a"}}, {Match: MatchSpec{Prefix: "/a"}}},
		{{Match: MatchSpec{SafeRegex: "/v[0-9]+"}}, {Match: MatchSpec{Prefix: "/v1"}}},
		{{Match: MatchSpec{SafeRegex: "/v[0-9]+"}}, {Match: MatchSpec{Path: "/v1/x"}}},
		{{Match: MatchSpec{Prefix: "/a"}}, {Match: MatchSpec{SafeRegex: "/a.*"}}},
	}
	for i, specs := range cases {
		if _, problems, err := Compile(specs, []string{"a"}); err != nil || len(problems) != 0 {
			t.Errorf("case %d: %v %+v", i, err, problems)
		}
	}
}

func TestHostOnly(t *testing.T) {
	cases := []struct{ in, want string }{
		{"api.example.com", "api.example.com"},
		{"API.Example.com:8443", "api.example.com"},
		{"api.example.com.", "api.example.com"},
		{"api.example.com.:80", "api.example.com"},
		{"[::1]:8080", "::1"},
		{"[::1]", "::1"},
		{"[2001:DB8::1]:443", "2001:db8::1"},
		{"::1", "::1"},
		{"10.0.0.1:80", "10.0.0.1"},
		{"", ""},
		{"[", "["},
	}
	for _, c := range cases {
		if got := hostOnly(c.in); got != c.want {
			t.Errorf("hostOnly(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
