// Package deploytest checks the deployment files shipped beside jwtauthz (the root Dockerfile
// and docker-compose.yaml, and envoy/: the Envoy bootstrap, the jwtauthz configs, the
// Kubernetes base and the Istio files) against the schemas of the programs that consume them,
// since CI has neither Docker nor Envoy nor a cluster:
//
//   - envoy.yaml: strict decode into go-control-plane's Bootstrap (every @type resolved), the
//     generated ValidateAll on it and on every typed_config, and the ext_authz wiring rules of
//     shared/docs/envoy-notes.md §3.
//   - docker-compose.yaml: compose-go's loader and schema, cross-checked with envoy.yaml and the
//     mounted jwtauthz config.
//   - Kubernetes and Istio files: strict decode into k8s.io/api and istio.io/api types.
//   - every jwtauthz config under envoy/: config.Load plus server.CheckConfig, as
//     `jwtauthz validate` does.
//   - Dockerfile: its text (it cannot be built here).
//
// Each rule also has a negative test that breaks a copy of the shipped file and checks the
// message. It is a separate module (envoy/test/go.mod) so that compose-go, k8s.io and
// istio.io stay out of the service's own go.mod. Run it with `make deploy-test`.
package deploytest
