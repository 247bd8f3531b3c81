package extauthz

//lint:file-ignore SA1019 the tests read HeaderValueOption.append, deprecated but the field Envoy honours (envoy-notes R5).

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
)

var placeholder = regexp.MustCompile(`\{\{token:([a-z0-9_]+)\}\}`)

// loadGolden reads a protojson CheckRequest from testdata and replaces each {{token:NAME}} (in
// header values, raw header bytes and the path) with a token minted for this run: keys are made
// fresh per run, so tokens cannot live in the files.
func loadGolden(t testing.TB, name string) *authv3.CheckRequest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	req := &authv3.CheckRequest{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, req); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	fill := func(s string) string {
		return placeholder.ReplaceAllStringFunc(s, func(m string) string {
			n := placeholder.FindStringSubmatch(m)[1]
			tok, ok := tokens[n]
			if !ok {
				t.Fatalf("%s: no token named %q", name, n)
			}
			return tok
		})
	}
	h := req.GetAttributes().GetRequest().GetHttp()
	for k, v := range h.GetHeaders() {
		h.Headers[k] = fill(v)
	}
	for _, e := range h.GetHeaderMap().GetHeaders() {
		e.Value = fill(e.Value)
		e.RawValue = []byte(fill(string(e.RawValue)))
	}
	h.Path = fill(h.Path)
	return req
}

// wireWant is what Envoy must receive.
type wireWant struct {
	code codes.Code
	// deny
	httpStatus int
	challenge  string // "" = no www-authenticate header
	retryAfter string // "" = no retry-after header
	body       string
	// allow
	set         map[string]string
	remove      []string
	removeQuery []string
	// dynamic metadata (both)
	md         map[string]string
	payloadSub string // payload_in_metadata: the sub in jwt_payload, "" = absent
}

// headerValues checks that every entry is lower-case, carries an explicit append=false (the
// Envoy 1.37 hazard, envoy-notes R5) and appears once; it returns them as a map.
func headerValues(t *testing.T, hs []*corev3.HeaderValueOption) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, h := range hs {
		k := h.GetHeader().GetKey()
		if k != strings.ToLower(k) {
			t.Errorf("header %q is not lower-case", k)
		}
		if h.GetAppend() == nil || h.GetAppend().Value {
			t.Errorf("header %s: append = %v, want explicitly false", k, h.GetAppend())
		}
		if _, dup := out[k]; dup {
			t.Errorf("header %s sent twice", k)
		}
		if h.GetHeader().GetRawValue() != nil {
			t.Errorf("header %s uses raw_value", k)
		}
		out[k] = h.GetHeader().GetValue()
	}
	return out
}

