package policy

import "testing"

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
		{"/keep%20space", "/keep%20space"},
		{"/bad%zz", "/bad%zz"},
		{"/trailing%", "/trailing%"},
		{"/a//b///c", "/a/b/c"},
	}
	for _, c := range cases {
		if got := normalizePath(c.in); got != c.want {
			t.Errorf("normalizePath(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
