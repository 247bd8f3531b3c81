package extauthz

//lint:file-ignore SA1019 the tests read HeaderValueOption.append, deprecated but the field Envoy honours (envoy-notes R5).

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// This file is the in-test "Envoy-like proxy" of envoy-notes §8: no Envoy binary runs in CI, so a
// small model of what the ext_authz filter does with a CheckResponse checks that our answers have
// the effect we mean on the request that reaches the upstream.

// proxyRequest is a request as the proxy holds it: ordered header lines with lower-case names and
// repeats kept apart, and the request target with its query.
type proxyRequest struct {
	headers [][2]string
	path    string
}

func (p proxyRequest) values(name string) []string {
	var out []string
	for _, h := range p.headers {
		if h[0] == name {
			out = append(out, h[1])
		}
	}
	return out
}

func (p *proxyRequest) remove(name string) {
	kept := p.headers[:0:0]
	for _, h := range p.headers {
		if h[0] != name {
			kept = append(kept, h)
		}
	}
	p.headers = kept
}

// checkRequest builds the CheckRequest Envoy sends for p (envoy-notes §1): with raw false, the
// headers map (keys lower-case, repeats joined with ",", no host key); with raw true, header_map
// (encode_raw_headers: one entry per line, raw_value bytes).
func (p proxyRequest) checkRequest(raw bool) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{Id: "42", Path: p.path, Scheme: "https", Protocol: "HTTP/2"}
	if raw {
		h.HeaderMap = &corev3.HeaderMap{}
		for _, kv := range p.headers {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])})
		}
	} else {
		h.Headers = map[string]string{}
		for _, kv := range p.headers {
			if old, ok := h.Headers[kv[0]]; ok {
				h.Headers[kv[0]] = old + "," + kv[1]
			} else {
				h.Headers[kv[0]] = kv[1]
			}
		}
	}
	for _, kv := range p.headers {
		switch kv[0] {
		case ":method":
			h.Method = kv[1]
		case ":authority":
			h.Host = kv[1]
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
}

// envoy is the filter's configuration and the version-dependent behaviour under test.
type envoy struct {
	// unsetAppendAppends models Envoy 1.37 (envoy#43310): a header option with append unset
	// follows append_action, whose zero value is APPEND_IF_EXISTS_OR_ADD. False models every
	// other release: append unset means overwrite.
	unsetAppendAppends bool
	failureModeAllow   bool
	statusOnError      int // 0 = Envoy's default, 403
}

// outcome is what the proxy did: forward a (mutated) request upstream, or answer locally.
type outcome struct {
	forwarded bool
	upstream  proxyRequest
	status    int
	headers   map[string][]string
	body      string
}

// apply does what the ext_authz filter does with Check's result. OK: set or append each header
// of ok_response (per append / append_action), then remove headers_to_remove (never ':'-headers
// or host) and the query parameters to remove. Any other code: a local reply with
// denied_response's status (403 when unset), headers and body. An RPC error: the failure path,
// failure_mode_allow or status_on_error.
func (e envoy) apply(resp *authv3.CheckResponse, rpcErr error, in proxyRequest) outcome {
	if rpcErr != nil {
		if e.failureModeAllow {
			return outcome{forwarded: true, upstream: in}
		}
		st := e.statusOnError
		if st == 0 {
			st = 403
		}
		return outcome{status: st}
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
		den := resp.GetDeniedResponse()
		st := int(den.GetStatus().GetCode())
		if st == 0 {
			st = 403
		}
		hs := map[string][]string{}
		for _, h := range den.GetHeaders() {
			k := strings.ToLower(h.GetHeader().GetKey())
			hs[k] = []string{h.GetHeader().GetValue()} // denied headers replace
		}
		return outcome{status: st, headers: hs, body: den.GetBody()}
	}
	up := proxyRequest{headers: append([][2]string(nil), in.headers...), path: in.path}
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		k, v := strings.ToLower(h.GetHeader().GetKey()), h.GetHeader().GetValue()
		exists := len(up.values(k)) > 0
		var appendIt, addIt bool
		switch {
		case h.GetAppend() != nil:
			appendIt, addIt = h.GetAppend().Value, true
		case !e.unsetAppendAppends:
			appendIt, addIt = false, true
		default:
			switch h.GetAppendAction() {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				appendIt, addIt = true, true
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				appendIt, addIt = true, !exists
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				appendIt, addIt = false, true
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				appendIt, addIt = false, exists
			}
		}
		if !addIt {
			continue
		}
		if !appendIt {
			up.remove(k)
		}
		up.headers = append(up.headers, [2]string{k, v})
	}
	for _, k := range ok.GetHeadersToRemove() {
		k = strings.ToLower(k)
		if strings.HasPrefix(k, ":") || k == "host" {
			continue
		}
		up.remove(k)
	}
	if drop := ok.GetQueryParametersToRemove(); len(drop) > 0 {
		p, q, hasQ := strings.Cut(up.path, "?")
		if hasQ {
			var kept []string
		next:
			for _, pair := range strings.Split(q, "&") {
				k, _, _ := strings.Cut(pair, "=")
				for _, d := range drop {
					if k == d {
						continue next
					}
				}
				kept = append(kept, pair)
			}
			up.path = p
			if len(kept) > 0 {
				up.path += "?" + strings.Join(kept, "&")
			}
		}
	}
	for i := range up.headers {
		if up.headers[i][0] == ":path" {
			up.headers[i][1] = up.path
		}
	}
	return outcome{forwarded: true, upstream: up}
}

