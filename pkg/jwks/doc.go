// Package jwks holds each provider's verification keys: parsed once per fetch into an immutable,
// kid-indexed Set, published through an atomic pointer so that verification never locks and
// never waits for a scheduled fetch (jwks-cache.md J13).
//
// Sets come from one of four sources:
//   - Remote: an HTTPS JWKS URL, fetched at start with backoff, refreshed in the background on
//     the response's cache headers (with ETag / If-None-Match), refreshed early on an unknown kid
//     through one shared, cooled-down fetch, and kept through failures until max_stale.
//   - Discovery: a Remote whose URL is the jwks_uri of the issuer's OpenID Connect discovery
//     document, read again daily and after repeated failures (J22).
//   - File: a local JWKS file, re-read when it changes; a bad write keeps the last good set.
//   - Static: inline JWKS, or keys held in process such as the dev issuer's.
//
// Parsing is key by key: one odd key is skipped with a reason and never drops the rest of the
// set (J7, J8).
package jwks
