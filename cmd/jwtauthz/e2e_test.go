//go:build integration

// End-to-end tests: the real binary, built once, against a local IdP, driven through real
// gRPC clients (go-control-plane's generated stub, and grpcurl, a client nobody on the team
// wrote). Run with `go test -tags integration ./cmd/jwtauthz/` (make test does).
package main

//lint:file-ignore SA1019 the tests read HeaderValueOption.append, deprecated but the field Envoy honours (envoy-notes R5).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jwtauthz-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "jwtauthz")
	build := exec.Command("go", "build", "-race", "-o", binPath, ".")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building jwtauthz:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// idp is a local identity provider: the dev issuer behind an httptest server whose JWKS
// endpoint can be switched off (500) and whose requests are counted.
type idp struct {
	srv    *httptest.Server
	iss    *devissuer.Issuer
	cur    atomic.Pointer[devissuer.Issuer] // the issuer whose keys are served (rotate swaps it)
	down   atomic.Bool
	hits   atomic.Int64
	jwksOK chan struct{} // closed at the first 200 on the JWKS
	once   sync.Once
}

func newIDP(t *testing.T) *idp {
	t.Helper()
	p := &idp{jwksOK: make(chan struct{})}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/jwks.json" {
			p.hits.Add(1)
			if p.down.Load() {
				http.Error(w, "down", http.StatusInternalServerError)
				return
			}
			p.once.Do(func() { close(p.jwksOK) })
		}
		p.cur.Load().Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	iss, err := devissuer.New(devissuer.Options{Issuer: p.srv.URL, Audience: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	p.iss = iss
	p.cur.Store(iss)
	return p
}

// rotate publishes a fresh key pair under the same issuer URL and returns its issuer.
func (p *idp) rotate(t *testing.T) *devissuer.Issuer {
	t.Helper()
	next, err := devissuer.New(devissuer.Options{Issuer: p.iss.IssuerURL(), Audience: "https://api.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	p.cur.Store(next)
	return next
}

func (p *idp) token(t *testing.T, r devissuer.TokenRequest) string {
	t.Helper()
	tok, err := p.iss.Mint(r)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *idp) config(t *testing.T, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`
server:
  grpc_address: "127.0.0.1:0"
  http_address: "127.0.0.1:0"
  admin_address: "127.0.0.1:0"
  drain_delay: "0s"
  drain_timeout: "5s"
realm: "e2e"
providers:
  idp:
    issuer: %q
    audiences: ["https://api.example.com"]
    remote_jwks:
      uri: %q
      allow_insecure_http: true
      min_refresh_interval: "1s"
      kid_miss_cooldown: "1s"
    claim_to_headers:
      - {claim: sub, header: x-user-id}
      - {claim: email, header: x-user-email}
      - {claim: scope, header: x-user-scopes}
%s`, p.iss.IssuerURL(), p.srv.URL+"/.well-known/jwks.json", extra)
	path := filepath.Join(t.TempDir(), "jwtauthz.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// proc is a running jwtauthz.
type proc struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	grpc   string
	http   string
	admin  string
	done   chan struct{}
	code   int
}

type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// waitFor blocks until the buffer contains substr, woken by writes (no polling).
func (s *syncBuffer) waitFor(t *testing.T, substr string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), substr) {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("output never contained %q:\n%s", substr, s.String())
		}
	}
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs the binary and waits for its "jwtauthz serving" log line, which names the bound
// addresses (the config uses port 0).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binPath, args...), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	pr, pw := io.Pipe()
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = io.MultiWriter(p.stderr, pw)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	serving := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "jwtauthz serving" {
				serving <- line
			}
		}
	}()
	go func() {
		_ = p.cmd.Wait()
		p.code = p.cmd.ProcessState.ExitCode()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("jwtauthz stderr:\n%s", p.stderr.String())
		}
	})
	select {
	case line := <-serving:
		p.grpc, _ = line["grpc"].(string)
		p.http, _ = line["http"].(string)
		p.admin, _ = line["admin"].(string)
	case <-p.done:
		t.Fatalf("jwtauthz exited with %d before serving:\n%s", p.code, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("jwtauthz did not start:\n%s", p.stderr.String())
	}
	return p
}

