package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
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

// LoadBytes is Load for a file already in memory. It reports every problem at once: fields
// with unknown names or wrong types are reported and left out, and the rest of the file is still
// defaulted and validated, so that one run of `jwtauthz validate` lists everything to fix.
func LoadBytes(data []byte) (*configv1.Config, Problems, error) {
	cfg, shape, err := parse(data)
	if err != nil {
		return nil, nil, err
	}
	ApplyDefaults(cfg)
	ps := append(shape, dropUnder(Validate(cfg), shape)...)
	if errs := ps.Errors(); len(errs) > 0 {
		return nil, ps.Warnings(), errs
	}
	return cfg, ps.Warnings(), nil
}

// dropUnder removes the problems located at or below a field that was already reported and
// left out: a follow-on complaint about the default that replaced it would only confuse.
func dropUnder(ps, reported Problems) Problems {
	var out Problems
next:
	for _, p := range ps {
		for _, r := range reported {
			if r.Path != "" && (p.Path == r.Path || strings.HasPrefix(p.Path, r.Path+".") || strings.HasPrefix(p.Path, r.Path+"[")) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
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
	cfg, shape, err := parse(data)
	if err != nil {
		return nil, err
	}
	if len(shape) > 0 {
		return nil, shape
	}
	return cfg, nil
}

// parse decodes data. A file-level problem (too large, empty, not YAML, not a mapping) is an
// error. Field-level problems (unknown fields, wrong types) come back as shape, with a config
// decoded from the rest of the file: the offending fields are left out (a message of the wrong
// kind is replaced by an empty one), so that validation can still report everything else.
func parse(data []byte) (*configv1.Config, Problems, error) {
	if len(data) > MaxFileBytes {
		return nil, nil, Problems{{Message: fmt.Sprintf("the file is larger than %d bytes", MaxFileBytes)}}
	}
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, nil, yamlProblems(err)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || bytes.Equal(js, []byte("null")) {
		return nil, nil, Problems{{Message: "the file is empty"}}
	}
	var generic any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, nil, Problems{{Message: "not valid YAML: " + oneLine(err.Error())}}
	}
	root, ok := generic.(map[string]any)
	if !ok {
		return nil, nil, Problems{{Message: "the top level must be a mapping, got " + kindOf(generic)}}
	}
	cfg := &configv1.Config{}
	var shape Problems
	checkObject(root, cfg.ProtoReflect().Descriptor(), "", &shape)
	if len(shape) > 0 {
		// checkObject removed what it reported; decode what is left.
		if js, err = json.Marshal(root); err != nil {
			return nil, nil, Problems{{Message: "not valid YAML: " + oneLine(err.Error())}}
		}
	}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(js, cfg); err != nil {
		// checkShape should have caught everything protojson refuses; this is the backstop
		// for what it does not model.
		return nil, nil, append(shape, &Problem{Message: oneLine(cleanProtojsonError(err))})
	}
	return cfg, shape, nil
}

// yamlProblems turns the YAML decoder's error, which may list several lines ("yaml: unmarshal
// errors:\n  line 2: key "realm" already set in map\n  line 9: ..."), into one problem per line.
func yamlProblems(err error) Problems {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	var ps Problems
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "yaml: "))
		if line == "" || line == "unmarshal errors:" {
			continue
		}
		if strings.Contains(line, "already set in map") {
			line += " (duplicate keys are not allowed)"
		}
		ps = append(ps, &Problem{Message: "not valid YAML: " + line})
	}
	if len(ps) == 0 {
		ps = Problems{{Message: "not valid YAML: " + oneLine(msg)}}
	}
	return ps
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func cleanProtojsonError(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "proto:")
	s = strings.ReplaceAll(s, "\u00a0", " ")
	return strings.TrimSpace(s)
}

// checkObject walks a generic JSON object against the message descriptor and reports unknown
// fields and JSON kinds that cannot decode into their field, with paths. protojson stops at the
// first error and names no path; users want all of them, located. Every reported field is
// removed from obj (a message of the wrong kind becomes {}), so that the rest still decodes.
func checkObject(obj map[string]any, md protoreflect.MessageDescriptor, path string, ps *Problems) {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fields := md.Fields()
	seen := map[protoreflect.FieldNumber]string{}
	for _, k := range keys {
		fd := fields.ByName(protoreflect.Name(k))
		if fd == nil {
			fd = fields.ByJSONName(k)
		}
		p := join(path, k)
		if fd == nil {
			*ps = append(*ps, &Problem{Path: p, Message: "unknown field" + suggest(k, fields)})
			delete(obj, k)
			continue
		}
		if other, dup := seen[fd.Number()]; dup {
			// protojson accepts both the field name and its lowerCamel JSON name.
			*ps = append(*ps, &Problem{Path: p, Message: fmt.Sprintf("same field as %s; set it once", pathKey(other))})
			delete(obj, k)
			continue
		}
		seen[fd.Number()] = k
		if v, keep := checkField(obj[k], fd, p, ps); keep {
			obj[k] = v
		} else {
			delete(obj, k)
		}
	}
}

