package authz

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// Exact WWW-Authenticate values of the contract's table, for realm "example".
const (
	challengeMissing   = `Bearer realm="example"`
	challengeInvalid   = `Bearer realm="example", error="invalid_token", error_description="The access token is invalid"`
	challengeExpired   = `Bearer realm="example", error="invalid_token", error_description="The access token expired"`
	challengeTooLarge  = `Bearer realm="example", error="invalid_token", error_description="The access token is too large"`
	challengeMultiple  = `Bearer realm="example", error="invalid_request", error_description="The request carries more than one access token"`
	challengeMalformed = `Bearer realm="example", error="invalid_request", error_description="The access token credential is malformed"`
)

// TestDecideDeny walks every deny row of contract.md "Decisions on the wire" that this release
// can reach, with real tokens, and pins status, reason, body error and the exact challenge.
func TestDecideDeny(t *testing.T) {
	a := newAuthorizer(t, setup{})
	good := mint(t, issMain, devissuer.TokenRequest{Sub: "alice"})
	other := mint(t, issMain, devissuer.TokenRequest{Sub: "bob"})
	parts := strings.Split(good, ".")
	otherSig := strings.Split(other, ".")[2]
	expired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour})
	future := mintAt(t, issMain, testNow.Add(2*time.Hour), devissuer.TokenRequest{Sub: "alice"})
	wrongAud := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Aud: "https://other.example.com"})
	unknownIss := mint(t, issOther, devissuer.TokenRequest{Sub: "alice"})
	partnerTok := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	crlf := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"email": "a@example.com\r\nx-user-id: admin"}})
	lf := mint(t, issMain, devissuer.TokenRequest{Sub: "alice\nbob"})
	nul := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"groups": []any{"a", "b\x00"}}})
	del := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read\x7fwrite"})

	cases := []struct {
		name      string
		r         *Request
		status    int
		reason    Reason
		errorCode string
		challenge string
		provider  string
	}{
		{"no token", req(""), 401, ReasonMissingToken, "unauthorized", challengeMissing, ""},
		{"empty authorization", req("", "authorization", ""), 401, ReasonMissingToken, "unauthorized", challengeMissing, ""},
		{"basic scheme", req("", "authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l"), 401, ReasonUnsupportedScheme, "unauthorized", challengeMissing, ""},
		{"dpop scheme", req("", "authorization", "DPoP "+good), 401, ReasonUnsupportedScheme, "unauthorized", challengeMissing, ""},
		{"token only in query, main reads headers only", req("token=" + good), 401, ReasonMissingToken, "unauthorized", challengeMissing, ""},
		{"two tokens comma-joined", req("", "authorization", "Bearer "+good+",Bearer "+other), 400, ReasonMultipleTokens, "invalid_request", challengeMultiple, ""},
		{"two authorization lines", req("", "authorization", "Bearer "+good, "authorization", "Bearer "+other), 400, ReasonMultipleTokens, "invalid_request", challengeMultiple, ""},
		{"header and query param", req("access_token="+partnerTok, "authorization", "Bearer "+good), 400, ReasonMultipleTokens, "invalid_request", challengeMultiple, ""},
		{"query param twice", req("access_token=" + partnerTok + "&access_token=" + partnerTok), 400, ReasonMultipleTokens, "invalid_request", challengeMultiple, ""},
		{"bearer without token", req("", "authorization", "Bearer "), 400, ReasonMalformedAuthz, "invalid_request", challengeMalformed, ""},
		{"tab after scheme", req("", "authorization", "Bearer\t"+good), 400, ReasonMalformedAuthz, "invalid_request", challengeMalformed, ""},
		{"token outside b64token", req("", "authorization", `Bearer "`+good+`"`), 400, ReasonMalformedAuthz, "invalid_request", challengeMalformed, ""},
		{"garbage token", req("", "authorization", "Bearer not-a-jwt"), 401, ReasonMalformed, "invalid_token", challengeInvalid, ""},
		{"four segments", req("", "authorization", "Bearer "+good+".x"), 401, ReasonMalformed, "invalid_token", challengeInvalid, ""},
		{"bad signature", req("", "authorization", "Bearer "+parts[0]+"."+parts[1]+"."+otherSig), 401, ReasonBadSignature, "invalid_token", challengeInvalid, "main"},
		{"expired", req("", "authorization", "Bearer "+expired), 401, ReasonExpired, "invalid_token", challengeExpired, "main"},
		{"issued in the future", req("", "authorization", "Bearer "+future), 401, ReasonNotYetValid, "invalid_token",
			`Bearer realm="example", error="invalid_token", error_description="The access token is not yet valid"`, "main"},
		{"wrong audience", req("", "authorization", "Bearer "+wrongAud), 401, ReasonAudMismatch, "invalid_token", challengeInvalid, "main"},
		{"unknown issuer", req("", "authorization", "Bearer "+unknownIss), 401, ReasonIssuerUnknown, "invalid_token", challengeInvalid, ""},
		{"claim with CR LF", req("", "authorization", "Bearer "+crlf), 401, ReasonUnsafeClaimValue, "invalid_token", challengeInvalid, "main"},
		{"claim with LF", req("", "authorization", "Bearer "+lf), 401, ReasonUnsafeClaimValue, "invalid_token", challengeInvalid, "main"},
		{"array claim with NUL", req("", "authorization", "Bearer "+nul), 401, ReasonUnsafeClaimValue, "invalid_token", challengeInvalid, "main"},
		{"claim with DEL", req("", "authorization", "Bearer "+del), 401, ReasonUnsafeClaimValue, "invalid_token", challengeInvalid, "main"},
		// jwt-security.md X7 and the location rule: main's token where only partner looks.
		{"main token in partner's query param", req("access_token=" + good), 401, ReasonIssuerUnknown, "invalid_token", challengeInvalid, "main"},
		// partner's token where only main looks.
		{"partner token in authorization", req("", "authorization", "Bearer "+partnerTok), 401, ReasonIssuerUnknown, "invalid_token", challengeInvalid, "partner"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, a, c.r)
			if d.Allow || d.Shadow {
				t.Fatalf("allowed: %+v", d)
			}
			if d.Status != c.status || d.Reason != c.reason || d.ErrorCode != c.errorCode || d.Challenge != c.challenge || d.Provider != c.provider {
				t.Errorf("got  status=%d reason=%s error=%s provider=%q challenge=%s\nwant status=%d reason=%s error=%s provider=%q challenge=%s",
					d.Status, d.Reason, d.ErrorCode, d.Provider, d.Challenge, c.status, c.reason, c.errorCode, c.provider, c.challenge)
			}
			if d.Description == "" {
				t.Error("no description")
			}
			if len(d.SetHeaders) != 0 || d.Subject != "" || d.Payloads != nil || d.RetryAfter != 0 {
				t.Errorf("a deny carries identity or retry data: %+v", d)
			}
		})
	}
}

