package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"sigs.k8s.io/yaml"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

// MaxFileBytes bounds the configuration file: a config is a few KiB, and a runaway file (or a
// device path given by mistake) must not exhaust memory.
const MaxFileBytes = 4 << 20

// Problem is one configuration problem at a field path, such as
// "providers.zuplo.remote_jwks.uri: must be https". Warnings do not make a config invalid.
type Problem struct {
	Path    string
	Message string
	Warning bool
}

func (p *Problem) Error() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every problem found in one pass. It is an error when at least one is not a warning.
type Problems []*Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		if p.Warning {
			b.WriteString("warning: ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Load reads, decodes, defaults and validates the file at path. The error, when not nil, is a
// Problems value listing every problem (or a file-level error). Warnings come back with a valid
// config so that callers can log them.
func Load(path string) (*configv1.Config, Problems, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, nil, err
	}
	return LoadBytes(data)
}

// LoadBytes is Load for a file already in memory.
func LoadBytes(data []byte) (*configv1.Config, Problems, error) {
	cfg, err := Parse(data)
	if err != nil {
		return nil, nil, err
	}
	ApplyDefaults(cfg)
	ps := Validate(cfg)
	if errs := ps.Errors(); len(errs) > 0 {
		return nil, ps.Warnings(), errs
	}
	return cfg, ps.Warnings(), nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, MaxFileBytes)
	}
	return data, nil
}

// Parse decodes YAML (or JSON) into the schema, strictly: duplicate keys, unknown fields and
// wrong types are all reported, each with its field path. It applies no defaults.
func Parse(data []byte) (*configv1.Config, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, Problems{{Message: "not valid YAML: " + err.Error()}}
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		js = []byte("{}")
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, Problems{{Message: "not valid YAML: " + err.Error()}}
	}
	cfg := &configv1.Config{}
	var ps Problems
	checkShape(generic, cfg.ProtoReflect().Descriptor(), "", &ps)
	if len(ps) > 0 {
		return nil, ps
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, cfg); err != nil {
		// checkShape should have caught everything protojson refuses; this is the backstop
		// for what it does not model (duration syntax, number ranges).
		return nil, Problems{{Message: cleanProtojsonError(err)}}
	}
	return cfg, nil
}

func cleanProtojsonError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "proto:")
	s = strings.ReplaceAll(s, "\u00a0", " ")
	return strings.TrimSpace(s)
}

// checkShape walks the generic JSON value against the message descriptor and reports unknown
// fields and JSON kinds that cannot decode into the field, with paths. protojson stops at the
// first error and names no path; users want all of them, located.
func checkShape(v any, md protoreflect.MessageDescriptor, path string, ps *Problems) {
	switch md.FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok || !strings.HasSuffix(s, "s") {
			*ps = append(*ps, &Problem{Path: path, Message: `must be a duration string such as "60s" or "0.5s"`})
		}
		return
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a list"})
		}
		return
	case "google.protobuf.Value", "google.protobuf.Struct":
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		*ps = append(*ps, &Problem{Path: path, Message: "must be a mapping, got " + kindOf(v)})
		return
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := md.Fields()
	for _, k := range keys {
		fd := fields.ByName(protoreflect.Name(k))
		if fd == nil {
			fd = fields.ByJSONName(k)
		}
		p := join(path, k)
		if fd == nil {
			*ps = append(*ps, &Problem{Path: p, Message: "unknown field" + suggest(k, fields)})
			continue
		}
		checkField(obj[k], fd, p, ps)
	}
}

func checkField(v any, fd protoreflect.FieldDescriptor, path string, ps *Problems) {
	if v == nil {
		return // protojson treats null as unset
	}
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a mapping, got " + kindOf(v)})
			return
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			checkSingular(obj[k], fd.MapValue(), join(path, k), ps)
		}
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a list, got " + kindOf(v)})
			return
		}
		for i, e := range arr {
			checkSingular(e, fd, fmt.Sprintf("%s[%d]", path, i), ps)
		}
	default:
		checkSingular(v, fd, path, ps)
	}
}

func checkSingular(v any, fd protoreflect.FieldDescriptor, path string, ps *Problems) {
	bad := func(want string) {
		*ps = append(*ps, &Problem{Path: path, Message: "must be " + want + ", got " + kindOf(v)})
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		checkShape(v, fd.Message(), path, ps)
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			bad("a string")
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			bad("true or false")
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, ok := v.(float64); !ok {
			bad("a number")
		}
	case protoreflect.EnumKind:
		if _, ok := v.(string); !ok {
			bad("a name")
		}
	default: // integers
		f, ok := v.(float64)
		if !ok {
			bad("a whole number")
			return
		}
		if f != float64(int64(f)) || f < 0 && (fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Uint64Kind) {
			bad("a whole number >= 0")
		} else if (fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Int32Kind) && f > 1<<31-1 {
			*ps = append(*ps, &Problem{Path: path, Message: "is too large"})
		}
	}
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// suggest names a known field that differs from k by case, '-' for '_', or one edit, which
// covers most typos ("audience" for "audiences", "remoteJwks" for "remote_jwks" is accepted).
func suggest(k string, fields protoreflect.FieldDescriptors) string {
	norm := strings.ToLower(strings.ReplaceAll(k, "-", "_"))
	for i := 0; i < fields.Len(); i++ {
		name := string(fields.Get(i).Name())
		if name == norm || editDistance(name, norm) <= 2 {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
