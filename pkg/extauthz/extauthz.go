package extauthz

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	gojosejson "github.com/go-jose/go-jose/v4/json"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
)

// Decider is the decision core as this adapter sees it.
type Decider interface {
	Decide(ctx context.Context, r *authz.Request) authz.Decision
}

// Options configure a Server.
type Options struct {
	// Logger receives the rare internal errors (a recovered panic); default slog.Default().
	Logger *slog.Logger
}

// Server implements envoy.service.auth.v3.Authorization.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	d   Decider
	log *slog.Logger
}

// New returns a Server answering with d.
func New(d Decider, o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Server{d: d, log: o.Logger}
}

// Check answers one ext_authz call.
func (s *Server) Check(ctx context.Context, req *authv3.CheckRequest) (resp *authv3.CheckResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			// A bug must not take the whole service down for everyone, and must not
			// allow: answer with a deny and leave a loud log line.
			s.log.Error("check panicked; denied", "panic", strings.ReplaceAll(truncate(toString(r), 300), "\n", " "))
			resp, err = Response(authz.Decision{Status: http.StatusUnauthorized, Reason: authz.ReasonInternal, ErrorCode: "invalid_token", Description: "The access token is invalid"}), nil
		}
	}()
	d := s.d.Decide(ctx, Request(req))
	if ctx.Err() != nil {
		// Envoy has given up (its timeout) or gone away: fail closed, never an allow
		// computed after the deadline (R10).
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return Response(d), nil
}

// Request translates a CheckRequest. It reads header_map when Envoy sends it
// (encode_raw_headers: true) and the headers map otherwise, lower-casing keys either way, and
// splits the query string off path (envoy-notes §1).
func Request(req *authv3.CheckRequest) *authz.Request {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	r := &authz.Request{
		Transport:         "grpc",
		Method:            h.GetMethod(),
		Host:              h.GetHost(),
		Headers:           map[string][]string{},
		Principal:         attrs.GetSource().GetPrincipal(),
		ContextExtensions: attrs.GetContextExtensions(),
	}
	if hm := h.GetHeaderMap(); hm != nil {
		for _, e := range hm.GetHeaders() {
			k := strings.ToLower(e.GetKey())
			v := e.GetValue()
			if raw := e.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			r.Headers[k] = append(r.Headers[k], v)
		}
	} else {
		for k, v := range h.GetHeaders() {
			lk := strings.ToLower(k)
			r.Headers[lk] = append(r.Headers[lk], v)
		}
	}
	if r.Method == "" {
		r.Method = first(r.Headers[":method"])
	}
	if r.Host == "" {
		r.Host = first(r.Headers[":authority"])
	}
	path := h.GetPath()
	if path == "" {
		path = first(r.Headers[":path"])
	}
	r.Path, r.Query, _ = strings.Cut(path, "?")
	if r.Query == "" && h.GetQuery() != "" {
		r.Query = h.GetQuery()
	}
	r.RequestID = first(r.Headers["x-request-id"])
	return r
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// Response translates a Decision (contract.md "Decisions on the wire").
func Response(d authz.Decision) *authv3.CheckResponse {
	md := metadata(d)
	if d.Allow {
		ok := &authv3.OkHttpResponse{
			HeadersToRemove:         d.RemoveHeaders,
			QueryParametersToRemove: d.RemoveQueryParams,
		}
		for _, h := range d.SetHeaders {
			ok.Headers = append(ok.Headers, overwrite(h.Name, h.Value))
		}
		return &authv3.CheckResponse{
			Status:          &rpcstatus.Status{Code: int32(codes.OK)},
			HttpResponse:    &authv3.CheckResponse_OkResponse{OkResponse: ok},
			DynamicMetadata: md,
		}
	}
	httpStatus := d.DenyStatus()
	denied := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(httpStatus)},
		Headers: []*corev3.HeaderValueOption{
			overwrite("content-type", "application/json"),
			overwrite("cache-control", "no-store"),
		},
		Body: Body(d),
	}
	if d.Challenge != "" {
		denied.Headers = append(denied.Headers, overwrite("www-authenticate", d.Challenge))
	}
	if ra := d.RetryAfterValue(); ra != "" {
		denied.Headers = append(denied.Headers, overwrite("retry-after", ra))
	}
	return &authv3.CheckResponse{
		Status:          &rpcstatus.Status{Code: int32(grpcCode(httpStatus))},
		HttpResponse:    &authv3.CheckResponse_DeniedResponse{DeniedResponse: denied},
		DynamicMetadata: md,
	}
}

// retryAfter renders a delay as Retry-After delay-seconds (RFC 9110 §10.2.3), rounded up: a
// client told to come back before the keys can be back would only be refused again.
// overwrite builds a header entry that replaces any client value. Append is set explicitly:
// with it unset, Envoy 1.37 appended (envoy#43310); an explicit false overwrites on every
// version (envoy-notes R5).
func overwrite(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header: &corev3.HeaderValue{Key: k, Value: v},
		//lint:ignore SA1019 deprecated in favour of append_action, but Envoy <= 1.36 reads only append, and an explicit false is what overwrites on every version (envoy-notes R5).
		Append: wrapperspb.Bool(false),
	}
}

// Body is the deny body: {"error":"...","error_description":"..."}.
func Body(d authz.Decision) string { return d.Body() }

func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusServiceUnavailable:
		return codes.Unavailable
	}
	return codes.PermissionDenied
}

// metadata is the dynamic metadata of a decision: {provider, iss, sub, reason} and, when
// configured, the verified payload. Envoy files it under envoy.filters.http.ext_authz, where
// access logs read %DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%.
func metadata(d authz.Decision) *structpb.Struct {
	f := map[string]*structpb.Value{"reason": structpb.NewStringValue(string(d.Reason))}
	if d.Provider != "" {
		f["provider"] = structpb.NewStringValue(d.Provider)
	}
	if d.Issuer != "" {
		f["iss"] = structpb.NewStringValue(d.Issuer)
	}
	if d.Subject != "" {
		f["sub"] = structpb.NewStringValue(d.Subject)
	}
	for _, p := range d.Payloads {
		if v, err := structpb.NewValue(plain(p.Claims)); err == nil {
			f[p.Key] = v
		}
	}
	return &structpb.Struct{Fields: f}
}

// plain converts go-jose's json.Number values to float64 so structpb can hold them.
func plain(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = plain(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = plain(e)
		}
		return out
	case gojosejson.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	}
	return v
}

func toString(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	}
	return "non-error panic value"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