// TestDecideKeysUnavailable: a provider without usable keys answers 503 with Retry-After of at
// least one second and no challenge (the token is not at fault).
func TestDecideKeysUnavailable(t *testing.T) {
	tok := mint(t, issDown, devissuer.TokenRequest{Sub: "alice"})
	for _, c := range []struct {
		name  string
		after func() time.Duration
		want  time.Duration
	}{
		{"no estimate", nil, time.Second},
		{"estimate below a second", func() time.Duration { return 200 * time.Millisecond }, time.Second},
		{"negative estimate", func() time.Duration { return -time.Minute }, time.Second},
		{"estimate", func() time.Duration { return 30 * time.Second }, 30 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := newAuthorizer(t, setup{retryAfter: c.after})
			d := decide(t, a, req("", "authorization", "Bearer "+tok))
			if d.Allow || d.Status != 503 || d.Reason != ReasonKeysUnavailable || d.ErrorCode != "temporarily_unavailable" || d.Challenge != "" || d.Provider != "down" {
				t.Errorf("got %+v", d)
			}
			if d.RetryAfter != c.want {
				t.Errorf("RetryAfter = %v, want %v", d.RetryAfter, c.want)
			}
		})
	}
}

// TestDecideAllow: the identity projection, the strip list and the metadata of an allow.
func TestDecideAllow(t *testing.T) {
	full := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read write", Extra: map[string]any{
		"email":   "alice@example.com",
		"groups":  []any{"admins", "dev ops", 7, true},
		"address": map[string]any{"zip": "75001", "city": "Paris", "geo": []any{48.85, 2.35}},
		"level":   42,
	}})
	fullPayload, err := base64.RawURLEncoding.DecodeString(strings.Split(full, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	minimal := mint(t, issMain, devissuer.TokenRequest{Sub: "bob"})
	minimalPayload, _ := base64.RawURLEncoding.DecodeString(strings.Split(minimal, ".")[1])
	noSub := mint(t, issMain, devissuer.TokenRequest{Extra: map[string]any{"sub": nil, "email": ""}})
	noSubPayload, _ := base64.RawURLEncoding.DecodeString(strings.Split(noSub, ".")[1])
	partner := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1", Alg: "RS256"})
	rs := mint(t, issMain, devissuer.TokenRequest{Sub: "carol", Alg: "RS256"})
	rsPayload, _ := base64.RawURLEncoding.DecodeString(strings.Split(rs, ".")[1])

	b64 := base64.RawURLEncoding.EncodeToString
	cases := []struct {
		name        string
		s           setup
		r           *Request
		set         []Header
		remove      []string
		removeQuery []string
		provider    string
		subject     string
	}{
		{
			name: "every projection",
			r:    req("page=2", "authorization", "Bearer "+full, "x-user-id", "mallory"),
			set: []Header{
				{"x-user-id", "alice"},
				{"x-user-email", "alice@example.com"},
				{"x-user-scopes", "read write"},
				{"x-user-groups", "admins,dev ops,7,true"},
				{"x-user-address", `{"city":"Paris","geo":[48.85,2.35],"zip":"75001"}`},
				{"x-user-level", "42"},
				{"x-jwt-payload", b64(fullPayload)},
			},
			remove:   []string{"x-partner-id", "authorization"},
			provider: "main", subject: "alice",
		},
		{
			name:     "unset claims are stripped",
			r:        req("", "authorization", "bearer   "+minimal),
			set:      []Header{{"x-user-id", "bob"}, {"x-jwt-payload", b64(minimalPayload)}},
			remove:   []string{"x-partner-id", "x-user-address", "x-user-email", "x-user-groups", "x-user-level", "x-user-scopes", "authorization"},
			provider: "main", subject: "bob",
		},
		{
			name:     "null sub and empty email set nothing",
			r:        req("", "authorization", "Bearer "+noSub),
			set:      []Header{{"x-jwt-payload", b64(noSubPayload)}},
			remove:   []string{"x-partner-id", "x-user-address", "x-user-email", "x-user-groups", "x-user-id", "x-user-level", "x-user-scopes", "authorization"},
			provider: "main",
		},
		{
			name:     "forward keeps the token header",
			s:        setup{forwardMain: true},
			r:        req("", "authorization", "Bearer "+rs),
			set:      []Header{{"x-user-id", "carol"}, {"x-jwt-payload", b64(rsPayload)}},
			remove:   []string{"x-partner-id", "x-user-address", "x-user-email", "x-user-groups", "x-user-level", "x-user-scopes"},
			provider: "main", subject: "carol",
		},
		{
			name:        "token in a query parameter",
			r:           req("page=2&access_token="+partner+"&x=1", "x-partner-id", "spoofed"),
			set:         []Header{{"x-partner-id", "p1"}},
			remove:      allIdentityExcept("x-partner-id"),
			removeQuery: []string{"access_token"},
			provider:    "partner", subject: "p1",
		},
		{
			// Cookies are left alone (envoy-notes R6): removing the cookie header would drop
			// the client's other cookies too.
			name:     "token in a cookie",
			r:        req("", "cookie", "theme=dark; session_token="+partner),
			set:      []Header{{"x-partner-id", "p1"}},
			remove:   allIdentityExcept("x-partner-id"),
			provider: "partner", subject: "p1",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, newAuthorizer(t, c.s), c.r)
			if !d.Allow || d.Shadow || d.Status != 200 || d.Reason != ReasonOK || d.ErrorCode != "" || d.Challenge != "" {
				t.Fatalf("not a plain allow: %+v", d)
			}
			if !reflect.DeepEqual(d.SetHeaders, c.set) {
				t.Errorf("SetHeaders\n got %q\nwant %q", d.SetHeaders, c.set)
			}
			if !reflect.DeepEqual(d.RemoveHeaders, c.remove) {
				t.Errorf("RemoveHeaders\n got %q\nwant %q", d.RemoveHeaders, c.remove)
			}
			if !reflect.DeepEqual(d.RemoveQueryParams, c.removeQuery) {
				t.Errorf("RemoveQueryParams = %q, want %q", d.RemoveQueryParams, c.removeQuery)
			}
			if d.Provider != c.provider || d.Subject != c.subject {
				t.Errorf("provider/sub = %q/%q, want %q/%q", d.Provider, d.Subject, c.provider, c.subject)
			}
			// Never set and removed at once: Envoy removes last, which would drop our value.
			for _, h := range d.SetHeaders {
				for _, r := range d.RemoveHeaders {
					if h.Name == r {
						t.Errorf("%s is both set and removed", r)
					}
				}
			}
			// Every identity header is either set or removed.
			covered := map[string]bool{}
			for _, h := range d.SetHeaders {
				covered[h.Name] = true
			}
			for _, r := range d.RemoveHeaders {
				covered[r] = true
			}
			for _, h := range allIdentity {
				if !covered[h] {
					t.Errorf("identity header %s neither set nor removed", h)
				}
			}
		})
	}
}

