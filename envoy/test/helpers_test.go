package deploytest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	k8sjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/jwtauthz/jwtauthz/pkg/config"
	"github.com/jwtauthz/jwtauthz/pkg/server"
	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

// repoRoot is the jwtauthz checkout, two levels above this module.
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// repoPath joins path elements under the repository root.
func repoPath(elem ...string) string {
	return filepath.Join(append([]string{repoRoot}, elem...)...)
}

func readRepoFile(t *testing.T, elem ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(repoPath(elem...))
	if err != nil {
		t.Fatalf("reading %s: %v", filepath.Join(elem...), err)
	}
	return data
}

// --- strict protobuf decoding of YAML ---

// decodeProtoYAML decodes YAML into m the way Envoy and istiod read their configs, but strictly:
// duplicate keys, unknown fields and unresolvable @type URLs are all errors. Unknown fields are
// first reported with their YAML path and a suggestion, because protojson's own message gives
// only a JSON line and column; protojson then has the last word on types and values.
func decodeProtoYAML(data []byte, m proto.Message) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	return decodeProtoJSON(js, m)
}

func decodeProtoJSON(js []byte, m proto.Message) error {
	var tree any
	if err := json.Unmarshal(js, &tree); err != nil {
		return fmt.Errorf("not valid JSON: %w", err)
	}
	var problems []string
	checkProtoFields(tree, m.ProtoReflect().Descriptor(), "", &problems)
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "\n"))
	}
	if err := (protojson.UnmarshalOptions{Resolver: protoregistry.GlobalTypes}).Unmarshal(js, m); err != nil {
		return fmt.Errorf("does not match %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return nil
}

// opaqueJSON are the well-known types whose JSON form is not an object of their fields.
var opaqueJSON = map[protoreflect.FullName]bool{
	"google.protobuf.Struct": true, "google.protobuf.Value": true, "google.protobuf.ListValue": true,
	"google.protobuf.Duration": true, "google.protobuf.Timestamp": true, "google.protobuf.FieldMask": true,
	"google.protobuf.DoubleValue": true, "google.protobuf.FloatValue": true, "google.protobuf.Int64Value": true,
	"google.protobuf.UInt64Value": true, "google.protobuf.Int32Value": true, "google.protobuf.UInt32Value": true,
	"google.protobuf.BoolValue": true, "google.protobuf.StringValue": true, "google.protobuf.BytesValue": true,
	"google.protobuf.Empty": true,
}

// checkProtoFields walks a decoded JSON tree beside the message descriptor md and records every
// key that is not a field, and every Any whose @type is not linked into this test binary.
func checkProtoFields(v any, md protoreflect.MessageDescriptor, path string, problems *[]string) {
	if opaqueJSON[md.FullName()] {
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return // a wrong kind of value: protojson reports it
	}
	if md.FullName() == "google.protobuf.Any" {
		url, _ := obj["@type"].(string)
		mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
		if err != nil {
			*problems = append(*problems, fmt.Sprintf("%s: unknown type %q (misspelled, or its go-control-plane package is not imported by envoy/test)", join(path, "@type"), url))
			return
		}
		inner := mt.Descriptor()
		if opaqueJSON[inner.FullName()] {
			return
		}
		rest := make(map[string]any, len(obj))
		for k, e := range obj {
			if k != "@type" {
				rest[k] = e
			}
		}
		checkProtoFields(rest, inner, path+"<"+string(inner.Name())+">", problems)
		return
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := md.Fields()
	for _, k := range keys {
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		p := join(path, k)
		if fd == nil {
			msg := fmt.Sprintf("%s: unknown field %q in %s", p, k, md.FullName())
			if s := suggest(k, fields); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			*problems = append(*problems, msg)
			continue
		}
		val := obj[k]
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				continue
			}
			if m, ok := val.(map[string]any); ok {
				for mk, mv := range m {
					checkProtoFields(mv, fd.MapValue().Message(), p+"["+strconv.Quote(mk)+"]", problems)
				}
			}
		case fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind:
		case fd.IsList():
			if l, ok := val.([]any); ok {
				for i, e := range l {
					checkProtoFields(e, fd.Message(), fmt.Sprintf("%s[%d]", p, i), problems)
				}
			}
		default:
			checkProtoFields(val, fd.Message(), p, problems)
		}
	}
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// suggest returns the field name closest to k, if it is close enough to be a typo.
func suggest(k string, fields protoreflect.FieldDescriptors) string {
	best, bestD := "", 4
	for i := 0; i < fields.Len(); i++ {
		name := string(fields.Get(i).Name())
		if d := editDistance(strings.ToLower(k), name); d < bestD {
			best, bestD = name, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// validateDeep runs the protoc-gen-validate rules (ValidateAll) on m and, because ValidateAll
// stops at google.protobuf.Any, on the content of every Any inside it, recursively.
func validateDeep(m proto.Message, path string) []error {
	var errs []error
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", orRoot(path), m.ProtoReflect().Descriptor().FullName(), err))
		}
	}
	forEachAny(m.ProtoReflect(), path, func(a *anypb.Any, p string) {
		inner, err := a.UnmarshalNew()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: cannot unpack %s: %w", p, a.GetTypeUrl(), err))
			return
		}
		errs = append(errs, validateDeep(inner, p+"<"+string(inner.ProtoReflect().Descriptor().Name())+">")...)
	})
	return errs
}

func orRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

// forEachAny calls fn for every Any directly or indirectly inside m, without entering the Anys.
func forEachAny(m protoreflect.Message, path string, fn func(*anypb.Any, string)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		p := join(path, string(fd.Name()))
		visit := func(mv protoreflect.Message, p string) {
			if a, ok := mv.Interface().(*anypb.Any); ok {
				fn(a, p)
				return
			}
			forEachAny(mv, p, fn)
		}
		switch {
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
					visit(mv.Message(), p+"["+strconv.Quote(k.String())+"]")
					return true
				})
			}
		case fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind:
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				visit(v.List().Get(i).Message(), fmt.Sprintf("%s[%d]", p, i))
			}
		default:
			visit(v.Message(), p)
		}
		return true
	})
}

