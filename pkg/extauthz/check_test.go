package extauthz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
)

func bearerRequest(tok string, extra ...string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": "/v1/orders", "authorization": "Bearer " + tok}
	for i := 0; i+1 < len(extra); i += 2 {
		h[extra[i]] = extra[i+1]
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "1", Method: "GET", Host: "api.example.com", Path: "/v1/orders", Headers: h},
	}}}
}

var missingToken = wireWant{
	code: codes.Unauthenticated, httpStatus: 401, challenge: `Bearer realm="example"`,
	body: `{"error":"unauthorized","error_description":"An access token is required"}`, md: map[string]string{"reason": "missing_token"},
}

// TestEmptyCheckRequest: an empty request, or none at all, is a deny CheckResponse, never a gRPC
// error (R3).
func TestEmptyCheckRequest(t *testing.T) {
	a := newAuthorizer(t, options{})
	client := serve(t, a)
	for name, req := range map[string]*authv3.CheckRequest{
		"empty":            {},
		"empty attributes": {Attributes: &authv3.AttributeContext{}},
		"empty http":       {Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{}}}},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := client.Check(context.Background(), req)
			if err != nil {
				t.Fatalf("gRPC error: %v", err)
			}
			checkWire(t, resp, missingToken)
		})
	}
	t.Run("nil", func(t *testing.T) {
		resp, err := New(a, Options{}).Check(context.Background(), nil)
		if err != nil {
			t.Fatalf("error: %v", err)
		}
		checkWire(t, resp, missingToken)
	})
}

// TestCancelledContext: a check whose caller is gone gets an RPC error, never an allow (R10).
func TestCancelledContext(t *testing.T) {
	a := newAuthorizer(t, options{})
	srv := New(a, Options{})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := srv.Check(cancelled, bearerRequest(tokens["main"]))
	if status.Code(err) != codes.Canceled || resp != nil {
		t.Errorf("cancelled: resp %v, err %v; want no response and Canceled", resp, err)
	}
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	resp, err = srv.Check(expired, bearerRequest(tokens["main"]))
	if status.Code(err) != codes.DeadlineExceeded || resp != nil {
		t.Errorf("past deadline: resp %v, err %v; want no response and DeadlineExceeded", resp, err)
	}
}

// slowAllow models a check that finishes after Envoy gave up (a slow kid-miss fetch): it would
// allow, but only once the context has ended.
type slowAllow struct{ started chan struct{} }

func (s slowAllow) Decide(ctx context.Context, _ *authz.Request) authz.Decision {
	close(s.started)
	<-ctx.Done()
	return authz.Decision{Allow: true, Status: 200, Reason: authz.ReasonOK, SetHeaders: []authz.Header{{Name: "x-user-id", Value: "alice"}}}
}

// TestDeadlineMidEvaluationOverTheWire: the server's context ends while the decision is being
// made (Envoy's grpc-timeout, modelled by a server interceptor so that the client itself is still
// waiting): the client gets an error status, never the late allow.
func TestDeadlineMidEvaluationOverTheWire(t *testing.T) {
	d := slowAllow{started: make(chan struct{})}
	short := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return h(ctx, req)
	}
	client := serve(t, d, grpc.UnaryInterceptor(short))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Check(ctx, bearerRequest("x"))
	<-d.started
	if err == nil || resp != nil {
		t.Fatalf("got resp %v err %v; want an RPC error and no response", resp, err)
	}
	if c := status.Code(err); c != codes.DeadlineExceeded {
		t.Errorf("code %v, want DeadlineExceeded", c)
	}
	if ctx.Err() != nil {
		t.Error("the client's own deadline passed: the test proves nothing")
	}
}

type panicky struct{}

func (panicky) Decide(context.Context, *authz.Request) authz.Decision { panic("boom\nsecond line") }

// TestPanicIsADeny: a bug answers with a deny and a log line, not an allow or a dead server.
func TestPanicIsADeny(t *testing.T) {
	var logs logBuffer
	srv := New(panicky{}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	resp, err := srv.Check(context.Background(), bearerRequest("x"))
	if err != nil {
		t.Fatal(err)
	}
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unauthenticated || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Errorf("got %v", resp)
	}
	if out := logs.String(); !strings.Contains(out, "check panicked") || !strings.Contains(out, "boom second line") {
		t.Errorf("log: %s", out)
	}
}

