package deploytest

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"
)

// kustomization is the part of kustomize's Kustomization that these files use. Decoding it
// strictly catches a misspelled key, which kustomize would reject too.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
	Patches []struct {
		Path   string            `json:"path,omitempty"`
		Patch  string            `json:"patch,omitempty"`
		Target map[string]string `json:"target,omitempty"`
	} `json:"patches,omitempty"`
}

// files maps a name relative to its directory to the file's content, so that negative tests
// can replace one file with a broken copy.
type files map[string][]byte

func readDir(t *testing.T, elem ...string) files {
	t.Helper()
	dir := repoPath(elem...)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fs := files{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fs[e.Name()] = data
	}
	return fs
}

// mutated returns a copy of fs with one YAML file changed through its decoded tree.
func (fs files) mutated(t *testing.T, name string, mutate func(tree map[string]any)) files {
	t.Helper()
	out := maps.Clone(fs)
	tree := yamlTree(t, fs[name])
	mutate(tree)
	out[name] = yamlBytes(t, tree)
	return out
}

// kubeBase is the decoded Kubernetes base.
type kubeBase struct {
	kust       kustomization
	deployment *appsv1.Deployment
	service    *corev1.Service
	configMap  *corev1.ConfigMap
	pdb        *policyv1.PodDisruptionBudget
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	config     *configv1.Config // the jwtauthz config inside the ConfigMap
	configPath string           // where the Deployment tells jwtauthz to read it
	problems   []string
}

func (k *kubeBase) add(format string, args ...any) {
	k.problems = append(k.problems, fmt.Sprintf(format, args...))
}

