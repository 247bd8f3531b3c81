//go:build integration

package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
)

// rulesConfig is the README's worked example, cut to what the binary can run here: provider
// idp (the first IdP) and provider partner (a second IdP, same Authorization header), a public
// health check, an admin scope, a two-issuer route and an allow_missing feed.
func rulesConfig(t *testing.T, idp, partner *idp) string {
	t.Helper()
	return idp.config(t, fmt.Sprintf(`  partner:
    issuer: %q
    audiences: ["https://api.example.com"]
    remote_jwks:
      uri: %q
      allow_insecure_http: true
    claim_to_headers:
      - {claim: sub, header: x-partner-id}
rules:
  - match: {path_separated_prefix: /healthz}
  - match: {prefix: /admin}
    requires: {provider: idp, scopes: [admin]}
  - match: {path_separated_prefix: /partner}
    requires: {any: [{provider: idp}, {provider: partner}]}
  - match: {path: /feed}
    requires: {provider: idp, allow_missing: true}
`, partner.iss.IssuerURL(), partner.srv.URL+"/.well-known/jwks.json"))
}

// withExt sets Envoy's per-route context_extensions on a CheckRequest.
func withExt(req *authv3.CheckRequest, ext map[string]string) *authv3.CheckRequest {
	req.Attributes.ContextExtensions = ext
	return req
}

func okHeaders(resp *authv3.CheckResponse) map[string]string {
	got := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return got
}

