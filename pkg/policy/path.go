package policy

import (
	"errors"
	"strings"
)

// ErrAmbiguousPath means the path as received and its most aggressive normalization select
// different rules. Envoy forwards the path it matched, but an upstream that decodes "%2F",
// merges "//" or resolves "/../" would see another route: deciding on either reading could
// let a request reach a route whose rule it never met. Such requests are refused (400).
// Envoy's normalize_path, merge_slashes and path_with_escaped_slashes_action keep them away.
var ErrAmbiguousPath = errors.New("policy: path is read differently once normalized")

// MatchRequest is Match with the ambiguity check: the rule chosen for the raw path must be the
// rule chosen for its aggressive normalization (see normalizePath).
func (p *Policy) MatchRequest(method, host, path string) (*Requirement, int, error) {
	req, i := p.Match(method, host, path)
	if norm := normalizePath(path); norm != path {
		if _, j := p.Match(method, host, norm); j != i {
			return nil, -1, ErrAmbiguousPath
		}
	}
	return req, i, nil
}

// normalizePath reads a path the way the most lenient upstream might: percent-decoding of
// unreserved characters and of '/', '\' and '.', backslashes as slashes, merged slashes,
// and dot segments removed (RFC 3986 §5.2.4).
func normalizePath(p string) string {
	if !strings.ContainsAny(p, "%\\") && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) {
			if d, ok := unhex(p[i+1], p[i+2]); ok && (isUnreserved(d) || d == '/' || d == '\\') {
				c = d
				i += 2
			}
		}
		if c == '\\' {
			c = '/'
		}
		if c == '/' && b.Len() > 0 && strings.HasSuffix(b.String(), "/") {
			continue
		}
		b.WriteByte(c)
	}
	return removeDotSegments(b.String())
}

func removeDotSegments(p string) string {
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, s := range segs {
		switch s {
		case ".":
			if i == len(segs)-1 {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if i == len(segs)-1 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	r := strings.Join(out, "/")
	if !strings.HasPrefix(r, "/") {
		r = "/" + r
	}
	return r
}

func isUnreserved(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(a, b byte) (byte, bool) {
	h, ok1 := hexVal(a)
	l, ok2 := hexVal(b)
	return h<<4 | l, ok1 && ok2
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
