// Package token finds a bearer token in a request and verifies it: strict compact parsing,
// provider selection by the unverified issuer, header policy, claim checks, key resolution from
// the provider's own key set, and the signature check through go-jose.
//
// The order and every rule come from jwt-security.md §2; each failure is a sentinel error named
// for its reason code, so that the decision core maps errors to answers with errors.Is and never
// by matching strings. go-jose v4 does the cryptography; this package adds what it leaves to
// callers (jwt-security.md §4): CR/LF and non-canonical base64, UTF-8, null payloads, a required
// exp, crit/b64/zip, JWK alg/use binding, PSS salt length, duplicate members.
//
// A Cache (cache.go) remembers successful verifications, keyed by the SHA-256 of the token, and
// answers from them only while a fresh verification could not say otherwise: same Verifier,
// same key set, exp not passed.
package token