func allIdentityExcept(h string) []string {
	var out []string
	for _, x := range allIdentity {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}

// TestForwardPayloadIsTheSignedPayload: the header decodes to the payload bytes exactly as
// signed, and payload_in_metadata carries the same claims.
func TestForwardPayloadIsTheSignedPayload(t *testing.T) {
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read", Extra: map[string]any{"n": 1.5}})
	d := decide(t, newAuthorizer(t, setup{}), req("", "authorization", "Bearer "+tok))
	var payload string
	for _, h := range d.SetHeaders {
		if h.Name == "x-jwt-payload" {
			payload = h.Value
		}
	}
	if payload != strings.Split(tok, ".")[1] {
		t.Errorf("x-jwt-payload = %q, want the token's payload segment %q", payload, strings.Split(tok, ".")[1])
	}
	if len(d.Payloads) != 1 || d.Payloads[0].Key != "jwt_payload" || d.Payloads[0].Claims["sub"] != "alice" || d.Payloads[0].Claims["scope"] != "read" || d.Payloads[0].Claims["iss"] != issMain {
		t.Errorf("metadata payloads = %+v", d.Payloads)
	}
	if d.Issuer != issMain {
		t.Errorf("Issuer = %q", d.Issuer)
	}
}

// TestPayloadInMetadataOff: a provider without payload_in_metadata puts no claims in the decision.
func TestPayloadInMetadataOff(t *testing.T) {
	tok := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	d := decide(t, newAuthorizer(t, setup{}), req("access_token="+tok))
	if !d.Allow || d.Payloads != nil {
		t.Errorf("got %+v", d)
	}
}

func TestTokenTooLarge(t *testing.T) {
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"pad": strings.Repeat("x", 600)}})
	a := newAuthorizer(t, setup{maxTokenBytes: 512})
	d := decide(t, a, req("", "authorization", "Bearer "+tok))
	if d.Allow || d.Status != 401 || d.Reason != ReasonTokenTooLarge || d.Challenge != challengeTooLarge {
		t.Errorf("got %+v", d)
	}
}