func TestGoldenCheckRequests(t *testing.T) {
	fixtures(t)
	client := serve(t, newAuthorizer(t, options{cors: true}))
	body := func(e, d string) string { return `{"error":"` + e + `","error_description":"` + d + `"}` }
	const (
		invalidToken = `Bearer realm="example", error="invalid_token", error_description="The access token is invalid"`
		multiple     = `Bearer realm="example", error="invalid_request", error_description="The request carries more than one access token"`
	)
	aliceHeaders := map[string]string{"x-user-id": "alice", "x-user-email": "alice@example.com", "x-user-scopes": "read write"}
	cases := map[string]wireWant{
		"allow_bearer.json": {
			code: codes.OK, set: aliceHeaders, remove: []string{"x-partner-id", "authorization"},
			md: map[string]string{"provider": "main", "iss": issMain, "sub": "alice", "reason": "ok"}, payloadSub: "alice",
		},
		"header_map_allow.json": {
			code: codes.OK, set: aliceHeaders, remove: []string{"x-partner-id", "authorization"},
			md: map[string]string{"provider": "main", "iss": issMain, "sub": "alice", "reason": "ok"}, payloadSub: "alice",
		},
		"token_in_query.json": {
			code: codes.OK, set: map[string]string{"x-partner-id": "p1"},
			remove: []string{"x-user-email", "x-user-id", "x-user-scopes"}, removeQuery: []string{"access_token"},
			md: map[string]string{"provider": "partner", "iss": issPartner, "sub": "p1", "reason": "ok"},
		},
		"cors_preflight.json": {
			code: codes.OK, set: map[string]string{}, remove: identity,
			md: map[string]string{"reason": "cors_preflight"},
		},
		"missing_token.json": {
			code: codes.Unauthenticated, httpStatus: 401, challenge: `Bearer realm="example"`,
			body: body("unauthorized", "An access token is required"), md: map[string]string{"reason": "missing_token"},
		},
		"basic_scheme.json": {
			code: codes.Unauthenticated, httpStatus: 401, challenge: `Bearer realm="example"`,
			body: body("unauthorized", "The Bearer authentication scheme is required"), md: map[string]string{"reason": "unsupported_scheme"},
		},
		"two_tokens_joined.json": {
			code: codes.InvalidArgument, httpStatus: 400, challenge: multiple,
			body: body("invalid_request", "The request carries more than one access token"), md: map[string]string{"reason": "multiple_tokens"},
		},
		"header_map_two_authorization.json": {
			code: codes.InvalidArgument, httpStatus: 400, challenge: multiple,
			body: body("invalid_request", "The request carries more than one access token"), md: map[string]string{"reason": "multiple_tokens"},
		},
		"expired.json": {
			code: codes.Unauthenticated, httpStatus: 401,
			challenge: `Bearer realm="example", error="invalid_token", error_description="The access token expired"`,
			body:      body("invalid_token", "The access token expired"), md: map[string]string{"provider": "main", "reason": "expired"},
		},
		"bad_signature.json": {
			code: codes.Unauthenticated, httpStatus: 401, challenge: invalidToken,
			body: body("invalid_token", "The access token is invalid"), md: map[string]string{"provider": "main", "reason": "bad_signature"},
		},
		"unknown_issuer.json": {
			code: codes.Unauthenticated, httpStatus: 401, challenge: invalidToken,
			body: body("invalid_token", "The access token is invalid"), md: map[string]string{"reason": "issuer_unknown"},
		},
		"keys_unavailable.json": {
			code: codes.Unavailable, httpStatus: 503, retryAfter: "2",
			body: body("temporarily_unavailable", "Tokens cannot be verified right now; retry later"), md: map[string]string{"provider": "down", "reason": "keys_unavailable"},
		},
	}
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) != len(cases) {
		t.Errorf("%d golden files, %d expectations: every file needs a row", len(files), len(cases))
	}
	for _, f := range files {
		name := filepath.Base(f)
		w, ok := cases[name]
		if !ok {
			t.Errorf("%s has no expectation", name)
			continue
		}
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := client.Check(ctx, loadGolden(t, name))
			if err != nil {
				t.Fatalf("Check returned a gRPC error: %v", err)
			}
			checkWire(t, resp, w)
		})
	}
}