// kubeKinds maps each kind the base may hold to its apiVersion and a new typed object.
var kubeKinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":               {"v1", func() any { return &corev1.Namespace{} }},
	"ServiceAccount":          {"v1", func() any { return &corev1.ServiceAccount{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
}

// decodeKube decodes one manifest strictly (unknown fields and duplicate keys fail) into its
// k8s.io/api type.
func decodeKube(name string, data []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(data, &tm); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	kind, ok := kubeKinds[tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%s: kind %q is not one the base is expected to hold", name, tm.Kind)
	}
	if tm.APIVersion != kind.apiVersion {
		return nil, fmt.Errorf("%s: %s has apiVersion %q; want %q", name, tm.Kind, tm.APIVersion, kind.apiVersion)
	}
	obj := kind.new()
	if err := decodeStrictYAML(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return obj, nil
}

// checkKubeBase decodes envoy/kubernetes and cross-checks the manifests with each other and
// with the jwtauthz config they carry.
func checkKubeBase(fs files) *kubeBase {
	k := &kubeBase{}
	if err := decodeStrictYAML(fs["kustomization.yaml"], &k.kust); err != nil {
		k.add("kustomization.yaml: %v", err)
		return k
	}
	if k.kust.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.kust.Kind != "Kustomization" {
		k.add("kustomization.yaml: apiVersion/kind %s/%s", k.kust.APIVersion, k.kust.Kind)
	}
	listed := map[string]bool{}
	for _, r := range k.kust.Resources {
		listed[r] = true
		data, ok := fs[r]
		if !ok {
			k.add("kustomization.yaml lists %q, which does not exist in envoy/kubernetes", r)
			continue
		}
		obj, err := decodeKube(r, data)
		if err != nil {
			k.add("%v", err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			k.deployment = o
		case *corev1.Service:
			k.service = o
		case *corev1.ConfigMap:
			k.configMap = o
		case *policyv1.PodDisruptionBudget:
			k.pdb = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			k.hpa = o
		}
	}
	for name := range fs {
		if name != "kustomization.yaml" && !listed[name] {
			k.add("%s is not listed in kustomization.yaml resources", name)
		}
	}
	if len(k.problems) > 0 {
		return k
	}
	for what, missing := range map[string]bool{"Deployment": k.deployment == nil, "Service": k.service == nil, "ConfigMap": k.configMap == nil, "PodDisruptionBudget": k.pdb == nil, "HorizontalPodAutoscaler": k.hpa == nil} {
		if missing {
			k.add("the base has no %s", what)
		}
	}
	if len(k.problems) > 0 {
		return k
	}
	k.checkDeployment()
	k.checkService()
	k.checkAvailability()
	return k
}

func (k *kubeBase) container() *corev1.Container {
	for i, c := range k.deployment.Spec.Template.Spec.Containers {
		if c.Name == "jwtauthz" {
			return &k.deployment.Spec.Template.Spec.Containers[i]
		}
	}
	return nil
}

// containerPort resolves a probe or Service port (number or name) to a container port number.
func (k *kubeBase) containerPort(p intstr.IntOrString) int {
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range k.container().Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	return 0
}

func (k *kubeBase) checkDeployment() {
	d, c := k.deployment, k.container()
	if c == nil {
		k.add("deployment.yaml: no container named jwtauthz")
		return
	}
	// The config: args --config FILE, FILE inside a mount of the ConfigMap, and valid.
	k.configPath = flagValue(c.Args, "--config")
	if len(c.Args) == 0 || c.Args[0] != "serve" || k.configPath == "" {
		k.add("deployment.yaml: args %q are not `serve --config FILE`", c.Args)
		return
	}
	dir, key := path.Split(k.configPath)
	mounted := false
	for _, vm := range c.VolumeMounts {
		if strings.TrimSuffix(vm.MountPath, "/") != strings.TrimSuffix(dir, "/") {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil && v.ConfigMap.Name == k.configMap.Name {
				mounted = true
			}
		}
	}
	if !mounted {
		k.add("deployment.yaml: --config %s is not inside a mount of ConfigMap %q", k.configPath, k.configMap.Name)
	}
	data, ok := k.configMap.Data[key]
	if !ok {
		k.add("configmap.yaml: no key %q (the file --config names)", key)
		return
	}
	cfg, _, err := validateJwtauthzConfig([]byte(data))
	if err != nil {
		k.add("configmap.yaml %s does not pass jwtauthz validate:\n%v", key, err)
		return
	}
	k.config = cfg
	s := cfg.GetServer()

	// Ports and probes agree with the config's listeners.
	named := map[string]int{}
	for _, p := range c.Ports {
		named[p.Name] = int(p.ContainerPort)
	}
	for name, addr := range map[string]string{"grpc": s.GetGrpcAddress(), "admin": s.GetAdminAddress()} {
		if named[name] != portOf(addr) {
			k.add("deployment.yaml: container port %q is %d, but the config listens on %q", name, named[name], addr)
		}
	}
	probe := func(what string, p *corev1.Probe, wantPath string) {
		switch {
		case p == nil || p.HTTPGet == nil:
			k.add("deployment.yaml: %s must be an httpGet of %s on the admin port", what, wantPath)
		case p.HTTPGet.Path != wantPath:
			k.add("deployment.yaml: %s asks %s; it must ask %s", what, p.HTTPGet.Path, wantPath)
		case k.containerPort(p.HTTPGet.Port) != portOf(s.GetAdminAddress()):
			k.add("deployment.yaml: %s port %s is not the admin listener %q", what, p.HTTPGet.Port.String(), s.GetAdminAddress())
		}
	}
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("livenessProbe", c.LivenessProbe, "/healthz")

	// Resources.
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		k.add("deployment.yaml: set resources.requests.cpu and .memory (the HPA scales on CPU utilisation of the request)")
	}
	if c.Resources.Limits.Memory().IsZero() {
		k.add("deployment.yaml: set resources.limits.memory")
	}

	// Non-root, no privilege.
	ps, cs := d.Spec.Template.Spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		k.add("deployment.yaml: the pod securityContext must set runAsNonRoot: true and a non-zero runAsUser (65532, distroless nonroot)")
	}
	if cs == nil || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
		cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") {
		k.add("deployment.yaml: the container securityContext must set allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities.drop: [ALL]")
	}

	// Shutdown: the grace period covers drain_delay + drain_timeout.
	drain := s.GetDrainDelay().AsDuration() + s.GetDrainTimeout().AsDuration()
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= drain {
		k.add("deployment.yaml: terminationGracePeriodSeconds must exceed drain_delay + drain_timeout (%s)", drain)
	}
}

func (k *kubeBase) podLabels() map[string]string { return k.deployment.Spec.Template.Labels }

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for key, v := range sel {
		if labels[key] != v {
			return false
		}
	}
	return true
}

