package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader. Properties: it never panics; it returns either a
// config or an error, never both and never neither; every problem is one non-empty line (the
// `validate` output format); and the same input gives the same output.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, s := range []string{
		"",
		"null",
		"~",
		"[]",
		"{}",
		`{"providers": {"a": null}}`,
		"providers: {a: {audiences: [null, 1, {}]}}",
		"providers: {a: {remote_jwks: []}}",
		"providers: {a: 1}",
		"server: []",
		"max_token_bytes: 1e300",
		"max_token_bytes: -0",
		"max_token_bytes: 4294967296",
		"server: {drain_delay: \"315576000001s\"}",
		"server: {drain_delay: \"-315576000000s\"}",
		"server: {drain_delay: \"1e9s\"}",
		"server: {drain_delay: \".s\"}",
		"a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n",
		"? [a, b]\n: c\n",
		"realm: !!binary aGVsbG8=\n",
		"providers: {\"\": {issuer: x}}",
		"providers:\n  a:\n    issuer: x\n    remoteJwks: {uri: https://x}\n    remote_jwks: {uri: https://y}\n",
		"rules: [{match: {prefix: /}, requires: {claims: {role: 1}}}]",
		strings.Repeat("[", 10000),
		strings.Repeat("a: ", 1000) + "b",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, warnings, err := LoadBytes(data)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("LoadBytes returned config %v and error %v", cfg != nil, err)
		}
		checkLines(t, warnings)
		if err != nil {
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("error %T is not Problems: %v", err, err)
			}
			if len(ps) == 0 || len(ps.Errors()) == 0 {
				t.Fatalf("an error without error problems: %v", ps)
			}
			checkLines(t, ps)
		}
		_, w2, err2 := LoadBytes(data)
		if render(w2, err2) != render(warnings, err) {
			t.Fatalf("not deterministic:\n%s\nvs\n%s", render(w2, err2), render(warnings, err))
		}
		// Parse agrees with LoadBytes about shape: if Parse succeeds, defaults and validation
		// run on its result without panicking.
		if c, perr := Parse(data); perr == nil {
			ApplyDefaults(c)
			checkLines(t, Validate(c))
		}
	})
}

func checkLines(t *testing.T, ps Problems) {
	t.Helper()
	for _, p := range ps {
		if p == nil || p.Message == "" {
			t.Fatalf("empty problem in %v", ps)
		}
		if strings.ContainsAny(p.Error(), "\r\n") {
			t.Fatalf("problem spans lines: %q", p.Error())
		}
	}
}