// clientRequest is what a hostile client sends: a token (or none) plus its own identity headers,
// one of them twice.
func clientRequest(method, path, authorization string, extra ...string) proxyRequest {
	p := proxyRequest{path: path, headers: [][2]string{
		{":authority", "api.example.com"}, {":method", method}, {":path", path}, {":scheme", "https"},
		{"x-user-id", "admin"}, {"x-user-id", "root"}, {"x-user-email", "ceo@example.com"},
		{"x-user-scopes", "admin"}, {"x-partner-id", "spoofed"}, {"x-request-id", "r-1"},
	}}
	if authorization != "" {
		p.headers = append(p.headers, [2]string{"authorization", authorization})
	}
	for i := 0; i+1 < len(extra); i += 2 {
		p.headers = append(p.headers, [2]string{extra[i], extra[i+1]})
	}
	return p
}

var spoofed = map[string]bool{"admin": true, "root": true, "ceo@example.com": true, "spoofed": true}

// TestEnvoyProxySpoofedIdentityNeverReachesUpstream runs each scenario through a real gRPC
// Check, then through the proxy model under both readings of an unset append, with both
// CheckRequest shapes: a client-sent identity header never reaches the upstream.
func TestEnvoyProxySpoofedIdentityNeverReachesUpstream(t *testing.T) {
	fixtures(t)
	plain := serve(t, newAuthorizer(t, options{}))
	shadow := serve(t, newAuthorizer(t, options{shadow: true}))
	cors := serve(t, newAuthorizer(t, options{cors: true}))
	cases := []struct {
		name    string
		client  authv3.AuthorizationClient
		req     proxyRequest
		forward bool
		status  int
		// upstream identity when forwarded: header -> the only value it may have ("" = absent)
		want map[string]string
		path string
	}{
		{
			name: "valid token", client: plain, forward: true,
			req:  clientRequest("GET", "/v1/orders?id=7", "Bearer "+tokens["main"]),
			want: map[string]string{"x-user-id": "alice", "x-user-email": "alice@example.com", "x-user-scopes": "read write", "x-partner-id": "", "authorization": ""},
			path: "/v1/orders?id=7",
		},
		{
			name: "valid token without sub or email", client: plain, forward: true,
			req:  clientRequest("GET", "/v1/orders", "Bearer "+tokens["main_nosub"]),
			want: map[string]string{"x-user-id": "", "x-user-email": "", "x-user-scopes": "", "x-partner-id": "", "authorization": ""},
			path: "/v1/orders",
		},
		{
			name: "partner token in the query", client: plain, forward: true,
			req:  clientRequest("GET", "/v1/feed?page=2&access_token="+tokens["partner"]+"&lang=fr", ""),
			want: map[string]string{"x-user-id": "", "x-user-email": "", "x-user-scopes": "", "x-partner-id": "p1"},
			path: "/v1/feed?page=2&lang=fr",
		},
		{name: "no token", client: plain, req: clientRequest("GET", "/v1/orders", ""), status: 401},
		{name: "expired token", client: plain, req: clientRequest("GET", "/v1/orders", "Bearer "+tokens["main_expired"]), status: 401},
		{name: "two tokens", client: plain, req: clientRequest("GET", "/v1/orders", "Bearer "+tokens["main"], "authorization", "Bearer "+tokens["main_bob"]), status: 400},
		{name: "keys unavailable", client: plain, req: clientRequest("GET", "/v1/orders", "Bearer "+tokens["down"]), status: 503},
		{
			name: "shadow deny", client: shadow, forward: true,
			req:  clientRequest("GET", "/v1/orders", "Bearer "+tokens["main_expired"]),
			want: map[string]string{"x-user-id": "", "x-user-email": "", "x-user-scopes": "", "x-partner-id": ""},
			path: "/v1/orders",
		},
		{
			name: "cors preflight", client: cors, forward: true,
			req:  clientRequest("OPTIONS", "/v1/orders", "", "origin", "https://app.example.com", "access-control-request-method", "POST"),
			want: map[string]string{"x-user-id": "", "x-user-email": "", "x-user-scopes": "", "x-partner-id": ""},
			path: "/v1/orders",
		},
	}
	for _, c := range cases {
		for _, raw := range []bool{false, true} {
			resp, err := c.client.Check(context.Background(), c.req.checkRequest(raw))
			if err != nil {
				t.Fatalf("%s: gRPC error %v", c.name, err)
			}
			for _, e := range []envoy{{unsetAppendAppends: false}, {unsetAppendAppends: true}} {
				name := c.name
				if raw {
					name += "/header_map"
				}
				if e.unsetAppendAppends {
					name += "/unset append appends"
				} else {
					name += "/unset append overwrites"
				}
				t.Run(name, func(t *testing.T) {
					out := e.apply(resp, nil, c.req)
					if out.forwarded != c.forward {
						t.Fatalf("forwarded = %v, want %v (local reply %d)", out.forwarded, c.forward, out.status)
					}
					if !c.forward {
						if out.status != c.status || out.headers["content-type"][0] != "application/json" {
							t.Errorf("local reply %d %v, want %d", out.status, out.headers, c.status)
						}
						return
					}
					for _, h := range out.upstream.headers {
						if spoofed[h[1]] {
							t.Errorf("spoofed %s: %s reached the upstream", h[0], h[1])
						}
					}
					for h, want := range c.want {
						got := out.upstream.values(h)
						switch {
						case want == "" && len(got) != 0:
							t.Errorf("%s = %q upstream, want absent", h, got)
						case want != "" && (len(got) != 1 || got[0] != want):
							t.Errorf("%s = %q upstream, want exactly [%q]", h, got, want)
						}
					}
					if out.upstream.path != c.path || out.upstream.values(":path")[0] != c.path {
						t.Errorf("upstream path %q, want %q", out.upstream.path, c.path)
					}
					if got := out.upstream.values("x-request-id"); len(got) != 1 || got[0] != "r-1" {
						t.Errorf("x-request-id = %q: unrelated headers must pass untouched", got)
					}
				})
			}
		}
	}
}