func TestCORSPreflight(t *testing.T) {
	preflight := func(kv ...string) *Request {
		r := req("", kv...)
		r.Method = "OPTIONS"
		return r
	}
	cases := []struct {
		name  string
		cors  bool
		r     *Request
		allow bool
	}{
		{"allowed preflight", true, preflight("origin", "https://app.example.com", "access-control-request-method", "POST", "x-user-id", "spoof"), true},
		{"preflight without origin", true, preflight("access-control-request-method", "POST"), false},
		{"preflight without request method", true, preflight("origin", "https://app.example.com"), false},
		{"GET with CORS headers", true, req("", "origin", "https://app.example.com", "access-control-request-method", "POST"), false},
		{"cors_preflight off", false, preflight("origin", "https://app.example.com", "access-control-request-method", "POST"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, newAuthorizer(t, setup{cors: c.cors}), c.r)
			if d.Allow != c.allow {
				t.Fatalf("Allow = %v, want %v: %+v", d.Allow, c.allow, d)
			}
			if !c.allow {
				if d.Reason != ReasonMissingToken || d.Challenge != challengeMissing {
					t.Errorf("got %+v", d)
				}
				return
			}
			if d.Reason != ReasonCORSPreflight || d.Status != 200 || len(d.SetHeaders) != 0 || d.Provider != "" {
				t.Errorf("got %+v", d)
			}
			// A preflight that skips the check still strips spoofed identity.
			if !reflect.DeepEqual(d.RemoveHeaders, allIdentity) {
				t.Errorf("RemoveHeaders = %q, want %q", d.RemoveHeaders, allIdentity)
			}
		})
	}
}

