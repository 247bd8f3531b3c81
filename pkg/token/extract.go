package token

import (
	"fmt"
	"net/url"
	"strings"
)

// SourceKind says where a token is carried.
type SourceKind int

// Token locations (contract: from_headers, from_params, from_cookies).
const (
	FromHeader SourceKind = iota
	FromParam
	FromCookie
)

// Source is one place a provider reads its token from.
type Source struct {
	Kind SourceKind
	// Name is the lower-case header name, the query parameter or the cookie name.
	Name string
	// Prefix, for headers, is the scheme prefix such as "Bearer " (matched case-insensitively,
	// RFC 9110 §11.1). A prefix ending in a space accepts several spaces after the scheme.
	Prefix string
}

// Credential is a token found in a request, and where it was found.
type Credential struct {
	Token  string
	Source Source
}

// Extract finds exactly one credential among sources (jwt-security.md §3.1). headers have
// lower-case keys and every value as received (Envoy joins repeats with ","); query is the raw
// query string. It fails with ErrMultipleTokens when more than one location, or one location
// twice, carries a credential (RFC 6750 §2), ErrMalformedAuthorization for a bad credential
// syntax, ErrUnsupportedScheme when only another scheme was sent, ErrMissingToken when nothing
// was, and ErrTokenTooLarge for a token longer than maxBytes (checked before any decoding).
func Extract(sources []Source, headers map[string][]string, query string, maxBytes int) (Credential, error) {
	var found []Credential
	foreign := false
	for _, s := range sources {
		var toks []string
		var err error
		switch s.Kind {
		case FromHeader:
			var other bool
			toks, other, err = fromHeader(headers[s.Name], s.Prefix)
			foreign = foreign || other
		case FromParam:
			toks, err = fromQuery(query, s.Name)
		case FromCookie:
			toks, err = fromCookies(headers["cookie"], s.Name)
		}
		if err != nil {
			return Credential{}, err
		}
		for _, t := range toks {
			found = append(found, Credential{Token: t, Source: s})
		}
	}
	switch {
	case len(found) > 1:
		return Credential{}, fmt.Errorf("%w", ErrMultipleTokens)
	case len(found) == 0 && foreign:
		return Credential{}, fmt.Errorf("%w", ErrUnsupportedScheme)
	case len(found) == 0:
		return Credential{}, fmt.Errorf("%w", ErrMissingToken)
	}
	c := found[0]
	if len(c.Token) > maxBytes {
		return Credential{}, fmt.Errorf("%w: %d bytes", ErrTokenTooLarge, len(c.Token))
	}
	if !isB64Token(c.Token) {
		return Credential{}, fmt.Errorf("%w: token has characters outside b64token", ErrMalformedAuthorization)
	}
	return c, nil
}

// fromHeader reads one header. other reports a value in some other scheme (Basic...).
func fromHeader(values []string, prefix string) (toks []string, other bool, err error) {
	if len(values) > 1 {
		return nil, false, fmt.Errorf("%w: header repeated", ErrMultipleTokens)
	}
	if len(values) == 0 {
		return nil, false, nil
	}
	v := strings.TrimRight(values[0], " \t")
	if v == "" {
		return nil, false, nil
	}
	if strings.Contains(v, ",") && (prefix == "" || credentials(v) > 1) {
		// Envoy joins repeated headers with ","; a JWT never holds one (envoy-notes §1).
		// With a scheme, a comma may also separate one credential's auth-params (Digest
		// username="a", realm="b"): that is one credential in another scheme, not two.
		return nil, false, fmt.Errorf("%w: comma-joined credentials", ErrMultipleTokens)
	}
	if prefix == "" {
		return []string{v}, false, nil
	}
	scheme := strings.TrimRight(prefix, " ")
	spaced := len(scheme) < len(prefix)
	if len(v) < len(scheme) || !strings.EqualFold(v[:len(scheme)], scheme) {
		return nil, true, nil
	}
	rest := v[len(scheme):]
	if spaced {
		switch {
		case rest == "":
			return nil, false, fmt.Errorf("%w: scheme without a token", ErrMalformedAuthorization)
		case rest[0] == '\t':
			return nil, false, fmt.Errorf("%w: TAB after the scheme", ErrMalformedAuthorization)
		case rest[0] != ' ':
			return nil, true, nil // "Bearerx": another scheme
		}
		rest = strings.TrimLeft(rest, " ")
		if rest == "" || rest[0] == '\t' {
			return nil, false, fmt.Errorf("%w: scheme without a token", ErrMalformedAuthorization)
		}
	}
	if rest == "" {
		return nil, false, fmt.Errorf("%w: empty token", ErrMalformedAuthorization)
	}
	return []string{rest}, false, nil
}

// credentials counts the credentials in an Authorization-style value that Envoy may have joined
// with ",". RFC 9110 §11.6.2: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ], and
// an auth-param is token BWS "=" BWS ( token / quoted-string ). A comma-separated element that
// does not start with "name =" therefore starts a new credential. Commas inside quoted strings
// separate nothing; empty elements are ignored (RFC 9110 §5.6.1).
func credentials(v string) int {
	n := 0
	for _, el := range splitList(v) {
		el = strings.Trim(el, " \t")
		if el == "" {
			continue
		}
		i := 0
		for i < len(el) && isTChar(el[i]) {
			i++
		}
		if i > 0 && !strings.HasPrefix(strings.TrimLeft(el[i:], " \t"), "=") {
			n++
		}
	}
	return n
}

// splitList splits v on commas outside quoted strings (with backslash escapes inside them).
func splitList(v string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == ',':
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

// isTChar reports an RFC 9110 §5.6.2 tchar.
func isTChar(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func fromQuery(query, name string) ([]string, error) {
	var toks []string
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil || key != name {
			continue
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("%w: bad escape in query parameter", ErrMalformedAuthorization)
		}
		if val == "" {
			return nil, fmt.Errorf("%w: empty query parameter", ErrMalformedAuthorization)
		}
		toks = append(toks, val)
	}
	return toks, nil
}

func fromCookies(values []string, name string) ([]string, error) {
	var toks []string
	for _, line := range values {
		for _, part := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || strings.TrimSpace(k) != name {
				continue
			}
			v = strings.TrimSpace(v)
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			if v == "" {
				return nil, fmt.Errorf("%w: empty cookie", ErrMalformedAuthorization)
			}
			toks = append(toks, v)
		}
	}
	return toks, nil
}

// isB64Token reports whether s matches RFC 6750 §2.1's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0 {
			i++
			continue
		}
		break
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}
