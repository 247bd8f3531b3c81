// Package server is jwtauthz's composition root: the one package that knows every concrete type.
// Run turns a validated configuration into key sources, a verifier, the decision core and its
// adapters, binds the listeners (ext_authz gRPC, HTTP forward-auth, admin), keeps gRPC health
// and /readyz in step with key availability, and shuts down in order on cancellation: not ready
// at once, a drain delay, then a bounded graceful stop.
//
// pkg/ is not a stable Go API: the product's interface is the binary, its flags and its config.
package server