func TestE2ERules(t *testing.T) {
	idp, partner, stranger := newIDP(t), newIDP(t), newIDP(t)
	p := start(t, "serve", "--config", rulesConfig(t, idp, partner), "--log-format", "json")
	cc := dial(t, p.grpc)
	waitHealth(t, cc, healthpb.HealthCheckResponse_SERVING) // both providers have keys

	admin := idp.token(t, devissuer.TokenRequest{Sub: "alice", Scope: "read admin"})
	reader := idp.token(t, devissuer.TokenRequest{Sub: "bob", Scope: "read"})
	partnerTok := partner.token(t, devissuer.TokenRequest{Sub: "p1"})
	strangerTok := stranger.token(t, devissuer.TokenRequest{Sub: "eve", Scope: "admin"})
	bearer := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }
	identity := []string{"x-partner-id", "x-user-email", "x-user-id", "x-user-scopes"}

	type want struct {
		code      codes.Code
		http      int32 // deny only
		challenge string
		reason    string
		provider  string // allow only
		body      string // deny: the body's "error"
	}
	allow := func(reason, provider string) want { return want{code: codes.OK, reason: reason, provider: provider} }
	const realm = `Bearer realm="e2e"`
	invalid := realm + `, error="invalid_token", error_description="The access token is invalid"`
	cases := []struct {
		name string
		req  *authv3.CheckRequest
		want want
	}{
		{"public path, no token", envoyRequest("/healthz", map[string]string{"x-user-id": "mallory", "x-partner-id": "p0"}), allow("not_required", "")},
		{"public path, a token sets nothing", envoyRequest("/healthz/ready?verbose=1", bearer(admin)), allow("not_required", "")},
		{"admin with the scope", envoyRequest("/admin/users", bearer(admin)), allow("ok", "idp")},
		{"admin without the scope", envoyRequest("/admin/users", bearer(reader)),
			want{codes.PermissionDenied, 403, realm + `, error="insufficient_scope", scope="admin"`, "insufficient_scope", "", "insufficient_scope"}},
		{"admin without a token", envoyRequest("/admin", nil), want{codes.Unauthenticated, 401, realm, "missing_token", "", "unauthorized"}},
		{"admin with the partner's token", envoyRequest("/admin", bearer(partnerTok)), want{codes.Unauthenticated, 401, invalid, "issuer_unknown", "", "invalid_token"}},
		{"two-issuer route, first issuer", envoyRequest("/partner/orders", bearer(reader)), allow("ok", "idp")},
		{"two-issuer route, second issuer", envoyRequest("/partner/orders", bearer(partnerTok)), allow("ok", "partner")},
		{"two-issuer route, neither issuer", envoyRequest("/partner/orders", bearer(strangerTok)), want{codes.Unauthenticated, 401, invalid, "issuer_unknown", "", "invalid_token"}},
		{"two-issuer route, no token", envoyRequest("/partner", nil), want{codes.Unauthenticated, 401, realm, "missing_token", "", "unauthorized"}},
		{"allow_missing, no token", envoyRequest("/feed?page=2", nil), allow("not_required", "")},
		{"allow_missing, a bad token", envoyRequest("/feed", bearer(strangerTok)), want{codes.Unauthenticated, 401, invalid, "issuer_unknown", "", "invalid_token"}},
		{"no rule: any provider", envoyRequest("/orders", bearer(partnerTok)), allow("ok", "partner")},
		{"ambiguous path", envoyRequest("/healthz/../admin", nil),
			want{codes.InvalidArgument, 400, realm + `, error="invalid_request", error_description="The request path is ambiguous"`, "ambiguous_path", "", "invalid_request"}},

		// Envoy per-route settings (ExtAuthzPerRoute.check_settings.context_extensions).
		{"context_extensions: provider names the other provider", withExt(envoyRequest("/orders", bearer(partnerTok)), map[string]string{"jwtauthz.provider": "partner"}), allow("ok", "partner")},
		// jwtauthz.provider narrows the matched rule; it never drops the rule's scope check.
		{"context_extensions: provider keeps the rule's scopes", withExt(envoyRequest("/admin", bearer(reader)), map[string]string{"jwtauthz.provider": "idp"}),
			want{codes.PermissionDenied, 403, realm + `, error="insufficient_scope", scope="admin"`, "insufficient_scope", "", "insufficient_scope"}},
		{"context_extensions: provider and rule both met", withExt(envoyRequest("/admin", bearer(admin)), map[string]string{"jwtauthz.provider": "idp"}), allow("ok", "idp")},
		{"context_extensions: another provider's token does not meet the rule", withExt(envoyRequest("/admin", bearer(partnerTok)), map[string]string{"jwtauthz.provider": "partner"}),
			want{codes.Unauthenticated, 401, invalid, "issuer_unknown", "", "invalid_token"}},
		{"context_extensions: provider, the rule's token no longer does", withExt(envoyRequest("/admin", bearer(admin)), map[string]string{"jwtauthz.provider": "partner"}),
			want{codes.Unauthenticated, 401, invalid, "issuer_unknown", "", "invalid_token"}},
		{"context_extensions: provider and scopes", withExt(envoyRequest("/orders", bearer(partnerTok)), map[string]string{"jwtauthz.provider": "partner", "jwtauthz.scopes": "orders:write"}),
			want{codes.PermissionDenied, 403, realm + `, error="insufficient_scope", scope="orders:write"`, "insufficient_scope", "", "insufficient_scope"}},
		{"context_extensions: disabled", withExt(envoyRequest("/admin", map[string]string{"x-user-id": "mallory"}), map[string]string{"jwtauthz.disabled": "true"}), allow("not_required", "")},
		{"context_extensions: allow_missing", withExt(envoyRequest("/admin", nil), map[string]string{"jwtauthz.allow_missing": "true"}), allow("not_required", "")},
		{"context_extensions: unknown provider", withExt(envoyRequest("/orders", bearer(admin)), map[string]string{"jwtauthz.provider": "auth0"}),
			want{codes.PermissionDenied, 403, "", "route_misconfigured", "", "access_denied"}},
		{"context_extensions: bogus disabled", withExt(envoyRequest("/admin", nil), map[string]string{"jwtauthz.disabled": "yes"}),
			want{codes.PermissionDenied, 403, "", "route_misconfigured", "", "access_denied"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, cc, tc.req)
			w := tc.want
			if got := codes.Code(resp.GetStatus().GetCode()); got != w.code {
				t.Fatalf("status %v, want %v; denied %v", got, w.code, resp.GetDeniedResponse())
			}
			md := resp.GetDynamicMetadata().GetFields()
			if got := md["reason"].GetStringValue(); got != w.reason {
				t.Errorf("reason %q, want %q", got, w.reason)
			}
			if w.code != codes.OK {
				if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != w.http {
					t.Errorf("HTTP %d, want %d", got, w.http)
				}
				if got := deniedHeader(resp, "www-authenticate"); got != w.challenge {
					t.Errorf("www-authenticate %q, want %q", got, w.challenge)
				}
				if body := resp.GetDeniedResponse().GetBody(); !strings.HasPrefix(body, `{"error":"`+w.body+`"`) || w.reason != w.body && strings.Contains(body, w.reason) {
					t.Errorf("body %s, want error %q and no reason code", body, w.body)
				}
				return
			}
			if got := md["provider"].GetStringValue(); got != w.provider {
				t.Errorf("provider %q, want %q", got, w.provider)
			}
			rm := resp.GetOkResponse().GetHeadersToRemove()
			set := okHeaders(resp)
			// Every identity header is set or removed, on every allow.
			for _, h := range identity {
				if _, ok := set[h]; ok == slices.Contains(rm, h) {
					t.Errorf("identity header %s: set %v, removed %v", h, ok, slices.Contains(rm, h))
				}
			}
			switch w.provider {
			case "":
				if len(set) != 0 {
					t.Errorf("no-token allow sets %v", set)
				}
				if slices.Contains(rm, "authorization") {
					t.Errorf("no-token allow removes the (unverified) authorization header: %v", rm)
				}
			case "idp":
				if set["x-user-id"] == "" || !slices.Contains(rm, "authorization") {
					t.Errorf("idp allow: set %v, removed %v", set, rm)
				}
			case "partner":
				if set["x-partner-id"] != "p1" || set["x-user-id"] != "" || !slices.Contains(rm, "authorization") {
					t.Errorf("partner allow: set %v, removed %v", set, rm)
				}
			}
		})
	}

	t.Run("route_misconfigured is logged at error with what is wrong", func(t *testing.T) {
		p.stderr.waitFor(t, `"detail":"jwtauthz.provider names unknown provider \"auth0\""`)
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, `"reason":"route_misconfigured"`) && !strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("not at error level: %s", line)
			}
		}
	})

	t.Run("grpcurl sends Envoy's contextExtensions", func(t *testing.T) {
		grpcurl := grpcurlPath(t)
		body := `{"attributes":{"contextExtensions":{"jwtauthz.provider":"partner"},"request":{"http":{"method":"GET","host":"api.example.com","path":"/orders","headers":{":authority":"api.example.com",":method":"GET",":path":"/orders","authorization":"Bearer ` + partnerTok + `"}}}}}`
		out, err := exec.Command(grpcurl, "-plaintext", "-d", body, p.grpc, "envoy.service.auth.v3.Authorization/Check").CombinedOutput()
		if err != nil {
			t.Fatalf("grpcurl: %v\n%s", err, out)
		}
		for _, w := range []string{`"okResponse"`, `"provider": "partner"`, `"value": "p1"`, `"reason": "ok"`} {
			if !strings.Contains(string(out), w) {
				t.Errorf("output lacks %s:\n%s", w, out)
			}
		}
	})

	t.Run("forward-auth over HTTP agrees on a 403", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+p.http+"/admin/users", nil)
		req.Header.Set("Authorization", "Bearer "+reader)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := realm + `, error="insufficient_scope", scope="admin"`; resp.StatusCode != 403 || resp.Header.Get("www-authenticate") != want {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})
}