// TestShadow: shadow mode turns each deny into an allow that carries the deny's reason, sets no
// identity and strips all of it; an allow stays an ordinary allow.
func TestShadow(t *testing.T) {
	a := newAuthorizer(t, setup{shadow: true, retryAfter: func() time.Duration { return time.Minute }})
	expired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour})
	crlf := mint(t, issMain, devissuer.TokenRequest{Sub: "alice\r\n"})
	down := mint(t, issDown, devissuer.TokenRequest{Sub: "alice"})
	for _, c := range []struct {
		name     string
		r        *Request
		reason   Reason
		provider string
	}{
		{"missing", req("", "x-user-id", "spoof"), ReasonMissingToken, ""},
		{"two tokens", req("", "authorization", "Bearer a,Bearer b"), ReasonMultipleTokens, ""},
		{"expired", req("", "authorization", "Bearer "+expired), ReasonExpired, "main"},
		{"unsafe claim", req("", "authorization", "Bearer "+crlf), ReasonUnsafeClaimValue, "main"},
		{"keys unavailable", req("", "authorization", "Bearer "+down), ReasonKeysUnavailable, "down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, a, c.r)
			want := Decision{Allow: true, Shadow: true, Status: 200, Reason: c.reason, Provider: c.provider, RemoveHeaders: allIdentity}
			if !reflect.DeepEqual(d, want) {
				t.Errorf("got  %+v\nwant %+v", d, want)
			}
		})
	}
	t.Run("valid token", func(t *testing.T) {
		tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice"})
		d := decide(t, a, req("", "authorization", "Bearer "+tok))
		if !d.Allow || d.Shadow || d.Reason != ReasonOK || len(d.SetHeaders) == 0 || d.SetHeaders[0] != (Header{"x-user-id", "alice"}) {
			t.Errorf("got %+v", d)
		}
	})
}

