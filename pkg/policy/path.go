package policy

import (
	"errors"
	"strings"
)

// ErrAmbiguousPath means the path as received and one of the ways an upstream may read it
// select different requirements. Envoy forwards the path it matched, but an upstream that
// decodes "%2F", merges "//", resolves "/../" or drops ";params" could serve another route:
// deciding on either reading could let a request reach a route whose rule it never met. Such
// requests are refused (400). Envoy's normalize_path, merge_slashes and
// path_with_escaped_slashes_action keep them away.
var ErrAmbiguousPath = errors.New("policy: path is read differently once normalized")

// A reading is a set of normalization steps an upstream may apply to a path before routing.
type reading uint8

const (
	// decodeUnreserved percent-decodes ALPHA, DIGIT, "-", ".", "_", "~" (RFC 3986 §6.2.2.2).
	decodeUnreserved reading = 1 << iota
	// decodeSlashes percent-decodes "/" and "\" and reads "\" as "/" (Go's net/http, IIS,
	// Envoy's UNESCAPE_AND_FORWARD).
	decodeSlashes
	// dropParams removes ";..." path parameters from each segment (Tomcat, Jetty: "/..;/").
	dropParams
	// mergeSlashes collapses runs of "/" (nginx, Envoy's merge_slashes, Go's path.Clean).
	mergeSlashes
	// dotSegments removes "." and ".." segments (RFC 3986 §5.2.4).
	dotSegments

	readAll = decodeUnreserved | decodeSlashes | dropParams | mergeSlashes | dotSegments
)

// readings are the upstream readings compared with the raw path: each alone would be a way
// round a rule, and a path is only decided when all of them agree with the raw one.
var readings = [...]reading{
	// A router matching the percent-decoded path as is.
	decodeUnreserved,
	// A router resolving dot segments only.
	dotSegments,
	// RFC 3986 §6.2.2 normalization: Envoy's normalize_path.
	decodeUnreserved | dotSegments,
	// Envoy's normalize_path with merge_slashes; nginx.
	decodeUnreserved | mergeSlashes | dotSegments,
	// Everything: Go's net/http ServeMux (which decodes %2F), Spring on Tomcat, IIS.
	readAll,
}

// MatchRequest is Match with the ambiguity check: the requirement chosen for the raw path must
// be the one chosen for every upstream reading of it (see readings). Readings that select
// another rule with the same requirement (two public rules, or the default twice) agree.
func (p *Policy) MatchRequest(method, host, path string) (*Requirement, int, error) {
	h := hostOnly(host)
	if len(p.rules) > 0 && !strings.HasPrefix(path, "/") {
		// Absolute-form ("http://x/admin"), relative ("admin/x") or "*": no path rule can match
		// it as written, yet an upstream may read it as /admin. Refuse rather than fall through
		// to a weaker rule.
		return nil, -1, ErrAmbiguousPath
	}
	req, i := p.match(method, h, path)
	if len(p.rules) == 0 || !mayNormalize(path) {
		return req, i, nil
	}
	for _, rd := range readings {
		if n := read(path, rd); n != path {
			if other, _ := p.match(method, h, n); other != req {
				return nil, -1, ErrAmbiguousPath
			}
		}
	}
	return req, i, nil
}

// mayNormalize reports whether some reading could change p: only paths with "%", "\", ";",
// "//" or a dot segment need the readings, and relative ones ("./admin" reads as "/admin").
func mayNormalize(p string) bool {
	return !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "%\\;") || strings.Contains(p, "//") || strings.Contains(p, "/.")
}

// normalizePath is the most lenient reading: every step of readAll.
func normalizePath(p string) string { return read(p, readAll) }

// read applies the steps of rd to p, in the order a server applies them: decoding, then
// path parameters, then slashes, then dot segments.
func read(p string, rd reading) string {
	if rd&(decodeUnreserved|decodeSlashes) != 0 && strings.ContainsAny(p, "%\\") {
		var b strings.Builder
		b.Grow(len(p))
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c == '%' && i+2 < len(p) {
				if d, ok := unhex(p[i+1], p[i+2]); ok && (rd&decodeUnreserved != 0 && isUnreserved(d) || rd&decodeSlashes != 0 && (d == '/' || d == '\\')) {
					c = d
					i += 2
				}
			}
			if c == '\\' && rd&decodeSlashes != 0 {
				c = '/'
			}
			b.WriteByte(c)
		}
		p = b.String()
	}
	if rd&dropParams != 0 && strings.IndexByte(p, ';') >= 0 {
		p = dropPathParams(p)
	}
	if rd&mergeSlashes != 0 && strings.Contains(p, "//") {
		p = mergeSlashRuns(p)
	}
	if rd&dotSegments != 0 {
		p = removeDotSegments(p)
	}
	return p
}

// dropPathParams removes ";..." up to the end of each segment: "/a;x=1/b;c" -> "/a/b".
func dropPathParams(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	skip := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			skip = false
			b.WriteByte(c)
		case c == ';':
			skip = true
		case !skip:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func mergeSlashRuns(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// removeDotSegments is RFC 3986 §5.2.4 on an absolute path; a result is always absolute.
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") {
		return p
	}
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