// checkField checks one field's value and returns what to decode in its place: v itself, an
// empty object for a message of the wrong kind, or keep=false to leave the field out.
func checkField(v any, fd protoreflect.FieldDescriptor, path string, ps *Problems) (any, bool) {
	if v == nil {
		return v, true // protojson treats null as unset
	}
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a mapping, got " + kindOf(v)})
			return nil, false
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if e, keep := checkSingular(obj[k], fd.MapValue(), join(path, k), ps); keep {
				obj[k] = e
			} else {
				delete(obj, k)
			}
		}
		return obj, true
	case fd.IsList():
		arr, ok := v.([]any)
		if !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a list, got " + kindOf(v)})
			return nil, false
		}
		n := len(*ps)
		for i, e := range arr {
			if e, keep := checkSingular(e, fd, fmt.Sprintf("%s[%d]", path, i), ps); keep {
				arr[i] = e
			}
		}
		if len(*ps) > n {
			// Dropping one element would shift the others' indexes: leave the list out.
			return nil, false
		}
		return arr, true
	}
	return checkSingular(v, fd, path, ps)
}

func checkSingular(v any, fd protoreflect.FieldDescriptor, path string, ps *Problems) (any, bool) {
	bad := func(want string) (any, bool) {
		*ps = append(*ps, &Problem{Path: path, Message: "must be " + want + ", got " + kindOf(v)})
		return nil, false
	}
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return checkMessage(v, fd.Message(), path, ps)
	case protoreflect.StringKind, protoreflect.BytesKind:
		if _, ok := v.(string); !ok {
			return bad("a string")
		}
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return bad("true or false")
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		if _, ok := v.(float64); !ok {
			return bad("a number")
		}
	case protoreflect.EnumKind:
		if _, ok := v.(string); !ok {
			return bad("a name")
		}
	default: // integers
		f, ok := v.(float64)
		if !ok {
			return bad("a whole number")
		}
		unsigned := fd.Kind() == protoreflect.Uint32Kind || fd.Kind() == protoreflect.Uint64Kind ||
			fd.Kind() == protoreflect.Fixed32Kind || fd.Kind() == protoreflect.Fixed64Kind
		if f != math.Trunc(f) || f < 0 && unsigned {
			return bad("a whole number >= 0")
		}
		if f > 1<<31-1 || f < -(1<<31) {
			*ps = append(*ps, &Problem{Path: path, Message: "is too large"})
			return nil, false
		}
	}
	return v, true
}

// checkMessage checks a value for a message-typed field.
func checkMessage(v any, md protoreflect.MessageDescriptor, path string, ps *Problems) (any, bool) {
	switch md.FullName() {
	case "google.protobuf.Duration":
		s, ok := v.(string)
		if !ok || !validDuration(s) {
			*ps = append(*ps, &Problem{Path: path, Message: `must be a duration string such as "60s" or "0.5s"`})
			return nil, false
		}
		return v, true
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			*ps = append(*ps, &Problem{Path: path, Message: "must be a list"})
			return nil, false
		}
		return v, true
	case "google.protobuf.Value", "google.protobuf.Struct":
		return v, true
	}
	obj, ok := v.(map[string]any)
	if !ok {
		*ps = append(*ps, &Problem{Path: path, Message: "must be a mapping, got " + kindOf(v)})
		return map[string]any{}, true
	}
	checkObject(obj, md, path, ps)
	return obj, true
}

// validDuration reports whether protojson accepts s as a google.protobuf.Duration ("60s",
// "0.5s", "-1s"; at most 315576000000 seconds).
func validDuration(s string) bool {
	if !strings.HasSuffix(s, "s") {
		return false
	}
	q, err := json.Marshal(s)
	if err != nil {
		return false
	}
	return protojson.Unmarshal(q, &durationpb.Duration{}) == nil
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
		return pathKey(k)
	}
	return path + "." + pathKey(k)
}

// pathKey renders a key taken from the file (a provider name, an unknown field) as a field-path
// segment: as it is when it reads unambiguously, else Go-quoted, so that a key holding a dot,
// a bracket, a space or a line break cannot blur the path or forge another "path: message" line.
func pathKey(k string) string {
	if k == "" {
		return `""`
	}
	for _, r := range k {
		if !unicode.IsPrint(r) || r == ' ' || r == '.' || r == '[' || r == ']' || r == '"' || r == ':' {
			return strconv.Quote(k)
		}
	}
	return k
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
