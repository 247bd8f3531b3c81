// Package jwks holds each provider's verification keys: parsed once per fetch into an immutable,
// kid-indexed Set, published through an atomic pointer so that verification never locks and
// never waits for a scheduled fetch (jwks-cache.md J13).
//
// Sets come from a Remote source (an HTTPS JWKS URL, refreshed in the background, refreshed early
// on an unknown kid through one shared, cooled-down fetch) or a Static source (inline or file
// JWKS, or keys held in process such as the dev issuer's). Parsing is key by key: one odd key is
// skipped with a reason and never drops the rest of the set (J7, J8).
package jwks