func checkWire(t *testing.T, resp *authv3.CheckResponse, w wireWant) {
	t.Helper()
	if resp.GetStatus() == nil {
		t.Fatal("status unset: Envoy reads that as OK (R1)")
	}
	if got := codes.Code(resp.GetStatus().GetCode()); got != w.code {
		t.Errorf("status.code = %v, want %v", got, w.code)
	}
	md := map[string]string{}
	for k, v := range resp.GetDynamicMetadata().GetFields() {
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			md[k] = x.StringValue
		case *structpb.Value_StructValue:
			if k != "jwt_payload" {
				t.Errorf("metadata %s is a struct", k)
			}
		default:
			t.Errorf("metadata %s has unexpected kind %T", k, v.GetKind())
		}
	}
	for k, v := range w.md {
		if md[k] != v {
			t.Errorf("dynamic_metadata.%s = %q, want %q", k, md[k], v)
		}
	}
	payload := resp.GetDynamicMetadata().GetFields()["jwt_payload"].GetStructValue()
	if w.payloadSub != "" {
		f := payload.GetFields()
		if f["sub"].GetStringValue() != w.payloadSub || f["iss"].GetStringValue() != issMain || f["exp"].GetNumberValue() != float64(testNow.Add(time.Hour).Unix()) {
			t.Errorf("dynamic_metadata.jwt_payload = %v", payload)
		}
	} else if payload != nil {
		t.Errorf("dynamic_metadata.jwt_payload present: %v", payload)
	}
	for _, k := range []string{"provider", "iss", "sub"} {
		if _, want := w.md[k]; !want && md[k] != "" {
			t.Errorf("dynamic_metadata.%s = %q, want absent", k, md[k])
		}
	}
	if w.code == codes.OK {
		ok := resp.GetOkResponse()
		if ok == nil || resp.GetDeniedResponse() != nil {
			t.Fatalf("allow without ok_response: %v", resp)
		}
		if got := headerValues(t, ok.GetHeaders()); !reflect.DeepEqual(got, w.set) {
			t.Errorf("ok_response.headers = %v, want %v", got, w.set)
		}
		if !reflect.DeepEqual(ok.GetHeadersToRemove(), w.remove) {
			t.Errorf("headers_to_remove = %q, want %q", ok.GetHeadersToRemove(), w.remove)
		}
		if !reflect.DeepEqual(ok.GetQueryParametersToRemove(), w.removeQuery) {
			t.Errorf("query_parameters_to_remove = %q, want %q", ok.GetQueryParametersToRemove(), w.removeQuery)
		}
		if len(ok.GetResponseHeadersToAdd()) != 0 || len(ok.GetQueryParametersToSet()) != 0 || ok.GetDynamicMetadata() != nil {
			t.Errorf("unexpected ok_response fields: %v", ok)
		}
		return
	}
	den := resp.GetDeniedResponse()
	if den == nil || resp.GetOkResponse() != nil {
		t.Fatalf("deny without denied_response: %v", resp)
	}
	if got := int(den.GetStatus().GetCode()); got != w.httpStatus {
		t.Errorf("denied_response.status.code = %d, want %d", got, w.httpStatus)
	}
	hs := headerValues(t, den.GetHeaders())
	want := map[string]string{"content-type": "application/json", "cache-control": "no-store"}
	if w.challenge != "" {
		want["www-authenticate"] = w.challenge
	}
	if w.retryAfter != "" {
		want["retry-after"] = w.retryAfter
	}
	if !reflect.DeepEqual(hs, want) {
		t.Errorf("denied_response.headers =\n %q\nwant\n %q", hs, want)
	}
	if den.GetBody() != w.body {
		t.Errorf("body = %s, want %s", den.GetBody(), w.body)
	}
}

// TestGoldenTranslation: the Envoy shapes become the same authz.Request.
func TestGoldenTranslation(t *testing.T) {
	fixtures(t)
	r := Request(loadGolden(t, "allow_bearer.json"))
	if r.Method != "GET" || r.Host != "api.example.com" || r.Path != "/v1/orders" || r.Query != "id=7&sort=desc" ||
		r.Principal != "spiffe://cluster.local/ns/shop/sa/frontend" || r.RequestID != "5a0b9f6e-3c1d-4e8a-9b7f-2d6c1e0a4b3c" || r.Transport != "grpc" {
		t.Errorf("headers shape: %+v", r)
	}
	if got := r.Headers["x-user-email"]; !reflect.DeepEqual(got, []string{"admin@example.com,root@example.com"}) {
		t.Errorf("comma-joined repeat = %q", got)
	}
	if _, ok := r.Headers["host"]; ok {
		t.Error("a host key appeared")
	}
	r = Request(loadGolden(t, "header_map_two_authorization.json"))
	if got := len(r.Headers["authorization"]); got != 2 {
		t.Errorf("header_map: %d authorization values, want 2", got)
	}
	if r.Path != "/v1/orders/42" || r.Method != "GET" || r.Host != "api.example.com" {
		t.Errorf("header_map shape: %+v", r)
	}
	r = Request(loadGolden(t, "header_map_allow.json"))
	if got := r.Headers["x-legacy-blob"]; len(got) != 1 || got[0] != "\xff\xfe caf\xe9" {
		t.Errorf("raw bytes not kept: %q", got)
	}
	r = Request(loadGolden(t, "token_in_query.json"))
	if r.Path != "/v1/feed" || !strings.HasPrefix(r.Query, "page=2&access_token=ey") || !strings.HasSuffix(r.Query, "&lang=fr") {
		t.Errorf("query split: path %q query %q", r.Path, r.Query)
	}
}
