package token

import "errors"

// Sentinel errors, one per reason code of jwt-security.md. Errors returned by this package wrap
// exactly one of them (or jwks.ErrKeysUnavailable) with %w.
var (
	// Extraction (jwt-security.md §3.1).
	ErrMissingToken           = errors.New("token: no credential")
	ErrUnsupportedScheme      = errors.New("token: unsupported authorization scheme")
	ErrMalformedAuthorization = errors.New("token: malformed credential syntax")
	ErrMultipleTokens         = errors.New("token: more than one credential")
	ErrTokenTooLarge          = errors.New("token: token too large")

	// Serialization and encoding (§3.2).
	ErrMalformed        = errors.New("token: malformed")
	ErrBadEncoding      = errors.New("token: bad base64url encoding")
	ErrPayloadNotObject = errors.New("token: payload is not a JSON object")
	ErrInvalidUTF8      = errors.New("token: invalid UTF-8")
	ErrDuplicateMember  = errors.New("token: duplicate JSON member")
	ErrJWENotSupported  = errors.New("token: JWE is not supported")

	// Algorithm, key and header (§3.3, §3.4).
	ErrAlgNotAllowed     = errors.New("token: algorithm not allowed")
	ErrKeyAlgMismatch    = errors.New("token: no key fits the algorithm")
	ErrKIDRequired       = errors.New("token: kid required")
	ErrKIDUnknown        = errors.New("token: unknown kid")
	ErrBadSignature      = errors.New("token: bad signature")
	ErrUnsupportedCrit   = errors.New("token: crit header not supported")
	ErrUnsupportedHeader = errors.New("token: header parameter not supported")
	ErrNestedJWT         = errors.New("token: nested JWT not supported")
	ErrTypMismatch       = errors.New("token: typ not accepted")
	ErrIssuerUnknown     = errors.New("token: issuer unknown")
	ErrIssMismatch       = errors.New("token: issuer mismatch")
	ErrAudMismatch       = errors.New("token: audience mismatch")
	ErrExpMissing        = errors.New("token: exp missing")
	ErrExpired           = errors.New("token: expired")
	ErrNotYetValid       = errors.New("token: not yet valid")
	ErrIATFuture         = errors.New("token: issued in the future")
	ErrLifetimeTooLong   = errors.New("token: lifetime too long")
	ErrClaimType         = errors.New("token: claim has the wrong type")
	ErrClaimMissing      = errors.New("token: required claim missing")
	ErrSenderConstrained = errors.New("token: sender-constrained tokens are not supported")
)
