package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
providers:
  idp:
    issuer: "https://idp.example.com"
    audiences: [api]
    remote_jwks: {uri: "https://idp.example.com/jwks.json"}
    allow_any_audience: false
`), 0o600)
	warn := filepath.Join(dir, "warn.yaml")
	os.WriteFile(warn, []byte(`
providers:
  idp:
    issuer: "https://idp.example.com"
    allow_any_audience: true
    remote_jwks: {uri: "http://127.0.0.1:9000/jwks.json", allow_insecure_http: true}
`), 0o600)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`
providers:
  idp:
    issuer: "https://idp.example.com"
    remote_jwks: {uri: "http://idp.example.com/jwks.json"}
    algorithms: [HS256]
`), 0o600)
	noKeys := filepath.Join(dir, "nokeys.yaml")
	os.WriteFile(noKeys, []byte(`
providers:
  idp:
    issuer: "https://idp.example.com"
    audiences: [api]
    local_jwks: {inline: '{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}'}
`), 0o600)

	cases := []struct {
		name    string
		args    []string
		code    int
		stdout  []string
		stderr  []string
		nostdio bool
	}{
		{name: "no args", args: nil, code: 1, stderr: []string{"Usage:"}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 1, stderr: []string{`unknown command "frobnicate"`}},
		{name: "help", args: []string{"help"}, code: 0, stdout: []string{"jwtauthz serve --config FILE"}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"jwtauthz dev (commit ", "go1."}},
		{name: "version extra arg", args: []string{"version", "extra"}, code: 1, stderr: []string{`unexpected argument "extra"`}},
		{name: "serve -h is success", args: []string{"serve", "-h"}, code: 0, stderr: []string{"-grpc-addr"}},
		{name: "serve missing config file", args: []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, code: 1, stderr: []string{"config: open "}},
		{name: "validate good", args: []string{"validate", good}, code: 0, stdout: []string{good + ": valid (1 provider, 0 rules)"}},
		{name: "validate warnings keep exit 0", args: []string{"validate", warn}, code: 0, stdout: []string{
			"warning: providers.idp.allow_any_audience: tokens issued for any audience are accepted",
			"warning: providers.idp.remote_jwks.allow_insecure_http: keys may be fetched over plain HTTP",
			": valid (1 provider, 0 rules)"}},
		{name: "validate bad lists every problem", args: []string{"validate", bad}, code: 1, stdout: []string{
			"providers.idp.audiences: at least one audience is required",
			"providers.idp.remote_jwks.uri: must be https",
			"providers.idp.algorithms[0]: HS256 is not supported"}},
		{name: "validate local jwks without usable key", args: []string{"validate", noKeys}, code: 1, stdout: []string{"providers.idp.local_jwks.inline: jwks: no usable key"}},
		{name: "validate missing file", args: []string{"validate", filepath.Join(dir, "nope.yaml")}, code: 1, stdout: []string{"no such file"}},
		{name: "validate no arg", args: []string{"validate"}, code: 1, stderr: []string{"usage: jwtauthz validate FILE"}},
		{name: "serve without config", args: []string{"serve"}, code: 1, stderr: []string{"--config FILE is required"}},
		{name: "serve unknown flag", args: []string{"serve", "--nope"}, code: 1, stderr: []string{"flag provided but not defined: -nope"}},
		{name: "serve bad config", args: []string{"serve", "--config", bad}, code: 1, stderr: []string{"providers.idp.algorithms[0]: HS256 is not supported"}},
		{name: "serve bad flag value", args: []string{"serve", "--config", good, "--log-level", "loud"}, code: 1, stderr: []string{"logging.level: must be one of debug, info, warn, error"}},
		{name: "serve bad address flag", args: []string{"serve", "--config", good, "--grpc-addr", "nine"}, code: 1, stderr: []string{"server.grpc_address:"}},
		{name: "healthcheck nothing listening", args: []string{"healthcheck", "--addr", "127.0.0.1:1"}, code: 1, stderr: []string{"healthcheck:"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errOut)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.stderr {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

func TestLoggerRedactsSecrets(t *testing.T) {
	var b bytes.Buffer
	log := newLogger(&b, "debug", "json")
	log.Info("x", "authorization", "Bearer secret-token", "cookie", "s=secret", "token", "secret", "path", "/ok")
	if strings.Contains(b.String(), "secret") {
		t.Fatalf("secret reached the log: %s", b.String())
	}
	if !strings.Contains(b.String(), `"path":"/ok"`) || !strings.Contains(b.String(), `"authorization":"[REDACTED]"`) {
		t.Fatalf("unexpected log line: %s", b.String())
	}
}