func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(30 * time.Second):
		t.Fatal("jwtauthz did not exit")
		return -1
	}
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// waitHealth blocks on the gRPC health Watch stream until the service reports want.
func waitHealth(t *testing.T, cc *grpc.ClientConn, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("health watch ended before %v: %v", want, err)
		}
		if resp.Status == want {
			return
		}
	}
}

// envoyRequest builds a CheckRequest shaped like Envoy's default (headers map): lower-case keys,
// pseudo-headers, no host key, path with its query.
func envoyRequest(path string, headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{":authority": "api.example.com", ":method": "GET", ":path": path, ":scheme": "https", "x-request-id": "e2e-1"}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Id: "1234", Method: "GET", Host: "api.example.com", Path: path, Scheme: "https", Protocol: "HTTP/1.1", Headers: h,
	}}}}
}

func check(t *testing.T, cc *grpc.ClientConn, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, req)
	if err != nil {
		t.Fatalf("Check returned a gRPC error (a decision must always be a CheckResponse): %v", err)
	}
	return resp
}

func deniedHeader(resp *authv3.CheckResponse, name string) string {
	for _, h := range resp.GetDeniedResponse().GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

func TestE2ECheck(t *testing.T) {
	idp := newIDP(t)
	p := start(t, "serve", "--config", idp.config(t, ""), "--log-format", "json")
	cc := dial(t, p.grpc)
	waitHealth(t, cc, healthpb.HealthCheckResponse_SERVING)

	valid := idp.token(t, devissuer.TokenRequest{Sub: "alice", Scope: "read write", Extra: map[string]any{"email": "alice@example.com"}})
	otherAud := idp.token(t, devissuer.TokenRequest{Sub: "alice", Aud: "https://other.example.com"})
	rsa := idp.token(t, devissuer.TokenRequest{Sub: "bob", Alg: "RS256"})

	t.Run("allow with identity headers, spoof removed", func(t *testing.T) {
		resp := check(t, cc, envoyRequest("/orders?page=2", map[string]string{"authorization": "Bearer " + valid, "x-user-id": "mallory", "x-user-email": "evil@example.com"}))
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("status %v, want OK; denied %v", resp.GetStatus(), resp.GetDeniedResponse())
		}
		got := map[string]string{}
		for _, h := range resp.GetOkResponse().GetHeaders() {
			if h.GetAppend() == nil || h.GetAppend().GetValue() {
				t.Errorf("header %s: append must be explicitly false, got %v", h.GetHeader().GetKey(), h.GetAppend())
			}
			got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		want := map[string]string{"x-user-id": "alice", "x-user-email": "alice@example.com", "x-user-scopes": "read write"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("headers %v, want %v", got, want)
		}
		if rm := resp.GetOkResponse().GetHeadersToRemove(); fmt.Sprint(rm) != "[authorization]" {
			t.Errorf("headers_to_remove %v, want [authorization]", rm)
		}
		md := resp.GetDynamicMetadata().GetFields()
		if md["provider"].GetStringValue() != "idp" || md["sub"].GetStringValue() != "alice" || md["reason"].GetStringValue() != "ok" || md["iss"].GetStringValue() != idp.iss.IssuerURL() {
			t.Errorf("dynamic metadata %v", md)
		}
	})
	t.Run("RS256 token", func(t *testing.T) {
		resp := check(t, cc, envoyRequest("/", map[string]string{"authorization": "bearer   " + rsa}))
		if resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("status %v, want OK", resp.GetStatus())
		}
	})

	denies := []struct {
		name      string
		headers   map[string]string
		code      codes.Code
		http      int32
		challenge string
		reason    string
	}{
		{"no token", nil, codes.Unauthenticated, 401, `Bearer realm="e2e"`, "missing_token"},
		{"basic scheme", map[string]string{"authorization": "Basic YTpi"}, codes.Unauthenticated, 401, `Bearer realm="e2e"`, "unsupported_scheme"},
		{"two tokens comma-joined", map[string]string{"authorization": "Bearer " + valid + ",Bearer " + valid}, codes.InvalidArgument, 400,
			`Bearer realm="e2e", error="invalid_request", error_description="The request carries more than one access token"`, "multiple_tokens"},
		{"wrong audience", map[string]string{"authorization": "Bearer " + otherAud}, codes.Unauthenticated, 401,
			`Bearer realm="e2e", error="invalid_token", error_description="The access token is invalid"`, "aud_mismatch"},
		{"tampered", map[string]string{"authorization": "Bearer " + valid[:len(valid)-4] + "AAAA"}, codes.Unauthenticated, 401,
			`Bearer realm="e2e", error="invalid_token", error_description="The access token is invalid"`, "bad_signature"},
		{"garbage", map[string]string{"authorization": "Bearer abc.def"}, codes.Unauthenticated, 401,
			`Bearer realm="e2e", error="invalid_token", error_description="The access token is invalid"`, "malformed"},
	}
	for _, tc := range denies {
		t.Run(tc.name, func(t *testing.T) {
			resp := check(t, cc, envoyRequest("/orders", tc.headers))
			if got := codes.Code(resp.GetStatus().GetCode()); got != tc.code {
				t.Errorf("status %v, want %v", got, tc.code)
			}
			if got := int32(resp.GetDeniedResponse().GetStatus().GetCode()); got != tc.http {
				t.Errorf("HTTP %d, want %d", got, tc.http)
			}
			if got := deniedHeader(resp, "www-authenticate"); got != tc.challenge {
				t.Errorf("www-authenticate %q, want %q", got, tc.challenge)
			}
			if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != tc.reason {
				t.Errorf("reason %q, want %q", got, tc.reason)
			}
			if deniedHeader(resp, "content-type") != "application/json" || deniedHeader(resp, "cache-control") != "no-store" {
				t.Errorf("deny headers %v", resp.GetDeniedResponse().GetHeaders())
			}
			if strings.Contains(resp.GetDeniedResponse().GetBody(), tc.reason) && tc.reason != "missing_token" {
				t.Errorf("body %q leaks the reason code", resp.GetDeniedResponse().GetBody())
			}
		})
	}

	t.Run("header_map with two authorization entries", func(t *testing.T) {
		req := envoyRequest("/", nil)
		req.Attributes.Request.Http.Headers = nil
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: ":authority", RawValue: []byte("api.example.com")},
			{Key: ":path", RawValue: []byte("/")},
			{Key: "authorization", RawValue: []byte("Bearer " + valid)},
			{Key: "authorization", RawValue: []byte("Bearer " + valid)},
		}}
		resp := check(t, cc, req)
		if codes.Code(resp.GetStatus().GetCode()) != codes.InvalidArgument || resp.GetDeniedResponse().GetStatus().GetCode() != 400 {
			t.Fatalf("got %v / %v, want INVALID_ARGUMENT / 400", resp.GetStatus(), resp.GetDeniedResponse().GetStatus())
		}
	})
	t.Run("header_map with one entry allows", func(t *testing.T) {
		req := envoyRequest("/", nil)
		req.Attributes.Request.Http.Headers = nil
		req.Attributes.Request.Http.HeaderMap = &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
			{Key: "Authorization", RawValue: []byte("Bearer " + valid)},
		}}
		if resp := check(t, cc, req); resp.GetStatus().GetCode() != int32(codes.OK) {
			t.Fatalf("status %v, want OK", resp.GetStatus())
		}
	})

	t.Run("forward-auth over HTTP agrees", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+p.http+"/orders", nil)
		req.Header.Set("Authorization", "Bearer "+valid)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("x-user-id") != "alice" || resp.Header.Get("x-envoy-auth-headers-to-remove") != "authorization" {
			t.Fatalf("got %d %v", resp.StatusCode, resp.Header)
		}
	})

	t.Run("metrics count decisions by reason", func(t *testing.T) {
		resp, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`jwtauthz_checks_total{decision="deny",provider="none",reason="missing_token",transport="grpc"} 1`,
			`jwtauthz_checks_total{decision="deny",provider="idp",reason="bad_signature",transport="grpc"} 1`,
			`jwtauthz_jwks_fetches_total{provider="idp",result="ok"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})

	t.Run("logs carry reasons and never a token", func(t *testing.T) {
		logs := p.stderr.String()
		if strings.Contains(logs, valid[:40]) || strings.Contains(logs, strings.Split(valid, ".")[1][:20]) {
			t.Fatal("a token reached the logs")
		}
		if !strings.Contains(logs, `"reason":"aud_mismatch"`) {
			t.Errorf("no decision log line with reason aud_mismatch:\n%s", logs)
		}
	})

	t.Run("SIGTERM: not serving, then exit 0", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stream, err := healthpb.NewHealthClient(cc).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := stream.Recv(); err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("before SIGTERM: %v %v", r, err)
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r, err := stream.Recv()
		if err != nil || r.Status != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("after SIGTERM: %v %v, want NOT_SERVING", r, err)
		}
		if code := p.wait(t); code != 0 {
			t.Fatalf("exit code %d, want 0", code)
		}
	})
}

// TestE2EIdPDownAtStart: the service runs, answers 503 with Retry-After and reports not ready
// until the IdP comes back, then allows (jwks-cache.md J20, contract 503 row).
func TestE2EIdPDownAtStart(t *testing.T) {
	idp := newIDP(t)
	idp.down.Store(true)
	p := start(t, "serve", "--config", idp.config(t, ""))
	cc := dial(t, p.grpc)
	tok := idp.token(t, devissuer.TokenRequest{Sub: "alice"})

	resp := check(t, cc, envoyRequest("/", map[string]string{"authorization": "Bearer " + tok}))
	if codes.Code(resp.GetStatus().GetCode()) != codes.Unavailable || resp.GetDeniedResponse().GetStatus().GetCode() != 503 {
		t.Fatalf("got %v / %v, want UNAVAILABLE / 503", resp.GetStatus(), resp.GetDeniedResponse().GetStatus())
	}
	if ra := deniedHeader(resp, "retry-after"); !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(ra) {
		t.Errorf("retry-after %q, want whole seconds >= 1", ra)
	}
	if deniedHeader(resp, "www-authenticate") != "" {
		t.Errorf("503 must not carry a challenge: the token is not at fault")
	}
	r, err := http.Get("http://" + p.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != 503 {
		t.Errorf("/readyz %d while the IdP is down, want 503", r.StatusCode)
	}
	if r, err := http.Get("http://" + p.admin + "/healthz"); err != nil || r.StatusCode != 200 {
		t.Errorf("/healthz must not depend on the IdP: %v %v", r, err)
	}

	idp.down.Store(false)
	select {
	case <-idp.jwksOK:
	case <-time.After(20 * time.Second):
		t.Fatal("jwtauthz did not retry the JWKS fetch")
	}
	waitHealth(t, cc, healthpb.HealthCheckResponse_SERVING)
	if resp := check(t, cc, envoyRequest("/", map[string]string{"authorization": "Bearer " + tok})); resp.GetStatus().GetCode() != int32(codes.OK) {
		t.Fatalf("after recovery: %v, want OK", resp.GetStatus())
	}
}

// TestE2EKeyRotation: a token signed by a key the cache has not seen yet is allowed after
// one kid-triggered fetch, well before the scheduled refresh.
func TestE2EKeyRotation(t *testing.T) {
	old := newIDP(t)
	p := start(t, "serve", "--config", old.config(t, ""))
	cc := dial(t, p.grpc)
	waitHealth(t, cc, healthpb.HealthCheckResponse_SERVING)
	before := old.hits.Load()

	rotated := old.rotate(t)
	tok, err := rotated.Mint(devissuer.TokenRequest{Sub: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	// The first fetch was moments ago, inside kid_miss_cooldown (1s): the unknown kid is
	// refused at once, without a fetch. Once the cooldown has passed, one fetch picks it up.
	resp := check(t, cc, envoyRequest("/", map[string]string{"authorization": "Bearer " + tok}))
	if resp.GetStatus().GetCode() == int32(codes.OK) {
		// The cooldown had already passed on a slow machine: the rotation was picked up.
		if old.hits.Load()-before != 1 {
			t.Fatalf("allowed after %d fetches, want 1", old.hits.Load()-before)
		}
		return
	}
	if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != "kid_unknown" {
		t.Fatalf("reason %q, want kid_unknown", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = check(t, cc, envoyRequest("/", map[string]string{"authorization": "Bearer " + tok}))
		if resp.GetStatus().GetCode() == int32(codes.OK) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotated key never accepted: %v", resp.GetDynamicMetadata())
		}
		// Each refused check returns at once (no waiting on the cooldown); retrying
		// through the 1s cooldown is the behaviour under test.
		time.Sleep(100 * time.Millisecond)
	}
	if n := old.hits.Load() - before; n != 1 {
		t.Errorf("%d JWKS fetches for the rotation, want exactly 1", n)
	}
}

func TestE2EBadConfigExit1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte(`
providers:
  a:
    issuer: "https://a.example.com"
    remote_jwks: {uri: "http://a.example.com/jwks.json"}
    algorithms: [HS256]
    claim_to_headers: [{claim: sub, header: X-User-Id}]
  b:
    issuer: "https://a.example.com"
    audiences: [api]
    local_jwks: {inline: '{"keys":[]}'}
    clokc_skew: "10s"
`), 0o600)
	cmd := exec.Command(binPath, "serve", "--config", path)
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d (%v), want 1:\n%s", cmd.ProcessState.ExitCode(), err, out)
	}
	if !strings.Contains(string(out), `providers.b.clokc_skew: unknown field (did you mean "clock_skew"?)`) {
		t.Errorf("unknown field not reported with its path:\n%s", out)
	}

	os.WriteFile(path, []byte(`
providers:
  a:
    issuer: "https://a.example.com"
    remote_jwks: {uri: "http://a.example.com/jwks.json"}
    algorithms: [HS256]
    claim_to_headers: [{claim: sub, header: X-User-Id}]
  b:
    issuer: "https://a.example.com"
    audiences: [api]
    local_jwks: {inline: '{"keys":[]}'}
`), 0o600)
	cmd = exec.Command(binPath, "serve", "--config", path)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("exit %d, want 1:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	for _, want := range []string{
		"providers.a.audiences: at least one audience is required",
		"providers.a.remote_jwks.uri: must be https",
		"providers.a.algorithms[0]: HS256 is not supported",
		"providers.a.claim_to_headers[0].header: header names must be lower-case",
		"providers.b.issuer: same issuer as providers.a",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing problem %q in:\n%s", want, out)
		}
	}
}

func TestE2EPortInUseExit2(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	idp := newIDP(t)
	cmd := exec.Command(binPath, "serve", "--config", idp.config(t, ""), "--grpc-addr", ln.Addr().String())
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("exit %d, want 2:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(string(out), "address already in use") {
		t.Errorf("no bind error in output:\n%s", out)
	}
}

// TestE2EDevModeGrpcurl runs the dev banner's own grpcurl command: what a new user pastes.
func TestE2EDevModeGrpcurl(t *testing.T) {
	grpcurl := grpcurlPath(t)
	p := start(t, "serve", "--dev", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0")
	p.stdout.waitFor(t, "\ncurl -i ")
	p.stdout.waitFor(t, "/hello\n")
	var line string
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if strings.HasPrefix(l, "grpcurl ") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no grpcurl line in the banner:\n%s", p.stdout.String())
	}
	out, err := exec.Command("sh", "-c", strings.Replace(line, "grpcurl", grpcurl, 1)).CombinedOutput()
	if err != nil {
		t.Fatalf("banner command failed: %v\n%s", err, out)
	}
	var resp struct {
		Status     struct{ Code int } `json:"status"`
		OkResponse struct {
			Headers []struct {
				Header struct{ Key, Value string } `json:"header"`
				Append *bool                       `json:"append"`
			} `json:"headers"`
		} `json:"okResponse"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("grpcurl output: %v\n%s", err, out)
	}
	found := false
	for _, h := range resp.OkResponse.Headers {
		if h.Header.Key == "x-user-id" && h.Header.Value == "dev-user" && h.Append != nil && !*h.Append {
			found = true
		}
	}
	if resp.Status.Code != 0 || !found {
		t.Fatalf("banner command did not allow with x-user-id: dev-user:\n%s", out)
	}

	// And the banner's curl line against the forward-auth listener.
	for _, l := range strings.Split(p.stdout.String(), "\n") {
		if strings.HasPrefix(l, "curl -i ") {
			args := strings.SplitN(l, "'", 3)
			req, _ := http.NewRequest("GET", strings.TrimSpace(args[2]), nil)
			req.Header.Set("Authorization", strings.TrimPrefix(args[1], "Authorization: "))
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != 200 || r.Header.Get("x-user-id") != "dev-user" {
				t.Fatalf("banner curl: %d %v", r.StatusCode, r.Header)
			}
		}
	}
}

