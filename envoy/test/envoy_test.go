package deploytest

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	headermutationv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// Extensions envoy.yaml names by @type, linked in so that every typed_config resolves. Add
	// the package here when envoy.yaml starts using another extension.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
)

const (
	extAuthzFilter   = "envoy.filters.http.ext_authz"
	httpProtoOptions = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	reasonLogField   = "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%"
	minAuthzTimeout  = 250 * time.Millisecond
	maxAuthzTimeout  = 2 * time.Second
)

// contextExtensionKeys are the per-route keys jwtauthz defines (contract.md).
var contextExtensionKeys = map[string]bool{
	"jwtauthz.provider": true, "jwtauthz.scopes": true, "jwtauthz.allow_missing": true, "jwtauthz.disabled": true,
}

// loadBootstrap decodes an Envoy bootstrap strictly and runs the generated validation on it and
// on the content of every typed_config.
func loadBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	b := &bootstrapv3.Bootstrap{}
	if err := decodeProtoYAML(data, b); err != nil {
		return nil, err
	}
	if errs := validateDeep(b, ""); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// envoyExpectations is what the bootstrap is checked against, taken from the jwtauthz config
// that the demo runs.
type envoyExpectations struct {
	identityHeaders []string        // must be stripped early
	providers       map[string]bool // valid jwtauthz.provider values
}

// checkEnvoyWiring applies the wiring rules of envoy-notes.md §3 to every HTTP connection
// manager of the bootstrap and returns one message per broken rule.
func checkEnvoyWiring(b *bootstrapv3.Bootstrap, want envoyExpectations) []string {
	var problems []string
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	hcms := 0
	for _, l := range b.GetStaticResources().GetListeners() {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := &hcmv3.HttpConnectionManager{}
				if f.GetTypedConfig() == nil || !f.GetTypedConfig().MessageIs(hcm) {
					continue
				}
				if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
					problems = append(problems, fmt.Sprintf("listener %q: %v", l.GetName(), err))
					continue
				}
				hcms++
				for _, p := range checkHCM(hcm, clusters, want) {
					problems = append(problems, fmt.Sprintf("listener %q: %s", l.GetName(), p))
				}
			}
		}
	}
	if hcms == 0 {
		problems = append(problems, "no listener has an http_connection_manager")
	}
	return problems
}

