package deploytest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

// The demo's services, by role.
const (
	svcEnvoy    = "envoy"
	svcAuthz    = "authz"
	svcIssuer   = "issuer"
	svcUpstream = "upstream"
)

// loadCompose loads docker-compose.yaml (or replacement content for it) the way
// `docker compose` does: compose-go's loader with the repository root as the project directory,
// which validates against the compose-spec schema and resolves relative paths.
func loadCompose(t *testing.T, content []byte) (*types.Project, error) {
	t.Helper()
	file := types.ConfigFile{Filename: repoPath("docker-compose.yaml"), Content: content}
	details := types.ConfigDetails{WorkingDir: repoRoot, ConfigFiles: []types.ConfigFile{file}, Environment: types.Mapping{}}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("jwtauthz-demo", true)
	})
}

// composeDemo is what the cross-checks found; tests add their own assertions on it.
type composeDemo struct {
	project   *types.Project
	boot      *bootstrapv3.Bootstrap
	authzCfg  *configv1.Config
	problems  []string
	envoyFile string // host path of the mounted bootstrap
	authzFile string // host path of the mounted jwtauthz config
}

func (d *composeDemo) add(format string, args ...any) {
	d.problems = append(d.problems, fmt.Sprintf(format, args...))
}

// checkCompose cross-checks the compose project with the files it mounts.
func checkCompose(t *testing.T, p *types.Project) *composeDemo {
	t.Helper()
	d := &composeDemo{project: p}
	for _, name := range []string{svcEnvoy, svcAuthz, svcIssuer, svcUpstream} {
		if _, ok := p.Services[name]; !ok {
			d.add("service %q is missing", name)
		}
	}
	if len(d.problems) > 0 {
		return d
	}
	envoy, authz, issuer, upstream := p.Services[svcEnvoy], p.Services[svcAuthz], p.Services[svcIssuer], p.Services[svcUpstream]

	// authz: the jwtauthz config it mounts, its command and health check.
	cfgPath := flagValue(authz.Command, "--config")
	if len(authz.Command) == 0 || authz.Command[0] != "serve" || cfgPath == "" {
		d.add("authz: command %q is not `serve --config FILE`", authz.Command)
	}
	d.authzFile = bindSource(authz, cfgPath)
	if d.authzFile == "" {
		d.add("authz: no bind mount at %q (the --config file)", cfgPath)
	} else if data, err := os.ReadFile(d.authzFile); err != nil {
		d.add("authz: mounted config: %v", err)
	} else if cfg, _, err := validateJwtauthzConfig(data); err != nil {
		d.add("authz: mounted config %s does not pass jwtauthz validate:\n%v", rel(d.authzFile), err)
	} else {
		d.authzCfg = cfg
	}
	if hc := authz.HealthCheck; hc == nil || hc.Disable || !slices.Equal([]string(hc.Test), []string{"CMD", "/jwtauthz", "healthcheck"}) {
		d.add("authz: healthcheck must be test: [\"CMD\", \"/jwtauthz\", \"healthcheck\"] (the image has no shell, no curl)")
	} else if d.authzCfg != nil && portOf(d.authzCfg.GetServer().GetAdminAddress()) != 9003 {
		d.add("authz: `jwtauthz healthcheck` asks 127.0.0.1:9003, but admin_address is %q", d.authzCfg.GetServer().GetAdminAddress())
	}
	if b := authz.Build; b == nil {
		d.add("authz: no build section (the image is built from the repository's Dockerfile)")
	} else if b.Context != repoRoot {
		d.add("authz: build context %q is not the repository root", b.Context)
	} else if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
		d.add("authz: build dockerfile: %v", err)
	}

	// issuer: its flags must produce tokens the mounted config accepts.
	if d.authzCfg != nil {
		checkIssuerAgainstConfig(d, issuer, d.authzCfg)
	}
	if issuer.HealthCheck == nil || !issuer.HealthCheck.Disable {
		d.add("issuer: set healthcheck: {disable: true}; the image's HEALTHCHECK asks the admin listener, which `jwtauthz issuer` does not run")
	}

	// upstream: pinned, and reachable only through Envoy.
	if img := upstream.Image; !regexp.MustCompile(`^[^:@]+(:[^:@]+)?(@sha256:[0-9a-f]{64})?$`).MatchString(img) || !strings.ContainsAny(img, ":@") || strings.HasSuffix(img, ":latest") {
		d.add("upstream: image %q is not pinned to a tag or digest", img)
	}
	if len(upstream.Ports) > 0 {
		d.add("upstream: publishes ports; the backend must be reachable only through Envoy")
	}

	// envoy: the bootstrap it mounts, and where its clusters point.
	d.envoyFile = bindSource(envoy, "/etc/envoy/envoy.yaml")
	if d.envoyFile == "" {
		d.add("envoy: no bind mount at /etc/envoy/envoy.yaml (the image's default config path)")
		return d
	}
	data, err := os.ReadFile(d.envoyFile)
	if err != nil {
		d.add("envoy: mounted bootstrap: %v", err)
		return d
	}
	if d.boot, err = loadBootstrap(data); err != nil {
		d.add("envoy: mounted bootstrap %s:\n%v", rel(d.envoyFile), err)
		return d
	}
	if dep, ok := envoy.DependsOn[svcAuthz]; !ok || dep.Condition != types.ServiceConditionHealthy {
		d.add("envoy: depends_on authz must use condition: service_healthy, or the first requests meet a jwtauthz without keys (503)")
	}
	listen := map[string][]int{svcUpstream: nil, svcIssuer: nil, svcAuthz: nil}
	if v := upstream.Environment["HTTP_PORT"]; v != nil {
		listen[svcUpstream] = []int{atoi(*v)}
	}
	if d.authzCfg != nil {
		s := d.authzCfg.GetServer()
		listen[svcAuthz] = []int{portOf(s.GetGrpcAddress()), portOf(s.GetHttpAddress())}
	}
	listen[svcIssuer] = []int{portOf(flagValue(issuer.Command, "--addr"))}
	authzCluster := extAuthzCluster(d.boot)
	for _, c := range d.boot.GetStaticResources().GetClusters() {
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range le.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				host, port := sa.GetAddress(), int(sa.GetPortValue())
				ports, isService := listen[host]
				switch {
				case !isService:
					d.add("envoy cluster %q: address %q is not a compose service (%s, %s, %s)", c.GetName(), host, svcAuthz, svcIssuer, svcUpstream)
				case !slices.Contains(ports, port):
					d.add("envoy cluster %q: %s:%d, but %s listens on %v", c.GetName(), host, port, host, ports)
				}
				if c.GetName() == authzCluster && d.authzCfg != nil {
					if want := portOf(d.authzCfg.GetServer().GetGrpcAddress()); host != svcAuthz || port != want {
						d.add("envoy cluster %q (ext_authz): points at %s:%d, but jwtauthz's gRPC listener is %s:%d", c.GetName(), host, port, svcAuthz, want)
					}
				}
			}
		}
	}
	if d.authzCfg != nil {
		want := envoyExpectations{identityHeaders: identityHeaders(d.authzCfg), providers: map[string]bool{}}
		for name := range d.authzCfg.GetProviders() {
			want.providers[name] = true
		}
		for _, p := range checkEnvoyWiring(d.boot, want) {
			d.add("envoy: %s", p)
		}
	}
	return d
}