// grpcServicePort returns the Service port that reaches the container's gRPC port.
func (k *kubeBase) grpcServicePort() *corev1.ServicePort {
	if k.config == nil {
		return nil
	}
	want := portOf(k.config.GetServer().GetGrpcAddress())
	for i, p := range k.service.Spec.Ports {
		if k.containerPort(p.TargetPort) == want {
			return &k.service.Spec.Ports[i]
		}
	}
	return nil
}

func (k *kubeBase) checkService() {
	if !selects(k.service.Spec.Selector, k.podLabels()) {
		k.add("service.yaml: selector %v does not select the Deployment's pods %v", k.service.Spec.Selector, k.podLabels())
	}
	if k.config == nil {
		return // reported already; the ports cannot be checked without it
	}
	p := k.grpcServicePort()
	if p == nil {
		k.add("service.yaml: no port targets jwtauthz's gRPC listener")
		return
	}
	if err := istioSpeaksGRPC(k.service.Name, p); err != nil {
		k.add("service.yaml: %v", err)
	}
}

// istioSpeaksGRPC applies Istio's protocol selection to the Service port in front of the gRPC
// listener: appProtocol if set, else the port name's prefix. Anything but gRPC or HTTP/2 makes
// the sidecars speak HTTP/1.1 to jwtauthz, and every ext_authz call fails.
func istioSpeaksGRPC(service string, p *corev1.ServicePort) error {
	proto, from := "", ""
	if p.AppProtocol != nil && *p.AppProtocol != "" {
		proto, from = *p.AppProtocol, fmt.Sprintf("appProtocol %q", *p.AppProtocol)
	} else {
		proto, _, _ = strings.Cut(p.Name, "-")
		from = fmt.Sprintf("name %q, no appProtocol", p.Name)
	}
	switch strings.ToLower(proto) {
	case "grpc", "http2", "kubernetes.io/h2c":
		return nil
	}
	return fmt.Errorf("Service %q port %d (%s): Istio selects protocol %q and its sidecars speak HTTP/1.1 to jwtauthz's gRPC listener, so every ext_authz check fails and every request is denied (istio#50881); name the port \"grpc\" (or \"grpc-*\") and set appProtocol: grpc", service, p.Port, from, proto)
}

func (k *kubeBase) checkAvailability() {
	if k.pdb.Spec.Selector == nil || !selects(k.pdb.Spec.Selector.MatchLabels, k.podLabels()) {
		k.add("pdb.yaml: the selector does not select the Deployment's pods")
	}
	ref := k.hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != k.deployment.Name || ref.APIVersion != "apps/v1" {
		k.add("hpa.yaml: scaleTargetRef %s/%s %s is not the Deployment %q", ref.APIVersion, ref.Kind, ref.Name, k.deployment.Name)
	}
	minReplicas := int32(1)
	if k.hpa.Spec.MinReplicas != nil {
		minReplicas = *k.hpa.Spec.MinReplicas
	}
	if ma := k.pdb.Spec.MinAvailable; ma == nil || ma.Type != intstr.Int || int32(ma.IntValue()) >= minReplicas {
		k.add("pdb.yaml: minAvailable must be a number below the HPA's minReplicas (%d), or no node could ever be drained", minReplicas)
	}
	if minReplicas < 2 {
		k.add("hpa.yaml: minReplicas must be at least 2: with failure_mode_allow: false, a lone jwtauthz restarting denies every request")
	}
}

func TestKubernetesBase(t *testing.T) {
	k := checkKubeBase(readDir(t, "envoy", "kubernetes"))
	if len(k.problems) > 0 {
		t.Fatalf("envoy/kubernetes:\n%s", strings.Join(k.problems, "\n"))
	}
	// What the shipped files promise beyond "it would work".
	p := k.grpcServicePort()
	if p.Name != "grpc" || p.AppProtocol == nil || *p.AppProtocol != "grpc" {
		t.Errorf("service.yaml: the gRPC port should be named grpc and carry appProtocol: grpc (both, so either rule of Istio's protocol selection holds)")
	}
	if k.kust.Namespace == "" {
		t.Errorf("kustomization.yaml: set namespace")
	}
}