func checkHCM(hcm *hcmv3.HttpConnectionManager, clusters map[string]*clusterv3.Cluster, want envoyExpectations) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// Filter order and the ExtAuthz knobs.
	authzIdx, routerIdx := -1, -1
	ea := &extauthzv3.ExtAuthz{}
	for i, f := range hcm.GetHttpFilters() {
		switch tc := f.GetTypedConfig(); {
		case tc == nil:
		case tc.MessageIs(ea):
			if authzIdx < 0 {
				authzIdx = i
				if err := tc.UnmarshalTo(ea); err != nil {
					add("http_filters[%d]: %v", i, err)
				}
			}
		case tc.MessageIs(&routerv3.Router{}):
			routerIdx = i
		}
	}
	switch {
	case authzIdx < 0:
		add("no %s filter in http_filters: nothing asks jwtauthz", extAuthzFilter)
		return problems
	case routerIdx < 0:
		add("no router filter in http_filters")
	case authzIdx > routerIdx:
		add("http_filters: %s (at %d) must come before the router (at %d); filters after the router never run", extAuthzFilter, authzIdx, routerIdx)
	}
	if v := ea.GetTransportApiVersion(); v != corev3.ApiVersion_V3 {
		add("ext_authz transport_api_version is %s; set V3 (jwtauthz serves envoy.service.auth.v3 only)", v)
	}
	gs := ea.GetGrpcService()
	cluster := gs.GetEnvoyGrpc().GetClusterName()
	switch {
	case gs == nil:
		add("ext_authz has no grpc_service: point grpc_service.envoy_grpc at jwtauthz's gRPC listener (:9001)")
	case cluster == "":
		add("ext_authz grpc_service does not use envoy_grpc.cluster_name")
	}
	switch d := gs.GetTimeout(); {
	case gs == nil:
	case d == nil:
		add("ext_authz grpc_service.timeout is unset: Envoy's default of 200 ms turns slow checks into 403s; set 0.5s to 1s")
	case d.AsDuration() < minAuthzTimeout || d.AsDuration() > maxAuthzTimeout:
		add("ext_authz grpc_service.timeout is %s; keep it between %s and %s", d.AsDuration(), minAuthzTimeout, maxAuthzTimeout)
	}
	if ea.GetFailureModeAllow() {
		add("ext_authz failure_mode_allow is true: every request would pass while jwtauthz is down or slow; set false")
	}
	switch soe := ea.GetStatusOnError(); {
	case soe == nil:
		add("ext_authz status_on_error is unset, so Envoy answers 403 when jwtauthz cannot be reached; set {code: ServiceUnavailable} so that \"jwtauthz unavailable\" (503) differs from \"denied\"")
	case soe.GetCode() != typev3.StatusCode_ServiceUnavailable:
		add("ext_authz status_on_error is %v; set {code: ServiceUnavailable} so that \"jwtauthz unavailable\" (503) differs from \"denied\"", soe.GetCode())
	}
	if cluster != "" {
		if c, ok := clusters[cluster]; !ok {
			add("ext_authz names cluster %q, which static_resources.clusters does not define", cluster)
		} else if err := checkHTTP2(c); err != nil {
			add("%v", err)
		}
	}

	// Routes: /healthz without the check, one route with context_extensions, no late strip.
	rc := hcm.GetRouteConfig()
	if rc == nil {
		add("route_config is not inline (RDS?): the route checks need it")
	} else {
		problems = append(problems, checkRoutes(rc, want)...)
	}

	// Access log with the decision's reason.
	logged := false
	for _, al := range hcm.GetAccessLog() {
		if al.GetTypedConfig() == nil {
			continue
		}
		inner, err := al.GetTypedConfig().UnmarshalNew()
		if err != nil {
			add("access_log %q: %v", al.GetName(), err)
			continue
		}
		js, _ := protojson.Marshal(inner)
		if strings.Contains(string(js), reasonLogField) {
			logged = true
		}
	}
	if !logged {
		add("no access_log format references %s: the reason for each decision would not be logged", reasonLogField)
	}

	// Early strip of client-sent identity headers.
	for _, h := range want.identityHeaders {
		if !strippedEarly(hcm, h) {
			add("identity header %q is not removed by early_header_mutation_extensions: on routes with ext_authz disabled a client could send its own", h)
		}
	}
	return problems
}

// checkHTTP2 reports a cluster that would speak HTTP/1.1 to a gRPC server.
func checkHTTP2(c *clusterv3.Cluster) error {
	fix := fmt.Sprintf(`add typed_extension_protocol_options: {%s: {"@type": type.googleapis.com/%s, explicit_http_config: {http2_protocol_options: {}}}}`, httpProtoOptions, httpProtoOptions)
	anyOpts, ok := c.GetTypedExtensionProtocolOptions()[httpProtoOptions]
	if !ok {
		return fmt.Errorf("cluster %q (the ext_authz gRPC cluster) has no HTTP/2 protocol options: Envoy would speak HTTP/1.1 to jwtauthz's gRPC listener, every check would fail and every request get 403 (envoy#11439); %s", c.GetName(), fix)
	}
	opts := &upstreamhttpv3.HttpProtocolOptions{}
	if err := anyOpts.UnmarshalTo(opts); err != nil {
		return fmt.Errorf("cluster %q: %s: %v", c.GetName(), httpProtoOptions, err)
	}
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		return fmt.Errorf("cluster %q (the ext_authz gRPC cluster) does not pin HTTP/2 (explicit_http_config.http2_protocol_options): gRPC over plain text needs it, and auto_config would pick HTTP/1.1; %s", c.GetName(), fix)
	}
	return nil
}

// perRouteAuthz returns a route's ExtAuthzPerRoute, or nil.
func perRouteAuthz(cfgs map[string]*anypb.Any) (*extauthzv3.ExtAuthzPerRoute, error) {
	a, ok := cfgs[extAuthzFilter]
	if !ok {
		return nil, nil
	}
	pr := &extauthzv3.ExtAuthzPerRoute{}
	if err := a.UnmarshalTo(pr); err != nil {
		return nil, err
	}
	return pr, nil
}

