// Package extauthz is the gRPC adapter for Envoy's ext_authz v3 Check: it turns a CheckRequest
// into an authz.Request and an authz.Decision into a CheckResponse, exactly as contract.md's
// "Decisions on the wire" and envoy-notes.md §1-§2 say. It decides nothing itself.
//
// Every verdict, deny included, is a CheckResponse with an explicit status (R1-R3): a gRPC error
// would send Envoy down its failure path, where failure_mode_allow could turn a deny into an
// allow. The only error Check returns is for a caller whose context has already ended.
package extauthz
