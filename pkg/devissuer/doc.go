// Package devissuer is a self-contained JWT issuer for development only.
//
// jwtauthz verifies tokens minted by somebody else's identity provider, which
// makes it awkward to try out locally, demo, or test end to end: you would
// need a real IdP, a client registration and a login flow just to obtain a
// token. devissuer removes that dependency. It generates fresh signing keys
// in memory, publishes them the same way a real provider does (an OpenID
// discovery document and a JWKS endpoint), and mints tokens on demand with
// whatever subject, audience, scope and lifetime the caller asks for. It backs
// `jwtauthz serve --dev`, the standalone `jwtauthz issuer` command, the demos
// and the tests, so all of them exercise the same discovery and JWKS code
// paths that production uses.
//
// It is NOT an identity provider and must never be used in production: the
// token endpoint authenticates nobody and signs any claims it is asked to,
// keys live only in process memory and change on every start, and there is no
// revocation. Anyone who can reach the Handler can mint a token for any
// subject. Only trust it in environments where that is acceptable.
package devissuer
