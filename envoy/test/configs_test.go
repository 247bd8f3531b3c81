package deploytest

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// jwtauthzConfig is one jwtauthz config found under envoy/: a whole file, or a ConfigMap value.
type jwtauthzConfig struct {
	where string
	data  []byte
}

// yamlDocs splits a YAML stream on "---" lines.
func yamlDocs(data []byte) [][]byte {
	var docs [][]byte
	var cur bytes.Buffer
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if strings.TrimRight(string(line), " \r\n") == "---" {
			docs = append(docs, bytes.Clone(cur.Bytes()))
			cur.Reset()
			continue
		}
		cur.Write(line)
	}
	return append(docs, cur.Bytes())
}

// isJwtauthzConfig: a mapping with a top-level "providers" key is a jwtauthz config (no other
// file type under envoy/ has one).
func isJwtauthzConfig(doc []byte) bool {
	var m map[string]any
	if yaml.Unmarshal(doc, &m) != nil {
		return false
	}
	_, ok := m["providers"]
	return ok
}

// findJwtauthzConfigs walks envoy/ (but not envoy/test) for jwtauthz configs: files that are
// one, and string values of ConfigMaps that hold one.
func findJwtauthzConfigs(t *testing.T) []jwtauthzConfig {
	t.Helper()
	var found []jwtauthzConfig
	root := repoPath("envoy")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join(root, "test") {
			return filepath.SkipDir
		}
		if d.IsDir() || (!strings.HasSuffix(path, ".yaml") && !strings.HasSuffix(path, ".yml")) {
			return nil
		}
		data := readRepoFile(t, rel(path))
		for i, doc := range yamlDocs(data) {
			where := rel(path)
			if i > 0 {
				where += "#" + string(rune('0'+i))
			}
			if isJwtauthzConfig(doc) {
				found = append(found, jwtauthzConfig{where, doc})
				continue
			}
			var cm struct {
				Kind string            `json:"kind"`
				Data map[string]string `json:"data"`
			}
			if yaml.Unmarshal(doc, &cm) != nil || cm.Kind != "ConfigMap" {
				continue
			}
			for key, v := range cm.Data {
				if isJwtauthzConfig([]byte(v)) {
					found = append(found, jwtauthzConfig{where + " data." + key, []byte(v)})
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestEveryJwtauthzConfigValidates: every jwtauthz config under envoy/ passes what
// `jwtauthz validate` checks (config.Load, at least one provider, server.CheckConfig).
func TestEveryJwtauthzConfigValidates(t *testing.T) {
	found := findJwtauthzConfigs(t)
	want := map[string]bool{"envoy/jwtauthz.yaml": false, "envoy/kubernetes/configmap.yaml data.jwtauthz.yaml": false}
	for _, c := range found {
		want[filepath.ToSlash(c.where)] = true
		t.Run(c.where, func(t *testing.T) {
			mustJwtauthzConfig(t, c.where, c.data)
		})
	}
	for where, seen := range want {
		if !seen {
			t.Errorf("%s was not found as a jwtauthz config; the walk is broken", where)
		}
	}
}

// TestBrokenJwtauthzConfigFailsValidation guards the check itself with two broken copies.
func TestBrokenJwtauthzConfigFailsValidation(t *testing.T) {
	base := string(readRepoFile(t, "envoy", "jwtauthz.yaml"))
	cases := []struct{ name, data, want string }{
		{"misspelled field", strings.Replace(base, "audiences:", "audience:", 1), "providers.demo.audience"},
		{"HS256", strings.Replace(base, "    remote_jwks:\n", "    algorithms: [HS256]\n    remote_jwks:\n", 1), "providers.demo.algorithms[0]: HS256 is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := validateJwtauthzConfig([]byte(c.data))
			if err == nil {
				t.Fatal("the broken copy passed")
			}
			t.Logf("rejected as expected:\n%v", err)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}