// TestE2EGrpcurlEnvoyShapedJSON drives the server with grpcurl and JSON Check requests shaped
// like Envoy's: a client none of us wrote, reading our service through reflection.
func TestE2EGrpcurlEnvoyShapedJSON(t *testing.T) {
	grpcurl := grpcurlPath(t)
	idp := newIDP(t)
	p := start(t, "serve", "--config", idp.config(t, ""))
	waitHealth(t, dial(t, p.grpc), healthpb.HealthCheckResponse_SERVING)
	tok := idp.token(t, devissuer.TokenRequest{Sub: "dave", Extra: map[string]any{"email": "dave@example.com"}})

	cases := []struct {
		name string
		req  string
		want []string // substrings of grpcurl's JSON output
	}{
		{"allow", `{"attributes":{"source":{"principal":"spiffe://cluster.local/ns/default/sa/web"},"request":{"http":{"id":"9","method":"POST","host":"api.example.com","path":"/v1/orders?x=1","scheme":"https","protocol":"HTTP/2","headers":{":authority":"api.example.com",":method":"POST",":path":"/v1/orders?x=1","authorization":"Bearer ` + tok + `","x-user-id":"spoof","x-request-id":"r-1"}}}}}`,
			[]string{`"key": "x-user-id"`, `"value": "dave"`, `"value": "dave@example.com"`, `"append": false`, `"x-user-scopes"`, `"reason": "ok"`}},
		{"missing token", `{"attributes":{"request":{"http":{"method":"GET","host":"api.example.com","path":"/","headers":{":authority":"api.example.com",":method":"GET",":path":"/"}}}}}`,
			[]string{`"code": 16`, `"code": "Unauthorized"`, `"value": "Bearer realm=\"e2e\""`, `"reason": "missing_token"`}},
		{"raw header_map, two tokens", `{"attributes":{"request":{"http":{"method":"GET","path":"/","headerMap":{"headers":[{"key":"authorization","rawValue":"` + b64("Bearer "+tok) + `"},{"key":"authorization","rawValue":"` + b64("Bearer "+tok) + `"}]}}}}}`,
			[]string{`"code": 3`, `"code": "BadRequest"`, `error=\"invalid_request\"`, `"reason": "multiple_tokens"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(grpcurl, "-plaintext", "-d", tc.req, p.grpc, "envoy.service.auth.v3.Authorization/Check").CombinedOutput()
			if err != nil {
				t.Fatalf("grpcurl: %v\n%s", err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %s:\n%s", w, out)
				}
			}
		})
	}
	t.Run("health", func(t *testing.T) {
		out, err := exec.Command(grpcurl, "-plaintext", "-d", `{"service":"envoy.service.auth.v3.Authorization"}`, p.grpc, "grpc.health.v1.Health/Check").CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"status": "SERVING"`) {
			t.Fatalf("health: %v\n%s", err, out)
		}
	})
}

func b64(s string) string {
	return base64Std(s)
}

func grpcurlPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("GRPCURL"); p != "" {
		return p
	}
	p, err := exec.LookPath("grpcurl")
	if err != nil {
		t.Fatal("grpcurl not found: run through `make test`, which installs it (or set GRPCURL)")
	}
	return p
}

func base64Std(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