// TestE2ERulesValidate: validate prints rule problems with their paths and unreachable rules
// as warnings, which do not change its exit code.
func TestE2ERulesValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, rules string) string {
		path := filepath.Join(dir, name)
		cfg := `
providers:
  zuplo:
    issuer: "https://idp.example.com"
    audiences: ["api"]
    remote_jwks: {uri: "https://idp.example.com/jwks.json"}
rules:
` + rules
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	warnOnly := write("warn.yaml", `
  - match: {prefix: /admin}
    requires: {provider: zuplo, scopes: [admin]}
  - match: {path: /admin/open}
  - match: {prefix: /}
  - match: {path_separated_prefix: /healthz}
`)
	cmd := exec.Command(binPath, "validate", warnOnly)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("exit %d, want 0:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	for _, w := range []string{
		"warning: rules[1]: unreachable: rules[0] matches every request this rule matches, and comes first",
		"warning: rules[3]: unreachable: rules[2] matches every request first",
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	bad := write("bad.yaml", `
  - match: {safe_regex: "/v[0-9"}
  - match: {prefix: /x, hosts: ["api.example.com:443"]}
  - match: {prefix: /y}
    requires: {any: [{provider: zuplo}, {provider: auth0}]}
`)
	cmd = exec.Command(binPath, "validate", bad)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d, want 1:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	for _, w := range []string{
		"rules[0].match: safe_regex: error parsing regexp: missing closing ]",
		`rules[1].match: hosts: "api.example.com:443": hosts are matched without a port; write "api.example.com"`,
		`rules[2].requires.any[1].provider: unknown provider "auth0"`,
	} {
		if !strings.Contains(string(out), w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}
