package authz

import (
	"errors"
	"net/http"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// Reason is a decision's reason code: a closed set (jwt-security.md), used as the reason label
// of metrics, in logs and in dynamic metadata, and never sent to clients.
type Reason string

// The closed set of reason codes.
const (
	ReasonOK                 Reason = "ok"
	ReasonCORSPreflight      Reason = "cors_preflight"
	ReasonNotRequired        Reason = "not_required"
	ReasonMissingToken       Reason = "missing_token"
	ReasonUnsupportedScheme  Reason = "unsupported_scheme"
	ReasonMalformedAuthz     Reason = "malformed_authorization"
	ReasonMultipleTokens     Reason = "multiple_tokens"
	ReasonTokenTooLarge      Reason = "token_too_large"
	ReasonMalformed          Reason = "malformed"
	ReasonBadEncoding        Reason = "bad_encoding"
	ReasonPayloadNotObject   Reason = "payload_not_object"
	ReasonInvalidUTF8        Reason = "invalid_utf8"
	ReasonDuplicateMember    Reason = "duplicate_member"
	ReasonJWENotSupported    Reason = "jwe_not_supported"
	ReasonAlgNotAllowed      Reason = "alg_not_allowed"
	ReasonKeyAlgMismatch     Reason = "key_alg_mismatch"
	ReasonKIDRequired        Reason = "kid_required"
	ReasonKIDUnknown         Reason = "kid_unknown"
	ReasonBadSignature       Reason = "bad_signature"
	ReasonUnsupportedCrit    Reason = "unsupported_crit"
	ReasonUnsupportedHeader  Reason = "unsupported_header"
	ReasonNestedJWT          Reason = "nested_jwt_not_supported"
	ReasonTypMismatch        Reason = "typ_mismatch"
	ReasonIssuerUnknown      Reason = "issuer_unknown"
	ReasonIssMismatch        Reason = "iss_mismatch"
	ReasonAudMismatch        Reason = "aud_mismatch"
	ReasonExpMissing         Reason = "exp_missing"
	ReasonExpired            Reason = "expired"
	ReasonNotYetValid        Reason = "not_yet_valid"
	ReasonIATFuture          Reason = "iat_future"
	ReasonLifetimeTooLong    Reason = "lifetime_too_long"
	ReasonClaimType          Reason = "claim_type"
	ReasonClaimMissing       Reason = "claim_missing"
	ReasonSenderConstrained  Reason = "sender_constrained_unsupported"
	ReasonUnsafeClaimValue   Reason = "unsafe_claim_value"
	ReasonInsufficientScope  Reason = "insufficient_scope"
	ReasonClaimsNotAllowed   Reason = "claims_not_allowed"
	ReasonRouteMisconfigured Reason = "route_misconfigured"
	ReasonKeysUnavailable    Reason = "keys_unavailable"
	// ReasonAmbiguousPath extends jwt-security.md's set: the raw path and its normalized
	// reading select different rules (policy.ErrAmbiguousPath).
	ReasonAmbiguousPath Reason = "ambiguous_path"
	ReasonInternal      Reason = "malformed" // unmapped errors fail closed as a bad token
)

// The body's "error" values (contract.md "Decisions on the wire") and the one shared description.
const (
	errorInvalidRequest         = "invalid_request"
	errorInvalidToken           = "invalid_token"
	errorInsufficientScope      = "insufficient_scope"
	errorUnauthorized           = "unauthorized"
	errorAccessDenied           = "access_denied"
	errorTemporarilyUnavailable = "temporarily_unavailable"
	descriptionInvalidToken     = "The access token is invalid"
)

// errorReasons maps the token and jwks sentinels to reason codes. Order does not matter: every
// error wraps exactly one sentinel.
var errorReasons = []struct {
	err    error
	reason Reason
}{
	{token.ErrMissingToken, ReasonMissingToken},
	{token.ErrUnsupportedScheme, ReasonUnsupportedScheme},
	{token.ErrMalformedAuthorization, ReasonMalformedAuthz},
	{token.ErrMultipleTokens, ReasonMultipleTokens},
	{token.ErrTokenTooLarge, ReasonTokenTooLarge},
	{token.ErrMalformed, ReasonMalformed},
	{token.ErrBadEncoding, ReasonBadEncoding},
	{token.ErrPayloadNotObject, ReasonPayloadNotObject},
	{token.ErrInvalidUTF8, ReasonInvalidUTF8},
	{token.ErrDuplicateMember, ReasonDuplicateMember},
	{token.ErrJWENotSupported, ReasonJWENotSupported},
	{token.ErrAlgNotAllowed, ReasonAlgNotAllowed},
	{token.ErrKeyAlgMismatch, ReasonKeyAlgMismatch},
	{token.ErrKIDRequired, ReasonKIDRequired},
	{token.ErrKIDUnknown, ReasonKIDUnknown},
	{token.ErrBadSignature, ReasonBadSignature},
	{token.ErrUnsupportedCrit, ReasonUnsupportedCrit},
	{token.ErrUnsupportedHeader, ReasonUnsupportedHeader},
	{token.ErrNestedJWT, ReasonNestedJWT},
	{token.ErrTypMismatch, ReasonTypMismatch},
	{token.ErrIssuerUnknown, ReasonIssuerUnknown},
	{token.ErrIssMismatch, ReasonIssMismatch},
	{token.ErrAudMismatch, ReasonAudMismatch},
	{token.ErrExpMissing, ReasonExpMissing},
	{token.ErrExpired, ReasonExpired},
	{token.ErrNotYetValid, ReasonNotYetValid},
	{token.ErrIATFuture, ReasonIATFuture},
	{token.ErrLifetimeTooLong, ReasonLifetimeTooLong},
	{token.ErrClaimType, ReasonClaimType},
	{token.ErrClaimMissing, ReasonClaimMissing},
	{token.ErrSenderConstrained, ReasonSenderConstrained},
	{jwks.ErrKeysUnavailable, ReasonKeysUnavailable},
	// Checked after the token sentinels: lookups join policy errors with them.
	{policy.ErrNoToken, ReasonMissingToken},
	{policy.ErrWrongProvider, ReasonIssuerUnknown},
	{policy.ErrAmbiguousPath, ReasonAmbiguousPath},
}

// ReasonFor maps an error from token or jwks to its reason code. An error that maps to nothing
// is a bug; it fails closed as "malformed" (a 401), never as an allow.
func ReasonFor(err error) Reason {
	for _, e := range errorReasons {
		if errors.Is(err, e.err) {
			return e.reason
		}
	}
	return ReasonInternal
}

// answer is how a deny reason goes on the wire (contract.md "Decisions on the wire").
type answer struct {
	status      int
	errorCode   string // the body's "error" and, for challenges with an error, the RFC 6750 code
	challenge   int    // challengeNone, challengeBare, challengeError
	description string
}

const (
	challengeNone = iota
	challengeBare
	challengeError
)

// answerFor gives the status, body error, challenge kind and coarse description of a deny.
// Descriptions never echo token content (RFC 6750 §3 charset; jwt-security.md §6).
func answerFor(r Reason) answer {
	switch r {
	case ReasonMissingToken:
		return answer{http.StatusUnauthorized, errorUnauthorized, challengeBare, "An access token is required"}
	case ReasonUnsupportedScheme:
		return answer{http.StatusUnauthorized, errorUnauthorized, challengeBare, "The Bearer authentication scheme is required"}
	case ReasonMalformedAuthz:
		return answer{http.StatusBadRequest, errorInvalidRequest, challengeError, "The access token credential is malformed"}
	case ReasonMultipleTokens:
		return answer{http.StatusBadRequest, errorInvalidRequest, challengeError, "The request carries more than one access token"}
	case ReasonExpired:
		return answer{http.StatusUnauthorized, errorInvalidToken, challengeError, "The access token expired"}
	case ReasonNotYetValid:
		return answer{http.StatusUnauthorized, errorInvalidToken, challengeError, "The access token is not yet valid"}
	case ReasonTokenTooLarge:
		return answer{http.StatusUnauthorized, errorInvalidToken, challengeError, "The access token is too large"}
	case ReasonInsufficientScope:
		return answer{http.StatusForbidden, errorInsufficientScope, challengeError, "The access token lacks the required scope"}
	case ReasonClaimsNotAllowed:
		return answer{http.StatusForbidden, errorInsufficientScope, challengeError, "The access token is not allowed here"}
	case ReasonAmbiguousPath:
		return answer{http.StatusBadRequest, errorInvalidRequest, challengeError, "The request path is ambiguous"}
	case ReasonRouteMisconfigured:
		return answer{http.StatusForbidden, errorAccessDenied, challengeNone, "Access denied"}
	case ReasonKeysUnavailable:
		return answer{http.StatusServiceUnavailable, errorTemporarilyUnavailable, challengeNone, "Tokens cannot be verified right now; retry later"}
	}
	return answer{http.StatusUnauthorized, errorInvalidToken, challengeError, descriptionInvalidToken}
}
