// Package policy holds compiled route rules: which requests need which tokens. A rule matches
// on the path (prefix, path_separated_prefix, exact path or a full-match RE2 regex, with
// Envoy's route-matching semantics), the method and the host; the first match wins. Its
// requirement names providers (any / all), scopes and claim values; a rule without a
// requirement needs no token.
//
// Paths are matched as received. MatchRequest also reads each path the ways an upstream may
// (percent-decoding, "\" and "%2F" as "/", merged slashes, dot segments, ";params") and
// refuses one whose readings select different requirements (ErrAmbiguousPath), so that a rule
// cannot be stepped round by a path the upstream routes elsewhere.
//
// The package knows nothing of tokens or transports: requirements are evaluated against a
// lookup function that returns a provider's verified claims, so pkg/authz keeps extraction and
// verification in one place.
package policy
