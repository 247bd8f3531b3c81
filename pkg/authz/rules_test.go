package authz

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
)

// Challenges of the 403 rows (contract.md "Decisions on the wire"), for realm "example".
const (
	challengeClaims    = `Bearer realm="example", error="insufficient_scope"`
	challengeAmbiguous = `Bearer realm="example", error="invalid_request", error_description="The request path is ambiguous"`
)

func challengeScope(scopes string) string {
	return `Bearer realm="example", error="insufficient_scope", scope="` + scopes + `"`
}

// testRules is the rule set of the decision tests, over providers main (Authorization:
// Bearer), partner (?access_token=, session_token cookie) and down (keys never loaded).
var testRules = []policy.RuleSpec{
	{Match: policy.MatchSpec{PathSeparatedPrefix: "/healthz"}},
	{Match: policy.MatchSpec{Prefix: "/admin"}, Requires: &policy.RequirementSpec{Provider: "main", Scopes: []string{"admin"}}},
	{Match: policy.MatchSpec{Prefix: "/ops"}, Requires: &policy.RequirementSpec{Provider: "main", Claims: map[string][]any{"role": {"admin", "owner"}}}},
	{Match: policy.MatchSpec{Prefix: "/mfa"}, Requires: &policy.RequirementSpec{Provider: "main", Claims: map[string][]any{"mfa": {true}}}},
	{Match: policy.MatchSpec{Prefix: "/tier"}, Requires: &policy.RequirementSpec{Provider: "main", Claims: map[string][]any{"tier": {float64(2)}}}},
	{Match: policy.MatchSpec{Path: "/feed"}, Requires: &policy.RequirementSpec{Any: []*policy.RequirementSpec{{Provider: "main"}, {Provider: "partner"}}, AllowMissing: true}},
	{Match: policy.MatchSpec{Prefix: "/partner"}, Requires: &policy.RequirementSpec{Any: []*policy.RequirementSpec{{Provider: "main"}, {Provider: "partner"}}}},
	{Match: policy.MatchSpec{Prefix: "/both"}, Requires: &policy.RequirementSpec{All: []*policy.RequirementSpec{{Provider: "main"}, {Provider: "partner"}}}},
	{Match: policy.MatchSpec{Prefix: "/optional"}, Requires: &policy.RequirementSpec{Provider: "main", AllowMissing: true}},
}

// at is req with a path and optional context extensions.
func at(path string, ext map[string]string, query string, kv ...string) *Request {
	r := req(query, kv...)
	r.Path = path
	r.ContextExtensions = ext
	return r
}

