package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid/*.golden from the current output")

// render is what `jwtauthz validate` prints: the errors as "FIELD.PATH: message" lines, then the
// warnings as "warning: FIELD.PATH: message" lines.
func render(warnings Problems, err error) string {
	var lines []string
	if err != nil {
		lines = append(lines, err.Error())
	}
	if len(warnings) > 0 {
		lines = append(lines, warnings.Error())
	}
	return strings.Join(lines, "\n") + "\n"
}

// TestInvalidFixtures loads every testdata/invalid/*.yaml and compares what a user would see with
// the golden sidecar next to it, line for line. Run with -update to rewrite the goldens, then
// read the diff: each line is a promise to users.
func TestInvalidFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			cfg, warnings, err := Load(f)
			if err == nil {
				t.Fatalf("Load(%s) succeeded; want an error", f)
			}
			if cfg != nil {
				t.Errorf("Load returned a config with an error")
			}
			got := render(warnings, err)
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("missing golden sidecar (run go test -run TestInvalidFixtures -update): %v", rerr)
			}
			if got != string(want) {
				t.Errorf("Load(%s) output differs from %s\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
			// Every line is one problem: no message may break the line format.
			for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
				if strings.TrimSpace(line) == "" {
					t.Errorf("blank line in output %q", got)
				}
			}
			// The same file, in memory, says the same (Load adds only the file-level checks).
			data, _ := os.ReadFile(f)
			_, w2, err2 := LoadBytes(data)
			if got2 := render(w2, err2); got2 != got {
				t.Errorf("LoadBytes differs from Load:\n%s\nvs\n%s", got2, got)
			}
		})
	}
}

// TestInvalidGoldensHaveFixtures catches a golden left behind by a renamed fixture.
func TestInvalidGoldensHaveFixtures(t *testing.T) {
	goldens, _ := filepath.Glob("testdata/invalid/*.golden")
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".golden") + ".yaml"); err != nil {
			t.Errorf("%s has no fixture", g)
		}
	}
}

// TestInvalidKeyLines pins the one line per required error class from the brief, independent of
// the golden files' other lines, so that a careless -update cannot drop one silently.
func TestInvalidKeyLines(t *testing.T) {
	cases := []struct{ fixture, line string }{
		{"unknown_field", `providers.zuplo.audience: unknown field (did you mean "audiences"?)`},
		{"unknown_top_level", `realms: unknown field (did you mean "realm"?)`},
		{"wrong_type", `max_token_bytes: must be a whole number, got a string`},
		{"wrong_type", `providers.zuplo.audiences: must be a list, got a string`},
		{"wrong_type", `providers.zuplo.remote_jwks.max_bytes: must be a whole number >= 0, got a number`},
		{"wrong_type", `providers.zuplo.forward: must be true or false, got a string`},
		{"http_jwks", `providers.zuplo.remote_jwks.uri: must be https (set allow_insecure_http: true to allow plain http, for local development only)`},
		{"hs256", `providers.zuplo.algorithms[1]: HS256 is not supported: symmetric algorithms would let anyone holding the public JWKS forge tokens`},
		{"alg_none", `providers.zuplo.algorithms[0]: "none" is never accepted`},
		{"alg_none", `providers.zuplo.algorithms[1]: "none" is never accepted`},
		{"duplicate_issuer", `providers.b.issuer: same issuer as providers.a; the token's iss must pick exactly one provider`},
		{"missing_audiences", `providers.zuplo.audiences: at least one audience is required (or set allow_any_audience: true to accept tokens meant for any API)`},
		{"audiences_and_any", `providers.zuplo.allow_any_audience: cannot be combined with audiences: choose one`},
		{"no_key_source", `providers.zuplo: set exactly one key source: remote_jwks, discovery or local_jwks`},
		{"two_key_sources", `providers.zuplo: set exactly one key source: remote_jwks, discovery or local_jwks`},
		{"duration_zero", `providers.zuplo.remote_jwks.refresh_interval: must be at least 1s, got 0s`},
		{"duration_zero", `providers.zuplo.remote_jwks.kid_miss_cooldown: must be at least 1s, got 0.5s`},
		{"duration_negative", `providers.zuplo.remote_jwks.timeout: must be at least 1s, got -5s`},
		{"duration_negative", `providers.zuplo.clock_skew: must not be negative, got -60s`},
		{"duration_negative", `server.drain_delay: must not be negative, got -1s`},
		{"duration_min_gt_max", `providers.zuplo.remote_jwks.min_refresh_interval: must not exceed max_refresh_interval`},
		{"clock_skew_too_large", `providers.zuplo.clock_skew: must be at most 300s, got 301s`},
		{"duration_syntax", `server.drain_timeout: must be a duration string such as "60s" or "0.5s"`},
		{"identity_header_upper", `providers.zuplo.claim_to_headers[0].header: header names must be lower-case (Envoy and gRFC A92 drop others); use "x-user-id"`},
		{"identity_header_reserved", `providers.zuplo.claim_to_headers[0].header: "host" cannot be an identity header`},
		{"identity_header_reserved", `providers.zuplo.claim_to_headers[2].header: ":path" is not a valid header name`},
		{"identity_header_is_token_header", `providers.zuplo.claim_to_headers[0].header: is also a token header (from_headers); identity headers are stripped from every request`},
		{"identity_header_is_other_token_header", `providers.b.claim_to_headers[0].header: is the token header of providers.a (from_headers); identity headers are stripped from every request`},
		{"bad_realm", `realm: must be printable ASCII without '"' or '\' (it is quoted in WWW-Authenticate)`},
		{"bad_address", `server.grpc_address: must be host:port or :port with a port number from 0 to 65535, got "9001"`},
		{"bad_address", `server.admin_address: must be host:port or :port with a port number from 0 to 65535, got "localhost:70000"`},
		{"rules", "rules[1].match: safe_regex: error parsing regexp: missing closing ]: `[0-9+/orders$`"},
		{"rules", `rules[4].requires.provider: unknown provider "auth0"`},
		{"rules", `warning: rules[6]: unreachable: rules[4] matches every request first`},
		{"discovery", `providers.plain.issuer: discovery reads <issuer>/.well-known/openid-configuration, so the issuer must be https (set discovery.allow_insecure_http: true to allow plain http, for local development only)`},
		{"discovery", `providers.query.issuer: discovery reads <issuer>/.well-known/openid-configuration, so the issuer must not have a query or a fragment`},
		{"discovery", `providers.query.discovery.min_refresh_interval: must not exceed max_refresh_interval`},
		{"tracing", `tracing.otlp_endpoint: tracing is not supported in this release; leave it empty`},
		{"duplicate_keys", `not valid YAML: line 7: key "issuer" already set in map (duplicate keys are not allowed)`},
		{"duplicate_keys", `not valid YAML: line 9: key "realm" already set in map (duplicate keys are not allowed)`},
		{"empty", `the file is empty`},
		{"comments_only", `the file is empty`},
		{"not_a_mapping", `the top level must be a mapping, got a list`},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			_, warnings, err := Load("testdata/invalid/" + c.fixture + ".yaml")
			lines := strings.Split(render(warnings, err), "\n")
			for _, l := range lines {
				if l == c.line {
					return
				}
			}
			t.Errorf("no line\n  %s\nin\n  %s", c.line, strings.Join(lines, "\n  "))
		})
	}
}

// TestManyProblemsAtOnce: one run reports every problem, shape and semantic, in a stable order.
func TestManyProblemsAtOnce(t *testing.T) {
	_, _, err := Load("testdata/invalid/many_problems.yaml")
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is %T, want Problems", err)
	}
	wantPaths := []string{
		// shape, from the file as written
		"providers.zuplo.audience", "providers.zuplo.remote_jwks.timeout", "server.pprof",
		// semantic, from the rest of the file
		"realm", "max_token_bytes", "logging.level", "logging.format", "logging.allow_sample_rate",
		"server.grpc_address", "server.drain_timeout", "cors_preflight",
		`providers."bad name!"`, `providers."bad name!".issuer`, `providers."bad name!".remote_jwks.max_bytes`,
		`providers."bad name!".algorithms[0]`, `providers."bad name!".algorithms[1]`, `providers."bad name!".algorithms[3]`,
		`providers."bad name!".clock_skew`, `providers."bad name!".claim_to_headers[0].claim`,
		`providers."bad name!".claim_to_headers[0].header`, `providers."bad name!".claim_to_headers[1].header`,
		`providers."bad name!".payload_in_metadata`,
		"providers.other", "providers.other.local_jwks.file", "providers.zuplo.issuer",
		"providers.zuplo.audiences", "providers.zuplo.from_params[0]",
		"providers.zuplo.from_headers[0].name", "providers.zuplo.from_headers[2].name",
	}
	got := map[string]bool{}
	for _, p := range ps {
		got[p.Path] = true
		if p.Warning {
			t.Errorf("a warning among the errors: %v", p)
		}
	}
	for _, p := range wantPaths {
		if !got[p] {
			t.Errorf("no problem reported at %q; got:\n%v", p, err)
		}
	}
	if len(ps) < len(wantPaths) {
		t.Errorf("%d problems, want at least %d", len(ps), len(wantPaths))
	}
	// Shape problems come first and stop nothing: the wrong-typed timeout is reported once, not
	// again by validation of the default that replaced it.
	n := 0
	for _, p := range ps {
		if strings.HasPrefix(p.Path, "providers.zuplo.remote_jwks.timeout") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("timeout reported %d times, want 1", n)
	}
	// Stable: the same file gives the same lines in the same order.
	_, _, err2 := Load("testdata/invalid/many_problems.yaml")
	if err.Error() != err2.Error() {
		t.Errorf("output not deterministic:\n%v\nvs\n%v", err, err2)
	}
}

// tlsDir writes placeholder TLS files: Validate only checks that they can be read.
func tlsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("placeholder"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadFixture(t *testing.T, name string) (*configv1.Config, Problems) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "valid", name))
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.ReplaceAll(string(data), "{{DIR}}", tlsDir(t)))
	cfg, warnings, err := LoadBytes(data)
	if err != nil {
		t.Fatalf("LoadBytes(%s): %v", name, err)
	}
	return cfg, warnings
}

func TestValidFull(t *testing.T) {
	cfg, warnings := loadFixture(t, "full.yaml")
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	p := cfg.GetProviders()["zuplo"]
	if p == nil {
		t.Fatal("provider zuplo missing")
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"issuer", p.GetIssuer(), "https://my-api-a32f34.zuplo.api/__zuplo/issuer"},
		{"audiences", strings.Join(p.GetAudiences(), ","), "https://api.example.com"},
		{"uri", p.GetRemoteJwks().GetUri(), "https://my-api-a32f34.zuplo.api/__zuplo/issuer/.well-known/jwks.json"},
		{"claim_to_headers", len(p.GetClaimToHeaders()), 3},
		{"claim_to_headers[2]", p.GetClaimToHeaders()[2].GetClaim() + "->" + p.GetClaimToHeaders()[2].GetHeader(), "scope->x-user-scopes"},
		{"forward_payload_header", p.GetForwardPayloadHeader(), "x-jwt-payload"},
		{"payload_in_metadata", p.GetPayloadInMetadata(), "jwt_payload"},
		{"cors_preflight", cfg.GetCorsPreflight(), "allow"},
		{"tls.client_ca_file", filepath.Base(cfg.GetServer().GetTls().GetClientCaFile()), "ca.crt"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestContractExampleSpellsTheDefaults: the contract's example writes every default out; loading
// it must give what loading the minimal config gives, once the non-default settings are copied
// over. A default that drifts from the contract shows up here as a diff.
func TestContractExampleSpellsTheDefaults(t *testing.T) {
	full, _ := loadFixture(t, "full.yaml")
	minimal, _ := loadFixture(t, "minimal.yaml")
	// The example's settings that are not defaults.
	minimal.Server.Tls = full.Server.Tls
	minimal.CorsPreflight = full.CorsPreflight
	mp, fp := minimal.Providers["zuplo"], full.Providers["zuplo"]
	mp.ClaimToHeaders = fp.ClaimToHeaders
	mp.ForwardPayloadHeader = fp.ForwardPayloadHeader
	mp.PayloadInMetadata = fp.PayloadInMetadata
	if !proto.Equal(minimal, full) {
		t.Errorf("defaults differ from the contract's example:\n%v\nvs\n%v", minimal, full)
	}
}

// TestDefaults checks every default of contract.md by value, on the minimal config.
func TestDefaults(t *testing.T) {
	cfg, warnings := loadFixture(t, "minimal.yaml")
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	s, p := cfg.GetServer(), cfg.GetProviders()["zuplo"]
	r := p.GetRemoteJwks()
	d := func(x interface{ AsDuration() time.Duration }) time.Duration { return x.AsDuration() }
	checks := []struct {
		name      string
		got, want any
	}{
		{"server.grpc_address", s.GetGrpcAddress(), ":9001"},
		{"server.http_address", s.GetHttpAddress(), ":9002"},
		{"server.admin_address", s.GetAdminAddress(), ":9003"},
		{"server.tls", s.GetTls() == nil, true},
		{"server.drain_delay", d(s.GetDrainDelay()), 2 * time.Second},
		{"server.drain_timeout", d(s.GetDrainTimeout()), 10 * time.Second},
		{"server.pprof", s.GetPprof(), false},
		{"realm", cfg.GetRealm(), "jwtauthz"},
		{"shadow", cfg.GetShadow(), false},
		{"max_token_bytes", cfg.GetMaxTokenBytes(), uint32(8192)},
		{"token_cache.enabled", cfg.GetTokenCache().GetEnabled(), true},
		{"token_cache.max_entries", cfg.GetTokenCache().GetMaxEntries(), uint32(10000)},
		{"logging.level", cfg.GetLogging().GetLevel(), "info"},
		{"logging.format", cfg.GetLogging().GetFormat(), "json"},
		{"logging.allow_sample_rate", cfg.GetLogging().GetAllowSampleRate(), 1.0},
		{"tracing.otlp_endpoint", cfg.GetTracing().GetOtlpEndpoint(), ""},
		{"tracing.sample_ratio", cfg.GetTracing().GetSampleRatio(), 0.01},
		{"rules", len(cfg.GetRules()), 0},
		{"cors_preflight", cfg.GetCorsPreflight(), ""},
		{"allow_any_audience", p.GetAllowAnyAudience(), false},
		{"remote_jwks.refresh_interval", d(r.GetRefreshInterval()), 3600 * time.Second},
		{"remote_jwks.min_refresh_interval", d(r.GetMinRefreshInterval()), 300 * time.Second},
		{"remote_jwks.max_refresh_interval", d(r.GetMaxRefreshInterval()), 86400 * time.Second},
		{"remote_jwks.kid_miss_cooldown", d(r.GetKidMissCooldown()), 60 * time.Second},
		{"remote_jwks.max_stale", d(r.GetMaxStale()), 86400 * time.Second},
		{"remote_jwks.timeout", d(r.GetTimeout()), 5 * time.Second},
		{"remote_jwks.max_bytes", r.GetMaxBytes(), uint32(524288)},
		{"remote_jwks.allow_insecure_http", r.GetAllowInsecureHttp(), false},
		{"remote_jwks.ca_file", r.GetCaFile(), ""},
		{"algorithms", strings.Join(p.GetAlgorithms(), " "), "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"},
		{"token_types", strings.Join(p.GetTokenTypes(), "|"), "|JWT|at+jwt"},
		{"clock_skew", d(p.GetClockSkew()), 60 * time.Second},
		{"max_lifetime", d(p.GetMaxLifetime()), time.Duration(0)},
		{"required_claims", len(p.GetRequiredClaims()), 0},
		{"from_headers", len(p.GetFromHeaders()), 1},
		{"from_headers[0].name", p.GetFromHeaders()[0].GetName(), "authorization"},
		{"from_headers[0].value_prefix", p.GetFromHeaders()[0].GetValuePrefix(), "Bearer "},
		{"from_params", len(p.GetFromParams()), 0},
		{"from_cookies", len(p.GetFromCookies()), 0},
		{"forward", p.GetForward(), false},
		{"claim_to_headers", len(p.GetClaimToHeaders()), 0},
		{"forward_payload_header", p.GetForwardPayloadHeader(), ""},
		{"payload_in_metadata", p.GetPayloadInMetadata(), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v (%T), want %v (%T)", c.name, c.got, c.got, c.want, c.want)
		}
	}
}

// TestDefaultsKeepUserValues: ApplyDefaults never overrides what the user set, including the
// zero values that mean something ("" disables the HTTP listener, shadow false, 0s max_lifetime).
func TestDefaultsKeepUserValues(t *testing.T) {
	cfg, _, err := LoadBytes([]byte(`
server: {http_address: "", drain_delay: "0s"}
token_cache: {enabled: false}
logging: {allow_sample_rate: 0}
tracing: {sample_ratio: 0}
providers:
  a:
    issuer: "https://a.example.com"
    audiences: [api]
    remote_jwks: {uri: "https://a.example.com/jwks", timeout: "2s"}
    algorithms: [ES256]
    token_types: [at+jwt]
    clock_skew: "0s"
    from_params: [access_token]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.Providers["a"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"http_address", cfg.Server.GetHttpAddress(), ""},
		{"drain_delay", cfg.Server.DrainDelay.AsDuration(), time.Duration(0)},
		{"token_cache.enabled", cfg.TokenCache.GetEnabled(), false},
		{"allow_sample_rate", cfg.Logging.GetAllowSampleRate(), 0.0},
		{"sample_ratio", cfg.Tracing.GetSampleRatio(), 0.0},
		{"timeout", p.RemoteJwks.Timeout.AsDuration(), 2 * time.Second},
		{"algorithms", strings.Join(p.Algorithms, " "), "ES256"},
		{"token_types", strings.Join(p.TokenTypes, " "), "at+jwt"},
		{"clock_skew", p.ClockSkew.AsDuration(), time.Duration(0)},
		// A provider reading only a query parameter does not also get the default header.
		{"from_headers", len(p.FromHeaders), 0},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestWarningsAreNotErrors: the explicit relaxations load, each with a warning.
func TestWarningsAreNotErrors(t *testing.T) {
	cfg, warnings := loadFixture(t, "warnings.yaml")
	if cfg == nil {
		t.Fatal("no config")
	}
	want := "warning: providers.local.allow_any_audience: tokens issued for any audience are accepted\n" +
		"warning: providers.local.remote_jwks.allow_insecure_http: keys may be fetched over plain HTTP"
	if got := warnings.Error(); got != want {
		t.Errorf("warnings:\n%s\nwant\n%s", got, want)
	}
	for _, w := range warnings {
		if !w.Warning {
			t.Errorf("%v is not marked as a warning", w)
		}
	}
	if len(warnings.Errors()) != 0 {
		t.Errorf("Errors() of warnings = %v", warnings.Errors())
	}
}

// TestShadowWarns: shadow mode allows everything; it loads, with a warning to say so.
func TestShadowWarns(t *testing.T) {
	cfg, warnings, err := LoadBytes([]byte("shadow: true\nproviders: {a: {issuer: https://a.example.com, audiences: [api], local_jwks: {inline: k}}}\n"))
	if err != nil || !cfg.GetShadow() {
		t.Fatal(err)
	}
	if got, want := warnings.Error(), "warning: shadow: every request is allowed; denies are only logged and counted"; got != want {
		t.Errorf("warnings = %q, want %q", got, want)
	}
}

// TestValidDiscovery: discovery is a key source with remote_jwks's knobs and defaults, and an
// http issuer is accepted only with allow_insecure_http, as a warning.
func TestValidDiscovery(t *testing.T) {
	cfg, warnings := loadFixture(t, "discovery.yaml")
	want := "warning: providers.local.discovery.allow_insecure_http: the discovery document and keys may be fetched over plain HTTP"
	if got := warnings.Error(); got != want {
		t.Errorf("warnings:\n%s\nwant\n%s", got, want)
	}
	d := cfg.Providers["okta"].GetDiscovery()
	if d.GetKidMissCooldown().AsDuration() != 30*time.Second || d.GetMaxStale().AsDuration() != 12*time.Hour {
		t.Errorf("knobs not kept: %v", d)
	}
	if d.GetRefreshInterval().AsDuration() != DefaultRefreshInterval || d.GetMinRefreshInterval().AsDuration() != DefaultMinRefreshInterval ||
		d.GetTimeout().AsDuration() != DefaultFetchTimeout || d.GetMaxBytes() != DefaultMaxBytes {
		t.Errorf("defaults not applied: %v", d)
	}
}

func TestValidLocalJWKS(t *testing.T) {
	cfg, warnings := loadFixture(t, "local_jwks.yaml")
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if got := cfg.Providers["params"].GetFromParams(); len(got) != 1 || got[0] != "access_token" {
		t.Errorf("from_params = %v", got)
	}
}

// TestJSONNamesAccepted: protojson also accepts the lowerCamel JSON names; the shape check must
// agree with it rather than call them unknown.
func TestJSONNamesAccepted(t *testing.T) {
	_, _, err := LoadBytes([]byte(`{"providers": {"a": {"issuer": "https://a.example.com", "audiences": ["api"],
		"remoteJwks": {"uri": "https://a.example.com/jwks", "kidMissCooldown": "30s"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
}

func TestHugeFileRejected(t *testing.T) {
	big := make([]byte, MaxFileBytes+1)
	for i := range big {
		big[i] = '#'
	}
	path := filepath.Join(t.TempDir(), "huge.yaml")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "larger than 4194304 bytes") {
		t.Errorf("Load(huge) = %v, want a size error", err)
	}
	_, _, err = LoadBytes(big)
	if err == nil || err.Error() != "the file is larger than 4194304 bytes" {
		t.Errorf("LoadBytes(huge) = %v, want a size error", err)
	}
	if _, err := Parse(big); err == nil {
		t.Error("Parse(huge) succeeded")
	}
}

func TestMissingFile(t *testing.T) {
	_, _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

// TestParseIsStrict: Parse itself never returns a partial config with its problems.
func TestParseIsStrict(t *testing.T) {
	cfg, err := Parse([]byte("realm: x\nbogus: 1\n"))
	if cfg != nil || err == nil || err.Error() != `bogus: unknown field` {
		t.Errorf("Parse = %v, %v", cfg, err)
	}
	cfg, err = Parse([]byte("realm: x\n"))
	if err != nil || cfg.GetRealm() != "x" {
		t.Errorf("Parse = %v, %v", cfg, err)
	}
	// Parse applies no defaults.
	if cfg.GetServer() != nil || cfg.MaxTokenBytes != nil {
		t.Errorf("Parse applied defaults: %v", cfg)
	}
}

// TestPathsCannotForgeLines: keys from the file are quoted in paths when they could blur the
// path or break the one-problem-per-line output.
func TestPathsCannotForgeLines(t *testing.T) {
	_, _, err := LoadBytes([]byte("providers: {\"a\\nproviders.b: fake\": {issuer: x, audiences: [a], local_jwks: {inline: k}}}\n\"x\\ny\": 1\n"))
	want := `"x\ny": unknown field` + "\n" +
		`providers."a\nproviders.b: fake": provider names use letters, digits, '_', '-' and '.', at most 64 characters`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	for k, want := range map[string]string{"zuplo": "zuplo", "my.idp": `"my.idp"`, "": `""`, "a b": `"a b"`, "é": "é"} {
		if got := pathKey(k); got != want {
			t.Errorf("pathKey(%q) = %s, want %s", k, got, want)
		}
	}
}

func TestDuplicateKeysInJSON(t *testing.T) {
	_, err := Parse([]byte(`{"realm": "a", "realm": "b"}`))
	if err == nil || !strings.Contains(err.Error(), `key "realm" already set in map`) {
		t.Errorf("Parse = %v, want a duplicate key error", err)
	}
}

// TestValidateSurvivesEmptyConfig: Validate must not assume ApplyDefaults ran.
func TestValidateSurvivesEmptyConfig(t *testing.T) {
	_ = Validate(&configv1.Config{})
	_ = Validate(&configv1.Config{Providers: map[string]*configv1.Provider{"a": nil, "b": {}}})
	ApplyDefaults(&configv1.Config{Providers: map[string]*configv1.Provider{"a": nil}})
}

func TestProblemsFormat(t *testing.T) {
	ps := Problems{
		{Path: "a.b", Message: "bad"},
		{Message: "file-level"},
		{Path: "c", Message: "relaxed", Warning: true},
	}
	if got, want := ps.Error(), "a.b: bad\nfile-level\nwarning: c: relaxed"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if len(ps.Errors()) != 2 || len(ps.Warnings()) != 1 {
		t.Errorf("Errors/Warnings split wrong: %v / %v", ps.Errors(), ps.Warnings())
	}
}

// TestDefaultsIdempotent: defaults applied twice change nothing.
func TestDefaultsIdempotent(t *testing.T) {
	cfg, _ := loadFixture(t, "minimal.yaml")
	again := proto.Clone(cfg).(*configv1.Config)
	ApplyDefaults(again)
	if !proto.Equal(cfg, again) {
		t.Errorf("second ApplyDefaults changed the config:\n%v\nvs\n%v", cfg, again)
	}
}