// TestKubernetesBrokenCopies: broken copies of the base fail with a message.
func TestKubernetesBrokenCopies(t *testing.T) {
	base := readDir(t, "envoy", "kubernetes")
	container := func(t *testing.T, tree map[string]any) map[string]any {
		return mapAt(t, tree, "spec", "template", "spec", "containers", 0)
	}
	cases := []struct {
		name string
		fs   func(t *testing.T) files
		want []string
	}{
		{
			name: "Istio port name http without appProtocol",
			fs: func(t *testing.T) files {
				return base.mutated(t, "service.yaml", func(tree map[string]any) {
					p := mapAt(t, tree, "spec", "ports", 0)
					p["name"] = "http"
					delete(p, "appProtocol")
				})
			},
			want: []string{`Service "jwtauthz" port 9001 (name "http", no appProtocol)`, `Istio selects protocol "http"`, "every request is denied"},
		},
		{
			name: "misspelled field",
			fs: func(t *testing.T) files {
				return base.mutated(t, "deployment.yaml", func(tree map[string]any) {
					c := container(t, tree)
					c["readinesProbe"] = c["readinessProbe"]
					delete(c, "readinessProbe")
				})
			},
			want: []string{"deployment.yaml", `unknown field "spec.template.spec.containers[0].readinesProbe"`},
		},
		{
			name: "readiness on /healthz",
			fs: func(t *testing.T) files {
				return base.mutated(t, "deployment.yaml", func(tree map[string]any) {
					mapAt(t, container(t, tree), "readinessProbe", "httpGet")["path"] = "/healthz"
				})
			},
			want: []string{"readinessProbe asks /healthz; it must ask /readyz"},
		},
		{
			name: "runs as root",
			fs: func(t *testing.T) files {
				return base.mutated(t, "deployment.yaml", func(tree map[string]any) {
					delete(mapAt(t, tree, "spec", "template", "spec"), "securityContext")
				})
			},
			want: []string{"runAsNonRoot: true"},
		},
		{
			name: "config allowing HS256",
			fs: func(t *testing.T) files {
				return base.mutated(t, "configmap.yaml", func(tree map[string]any) {
					d := mapAt(t, tree, "data")
					d["jwtauthz.yaml"] = strings.Replace(d["jwtauthz.yaml"].(string), "    remote_jwks:\n", "    algorithms: [HS256]\n    remote_jwks:\n", 1)
				})
			},
			want: []string{"does not pass jwtauthz validate", "providers.main.algorithms[0]: HS256 is not supported"},
		},
		{
			name: "resource not listed",
			fs: func(t *testing.T) files {
				return base.mutated(t, "kustomization.yaml", func(tree map[string]any) {
					tree["resources"] = append(tree["resources"].([]any), "networkpolicy.yaml")
				})
			},
			want: []string{`kustomization.yaml lists "networkpolicy.yaml", which does not exist`},
		},
		{
			name: "misspelled kustomization key",
			fs: func(t *testing.T) files {
				return base.mutated(t, "kustomization.yaml", func(tree map[string]any) {
					tree["resource"] = tree["resources"]
					delete(tree, "resources")
				})
			},
			want: []string{"kustomization.yaml", `unknown field "resource"`},
		},
		{
			name: "grace period shorter than the drain",
			fs: func(t *testing.T) files {
				return base.mutated(t, "deployment.yaml", func(tree map[string]any) {
					mapAt(t, tree, "spec", "template", "spec")["terminationGracePeriodSeconds"] = 10
				})
			},
			want: []string{"terminationGracePeriodSeconds must exceed drain_delay + drain_timeout (15s)"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := checkKubeBase(c.fs(t))
			if len(k.problems) == 0 {
				t.Fatal("the broken copy passed")
			}
			msg := strings.Join(k.problems, "\n")
			t.Logf("rejected as expected:\n%s", msg)
			if !containsAll(msg, c.want...) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}

// --- Istio ---

// istioObject is the envelope of an Istio custom resource; its spec is decoded with protojson
// into the istio.io/api type, as istiod does.
type istioObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       json.RawMessage   `json:"spec"`
}

func decodeIstio(name string, data []byte, apiVersion, kind string, spec proto.Message) (*istioObject, error) {
	obj := &istioObject{}
	if err := decodeStrictYAML(data, obj); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if obj.APIVersion != apiVersion || obj.Kind != kind {
		return nil, fmt.Errorf("%s: %s %s; want %s %s", name, obj.APIVersion, obj.Kind, apiVersion, kind)
	}
	if err := decodeProtoJSON(obj.Spec, spec); err != nil {
		return nil, fmt.Errorf("%s: spec: %w", name, err)
	}
	return obj, nil
}

// checkIstio decodes envoy/istio and cross-checks it with the Kubernetes base it reuses.
func checkIstio(fs files, k *kubeBase) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// The mesh config (istiod Helm values).
	var values struct {
		MeshConfig json.RawMessage `json:"meshConfig"`
	}
	mesh := &meshv1alpha1.MeshConfig{}
	if err := decodeStrictYAML(fs["mesh-config.yaml"], &values); err != nil {
		add("mesh-config.yaml: %v", err)
		return problems
	} else if err := decodeProtoJSON(values.MeshConfig, mesh); err != nil {
		add("mesh-config.yaml: meshConfig: %v", err)
		return problems
	}
	providers := map[string]*meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExternalAuthorizationGrpcProvider{}
	for _, p := range mesh.GetExtensionProviders() {
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			providers[p.GetName()] = g
		}
	}
	if len(providers) == 0 {
		add("mesh-config.yaml: no extensionProviders entry with envoyExtAuthzGrpc")
	}
	for name, g := range providers {
		where := fmt.Sprintf("mesh-config.yaml: extensionProviders %q", name)
		if want := k.service.Name + "." + k.kust.Namespace + ".svc.cluster.local"; g.GetService() != want {
			add("%s: service %q; the Service of envoy/kubernetes is %q", where, g.GetService(), want)
		}
		if p := k.grpcServicePort(); p == nil || g.GetPort() != uint32(p.Port) {
			add("%s: port %d is not the Service's gRPC port", where, g.GetPort())
		}
		switch d := g.GetTimeout(); {
		case d == nil:
			add("%s: timeout is unset: istiod's default is 600s; set 0.5s", where)
		case d.AsDuration() < minAuthzTimeout || d.AsDuration() > maxAuthzTimeout:
			add("%s: timeout %s; keep it between %s and %s", where, d.AsDuration(), minAuthzTimeout, maxAuthzTimeout)
		}
		if g.GetFailOpen() {
			add("%s: failOpen: true lets every request through while jwtauthz is down; set false", where)
		}
		if g.GetStatusOnError() != "503" {
			add("%s: statusOnError %q (unset means 403); set \"503\"", where, g.GetStatusOnError())
		}
	}

	// The AuthorizationPolicy: CUSTOM, with a provider the mesh config defines.
	ap := &securityv1beta1.AuthorizationPolicy{}
	apObj, err := decodeIstio("authorization-policy.yaml", fs["authorization-policy.yaml"], "security.istio.io/v1", "AuthorizationPolicy", ap)
	if err != nil {
		add("%v", err)
	} else {
		if ap.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
			add("authorization-policy.yaml: action is %s; want CUSTOM", ap.GetAction())
		}
		if _, ok := providers[ap.GetProvider().GetName()]; !ok {
			add("authorization-policy.yaml: provider %q is not an envoyExtAuthzGrpc provider of mesh-config.yaml", ap.GetProvider().GetName())
		}
		if len(ap.GetSelector().GetMatchLabels()) == 0 {
			add("authorization-policy.yaml: set selector.matchLabels (without it the policy covers the whole namespace)")
		}
	}

	// The identity-header strip for the same workload.
	ef := &networkingv1alpha3.EnvoyFilter{}
	if efObj, err := decodeIstio("strip-identity-headers.yaml", fs["strip-identity-headers.yaml"], "networking.istio.io/v1alpha3", "EnvoyFilter", ef); err != nil {
		add("%v", err)
	} else {
		if apObj != nil && (efObj.Metadata.Namespace != apObj.Metadata.Namespace || !maps.Equal(ef.GetWorkloadSelector().GetLabels(), ap.GetSelector().GetMatchLabels())) {
			add("strip-identity-headers.yaml: namespace and workloadSelector must match authorization-policy.yaml")
		}
		problems = append(problems, checkStripPatch(ef, k.config)...)
	}

	// mTLS to jwtauthz.
	pa := &securityv1beta1.PeerAuthentication{}
	if paObj, err := decodeIstio("peer-authentication.yaml", fs["peer-authentication.yaml"], "security.istio.io/v1", "PeerAuthentication", pa); err != nil {
		add("%v", err)
	} else {
		if paObj.Metadata.Namespace != k.kust.Namespace || !selects(pa.GetSelector().GetMatchLabels(), k.podLabels()) {
			add("peer-authentication.yaml: must sit in namespace %q and select the jwtauthz pods", k.kust.Namespace)
		}
		if pa.GetMtls().GetMode() != securityv1beta1.PeerAuthentication_MutualTLS_STRICT {
			add("peer-authentication.yaml: mtls.mode is %s; want STRICT", pa.GetMtls().GetMode())
		}
	}

	// The overlay reuses the base.
	var kust kustomization
	if err := decodeStrictYAML(fs["kustomization.yaml"], &kust); err != nil {
		add("istio/kustomization.yaml: %v", err)
	} else {
		if !slices.Contains(kust.Resources, "../kubernetes") {
			add("istio/kustomization.yaml: resources must include ../kubernetes")
		}
		for _, r := range kust.Resources {
			if r == "../kubernetes" {
				continue
			}
			if _, ok := fs[r]; !ok {
				add("istio/kustomization.yaml lists %q, which does not exist in envoy/istio", r)
			}
		}
	}
	return problems
}

