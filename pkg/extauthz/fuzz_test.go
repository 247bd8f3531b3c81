package extauthz

//lint:file-ignore SA1019 the tests read HeaderValueOption.append, deprecated but the field Envoy honours (envoy-notes R5).

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
)

// FuzzCheck sends random header maps and paths through Check. Properties: it never panics;
// with a live context it never returns a gRPC error; every verdict has an explicit status; and
// it never answers OK unless one of the valid tokens appears somewhere in the request (nobody can
// forge a signature, so an allow without one would be a hole). Allowed headers must be valid
// field values with an explicit append=false.
//
// lines is "name=value" lines; raw selects the header_map shape, where extra is one more
// authorization entry as raw bytes (in the headers shape it is the authorization value).
func FuzzCheck(f *testing.F) {
	fixtures(f)
	main, partner, bob := tokens["main"], tokens["partner"], tokens["main_bob"]
	seeds := []struct {
		method, path, lines string
		raw                 bool
		extra               string
	}{
		{"GET", "/v1/orders?id=7", ":authority=api.example.com\nx-user-id=admin", false, "Bearer " + main},
		{"GET", "/v1/orders", "authorization=Bearer " + main, true, ""},
		{"GET", "/v1/orders", "authorization=bearer    " + main + "\nx-user-id=admin", false, ""},
		{"GET", "/v1/feed?access_token=" + partner, "x-partner-id=spoof", false, ""},
		{"GET", "/v1/feed?access_token=" + partner + "&access_token=" + partner, "", false, ""},
		{"GET", "/v1/orders?access_token=" + main, "", false, ""},
		{"GET", "/v1/orders", "authorization=Bearer " + main + ",Bearer " + bob, false, ""},
		{"GET", "/v1/orders", "authorization=Bearer " + main, true, "Bearer " + bob},
		{"GET", "/v1/orders", "Authorization=Bearer " + main + "\nauthorization=Bearer " + bob, false, ""},
		{"GET", "/", "", false, "Basic YWxhZGRpbjpvcGVuc2VzYW1l"},
		{"GET", "/", "", false, "Bearer " + tokens["main_expired"]},
		{"GET", "/", "", false, "Bearer " + tokens["main_bad_signature"]},
		{"GET", "/", "", false, "Bearer " + tokens["main_crlf"]},
		{"GET", "/", "", false, "Bearer " + tokens["down"]},
		{"GET", "/", "", true, "Bearer " + main + "\r\n"},
		{"GET", "/", "", true, "Bearer \xff\xfe"},
		{"OPTIONS", "/", "origin=https://a.example\naccess-control-request-method=GET", false, ""},
		{"", "", "", false, ""},
		{"GET", "?", "=\n==\n:path=/x?access_token=" + partner, false, ""},
		{"GET", "/%zz?access_token=%zz", "", false, ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.lines, s.raw, []byte(s.extra))
	}
	var logs logBuffer
	a := newAuthorizer(f, options{})
	srv := New(a, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	valid := validTokens()

	f.Fuzz(func(t *testing.T, method, path, lines string, raw bool, extra []byte) {
		h := &authv3.AttributeContext_HttpRequest{Method: method, Path: path}
		if raw {
			h.HeaderMap = &corev3.HeaderMap{}
		} else {
			h.Headers = map[string]string{}
		}
		for _, line := range strings.Split(lines, "\n") {
			k, v, _ := strings.Cut(line, "=")
			if raw {
				h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: k, RawValue: []byte(v)})
			} else {
				h.Headers[k] = v
			}
		}
		if len(extra) > 0 {
			if raw {
				h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: "authorization", RawValue: extra})
			} else {
				h.Headers["authorization"] = string(extra)
			}
		}
		req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: h}}}

		// Without Check's recover, so that a panic fails with its stack.
		_ = Response(a.Decide(context.Background(), Request(req)))

		resp, err := srv.Check(context.Background(), req)
		if err != nil {
			t.Fatalf("gRPC error with a live context: %v", err)
		}
		if strings.Contains(logs.String(), "check panicked") {
			t.Fatalf("Check recovered a panic: %s", logs.String())
		}
		if resp.GetStatus() == nil {
			t.Fatal("status unset")
		}
		if codes.Code(resp.GetStatus().GetCode()) != codes.OK {
			switch resp.GetDeniedResponse().GetStatus().GetCode() {
			case 400, 401, 403, 503:
			default:
				t.Fatalf("deny with HTTP %d", resp.GetDeniedResponse().GetStatus().GetCode())
			}
			return
		}
		input := method + "\n" + path + "\n" + lines + "\n" + string(extra)
		found := false
		for _, v := range valid {
			found = found || strings.Contains(input, v)
		}
		if !found {
			t.Fatalf("OK without a valid token: %v", req)
		}
		for _, o := range resp.GetOkResponse().GetHeaders() {
			k, v := o.GetHeader().GetKey(), o.GetHeader().GetValue()
			if k != strings.ToLower(k) || o.GetAppend() == nil || o.GetAppend().Value {
				t.Fatalf("bad header option %v", o)
			}
			for i := 0; i < len(v); i++ {
				if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
					t.Fatalf("header %s carries control byte %q", k, c)
				}
			}
		}
	})
}