// TestDecideRules runs each requirement of testRules with valid, missing, expired and
// wrong-issuer tokens (and the other provider's), pinning status, reason, body error, the
// exact WWW-Authenticate and the provider.
func TestDecideRules(t *testing.T) {
	a := newAuthorizer(t, setup{rules: testRules})
	m := func(r devissuer.TokenRequest) string { return mint(t, issMain, r) }
	mainAdmin := m(devissuer.TokenRequest{Sub: "alice", Scope: "read admin"})
	mainRead := m(devissuer.TokenRequest{Sub: "alice", Scope: "read"})
	scpString := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"scp": "admin"}})
	scpArray := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"scp": []any{"read", "admin"}}})
	roleOwner := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"role": "owner"}})
	roleArray := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"role": []any{"viewer", "admin"}}})
	roleViewer := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"role": []any{"viewer"}}})
	mfaTrue := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"mfa": true}})
	mfaString := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"mfa": "true"}})
	tier2 := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"tier": 2}})
	tier3 := m(devissuer.TokenRequest{Sub: "alice", Extra: map[string]any{"tier": 3}})
	mainExpired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", Scope: "admin", TTL: time.Hour})
	wrongIss := mint(t, issOther, devissuer.TokenRequest{Sub: "alice", Scope: "admin"})
	partner := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	partnerAdmin := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1", Scope: "admin"})
	partnerExpired := mintAt(t, issPartner, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "p1", TTL: time.Hour})
	down := mint(t, issDown, devissuer.TokenRequest{Sub: "alice"})

	bearer := func(tok string) []string { return []string{"authorization", "Bearer " + tok} }
	type want struct {
		status    int
		reason    Reason
		errorCode string
		challenge string
		provider  string
	}
	allowOK := func(provider string) want { return want{200, ReasonOK, "", "", provider} }
	notRequired := want{200, ReasonNotRequired, "", "", ""}
	missing := want{401, ReasonMissingToken, "unauthorized", challengeMissing, ""}
	expired := func(provider string) want {
		return want{401, ReasonExpired, "invalid_token", challengeExpired, provider}
	}
	wrongIssuer := want{401, ReasonIssuerUnknown, "invalid_token", challengeInvalid, ""}
	scope := func(s string) want {
		return want{403, ReasonInsufficientScope, "insufficient_scope", challengeScope(s), "main"}
	}
	claims := want{403, ReasonClaimsNotAllowed, "insufficient_scope", challengeClaims, "main"}

	cases := []struct {
		name  string
		path  string
		query string
		kv    []string
		want  want
	}{
		// A rule without requires: no token needed, whatever the request carries.
		{"public, no token", "/healthz", "", nil, notRequired},
		{"public, valid token", "/healthz/live", "", bearer(mainAdmin), notRequired},
		{"public, expired token", "/healthz", "", bearer(mainExpired), notRequired},
		{"public, wrong issuer", "/healthz", "", bearer(wrongIss), notRequired},

		// scopes
		{"scopes: scope string", "/admin/users", "", bearer(mainAdmin), allowOK("main")},
		{"scopes: scp string", "/admin", "", bearer(scpString), allowOK("main")},
		{"scopes: scp array", "/admin", "", bearer(scpArray), allowOK("main")},
		{"scopes: valid token lacking the scope", "/admin", "", bearer(mainRead), scope("admin")},
		{"scopes: missing", "/admin", "", nil, missing},
		{"scopes: expired", "/admin", "", bearer(mainExpired), expired("main")},
		{"scopes: wrong issuer", "/admin", "", bearer(wrongIss), wrongIssuer},
		{"scopes: the other provider's token, where main does not look", "/admin", "access_token=" + partnerAdmin, nil, missing},

		// claims
		{"claims: string equal", "/ops", "", bearer(roleOwner), allowOK("main")},
		{"claims: array contains", "/ops", "", bearer(roleArray), allowOK("main")},
		{"claims: array lacks", "/ops", "", bearer(roleViewer), claims},
		{"claims: claim absent", "/ops", "", bearer(mainAdmin), claims},
		{"claims: bool", "/mfa", "", bearer(mfaTrue), allowOK("main")},
		{"claims: bool as a string is not a bool", "/mfa", "", bearer(mfaString), claims},
		{"claims: number", "/tier", "", bearer(tier2), allowOK("main")},
		{"claims: other number", "/tier", "", bearer(tier3), claims},
		{"claims: missing", "/ops", "", nil, missing},
		{"claims: expired", "/ops", "", bearer(mainExpired), expired("main")},
		{"claims: wrong issuer", "/ops", "", bearer(wrongIss), wrongIssuer},

		// any
		{"any: main", "/partner", "", bearer(mainRead), allowOK("main")},
		{"any: partner", "/partner", "access_token=" + partner, nil, allowOK("partner")},
		{"any: missing", "/partner", "", nil, missing},
		{"any: main expired", "/partner", "", bearer(mainExpired), expired("main")},
		{"any: partner expired", "/partner", "access_token=" + partnerExpired, nil, expired("partner")},
		{"any: wrong issuer", "/partner", "", bearer(wrongIss), wrongIssuer},
		{"any: still one credential per request", "/partner", "access_token=" + partner, bearer(mainExpired),
			want{400, ReasonMultipleTokens, "invalid_request", challengeMultiple, ""}},

		// all
		{"all: main only", "/both", "", bearer(mainRead), want{401, ReasonMissingToken, "unauthorized", challengeMissing, "main"}},
		{"all: partner only", "/both", "access_token=" + partner, nil, missing},
		{"all: missing", "/both", "", nil, missing},
		{"all: main valid, partner expired", "/both", "access_token=" + partnerExpired, bearer(mainRead), expired("main")},
		{"all: main expired, partner valid", "/both", "access_token=" + partner, bearer(mainExpired), expired("main")},
		{"all: wrong issuer, partner valid", "/both", "access_token=" + partner, bearer(wrongIss), wrongIssuer},

		// allow_missing on any
		{"allow_missing any: no token", "/feed", "", nil, notRequired},
		{"allow_missing any: main", "/feed", "", bearer(mainRead), allowOK("main")},
		{"allow_missing any: partner", "/feed", "access_token=" + partner, nil, allowOK("partner")},
		{"allow_missing any: expired", "/feed", "", bearer(mainExpired), expired("main")},
		{"allow_missing any: partner expired", "/feed", "access_token=" + partnerExpired, nil, expired("partner")},
		{"allow_missing any: wrong issuer", "/feed", "", bearer(wrongIss), wrongIssuer},
		{"allow_missing any: another scheme counts as no token", "/feed", "", []string{"authorization", "Basic YTpi"}, notRequired},
		{"allow_missing any: malformed credential", "/feed", "", []string{"authorization", "Bearer "},
			want{400, ReasonMalformedAuthz, "invalid_request", challengeMalformed, ""}},

		// allow_missing on one provider
		{"allow_missing provider: no token", "/optional", "", nil, notRequired},
		{"allow_missing provider: valid", "/optional", "", bearer(mainRead), allowOK("main")},
		{"allow_missing provider: expired", "/optional", "", bearer(mainExpired), expired("main")},
		{"allow_missing provider: wrong issuer", "/optional", "", bearer(wrongIss), wrongIssuer},

		// No rule matches: a valid token from any provider.
		{"default: main", "/orders", "", bearer(mainRead), allowOK("main")},
		{"default: partner", "/orders", "access_token=" + partner, nil, allowOK("partner")},
		{"default: missing", "/orders", "", nil, missing},
		{"default: expired", "/orders", "", bearer(mainExpired), expired("main")},
		{"default: wrong issuer", "/orders", "", bearer(wrongIss), wrongIssuer},
		{"default: keys unavailable", "/orders", "", bearer(down), want{503, ReasonKeysUnavailable, "temporarily_unavailable", "", "down"}},

		// Path edge cases: see policy.TestMatchRequestPaths for the whole table.
		{"ambiguous path", "//admin", "", bearer(mainRead), want{400, ReasonAmbiguousPath, "invalid_request", challengeAmbiguous, ""}},
		{"ambiguous path through a public rule", "/healthz/../admin", "", nil, want{400, ReasonAmbiguousPath, "invalid_request", challengeAmbiguous, ""}},
		{"trailing slash is significant", "/feed/", "", nil, missing},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, a, at(c.path, nil, c.query, c.kv...))
			w := c.want
			if d.Allow != (w.status == 200) || d.Status != w.status || d.Reason != w.reason || d.ErrorCode != w.errorCode || d.Challenge != w.challenge || d.Provider != w.provider {
				t.Fatalf("got status %d reason %s error %q challenge %q provider %q\nwant status %d reason %s error %q challenge %q provider %q",
					d.Status, d.Reason, d.ErrorCode, d.Challenge, d.Provider, w.status, w.reason, w.errorCode, w.challenge, w.provider)
			}
			if !d.Allow {
				if d.SetHeaders != nil || d.RemoveHeaders != nil {
					t.Errorf("a deny carries header changes: %+v", d)
				}
				return
			}
			if d.Reason == ReasonNotRequired {
				// No identity, and every identity header stripped.
				if len(d.SetHeaders) != 0 || d.Subject != "" || d.Payloads != nil || !reflect.DeepEqual(d.RemoveHeaders, allIdentity) {
					t.Errorf("not_required allow: set %q remove %q payloads %v", d.SetHeaders, d.RemoveHeaders, d.Payloads)
				}
			}
		})
	}
}