// checkStripPatch decodes the EnvoyFilter's patch value as the Envoy listener filter it merges
// into, strictly, and checks that it strips every identity header of the config.
func checkStripPatch(ef *networkingv1alpha3.EnvoyFilter, cfg *configv1.Config) []string {
	var problems []string
	for i, cp := range ef.GetConfigPatches() {
		where := fmt.Sprintf("strip-identity-headers.yaml: configPatches[%d]", i)
		if cp.GetApplyTo() != networkingv1alpha3.EnvoyFilter_NETWORK_FILTER || cp.GetMatch().GetContext() != networkingv1alpha3.EnvoyFilter_SIDECAR_INBOUND {
			problems = append(problems, where+": want applyTo NETWORK_FILTER in context SIDECAR_INBOUND")
			continue
		}
		js, err := protojson.Marshal(cp.GetPatch().GetValue())
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", where, err))
			continue
		}
		f := &listenerv3.Filter{}
		if err := decodeProtoJSON(js, f); err != nil {
			problems = append(problems, fmt.Sprintf("%s: patch.value is not an Envoy listener filter:\n%v", where, err))
			continue
		}
		hcm := &hcmv3.HttpConnectionManager{}
		if f.GetTypedConfig() == nil || f.GetTypedConfig().UnmarshalTo(hcm) != nil {
			problems = append(problems, where+": patch.value.typed_config is not an HttpConnectionManager")
			continue
		}
		for _, h := range identityHeaders(cfg) {
			if !strippedEarly(hcm, h) {
				problems = append(problems, fmt.Sprintf("%s: identity header %q is not stripped", where, h))
			}
		}
	}
	if len(ef.GetConfigPatches()) == 0 {
		problems = append(problems, "strip-identity-headers.yaml: no configPatches")
	}
	return problems
}

