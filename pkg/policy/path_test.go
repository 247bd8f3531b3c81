package policy

import (
	"errors"
	"testing"
)

// TestNormalizePath is the most lenient reading (every step).
func TestNormalizePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/", "/"},
		{"/a/b", "/a/b"},
		{"//admin", "/admin"},
		{"/public/../admin", "/admin"},
		{"/admin/../public", "/public"},
		{"/./admin", "/admin"},
		{"/a/.", "/a/"},
		{"/a/..", "/"},
		{"/../../x", "/x"},
		{"/%61dmin", "/admin"},
		{"/admin%2Fusers", "/admin/users"},
		{"/admin%2fusers", "/admin/users"},
		{"/admin%5Cusers", "/admin/users"},
		{"/a\\b", "/a/b"},
		{"/%2e%2e/admin", "/admin"},
		{"/%2E%2E/admin", "/admin"},
		{"/keep%20space", "/keep%20space"},
		{"/keep%3Bsemi", "/keep%3Bsemi"},
		{"/bad%zz", "/bad%zz"},
		{"/trailing%", "/trailing%"},
		{"/trailing%2", "/trailing%2"},
		{"/a//b///c", "/a/b/c"},
		{"/a/b/", "/a/b/"},
		{"/public/..;/admin", "/admin"},
		{"/admin;jsessionid=1/x;y", "/admin/x"},
		{"/public/%2e%2e%2fadmin", "/admin"},
	}
	for _, c := range cases {
		if got := normalizePath(c.in); got != c.want {
			t.Errorf("normalizePath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestReadings pins each upstream reading on its own.
func TestReadings(t *testing.T) {
	cases := []struct {
		in   string
		rd   reading
		want string
	}{
		{"/%61dmin/%2e%2e/x%2Fy", decodeUnreserved, "/admin/../x%2Fy"},
		{"/a/%2e%2e/b/../c", dotSegments, "/a/%2e%2e/c"},
		{"/a/%2e%2e/b%2F%2e%2e/c", decodeUnreserved | dotSegments, "/b%2F../c"},
		{"/a//%2e%2e//b", decodeUnreserved | mergeSlashes | dotSegments, "/b"},
		{"/a//../b", dotSegments, "/a/b"},
		{"/a%5Cb\\c", decodeSlashes, "/a/b/c"},
		{"/a;x/b", dropParams, "/a/b"},
		{"/a;x/b", readAll &^ dropParams, "/a;x/b"},
		{"/a//b", mergeSlashes, "/a/b"},
	}
	for _, c := range cases {
		if got := read(c.in, c.rd); got != c.want {
			t.Errorf("read(%q, %05b) = %q, want %q", c.in, c.rd, got, c.want)
		}
	}
}

// TestMatchRequestPaths decides the path edge cases. The raw path is matched, as Envoy routes
// it; a path whose raw reading and any upstream reading (decoding %XX, "\" and "%5C" as "/",
// merging "//", resolving "." and "..", dropping ";params") select different requirements is
// refused with ErrAmbiguousPath. Trailing slashes and letter case are not normalised: they are
// significant, as in Envoy's route matching.
func TestMatchRequestPaths(t *testing.T) {
	p := compile(t,
		RuleSpec{Match: MatchSpec{PathSeparatedPrefix: "/public"}},                                                         // 0: no token
		RuleSpec{Match: MatchSpec{Prefix: "/admin"}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{"admin"}}}, // 1
		RuleSpec{Match: MatchSpec{Path: "/feed"}, Requires: &RequirementSpec{Provider: "b", AllowMissing: true}},           // 2
		RuleSpec{Match: MatchSpec{Prefix: "/static/"}},                                                                     // 3: no token
	)
	const ambiguous = -2
	cases := []struct {
		name, path string
		rule       int // -1 default, ambiguous
	}{
		{"plain", "/public/x", 0},
		{"plain admin", "/admin/users", 1},
		{"no rule", "/orders", -1},
		{"query is not part of the path", "/feed", 2},

		// "//"
		{"leading // hides /admin", "//admin", ambiguous},
		{"// inside a public path stays public", "/public//x", 0},
		{"// inside an admin path stays admin", "/admin//users", 1},
		{"// where no rule cares", "/orders//7", -1},
		{"/public// then ..", "/public//../admin", ambiguous},

		// "/./" and "/../"
		{"/./ before admin", "/./admin", ambiguous},
		{"/./ inside admin", "/admin/./users", 1},
		{"/../ out of public into admin", "/public/../admin", ambiguous},
		{"/../ out of admin into public", "/admin/../public", ambiguous},
		{"/../ out of admin, still admin", "/admin/x/../y", 1},
		{"/../ above the root", "/../admin", ambiguous},
		{"trailing /..", "/public/x/..", 0},

		// %2F, %2f, %5C, "\"
		{"%2F in a public path to admin", "/public%2F..%2Fadmin", ambiguous},
		{"%2f lower case", "/public/..%2fadmin", ambiguous},
		{"%5C", "/public/..%5Cadmin", ambiguous},
		{"%5c lower case", "/public/..%5cadmin", ambiguous},
		{"backslash", "/public\\..\\admin", ambiguous},
		{"%2F inside admin stays admin", "/admin%2Fusers", 1},
		{"%2F where no rule cares", "/orders%2F7", -1},

		// %61 and other unreserved escapes
		{"%61dmin", "/%61dmin", ambiguous},
		{"%2e%2e", "/public/%2e%2e/admin", ambiguous},
		{"%2E%2E upper case", "/public/%2E%2E/admin", ambiguous},
		{"%20 is kept", "/public/a%20b", 0},
		{"bad escape is kept", "/admin/%zz", 1},

		// path parameters (Tomcat, Jetty)
		{"..;/", "/public/..;/admin", ambiguous},
		{";params on admin stay admin", "/admin;jsessionid=1", 1},
		{";params turning a path into /feed", "/feed;x", ambiguous},

		// a reading only Envoy's normalize_path (decode unreserved, keep %2F) gives
		{"only the normalize_path reading differs", "/public/%2e%2e/admin%2F%2e%2e/public", ambiguous},

		// trailing slash: significant, as in Envoy
		{"exact path with trailing slash", "/feed/", -1},
		{"separated prefix with trailing slash", "/public/", 0},
		{"prefix with trailing slash", "/admin/", 1},

		// letter case: significant, as in Envoy (case_sensitive defaults to true)
		{"upper-case ADMIN", "/ADMIN", -1},

		// relative paths (never from Envoy; a forward-auth header may carry one)
		{"relative dot path", "./admin", ambiguous},
		// a path not starting with "/" can match no path rule as written, while an upstream
		// may read it as /admin: refused (second new-user trial)
		{"relative path", "admin", ambiguous},
		{"relative path under a rule", "admin/x", ambiguous},
		{"absolute-form", "http://api.example.com/admin", ambiguous},
		{"asterisk-form", "*", ambiguous},
		{"empty path", "", ambiguous},

		// two rules with the same requirement (none) agree
		{"public to public", "/static/../public/x", 3},
		{"public to public, reverse", "/public/../static/x", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, i, err := p.MatchRequest("GET", "api.example.com", c.path)
			if c.rule == ambiguous {
				if !errors.Is(err, ErrAmbiguousPath) || req != nil || i != -1 {
					t.Fatalf("MatchRequest(%q) = %v, %d, %v; want ErrAmbiguousPath", c.path, req, i, err)
				}
				return
			}
			if err != nil || i != c.rule {
				t.Fatalf("MatchRequest(%q) = rule %d, %v; want rule %d", c.path, i, err, c.rule)
			}
			if raw, j := p.Match("GET", "api.example.com", c.path); raw != req || j != i {
				t.Errorf("MatchRequest and Match disagree: %d vs %d", i, j)
			}
		})
	}
}

// TestMatchRequestWithoutRules: with no rules every path takes the default, however odd.
func TestMatchRequestWithoutRules(t *testing.T) {
	p := compile(t)
	for _, path := range []string{"//admin", "/a/../b", "/%61", "/x;y", "\\"} {
		if req, i, err := p.MatchRequest("GET", "h", path); err != nil || i != -1 || req != p.Default() {
			t.Errorf("MatchRequest(%q) = %v, %d, %v", path, req, i, err)
		}
	}
}

// FuzzMatchRequest: never panics, and a decided path is decided the same way by every
// upstream reading (the property the ambiguity check exists for).
func FuzzMatchRequest(f *testing.F) {
	p := compile(f,
		RuleSpec{Match: MatchSpec{PathSeparatedPrefix: "/public"}},
		RuleSpec{Match: MatchSpec{Prefix: "/admin", Methods: []string{"POST"}}, Requires: &RequirementSpec{Provider: "a", Scopes: []string{"admin"}}},
		RuleSpec{Match: MatchSpec{SafeRegex: "/v[0-9]+/.*", Hosts: []string{"*.example.com"}}, Requires: &RequirementSpec{Provider: "b"}},
		RuleSpec{Match: MatchSpec{Path: "/feed"}, Requires: &RequirementSpec{Provider: "a", AllowMissing: true}},
	)
	for _, s := range []string{"/public/../admin", "//admin", "/%61dmin", "/public/..;/admin", "/v1/%2e%2e/feed", "\\admin", "/feed/", "%", "/a%2", "", "./admin", "admin/../feed"} {
		f.Add("POST", "api.example.com:443", s)
	}
	f.Add("GET", "[::1", "/public")
	f.Fuzz(func(t *testing.T, method, host, path string) {
		req, i, err := p.MatchRequest(method, host, path)
		if err != nil {
			return
		}
		if raw, j := p.Match(method, host, path); raw != req || j != i {
			t.Fatalf("MatchRequest %d, Match %d", i, j)
		}
		for _, rd := range readings {
			if other, _ := p.Match(method, host, read(path, rd)); other != req {
				t.Fatalf("%q decided, but reading %05b (%q) selects another requirement", path, rd, read(path, rd))
			}
		}
	})
}