// TestPublicRuleStripsIdentity: a rule without requires sets no identity header even with a
// valid token, removes every identity header (spoofed or not), and leaves the token header
// alone (nothing was verified, nothing is consumed).
func TestPublicRuleStripsIdentity(t *testing.T) {
	a := newAuthorizer(t, setup{rules: testRules})
	tok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "admin"})
	d := decide(t, a, at("/healthz", nil, "", "authorization", "Bearer "+tok, "x-user-id", "mallory", "x-partner-id", "p0"))
	if !d.Allow || d.Reason != ReasonNotRequired || d.Provider != "" || d.Subject != "" || d.Issuer != "" {
		t.Fatalf("got %+v", d)
	}
	if d.SetHeaders != nil || d.Payloads != nil || d.RemoveQueryParams != nil {
		t.Errorf("identity leaked: %+v", d)
	}
	if !reflect.DeepEqual(d.RemoveHeaders, allIdentity) {
		t.Errorf("RemoveHeaders = %q, want %q", d.RemoveHeaders, allIdentity)
	}
}

// TestAllTwoProviders: all across main (Authorization) and partner (x-partner-token): both
// identities' headers are set, both token headers removed, the rest of the identity stripped.
func TestAllTwoProviders(t *testing.T) {
	a := newAuthorizer(t, setup{rules: testRules, partnerHeader: true})
	mainTok := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read"})
	partnerTok := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	payload := strings.Split(mainTok, ".")[1]

	d := decide(t, a, at("/both/x", nil, "", "authorization", "Bearer "+mainTok, "x-partner-token", partnerTok, "x-partner-id", "spoofed"))
	if !d.Allow || d.Reason != ReasonOK || d.Provider != "main" || d.Subject != "alice" || d.Issuer != issMain {
		t.Fatalf("got %+v", d)
	}
	wantSet := []Header{{"x-user-id", "alice"}, {"x-user-scopes", "read"}, {"x-jwt-payload", payload}, {"x-partner-id", "p1"}}
	if !reflect.DeepEqual(d.SetHeaders, wantSet) {
		t.Errorf("SetHeaders\n got %q\nwant %q", d.SetHeaders, wantSet)
	}
	wantRemove := []string{"x-user-address", "x-user-email", "x-user-groups", "x-user-level", "authorization", "x-partner-token"}
	if !reflect.DeepEqual(d.RemoveHeaders, wantRemove) {
		t.Errorf("RemoveHeaders\n got %q\nwant %q", d.RemoveHeaders, wantRemove)
	}
	if len(d.Payloads) != 1 || d.Payloads[0].Key != "jwt_payload" || d.Payloads[0].Claims["sub"] != "alice" {
		t.Errorf("Payloads %+v", d.Payloads)
	}

	// Each provider reads only its own location: partner's token in Authorization is not
	// partner's credential for this rule, and is main's wrong token.
	d = decide(t, a, at("/both", nil, "", "authorization", "Bearer "+partnerTok, "x-partner-token", partnerTok))
	if d.Allow || d.Status != 401 || d.Reason != ReasonIssuerUnknown {
		t.Errorf("partner token in main's header: %+v", d)
	}
	// Two credentials for one provider are still a 400.
	d = decide(t, a, at("/both", nil, "access_token="+partnerTok, "authorization", "Bearer "+mainTok, "x-partner-token", partnerTok))
	if d.Allow || d.Status != 400 || d.Reason != ReasonMultipleTokens {
		t.Errorf("two partner credentials: %+v", d)
	}
}