func TestIstio(t *testing.T) {
	k := checkKubeBase(readDir(t, "envoy", "kubernetes"))
	if len(k.problems) > 0 {
		t.Fatalf("envoy/kubernetes:\n%s", strings.Join(k.problems, "\n"))
	}
	if problems := checkIstio(readDir(t, "envoy", "istio"), k); len(problems) > 0 {
		t.Fatalf("envoy/istio:\n%s", strings.Join(problems, "\n"))
	}
}

// TestIstioBrokenCopies: broken copies of the Istio files fail with a message.
func TestIstioBrokenCopies(t *testing.T) {
	k := checkKubeBase(readDir(t, "envoy", "kubernetes"))
	if len(k.problems) > 0 {
		t.Fatalf("envoy/kubernetes:\n%s", strings.Join(k.problems, "\n"))
	}
	base := readDir(t, "envoy", "istio")
	provider := func(t *testing.T, tree map[string]any) map[string]any {
		return mapAt(t, tree, "meshConfig", "extensionProviders", 0, "envoyExtAuthzGrpc")
	}
	cases := []struct {
		name string
		fs   func(t *testing.T) files
		want []string
	}{
		{
			name: "misspelled AuthorizationPolicy field",
			fs: func(t *testing.T) files {
				return base.mutated(t, "authorization-policy.yaml", func(tree map[string]any) {
					s := mapAt(t, tree, "spec")
					s["provder"] = s["provider"]
					delete(s, "provider")
				})
			},
			want: []string{"authorization-policy.yaml: spec: provder: unknown field", `did you mean "provider"?`},
		},
		{
			name: "field that only envoyExtAuthzHttp has",
			fs: func(t *testing.T) files {
				return base.mutated(t, "mesh-config.yaml", func(tree map[string]any) {
					provider(t, tree)["headersToUpstreamOnAllow"] = []any{"x-user-id"}
				})
			},
			want: []string{"extensionProviders[0].envoyExtAuthzGrpc.headersToUpstreamOnAllow: unknown field"},
		},
		{
			name: "fail open",
			fs: func(t *testing.T) files {
				return base.mutated(t, "mesh-config.yaml", func(tree map[string]any) {
					provider(t, tree)["failOpen"] = true
				})
			},
			want: []string{"failOpen: true"},
		},
		{
			name: "istiod default timeout",
			fs: func(t *testing.T) files {
				return base.mutated(t, "mesh-config.yaml", func(tree map[string]any) {
					delete(provider(t, tree), "timeout")
				})
			},
			want: []string{"timeout is unset: istiod's default is 600s"},
		},
		{
			name: "wrong service host",
			fs: func(t *testing.T) files {
				return base.mutated(t, "mesh-config.yaml", func(tree map[string]any) {
					provider(t, tree)["service"] = "jwtauthz.default.svc.cluster.local"
				})
			},
			want: []string{`service "jwtauthz.default.svc.cluster.local"; the Service of envoy/kubernetes is "jwtauthz.jwtauthz.svc.cluster.local"`},
		},
		{
			name: "policy names an unknown provider",
			fs: func(t *testing.T) files {
				return base.mutated(t, "authorization-policy.yaml", func(tree map[string]any) {
					mapAt(t, tree, "spec", "provider")["name"] = "ext-authz"
				})
			},
			want: []string{`provider "ext-authz" is not an envoyExtAuthzGrpc provider`},
		},
		{
			name: "ALLOW instead of CUSTOM",
			fs: func(t *testing.T) files {
				return base.mutated(t, "authorization-policy.yaml", func(tree map[string]any) {
					mapAt(t, tree, "spec")["action"] = "ALLOW"
				})
			},
			want: []string{"action is ALLOW; want CUSTOM"},
		},
		{
			name: "misspelled field in the EnvoyFilter's Envoy config",
			fs: func(t *testing.T) files {
				return base.mutated(t, "strip-identity-headers.yaml", func(tree map[string]any) {
					tc := mapAt(t, tree, "spec", "configPatches", 0, "patch", "value", "typed_config")
					tc["early_header_mutation_extension"] = tc["early_header_mutation_extensions"]
					delete(tc, "early_header_mutation_extensions")
				})
			},
			want: []string{"typed_config<HttpConnectionManager>.early_header_mutation_extension: unknown field", `did you mean "early_header_mutation_extensions"?`},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			problems := checkIstio(c.fs(t), k)
			if len(problems) == 0 {
				t.Fatal("the broken copy passed")
			}
			msg := strings.Join(problems, "\n")
			t.Logf("rejected as expected:\n%s", msg)
			if !containsAll(msg, c.want...) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}