// checkIssuerAgainstConfig: the issuer's --issuer and --audience must be what the provider
// expects, and the provider's JWKS URL must point at the issuer service.
func checkIssuerAgainstConfig(d *composeDemo, issuer types.ServiceConfig, cfg *configv1.Config) {
	iss, aud, addr := flagValue(issuer.Command, "--issuer"), flagValue(issuer.Command, "--audience"), flagValue(issuer.Command, "--addr")
	if len(issuer.Command) == 0 || issuer.Command[0] != "issuer" {
		d.add("issuer: command %q is not `issuer ...`", issuer.Command)
		return
	}
	for name, p := range cfg.GetProviders() {
		if p.GetIssuer() != iss {
			continue
		}
		if aud == "" {
			aud = "jwtauthz-dev" // the issuer's default
		}
		if !slices.Contains(p.GetAudiences(), aud) {
			d.add("issuer: mints tokens for audience %q, but provider %q accepts %q", aud, name, p.GetAudiences())
		}
		u, err := url.Parse(p.GetRemoteJwks().GetUri())
		if err != nil || u.Hostname() != svcIssuer || atoi(u.Port()) != portOf(addr) {
			d.add("provider %q: remote_jwks.uri %q does not point at the issuer service (%s:%d)", name, p.GetRemoteJwks().GetUri(), svcIssuer, portOf(addr))
		}
		return
	}
	d.add("issuer: --issuer %q is the issuer of no provider in the authz config", iss)
}