// TestContextExtensions: Envoy's per-route settings override the matched rule; anything
// jwtauthz cannot read is a 403 route_misconfigured with no challenge, never an allow.
func TestContextExtensions(t *testing.T) {
	a := newAuthorizer(t, setup{rules: testRules})
	mainAdmin := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read admin"})
	mainRead := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read"})
	mainExpired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour})
	partner := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1"})
	partnerAdmin := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1", Scope: "admin"})
	bearer := func(tok string) []string { return []string{"authorization", "Bearer " + tok} }

	type want struct {
		status    int
		reason    Reason
		challenge string
		provider  string
		detail    string // substring of Detail (logs), for route_misconfigured
	}
	misconfigured := func(detail string) want { return want{403, ReasonRouteMisconfigured, "", "", detail} }
	cases := []struct {
		name  string
		path  string
		ext   map[string]string
		query string
		kv    []string
		want  want
	}{
		{"disabled true: no token needed on a scoped rule", "/admin", map[string]string{"jwtauthz.disabled": "true"}, "", nil, want{200, ReasonNotRequired, "", "", ""}},
		{"disabled true wins over an ambiguous path", "//admin", map[string]string{"jwtauthz.disabled": "true"}, "", nil, want{200, ReasonNotRequired, "", "", ""}},
		{"disabled false: the rule applies", "/admin", map[string]string{"jwtauthz.disabled": "false"}, "", nil, want{401, ReasonMissingToken, challengeMissing, "", ""}},
		{"disabled bogus", "/admin", map[string]string{"jwtauthz.disabled": "yes"}, "", bearer(mainAdmin), misconfigured(`jwtauthz.disabled must be "true" or "false", got "yes"`)},
		{"disabled upper case", "/admin", map[string]string{"jwtauthz.disabled": "TRUE"}, "", nil, misconfigured("jwtauthz.disabled")},

		{"provider unknown", "/orders", map[string]string{"jwtauthz.provider": "auth0"}, "", bearer(mainAdmin), misconfigured(`jwtauthz.provider names unknown provider "auth0"`)},
		{"provider empty", "/orders", map[string]string{"jwtauthz.provider": ""}, "", bearer(mainAdmin), misconfigured(`unknown provider ""`)},
		{"provider unknown on a public rule", "/healthz", map[string]string{"jwtauthz.provider": "auth0"}, "", nil, misconfigured("unknown provider")},
		// jwtauthz.provider narrows the matched rule, never replaces it (attack finding F3).
		{"provider keeps the rule's scopes", "/admin", map[string]string{"jwtauthz.provider": "main"}, "", bearer(mainRead), want{403, ReasonInsufficientScope, challengeScope("admin"), "main", ""}},
		{"provider and the rule both met", "/admin", map[string]string{"jwtauthz.provider": "main"}, "", bearer(mainAdmin), want{200, ReasonOK, "", "main", ""}},
		{"provider narrows: the rule's provider is still needed", "/admin", map[string]string{"jwtauthz.provider": "partner"}, "access_token=" + partner, nil, want{401, ReasonMissingToken, challengeMissing, "", ""}},
		{"provider: the named one only", "/admin", map[string]string{"jwtauthz.provider": "partner"}, "", bearer(mainAdmin), want{401, ReasonMissingToken, challengeMissing, "main", ""}},
		{"provider on a public rule needs a token", "/healthz", map[string]string{"jwtauthz.provider": "main"}, "", nil, want{401, ReasonMissingToken, challengeMissing, "", ""}},
		{"provider: an ambiguous path is still refused", "//admin", map[string]string{"jwtauthz.provider": "main"}, "", bearer(mainRead), want{400, ReasonAmbiguousPath, `Bearer realm="example", error="invalid_request", error_description="The request path is ambiguous"`, "", ""}},
		{"provider and scopes, lacking", "/orders", map[string]string{"jwtauthz.provider": "partner", "jwtauthz.scopes": "admin"}, "access_token=" + partner, nil,
			want{403, ReasonInsufficientScope, `Bearer realm="example", error="insufficient_scope", scope="admin"`, "partner", ""}},
		{"provider and scopes, present", "/orders", map[string]string{"jwtauthz.provider": "partner", "jwtauthz.scopes": "admin"}, "access_token=" + partnerAdmin, nil, want{200, ReasonOK, "", "partner", ""}},
		{"provider and allow_missing, no token", "/orders", map[string]string{"jwtauthz.provider": "partner", "jwtauthz.allow_missing": "true"}, "", nil, want{200, ReasonNotRequired, "", "", ""}},
		{"provider and allow_missing, expired", "/orders", map[string]string{"jwtauthz.provider": "main", "jwtauthz.allow_missing": "true"}, "", bearer(mainExpired), want{401, ReasonExpired, challengeExpired, "main", ""}},

		{"scopes on the default", "/orders", map[string]string{"jwtauthz.scopes": "write"}, "", bearer(mainAdmin), want{403, ReasonInsufficientScope, challengeScope("write"), "main", ""}},
		{"scopes add to the rule's", "/admin", map[string]string{"jwtauthz.scopes": "admin write"}, "", bearer(mainAdmin), want{403, ReasonInsufficientScope, challengeScope("admin write"), "main", ""}},
		{"scopes met", "/orders", map[string]string{"jwtauthz.scopes": " read\tadmin "}, "", bearer(mainAdmin), want{200, ReasonOK, "", "main", ""}},
		{"scopes on a public rule need a token", "/healthz", map[string]string{"jwtauthz.scopes": "admin"}, "", nil, want{401, ReasonMissingToken, challengeMissing, "", ""}},
		{"scopes empty: no change", "/orders", map[string]string{"jwtauthz.scopes": ""}, "", bearer(mainRead), want{200, ReasonOK, "", "main", ""}},
		{"scope with a quote", "/orders", map[string]string{"jwtauthz.scopes": `admin"`}, "", bearer(mainAdmin), misconfigured("is not a scope")},

		{"allow_missing true on a scoped rule, no token", "/admin", map[string]string{"jwtauthz.allow_missing": "true"}, "", nil, want{200, ReasonNotRequired, "", "", ""}},
		{"allow_missing true, token lacking the scope", "/admin", map[string]string{"jwtauthz.allow_missing": "true"}, "", bearer(mainRead), want{403, ReasonInsufficientScope, challengeScope("admin"), "main", ""}},
		{"allow_missing true, expired", "/admin", map[string]string{"jwtauthz.allow_missing": "true"}, "", bearer(mainExpired), want{401, ReasonExpired, challengeExpired, "main", ""}},
		{"allow_missing false on an allow_missing rule", "/feed", map[string]string{"jwtauthz.allow_missing": "false"}, "", nil, want{401, ReasonMissingToken, challengeMissing, "", ""}},
		{"allow_missing false, valid token", "/feed", map[string]string{"jwtauthz.allow_missing": "false"}, "", bearer(mainRead), want{200, ReasonOK, "", "main", ""}},
		{"allow_missing bogus", "/feed", map[string]string{"jwtauthz.allow_missing": "1"}, "", nil, misconfigured(`jwtauthz.allow_missing must be "true" or "false", got "1"`)},

		{"unknown jwtauthz key", "/admin", map[string]string{"jwtauthz.scope": "admin"}, "", bearer(mainRead), misconfigured(`unknown context extension "jwtauthz.scope"`)},
		{"unknown jwtauthz key on a public rule", "/healthz", map[string]string{"jwtauthz.allowmissing": "true"}, "", nil, misconfigured(`unknown context extension "jwtauthz.allowmissing"`)},
		{"other services' keys are ignored", "/orders", map[string]string{"team": "payments", "x-jwtauthz.provider": "nope"}, "", bearer(mainRead), want{200, ReasonOK, "", "main", ""}},
		{"no extensions: the rule", "/admin", map[string]string{}, "", bearer(mainRead), want{403, ReasonInsufficientScope, challengeScope("admin"), "main", ""}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := decide(t, a, at(c.path, c.ext, c.query, c.kv...))
			w := c.want
			if d.Allow != (w.status == 200) || d.Status != w.status || d.Reason != w.reason || d.Challenge != w.challenge || d.Provider != w.provider {
				t.Fatalf("got status %d reason %s challenge %q provider %q (%s)\nwant status %d reason %s challenge %q provider %q",
					d.Status, d.Reason, d.Challenge, d.Provider, d.Detail, w.status, w.reason, w.challenge, w.provider)
			}
			if w.reason == ReasonRouteMisconfigured {
				if d.ErrorCode != "access_denied" || d.Body() != `{"error":"access_denied","error_description":"Access denied"}` || d.RetryAfter != 0 {
					t.Errorf("route_misconfigured answer: %+v body %s", d, d.Body())
				}
				if !strings.Contains(d.Detail, w.detail) {
					t.Errorf("Detail %q, want it to contain %q", d.Detail, w.detail)
				}
			}
		})
	}
}

