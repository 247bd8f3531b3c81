package policy

import (
	"fmt"
	"net"
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
	exact  string // lower-case
	suffix string // for "*.example.com": ".example.com"
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
		if _, err := regexp.Compile(s.SafeRegex); err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		// Envoy's safe_regex must match the whole path: anchor it whatever the user wrote.
		re, err := regexp.Compile(`^(?:` + s.SafeRegex + `)$`)
		if err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		m.kind, m.re = matchRegex, re
		n++
	}
	if n != 1 {
		return nil, fmt.Errorf("set exactly one of prefix, path_separated_prefix, path, safe_regex")
	}
	if (m.kind == matchPrefix || m.kind == matchPath || m.kind == matchSeparated) && !strings.HasPrefix(m.value, "/") {
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
	for _, h := range s.Hosts {
		h = strings.ToLower(h)
		switch {
		case h == "" || strings.ContainsAny(h, "/ \t"):
			return nil, fmt.Errorf("hosts: %q is not a host name", h)
		case strings.HasPrefix(h, "*."):
			m.hosts = append(m.hosts, hostPattern{suffix: h[1:]})
		case strings.Contains(h, "*"):
			return nil, fmt.Errorf("hosts: %q: only a leading \"*.\" wildcard is supported", h)
		default:
			m.hosts = append(m.hosts, hostPattern{exact: h})
		}
	}
	return m, nil
}

// catchAll reports whether the matcher matches every request (for the unreachable-rule check).
func (m *matcher) catchAll() bool {
	if m.methods != nil || m.hosts != nil {
		return false
	}
	switch m.kind {
	case matchPrefix:
		return m.value == "/"
	case matchRegex:
		s := m.re.String()
		return s == `^(?:.*)$` || s == `^(?:/.*)$`
	}
	return false
}

func (m *matcher) match(method, host, path string) bool {
	if m.methods != nil && !m.methods[method] {
		return false
	}
	if m.hosts != nil {
		h := hostOnly(host)
		ok := false
		for _, p := range m.hosts {
			if p.exact != "" && h == p.exact || p.suffix != "" && len(h) > len(p.suffix) && strings.HasSuffix(h, p.suffix) {
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

// hostOnly lower-cases :authority and drops its port, IPv6 brackets included.
func hostOnly(authority string) string {
	h := strings.ToLower(authority)
	if strings.HasPrefix(h, "[") {
		if host, _, err := net.SplitHostPort(h); err == nil {
			return host
		}
		return strings.Trim(h, "[]")
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[:i], ":") {
		return h[:i]
	}
	return strings.TrimSuffix(h, ".")
}
