package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// MatchSpec is one rule's match block (contract rules[].match). Exactly one path matcher is set.
type MatchSpec struct {
	Prefix              string
	PathSeparatedPrefix string
	Path                string
	SafeRegex           string
	Methods             []string
	Hosts               []string
}

// matcher is a compiled MatchSpec.
type matcher struct {
	kind    int // matchPrefix...
	value   string
	re      *regexp.Regexp
	methods map[string]bool // nil = any
	hosts   []hostPattern   // nil = any
}

const (
	matchPrefix = iota
	matchSeparated
	matchPath
	matchRegex
)

type hostPattern struct {
	exact  string // lower-case, without port, brackets or trailing dot
	suffix string // for "*.example.com": ".example.com"
}

func (h hostPattern) match(host string) bool {
	if h.suffix != "" {
		// Envoy's "*." wildcard stands for at least one character, dots included:
		// "*.example.com" matches a.example.com and a.b.example.com, not example.com.
		return len(host) > len(h.suffix) && strings.HasSuffix(host, h.suffix)
	}
	return host == h.exact
}

// covers reports whether every host h2 matches is matched by h.
func (h hostPattern) covers(h2 hostPattern) bool {
	if h.suffix == "" {
		return h2.suffix == "" && h2.exact == h.exact
	}
	if h2.suffix != "" {
		return strings.HasSuffix(h2.suffix, h.suffix)
	}
	return h.match(h2.exact)
}

