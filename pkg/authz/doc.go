// Package authz is the transport-neutral decision core: a Request (method, host, path, query,
// lower-case headers) goes in, a Decision (allow or deny, HTTP status, reason code, challenge,
// headers to set and remove, metadata) comes out. It knows nothing of gRPC, Envoy or net/http;
// the extauthz and forwardauth adapters translate their wire formats to and from these types,
// so that both front doors give the same answer for the same request.
//
// Every deny maps one reason code of the closed set in jwt-security.md to the contract's
// "Decisions on the wire" table (status, RFC 6750 error, challenge) in one place: reasons.go.
package authz