// extAuthzCluster returns the cluster that the first ext_authz filter calls.
func extAuthzCluster(b *bootstrapv3.Bootstrap) string {
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig().UnmarshalTo(hcm) != nil {
					continue
				}
				for _, hf := range hcm.GetHttpFilters() {
					ea := &extauthzv3.ExtAuthz{}
					if hf.GetTypedConfig() != nil && hf.GetTypedConfig().UnmarshalTo(ea) == nil {
						return ea.GetGrpcService().GetEnvoyGrpc().GetClusterName()
					}
				}
			}
		}
	}
	return ""
}

// bindSource returns the host path bind-mounted at target in the service, or "".
func bindSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && v.Target == target {
			return v.Source
		}
	}
	return ""
}

// flagValue returns the value after flag in a command line ("--flag value" or "--flag=value").
func flagValue(cmd []string, flag string) string {
	for i, a := range cmd {
		if a == flag && i+1 < len(cmd) {
			return cmd[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// portOf returns the port of a listen address such as ":9001" or "0.0.0.0:9001", or 0.
func portOf(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	return atoi(port)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

func rel(path string) string {
	if r, err := filepath.Rel(repoRoot, path); err == nil {
		return r
	}
	return path
}

func TestComposeDemo(t *testing.T) {
	p, err := loadCompose(t, readRepoFile(t, "docker-compose.yaml"))
	if err != nil {
		t.Fatalf("docker-compose.yaml does not load: %v", err)
	}
	d := checkCompose(t, p)
	if len(d.problems) > 0 {
		t.Fatalf("docker-compose.yaml:\n%s", strings.Join(d.problems, "\n"))
	}
	// The files the demo mounts are the files the other tests check.
	if d.envoyFile != repoPath("envoy", "envoy.yaml") || d.authzFile != repoPath("envoy", "jwtauthz.yaml") {
		t.Errorf("mounted files: envoy %s, authz %s; want envoy/envoy.yaml and envoy/jwtauthz.yaml", rel(d.envoyFile), rel(d.authzFile))
	}
	envoy := p.Services[svcEnvoy]
	published := false
	for _, port := range envoy.Ports {
		if port.Target == 8080 && port.Published == "8080" {
			published = true
		}
	}
	if !published {
		t.Errorf("envoy: port 8080 (the demo's listener) is not published as 8080; README's curl commands use localhost:8080")
	}
}

// TestComposeEnvoyImageMatchesValidatedAPI: the Envoy image runs the API version that envoy.yaml
// is validated against (go-control-plane/envoy vX.Y.Z carries Envoy vX.Y's protos).
func TestComposeEnvoyImageMatchesValidatedAPI(t *testing.T) {
	p, err := loadCompose(t, readRepoFile(t, "docker-compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	img := p.Services[svcEnvoy].Image
	m := regexp.MustCompile(`^envoyproxy/envoy:v(\d+)\.(\d+)\.(\d+)$`).FindStringSubmatch(img)
	if m == nil {
		t.Fatalf("envoy image %q is not a pinned release tag envoyproxy/envoy:vX.Y.Z", img)
	}
	// Test binaries carry no module list in their build info, so read this module's go.mod.
	gomod := readRepoFile(t, "envoy", "test", "go.mod")
	api := regexp.MustCompile(`(?m)^\s*github\.com/envoyproxy/go-control-plane/envoy v(\d+)\.(\d+)\.\d+`).FindSubmatch(gomod)
	if api == nil {
		t.Fatal("envoy/test/go.mod does not require github.com/envoyproxy/go-control-plane/envoy")
	}
	if string(api[1]) != m[1] || string(api[2]) != m[2] {
		t.Fatalf("envoy image %s, but envoy.yaml is validated against go-control-plane/envoy v%s.%s; keep their minor versions equal", img, api[1], api[2])
	}
}

// TestComposeBrokenCopies: copies of docker-compose.yaml that would not work fail with a message.
func TestComposeBrokenCopies(t *testing.T) {
	base := readRepoFile(t, "docker-compose.yaml")
	cases := []struct {
		name    string
		mutate  func(t *testing.T, tree map[string]any)
		loadErr bool // compose-go itself rejects it
		want    []string
	}{
		{
			name: "misspelled key",
			mutate: func(t *testing.T, tree map[string]any) {
				s := mapAt(t, tree, "services", svcAuthz)
				s["healtcheck"] = s["healthcheck"]
				delete(s, "healthcheck")
			},
			loadErr: true,
			want:    []string{"healtcheck"},
		},
		{
			name: "envoy mounts a missing file",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, tree, "services", svcEnvoy)["volumes"] = []any{"./envoy/envoy-missing.yaml:/etc/envoy/envoy.yaml:ro"}
			},
			want: []string{"envoy: mounted bootstrap", "envoy-missing.yaml"},
		},
		{
			name: "ext_authz cluster on the wrong port",
			mutate: func(t *testing.T, tree map[string]any) {
				// The same config with the gRPC and HTTP listeners moved to 9101 and 9102.
				cfg := strings.NewReplacer(`":9001"`, `":9101"`, `":9002"`, `":9102"`).Replace(string(readRepoFile(t, "envoy", "jwtauthz.yaml")))
				file := filepath.Join(t.TempDir(), "jwtauthz.yaml")
				if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
					t.Fatal(err)
				}
				mapAt(t, tree, "services", svcAuthz)["volumes"] = []any{file + ":/etc/jwtauthz/jwtauthz.yaml:ro"}
			},
			want: []string{`envoy cluster "jwtauthz": authz:9001, but authz listens on [9101 9102]`, `points at authz:9001, but jwtauthz's gRPC listener is authz:9101`},
		},
		{
			name: "issuer audience not accepted",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, tree, "services", svcIssuer)["command"] = []any{"issuer", "--addr", ":9000", "--issuer", "http://issuer:9000"}
			},
			want: []string{`issuer: mints tokens for audience "jwtauthz-dev", but provider "demo" accepts ["demo-api"]`},
		},
		{
			name: "upstream published",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, tree, "services", svcUpstream)["ports"] = []any{"8081:8080"}
			},
			want: []string{"upstream: publishes ports"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := yamlTree(t, base)
			c.mutate(t, tree)
			p, err := loadCompose(t, yamlBytes(t, tree))
			var msg string
			switch {
			case c.loadErr && err == nil:
				t.Fatal("compose-go loaded the broken copy")
			case c.loadErr:
				msg = err.Error()
			case err != nil:
				t.Fatalf("the broken copy should still load: %v", err)
			default:
				d := checkCompose(t, p)
				if len(d.problems) == 0 {
					t.Fatal("the broken copy passed the cross-checks")
				}
				msg = strings.Join(d.problems, "\n")
			}
			t.Logf("rejected as expected:\n%s", msg)
			if !containsAll(msg, c.want...) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}