func checkRoutes(rc *routev3.RouteConfiguration, want envoyExpectations) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	late := func(where string, hs []string) {
		for _, h := range hs {
			for _, id := range want.identityHeaders {
				if strings.EqualFold(h, id) {
					add("%s: request_headers_to_remove %q runs after ext_authz and would drop the header jwtauthz sets; strip it early instead", where, h)
				}
			}
		}
	}
	late("route_config", rc.GetRequestHeadersToRemove())
	healthz, withExtensions := false, false
	for _, vh := range rc.GetVirtualHosts() {
		late(fmt.Sprintf("virtual_host %q", vh.GetName()), vh.GetRequestHeadersToRemove())
		for i, r := range vh.GetRoutes() {
			where := fmt.Sprintf("virtual_host %q route %d", vh.GetName(), i)
			late(where, r.GetRequestHeadersToRemove())
			pr, err := perRouteAuthz(r.GetTypedPerFilterConfig())
			if err != nil {
				add("%s: %v", where, err)
				continue
			}
			m := r.GetMatch()
			if m.GetPath() == "/healthz" || m.GetPrefix() == "/healthz" || m.GetPathSeparatedPrefix() == "/healthz" {
				healthz = true
				if !pr.GetDisabled() {
					add("%s (/healthz): set typed_per_filter_config[%s] to ExtAuthzPerRoute {disabled: true}; health probes carry no token", where, extAuthzFilter)
				}
			}
			if ext := pr.GetCheckSettings().GetContextExtensions(); len(ext) > 0 {
				withExtensions = true
				for k, v := range ext {
					switch {
					case !contextExtensionKeys[k]:
						add("%s: context_extensions key %q is not one jwtauthz defines (jwtauthz.provider, .scopes, .allow_missing, .disabled)", where, k)
					case k == "jwtauthz.provider" && !want.providers[v]:
						add("%s: context_extensions jwtauthz.provider %q is not a provider of the jwtauthz config", where, v)
					}
				}
			}
		}
	}
	if !healthz {
		add("no /healthz route with the check disabled")
	}
	if !withExtensions {
		add("no route carries ExtAuthzPerRoute check_settings.context_extensions")
	}
	return problems
}

// strippedEarly reports whether an early header mutation removes header h.
func strippedEarly(hcm *hcmv3.HttpConnectionManager, h string) bool {
	for _, ext := range hcm.GetEarlyHeaderMutationExtensions() {
		hm := &headermutationv3.HeaderMutation{}
		if ext.GetTypedConfig() == nil || ext.GetTypedConfig().UnmarshalTo(hm) != nil {
			continue
		}
		for _, m := range hm.GetMutations() {
			if strings.EqualFold(m.GetRemove(), h) || stringMatches(m.GetRemoveOnMatch().GetKeyMatcher(), h) {
				return true
			}
		}
	}
	return false
}