// TestEnvoyProxyModelSeesTheHazard is the control experiment: the same verdict without an
// explicit append (what opa-envoy-plugin sends) lets the spoofed values through on Envoy 1.37,
// and an allow that sets identity without removing the unset rest leaves the spoof in place.
// If the model could not see these, the test above would prove nothing.
func TestEnvoyProxyModelSeesTheHazard(t *testing.T) {
	in := clientRequest("GET", "/v1/orders", "Bearer x")
	unsetAppend := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-user-id", Value: "alice"}}},
		}},
	}
	if got := (envoy{unsetAppendAppends: false}).apply(unsetAppend, nil, in).upstream.values("x-user-id"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("overwrite reading: x-user-id = %q", got)
	}
	if got := (envoy{unsetAppendAppends: true}).apply(unsetAppend, nil, in).upstream.values("x-user-id"); len(got) != 3 {
		t.Errorf("1.37 reading: x-user-id = %q, want the spoofs plus ours", got)
	}
	explicit := &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-user-id", Value: "alice"}, Append: wrapperspb.Bool(false)}},
		}},
	}
	up := (envoy{unsetAppendAppends: true}).apply(explicit, nil, in).upstream
	if got := up.values("x-user-id"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("explicit append=false on 1.37: x-user-id = %q", got)
	}
	if got := up.values("x-user-email"); len(got) != 1 || got[0] != "ceo@example.com" {
		t.Errorf("without headers_to_remove the spoofed email stays: %q", got)
	}
	// A deny with no HTTP status is a 403 local reply (R2); an RPC error takes the failure
	// path, where failure_mode_allow would forward the spoofs (R3): why Check never errors.
	if out := (envoy{}).apply(&authv3.CheckResponse{Status: &rpcstatus.Status{Code: int32(codes.PermissionDenied)}}, nil, in); out.forwarded || out.status != 403 {
		t.Errorf("deny without status: %+v", out)
	}
	if out := (envoy{failureModeAllow: true}).apply(nil, errors.New("unavailable"), in); !out.forwarded || len(out.upstream.values("x-user-id")) != 2 {
		t.Errorf("failure_mode_allow: %+v", out)
	}
	if out := (envoy{statusOnError: 503}).apply(nil, errors.New("unavailable"), in); out.forwarded || out.status != 503 {
		t.Errorf("status_on_error: %+v", out)
	}
}