// TestNewNormalisesHeaderNames: names reach the wire lower-case, whatever the caller passed,
// and the caller's slices are left alone.
func TestNewNormalisesHeaderNames(t *testing.T) {
	v, err := token.NewVerifier([]*token.Provider{{
		Name: "main", Issuer: issMain, Audiences: []string{audience}, Algorithms: []string{"EdDSA"},
		TokenTypes: []string{"JWT"}, ClockSkew: time.Minute, Keys: staticKeys(t, issMain),
	}}, token.Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	sources := []token.Source{{Kind: token.FromHeader, Name: "Authorization", Prefix: "Bearer "}}
	claims := []ClaimHeader{{Claim: "sub", Header: "X-User-Id"}}
	a, err := New(Options{
		Verifier: v, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return testNow },
		Providers: []Provider{{Name: "main", Sources: sources, ClaimToHeaders: claims, ForwardPayloadHeader: "X-Jwt"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice"})
	d := decide(t, a, req("", "authorization", "Bearer "+tok))
	if !d.Allow || d.SetHeaders[0] != (Header{"x-user-id", "alice"}) || d.SetHeaders[1].Name != "x-jwt" {
		t.Errorf("got %+v", d)
	}
	if !reflect.DeepEqual(d.RemoveHeaders, []string{"authorization"}) {
		t.Errorf("RemoveHeaders = %q", d.RemoveHeaders)
	}
	if got := a.IdentityHeaders(); !reflect.DeepEqual(got, []string{"x-jwt", "x-user-id"}) {
		t.Errorf("IdentityHeaders = %q", got)
	}
	if sources[0].Name != "Authorization" || claims[0].Header != "X-User-Id" {
		t.Error("New modified the caller's slices")
	}
}

// TestSharedTokenHeader: two providers reading Authorization, one spelling the scheme "Bearer "
// and the other "bearer ", share one source: each provider's token is allowed, where reading the
// header twice would deny every request as multiple_tokens. Prefixes that overlap are refused.
func TestSharedTokenHeader(t *testing.T) {
	now := func() time.Time { return testNow }
	tp := func(name, iss string) *token.Provider {
		return &token.Provider{Name: name, Issuer: iss, Audiences: []string{audience}, Algorithms: []string{"EdDSA"},
			TokenTypes: []string{"JWT"}, ClockSkew: time.Minute, Keys: staticKeys(t, iss)}
	}
	v, err := token.NewVerifier([]*token.Provider{tp("a", issMain), tp("b", issPartner)}, token.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	header := func(prefix string) []token.Source {
		return []token.Source{{Kind: token.FromHeader, Name: "authorization", Prefix: prefix}}
	}
	a, err := New(Options{Verifier: v, Now: now, Logger: slog.New(slog.DiscardHandler), Providers: []Provider{
		{Name: "a", Sources: header("Bearer ")},
		{Name: "b", Sources: header("bearer ")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for iss, prov := range map[string]string{issMain: "a", issPartner: "b"} {
		d := decide(t, a, req("", "authorization", "BEARER "+mint(t, iss, devissuer.TokenRequest{Sub: "alice"})))
		if !d.Allow || d.Provider != prov || !reflect.DeepEqual(d.RemoveHeaders, []string{"authorization"}) {
			t.Errorf("%s: %+v", prov, d)
		}
	}
	for _, pair := range [][2]string{{"Bearer ", ""}, {"Bearer ", "Bearer"}, {"", "Token "}} {
		_, err := New(Options{Verifier: v, Providers: []Provider{{Name: "a", Sources: header(pair[0])}, {Name: "b", Sources: header(pair[1])}}})
		if err == nil {
			t.Errorf("prefixes %q and %q on one header accepted", pair[0], pair[1])
		}
	}
	if _, err := New(Options{Verifier: v, Providers: []Provider{{Name: "a", Sources: header("Bearer ")}, {Name: "b", Sources: header("Token ")}}}); err != nil {
		t.Errorf("distinct schemes refused: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	v, err := token.NewVerifier(nil, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"no verifier":    {},
		"quote in realm": {Verifier: v, Realm: `a"b`},
		"CR in realm":    {Verifier: v, Realm: "a\r\nb"},
		"duplicate":      {Verifier: v, Providers: []Provider{{Name: "a"}, {Name: "a"}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	a, err := New(Options{Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	if d := decide(t, a, req("")); d.Challenge != `Bearer realm="jwtauthz"` {
		t.Errorf("default realm: %q", d.Challenge)
	}
}

type observation struct {
	transport, decision string
	reason              Reason
	provider            string
}

type recorder struct {
	mu  sync.Mutex
	got []observation
}

func (r *recorder) ObserveDecision(transport, decision string, reason Reason, provider string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, observation{transport, decision, reason, provider})
}

// TestObserver: metric labels come from fixed sets: decision allow/deny/shadow_deny, provider a
// configured name or "none".
func TestObserver(t *testing.T) {
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice"})
	rec := &recorder{}
	a := newAuthorizer(t, setup{observer: rec})
	decide(t, a, req("", "authorization", "Bearer "+tok))
	decide(t, a, req(""))
	shadowRec := &recorder{}
	decide(t, newAuthorizer(t, setup{observer: shadowRec, shadow: true}), req(""))
	want := []observation{{"grpc", "allow", ReasonOK, "main"}, {"grpc", "deny", ReasonMissingToken, "none"}}
	if !reflect.DeepEqual(rec.got, want) {
		t.Errorf("observed %v, want %v", rec.got, want)
	}
	if want := []observation{{"grpc", "shadow_deny", ReasonMissingToken, "none"}}; !reflect.DeepEqual(shadowRec.got, want) {
		t.Errorf("shadow observed %v, want %v", shadowRec.got, want)
	}
}

// TestTokensNeverLogged: decision logs carry the reason and never the token, the query string or
// the identity values beyond sub.
func TestTokensNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := newAuthorizer(t, setup{logger: logger})
	good := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"email": "secret@example.com"}})
	expired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour})
	partner := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	r := req("", "authorization", "Bearer "+good)
	r.RequestID = "req-1"
	decide(t, a, r)
	decide(t, a, req("", "authorization", "Bearer "+expired))
	decide(t, a, req("access_token="+partner))
	decide(t, a, req("", "authorization", "Bearer "+good+",Bearer "+expired))
	out := buf.String()
	if n := strings.Count(out, `"msg":"decision"`); n != 4 {
		t.Errorf("%d decision lines, want 4:\n%s", n, out)
	}
	for _, secret := range []string{good, expired, partner, strings.Split(good, ".")[1], strings.Split(partner, ".")[2], "access_token", "secret@example.com"} {
		if strings.Contains(out, secret) {
			t.Errorf("log holds %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{`"reason":"expired"`, `"request_id":"req-1"`, `"sub":"alice"`, `"reason":"multiple_tokens"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestDecideConcurrent: one Authorizer serves many checks at once (run with -race).
func TestDecideConcurrent(t *testing.T) {
	a := newAuthorizer(t, setup{})
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice"})
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Go(func() {
			for j := 0; j < 20; j++ {
				r := req("", "authorization", "Bearer "+tok)
				if j%2 == 1 {
					r = req("")
				}
				d := a.Decide(context.Background(), r)
				if d.Allow != (j%2 == 0) {
					t.Errorf("concurrent decision %d: %+v", j, d)
				}
			}
		})
	}
	wg.Wait()
}