// --- jwtauthz configs ---

// validateJwtauthzConfig does what `jwtauthz validate FILE` does (cmd/jwtauthz/validate.go):
// load, default and validate; at least one provider; then build everything without starting it.
// It returns the loaded config and the warnings.
func validateJwtauthzConfig(data []byte) (*configv1.Config, config.Problems, error) {
	cfg, warnings, err := config.LoadBytes(data)
	if err != nil {
		return nil, warnings, err
	}
	if len(cfg.GetProviders()) == 0 {
		return nil, warnings, errors.New("providers: at least one provider is required")
	}
	if err := server.CheckConfig(cfg); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}

func mustJwtauthzConfig(t *testing.T, name string, data []byte) *configv1.Config {
	t.Helper()
	cfg, warnings, err := validateJwtauthzConfig(data)
	for _, w := range warnings {
		t.Logf("%s: warning: %v", name, w)
	}
	if err != nil {
		t.Fatalf("%s does not pass jwtauthz validate:\n%v", name, err)
	}
	return cfg
}

// identityHeaders lists every header a config manages: claim_to_headers and
// forward_payload_header of every provider (contract.md, "Identity headers, for stripping").
func identityHeaders(cfg *configv1.Config) []string {
	set := map[string]bool{}
	for _, p := range cfg.GetProviders() {
		for _, c := range p.GetClaimToHeaders() {
			set[strings.ToLower(c.GetHeader())] = true
		}
		if h := p.GetForwardPayloadHeader(); h != "" {
			set[strings.ToLower(h)] = true
		}
	}
	out := make([]string, 0, len(set))
	for h := range set {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// --- generic YAML trees, for the negative tests that break a copy of a shipped file ---

// yamlTree decodes YAML into maps and slices.
func yamlTree(t *testing.T, data []byte) map[string]any {
	t.Helper()
	var tree map[string]any
	if err := yaml.Unmarshal(data, &tree); err != nil {
		t.Fatalf("decoding YAML: %v", err)
	}
	return tree
}

func yamlBytes(t *testing.T, tree any) []byte {
	t.Helper()
	out, err := yaml.Marshal(tree)
	if err != nil {
		t.Fatalf("encoding YAML: %v", err)
	}
	return out
}

// node follows a path of map keys (string) and list indexes (int) through a YAML tree.
func node(t *testing.T, tree any, path ...any) any {
	t.Helper()
	cur := tree
	for i, step := range path {
		switch s := step.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				t.Fatalf("path %v: element %d is not a mapping", path, i)
			}
			if cur, ok = m[s]; !ok {
				t.Fatalf("path %v: no key %q", path, s)
			}
		case int:
			l, ok := cur.([]any)
			if !ok || s >= len(l) {
				t.Fatalf("path %v: element %d is not a list of more than %d items", path, i, s)
			}
			cur = l[s]
		}
	}
	return cur
}

func mapAt(t *testing.T, tree any, path ...any) map[string]any {
	t.Helper()
	m, ok := node(t, tree, path...).(map[string]any)
	if !ok {
		t.Fatalf("path %v is not a mapping", path)
	}
	return m
}

// containsAll reports whether s contains every one of the substrings.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// decodeStrictYAML decodes YAML into a Go struct the way the Kubernetes API server decodes a
// manifest in strict mode (sigs.k8s.io/json, case-sensitive): unknown fields and duplicate keys
// are errors that name the field's full path.
func decodeStrictYAML(data []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	strict, err := k8sjson.UnmarshalStrict(js, v, k8sjson.DisallowDuplicateFields, k8sjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}