// stringMatches evaluates an Envoy StringMatcher (the forms a header strip would use).
func stringMatches(m *matcherv3.StringMatcher, s string) bool {
	if m == nil {
		return false
	}
	if m.GetIgnoreCase() {
		s = strings.ToLower(s)
	}
	low := func(p string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(p)
		}
		return p
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == low(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, low(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, low(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(s, low(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		return err == nil && re.MatchString(s)
	}
	return false
}

// demoExpectations reads what envoy.yaml must agree with from envoy/jwtauthz.yaml.
func demoExpectations(t *testing.T) envoyExpectations {
	t.Helper()
	cfg := mustJwtauthzConfig(t, "envoy/jwtauthz.yaml", readRepoFile(t, "envoy", "jwtauthz.yaml"))
	want := envoyExpectations{identityHeaders: identityHeaders(cfg), providers: map[string]bool{}}
	for name := range cfg.GetProviders() {
		want.providers[name] = true
	}
	return want
}

func TestEnvoyBootstrapMatchesSchema(t *testing.T) {
	if _, err := loadBootstrap(readRepoFile(t, "envoy", "envoy.yaml")); err != nil {
		t.Fatalf("envoy/envoy.yaml:\n%v", err)
	}
}

func TestEnvoyBootstrapWiring(t *testing.T) {
	b, err := loadBootstrap(readRepoFile(t, "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatalf("envoy/envoy.yaml:\n%v", err)
	}
	if problems := checkEnvoyWiring(b, demoExpectations(t)); len(problems) > 0 {
		t.Fatalf("envoy/envoy.yaml:\n%s", strings.Join(problems, "\n"))
	}
}

// envoyMutation breaks a copy of envoy.yaml.
type envoyMutation struct {
	name   string
	mutate func(t *testing.T, tree map[string]any)
	want   []string // substrings of the one expected message
}

// The paths below follow envoy.yaml's layout: listener 0, filter chain 0, filter 0 is the
// HCM; http filter 0 is ext_authz; routes 0, 1, 2 are /healthz, /api/, /.
func hcmTree(t *testing.T, tree map[string]any) map[string]any {
	return mapAt(t, tree, "static_resources", "listeners", 0, "filter_chains", 0, "filters", 0, "typed_config")
}

func extAuthzTree(t *testing.T, tree map[string]any) map[string]any {
	return mapAt(t, hcmTree(t, tree), "http_filters", 0, "typed_config")
}

func routeTree(t *testing.T, tree map[string]any, i int) map[string]any {
	return mapAt(t, hcmTree(t, tree), "route_config", "virtual_hosts", 0, "routes", i)
}

func clusterTree(t *testing.T, tree map[string]any, name string) map[string]any {
	t.Helper()
	for _, c := range node(t, tree, "static_resources", "clusters").([]any) {
		if m := c.(map[string]any); m["name"] == name {
			return m
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// TestEnvoyBrokenCopiesFailSchema: copies that Envoy itself would reject at start fail to load.
func TestEnvoyBrokenCopiesFailSchema(t *testing.T) {
	cases := []envoyMutation{
		{
			name: "misspelled field",
			mutate: func(t *testing.T, tree map[string]any) {
				ea := extAuthzTree(t, tree)
				ea["failure_mode_alow"] = ea["failure_mode_allow"]
				delete(ea, "failure_mode_allow")
			},
			want: []string{`typed_config<ExtAuthz>.failure_mode_alow: unknown field "failure_mode_alow"`, `did you mean "failure_mode_allow"?`},
		},
		{
			name: "unknown @type",
			mutate: func(t *testing.T, tree map[string]any) {
				extAuthzTree(t, tree)["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthZ"
			},
			want: []string{"http_filters[0].typed_config.@type", `unknown type "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthZ"`},
		},
		{
			name: "constraint inside a typed_config",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, extAuthzTree(t, tree), "grpc_service", "envoy_grpc")["cluster_name"] = ""
			},
			want: []string{"typed_config<ExtAuthz>", "ClusterName", "length must be at least 1"},
		},
		{
			name: "wrong value type",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, extAuthzTree(t, tree), "grpc_service")["timeout"] = "half a second"
			},
			want: []string{"does not match envoy.config.bootstrap.v3.Bootstrap"},
		},
	}
	base := readRepoFile(t, "envoy", "envoy.yaml")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := yamlTree(t, base)
			c.mutate(t, tree)
			_, err := loadBootstrap(yamlBytes(t, tree))
			if err == nil {
				t.Fatal("the broken copy loaded without error")
			}
			t.Logf("rejected as expected:\n%v", err)
			if !containsAll(err.Error(), c.want...) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}

// TestEnvoyBrokenCopiesFailWiring: copies that Envoy would run, wrongly, fail the wiring rules.
func TestEnvoyBrokenCopiesFailWiring(t *testing.T) {
	cases := []envoyMutation{
		{
			name: "HTTP/1 ext_authz cluster",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(clusterTree(t, tree, "jwtauthz"), "typed_extension_protocol_options")
			},
			want: []string{`cluster "jwtauthz"`, "no HTTP/2 protocol options", "every request get 403"},
		},
		{
			name: "HTTP/1 explicit config",
			mutate: func(t *testing.T, tree map[string]any) {
				opts := mapAt(t, clusterTree(t, tree, "jwtauthz"), "typed_extension_protocol_options", httpProtoOptions)
				opts["explicit_http_config"] = map[string]any{"http_protocol_options": map[string]any{}}
			},
			want: []string{`cluster "jwtauthz"`, "does not pin HTTP/2"},
		},
		{
			name: "fail open",
			mutate: func(t *testing.T, tree map[string]any) {
				extAuthzTree(t, tree)["failure_mode_allow"] = true
			},
			want: []string{"failure_mode_allow is true"},
		},
		{
			name: "default timeout",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(mapAt(t, extAuthzTree(t, tree), "grpc_service"), "timeout")
			},
			want: []string{"grpc_service.timeout is unset"},
		},
		{
			name: "timeout too short",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, extAuthzTree(t, tree), "grpc_service")["timeout"] = "0.2s"
			},
			want: []string{"grpc_service.timeout is 200ms"},
		},
		{
			name: "status_on_error unset",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(extAuthzTree(t, tree), "status_on_error")
			},
			want: []string{"status_on_error is unset, so Envoy answers 403"},
		},
		{
			name: "transport_api_version unset",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(extAuthzTree(t, tree), "transport_api_version")
			},
			want: []string{"transport_api_version is AUTO; set V3"},
		},
		{
			name: "router before ext_authz",
			mutate: func(t *testing.T, tree map[string]any) {
				h := hcmTree(t, tree)
				fs := h["http_filters"].([]any)
				fs[0], fs[1] = fs[1], fs[0]
			},
			want: []string{"must come before the router"},
		},
		{
			name: "ext_authz cluster missing",
			mutate: func(t *testing.T, tree map[string]any) {
				mapAt(t, extAuthzTree(t, tree), "grpc_service", "envoy_grpc")["cluster_name"] = "authz"
			},
			want: []string{`names cluster "authz"`},
		},
		{
			name: "/healthz checked",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(routeTree(t, tree, 0), "typed_per_filter_config")
			},
			want: []string{"(/healthz): set typed_per_filter_config"},
		},
		{
			name: "no context_extensions",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(routeTree(t, tree, 1), "typed_per_filter_config")
			},
			want: []string{"no route carries ExtAuthzPerRoute check_settings.context_extensions"},
		},
		{
			name: "unknown provider in context_extensions",
			mutate: func(t *testing.T, tree map[string]any) {
				ext := mapAt(t, routeTree(t, tree, 1), "typed_per_filter_config", extAuthzFilter, "check_settings", "context_extensions")
				ext["jwtauthz.provider"] = "zuplo"
			},
			want: []string{`jwtauthz.provider "zuplo" is not a provider`},
		},
		{
			name: "access log without the reason",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(hcmTree(t, tree), "access_log")
			},
			want: []string{"no access_log format references %DYNAMIC_METADATA(envoy.filters.http.ext_authz:reason)%"},
		},
		{
			name: "no early strip",
			mutate: func(t *testing.T, tree map[string]any) {
				delete(hcmTree(t, tree), "early_header_mutation_extensions")
			},
			want: []string{`identity header "x-user-id" is not removed by early_header_mutation_extensions`},
		},
		{
			name: "late strip of an identity header",
			mutate: func(t *testing.T, tree map[string]any) {
				routeTree(t, tree, 2)["request_headers_to_remove"] = []any{"x-user-id"}
			},
			want: []string{`request_headers_to_remove "x-user-id" runs after ext_authz`},
		},
	}
	base := readRepoFile(t, "envoy", "envoy.yaml")
	want := demoExpectations(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tree := yamlTree(t, base)
			c.mutate(t, tree)
			b, err := loadBootstrap(yamlBytes(t, tree))
			if err != nil {
				t.Fatalf("the broken copy should still match the schema:\n%v", err)
			}
			problems := checkEnvoyWiring(b, want)
			if len(problems) == 0 {
				t.Fatal("the broken copy passed the wiring checks")
			}
			msg := strings.Join(problems, "\n")
			t.Logf("rejected as expected:\n%s", msg)
			if !containsAll(msg, c.want...) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}

// TestValidateDeepReachesNestedAny guards the helper itself: ValidateAll on the outer message
// does not look inside an Any, so validateDeep must.
func TestValidateDeepReachesNestedAny(t *testing.T) {
	inner, err := anypb.New(&extauthzv3.ExtAuthz{
		Services: &extauthzv3.ExtAuthz_GrpcService{GrpcService: &corev3.GrpcService{
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: ""}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix:     "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}},
		HttpFilters:    []*hcmv3.HttpFilter{{Name: extAuthzFilter, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: inner}}},
	}
	if err := hcm.ValidateAll(); err != nil {
		t.Fatalf("outer ValidateAll unexpectedly failed: %v", err)
	}
	errs := validateDeep(proto.Message(hcm), "hcm")
	if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), "ClusterName") {
		t.Fatalf("validateDeep missed the empty cluster_name inside the Any: %v", errs)
	}
}