func compileMatch(s MatchSpec) (*matcher, error) {
	m := &matcher{}
	n := 0
	if s.Prefix != "" {
		m.kind, m.value = matchPrefix, s.Prefix
		n++
	}
	if s.PathSeparatedPrefix != "" {
		m.kind, m.value = matchSeparated, s.PathSeparatedPrefix
		n++
		if strings.HasSuffix(s.PathSeparatedPrefix, "/") || strings.ContainsAny(s.PathSeparatedPrefix, "?#") {
			return nil, fmt.Errorf("path_separated_prefix must not end with '/' or contain '?' or '#'")
		}
	}
	if s.Path != "" {
		m.kind, m.value = matchPath, s.Path
		n++
	}
	if s.SafeRegex != "" {
		// Compiled alone first, so that "a)|(b" cannot escape the anchors added below.
		if _, err := regexp.Compile(s.SafeRegex); err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		// Envoy's safe_regex must match the whole path: anchor it whatever the user wrote.
		re, err := regexp.Compile(`^(?:` + s.SafeRegex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		m.kind, m.value, m.re = matchRegex, s.SafeRegex, re
		n++
	}
	if n != 1 {
		return nil, fmt.Errorf("set exactly one of prefix, path_separated_prefix, path, safe_regex")
	}
	if m.kind != matchRegex && !strings.HasPrefix(m.value, "/") {
		return nil, fmt.Errorf("paths start with '/'")
	}
	if len(s.Methods) > 0 {
		m.methods = map[string]bool{}
		for _, meth := range s.Methods {
			if meth == "" || meth != strings.ToUpper(meth) || strings.ContainsAny(meth, " \t") {
				return nil, fmt.Errorf("methods: %q must be an upper-case method name", meth)
			}
			m.methods[meth] = true
		}
	}
	for _, raw := range s.Hosts {
		hp, err := compileHost(raw)
		if err != nil {
			return nil, err
		}
		m.hosts = append(m.hosts, hp)
	}
	return m, nil
}

// compileHost reads one hosts entry the way hostOnly reads :authority (lower case, no
// brackets, no trailing dot), so that the two compare. A port is refused: :authority is
// compared without its port, and "api.example.com:443" would silently never match, letting
// the request fall through to a later, possibly weaker, rule.
func compileHost(raw string) (hostPattern, error) {
	h := strings.ToLower(raw)
	if strings.HasPrefix(h, "[") {
		if !strings.HasSuffix(h, "]") {
			return hostPattern{}, fmt.Errorf("hosts: %q: hosts are matched without a port; write %q", raw, hostOnly(h))
		}
		h = h[1 : len(h)-1]
	} else if i := strings.IndexByte(h, ':'); i >= 0 && strings.LastIndexByte(h, ':') == i {
		return hostPattern{}, fmt.Errorf("hosts: %q: hosts are matched without a port; write %q", raw, hostOnly(h))
	}
	h = strings.TrimSuffix(h, ".")
	switch {
	case h == "" || strings.ContainsAny(h, "/ \t[]@"):
		return hostPattern{}, fmt.Errorf("hosts: %q is not a host name", raw)
	case strings.HasPrefix(h, "*.") && !strings.Contains(h[1:], "*") && len(h) > 2:
		return hostPattern{suffix: h[1:]}, nil
	case strings.Contains(h, "*"):
		return hostPattern{}, fmt.Errorf("hosts: %q: only a leading \"*.\" wildcard is supported", raw)
	}
	return hostPattern{exact: h}, nil
}

// matchesEveryPath reports whether the path matcher accepts every path.
func (m *matcher) matchesEveryPath() bool {
	switch m.kind {
	case matchPrefix:
		return m.value == "/"
	case matchRegex:
		s := strings.TrimSuffix(strings.TrimPrefix(m.value, "^"), "$")
		s = strings.TrimPrefix(s, "(?s)")
		return s == ".*" || s == "/.*"
	}
	return false
}

// catchAll reports whether the matcher matches every request (for the unreachable-rule check).
func (m *matcher) catchAll() bool {
	return m.methods == nil && m.hosts == nil && m.matchesEveryPath()
}

// shadows reports whether m matches every request that n matches, so that a rule with n
// placed after a rule with m can never be selected. It is conservative: false when unsure
// (regexes other than catch-alls and exact paths).
func (m *matcher) shadows(n *matcher) bool {
	if m.methods != nil {
		if n.methods == nil {
			return false
		}
		for meth := range n.methods {
			if !m.methods[meth] {
				return false
			}
		}
	}
	if m.hosts != nil {
		if n.hosts == nil {
			return false
		}
		for _, h2 := range n.hosts {
			covered := false
			for _, h := range m.hosts {
				if h.covers(h2) {
					covered = true
					break
				}
			}
			if !covered {
				return false
			}
		}
	}
	if m.matchesEveryPath() {
		return true
	}
	switch m.kind {
	case matchPrefix:
		// Every path n accepts starts with n's literal, which starts with m's prefix.
		return n.kind != matchRegex && strings.HasPrefix(n.value, m.value)
	case matchSeparated:
		switch n.kind {
		case matchSeparated, matchPath:
			return n.value == m.value || strings.HasPrefix(n.value, m.value+"/")
		case matchPrefix:
			return strings.HasPrefix(n.value, m.value+"/")
		}
	case matchPath:
		return n.kind == matchPath && n.value == m.value
	case matchRegex:
		return n.kind == matchPath && m.re.MatchString(n.value)
	}
	return false
}

// match reports whether the request matches. host is hostOnly(:authority).
func (m *matcher) match(method, host, path string) bool {
	if m.methods != nil && !m.methods[method] {
		return false
	}
	if m.hosts != nil {
		ok := false
		for _, p := range m.hosts {
			if p.match(host) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	switch m.kind {
	case matchPrefix:
		return strings.HasPrefix(path, m.value)
	case matchSeparated:
		return path == m.value || strings.HasPrefix(path, m.value) && path[len(m.value)] == '/'
	case matchPath:
		return path == m.value
	default:
		return m.re.MatchString(path)
	}
}

// hostOnly lower-cases :authority and drops its port, the brackets of an IPv6 literal and a
// trailing dot ("API.example.com.:8443" -> "api.example.com", "[::1]:8080" -> "::1").
func hostOnly(authority string) string {
	h := strings.ToLower(authority)
	if strings.HasPrefix(h, "[") {
		if end := strings.IndexByte(h, ']'); end > 0 {
			return h[1:end]
		}
		return h
	}
	// One colon separates a port; more than one is an unbracketed IPv6 literal.
	if i := strings.IndexByte(h, ':'); i >= 0 && strings.LastIndexByte(h, ':') == i {
		h = h[:i]
	}
	return strings.TrimSuffix(h, ".")
}