// TestRouteMisconfiguredLogged: the deny is logged at error level with what is wrong (the
// client only sees "access_denied").
func TestRouteMisconfiguredLogged(t *testing.T) {
	var buf bytes.Buffer
	a := newAuthorizer(t, setup{rules: testRules, logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	decide(t, a, at("/orders", map[string]string{"jwtauthz.provider": "auth0"}, ""))
	line := buf.String()
	for _, want := range []string{`"level":"ERROR"`, `"reason":"route_misconfigured"`, `"status":403`, `"detail":"jwtauthz.provider names unknown provider \"auth0\""`} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %s lacks %s", line, want)
		}
	}
}

// TestCORSPreflightOnScopedRule: a preflight passes without a token even where the rule wants
// a scope; the real request that follows is checked.
func TestCORSPreflightOnScopedRule(t *testing.T) {
	preflight := at("/admin/users", nil, "", "origin", "https://app.example.com", "access-control-request-method", "DELETE", "x-user-id", "spoof")
	preflight.Method = "OPTIONS"
	d := decide(t, newAuthorizer(t, setup{rules: testRules, cors: true}), preflight)
	if !d.Allow || d.Reason != ReasonCORSPreflight || len(d.SetHeaders) != 0 || !reflect.DeepEqual(d.RemoveHeaders, allIdentity) {
		t.Errorf("preflight: %+v", d)
	}
	d = decide(t, newAuthorizer(t, setup{rules: testRules}), preflight)
	if d.Allow || d.Reason != ReasonMissingToken {
		t.Errorf("preflight with cors_preflight off: %+v", d)
	}
	real := at("/admin/users", nil, "", "origin", "https://app.example.com")
	real.Method = "DELETE"
	if d := decide(t, newAuthorizer(t, setup{rules: testRules, cors: true}), real); d.Allow || d.Reason != ReasonMissingToken {
		t.Errorf("the real request: %+v", d)
	}
}

// TestRulesConcurrent: one Authorizer with rules, many goroutines (run with -race).
func TestRulesConcurrent(t *testing.T) {
	a := newAuthorizer(t, setup{rules: testRules})
	admin := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "admin"})
	read := mint(t, issMain, devissuer.TokenRequest{Sub: "alice", Scope: "read"})
	done := make(chan string)
	for i := 0; i < 8; i++ {
		go func() {
			msg := ""
			for j := 0; j < 50 && msg == ""; j++ {
				if d := a.Decide(t.Context(), at("/admin", nil, "", "authorization", "Bearer "+admin)); !d.Allow {
					msg = "admin denied: " + string(d.Reason)
				}
				if d := a.Decide(t.Context(), at("/admin", nil, "", "authorization", "Bearer "+read)); d.Status != 403 {
					msg = "read not 403: " + string(d.Reason)
				}
				if d := a.Decide(t.Context(), at("/public/../admin", map[string]string{"jwtauthz.scopes": "x"}, "")); d.Allow {
					msg = "ambiguous allowed"
				}
			}
			done <- msg
		}()
	}
	for i := 0; i < 8; i++ {
		if msg := <-done; msg != "" {
			t.Error(msg)
		}
	}
}