// TestShadowOverTheWire: shadow mode sends OK for a bad token, with every identity header
// removed and none set; the deny's reason stays visible in dynamic metadata.
func TestShadowOverTheWire(t *testing.T) {
	client := serve(t, newAuthorizer(t, options{shadow: true}))
	resp, err := client.Check(context.Background(), bearerRequest(tokens["main_expired"], "x-user-id", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, resp, wireWant{code: codes.OK, set: map[string]string{}, remove: identity, md: map[string]string{"provider": "main", "reason": "expired"}})
}

func TestUnsafeClaimOverTheWire(t *testing.T) {
	client := serve(t, newAuthorizer(t, options{}))
	resp, err := client.Check(context.Background(), bearerRequest(tokens["main_crlf"]))
	if err != nil {
		t.Fatal(err)
	}
	checkWire(t, resp, wireWant{
		code: codes.Unauthenticated, httpStatus: 401,
		challenge: `Bearer realm="example", error="invalid_token", error_description="The access token is invalid"`,
		body:      `{"error":"invalid_token","error_description":"The access token is invalid"}`,
		md:        map[string]string{"provider": "main", "reason": "unsafe_claim_value"},
	})
}

// TestResponseStatusMapping: HTTP status to gRPC code, and a deny whose status is not an error
// status still goes out as a 403 deny (never a 200 local reply, never HttpStatus 0).
func TestResponseStatusMapping(t *testing.T) {
	for _, c := range []struct {
		in       int
		code     codes.Code
		httpCode int
	}{
		{400, codes.InvalidArgument, 400},
		{401, codes.Unauthenticated, 401},
		{403, codes.PermissionDenied, 403},
		{503, codes.Unavailable, 503},
		{500, codes.PermissionDenied, 500},
		{0, codes.PermissionDenied, 403},
		{200, codes.PermissionDenied, 403},
		{302, codes.PermissionDenied, 403},
		{600, codes.PermissionDenied, 403},
	} {
		resp := Response(authz.Decision{Status: c.in, Reason: authz.ReasonInternal})
		if got := codes.Code(resp.GetStatus().GetCode()); got != c.code {
			t.Errorf("status %d: code %v, want %v", c.in, got, c.code)
		}
		if got := int(resp.GetDeniedResponse().GetStatus().GetCode()); got != c.httpCode {
			t.Errorf("status %d: HTTP %d, want %d", c.in, got, c.httpCode)
		}
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Second:             "1",
		999 * time.Millisecond:  "1",
		1500 * time.Millisecond: "2",
		30 * time.Second:        "30",
		time.Hour:               "3600",
	} {
		resp := Response(authz.Decision{Status: http.StatusServiceUnavailable, RetryAfter: d})
		var got string
		for _, h := range resp.GetDeniedResponse().GetHeaders() {
			if h.GetHeader().GetKey() == "retry-after" {
				got = h.GetHeader().GetValue()
			}
		}
		if got != want {
			t.Errorf("RetryAfter %v: retry-after %q, want %q", d, got, want)
		}
	}
	// No RetryAfter, no header.
	for _, h := range Response(authz.Decision{Status: 401}).GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "retry-after" {
			t.Error("retry-after on a 401")
		}
	}
}

// TestRequestTranslation covers the CheckRequest shapes of envoy-notes §1 one rule at a time.
func TestRequestTranslation(t *testing.T) {
	httpReq := func(h *authv3.AttributeContext_HttpRequest) *authv3.CheckRequest {
		return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}
	}
	t.Run("keys lower-cased, differently-cased repeats kept apart", func(t *testing.T) {
		r := Request(httpReq(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{"Authorization": "Bearer a", "authorization": "Bearer b", "X-Request-Id": "r1"}}))
		got := append([]string(nil), r.Headers["authorization"]...)
		if len(got) != 2 || r.RequestID != "r1" {
			t.Errorf("got %q, request id %q", got, r.RequestID)
		}
	})
	t.Run("header_map wins over headers", func(t *testing.T) {
		r := Request(httpReq(&authv3.AttributeContext_HttpRequest{
			Headers:   map[string]string{"authorization": "Bearer from-map"},
			HeaderMap: &corev3.HeaderMap{Headers: []*corev3.HeaderValue{{Key: "Authorization", RawValue: []byte("Bearer raw")}, {Key: "x-a", Value: "plain"}}},
		}))
		if !reflect.DeepEqual(r.Headers, map[string][]string{"authorization": {"Bearer raw"}, "x-a": {"plain"}}) {
			t.Errorf("headers %q", r.Headers)
		}
	})
	t.Run("pseudo-headers fill method, host and path", func(t *testing.T) {
		r := Request(httpReq(&authv3.AttributeContext_HttpRequest{Headers: map[string]string{":method": "POST", ":authority": "a.example", ":path": "/p?q=1"}}))
		if r.Method != "POST" || r.Host != "a.example" || r.Path != "/p" || r.Query != "q=1" {
			t.Errorf("%+v", r)
		}
	})
	t.Run("path split on the first question mark, not decoded", func(t *testing.T) {
		r := Request(httpReq(&authv3.AttributeContext_HttpRequest{Path: "/a%2Fb?x=1?y=2&z=%41"}))
		if r.Path != "/a%2Fb" || r.Query != "x=1?y=2&z=%41" {
			t.Errorf("path %q query %q", r.Path, r.Query)
		}
	})
	t.Run("query field as fallback", func(t *testing.T) {
		r := Request(httpReq(&authv3.AttributeContext_HttpRequest{Path: "/p", Query: "a=1"}))
		if r.Path != "/p" || r.Query != "a=1" {
			t.Errorf("path %q query %q", r.Path, r.Query)
		}
	})
	t.Run("context extensions and principal", func(t *testing.T) {
		r := Request(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Source:            &authv3.AttributeContext_Peer{Principal: "spiffe://cluster.local/ns/a/sa/b"},
			ContextExtensions: map[string]string{"jwtauthz.provider": "main"},
		}})
		if r.Principal != "spiffe://cluster.local/ns/a/sa/b" || r.ContextExtensions["jwtauthz.provider"] != "main" {
			t.Errorf("%+v", r)
		}
	})
}

// TestOnlyContextErrors: with a live context, Check never returns an error, for any decision.
func TestOnlyContextErrors(t *testing.T) {
	a := newAuthorizer(t, options{cors: true})
	srv := New(a, Options{})
	for name, tok := range tokens {
		resp, err := srv.Check(context.Background(), bearerRequest(tok))
		if err != nil || resp.GetStatus() == nil {
			t.Errorf("%s: resp %v err %v", name, resp, err)
		}
		var se interface{ GRPCStatus() *status.Status }
		if errors.As(err, &se) {
			t.Errorf("%s: gRPC status error %v", name, err)
		}
	}
}
