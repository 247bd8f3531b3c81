package jwks

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
)

// Limits from jwks-cache.md: a real IdP publishes a handful of keys.
const (
	MaxKeysPerSet    = 100
	MaxCandidates    = 4 // keys sharing one kid that are kept and tried (J10)
	MaxKIDBytes      = 256
	minRSAModulusLen = 2048
)

// Errors of parsing a JWKS document as a whole. Per-key problems are Skips, never errors.
var (
	ErrBadDocument = errors.New("jwks: not a JWK Set document")
	ErrTooManyKeys = errors.New("jwks: too many keys")
	ErrNoUsableKey = errors.New("jwks: no usable key")
)

// Skip reasons (J8), also the reason label of jwtauthz_jwks_keys_skipped_total.
const (
	SkipUnsupported    = "unsupported"
	SkipPrivate        = "private"
	SkipSymmetric      = "symmetric"
	SkipWrongUse       = "wrong_use"
	SkipAlgNotAllowed  = "alg_not_allowed"
	SkipRSATooSmall    = "rsa_too_small"
	SkipRSABadExponent = "rsa_bad_exponent"
	SkipDuplicateKID   = "duplicate_kid"
)

// Skip records one key left out of a set, and why.
type Skip struct {
	Index  int    // position in the document's keys array
	KID    string // as published (may be empty); never used in a path or a metric label
	Reason string
	Detail string
}

// Key is one usable verification key. Public is an *rsa.PublicKey, an *ecdsa.PublicKey or an
// ed25519.PublicKey, never a []byte: go-jose would take a byte slice for an HMAC secret.
type Key struct {
	KID    string
	Alg    string // the JWK's alg, "" when unset; when set, the only algorithm this key verifies
	Public crypto.PublicKey
}

// Fits reports whether the key may verify a token signed with alg: the key type and curve must
// match the algorithm (RFC 7518 §3), and a JWK alg, when published, must equal it (RFC 8725 §3.1).
func (k *Key) Fits(alg string) bool {
	if k.Alg != "" && k.Alg != alg {
		return false
	}
	return keyFitsAlg(k.Public, alg)
}

func keyFitsAlg(pub crypto.PublicKey, alg string) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return p.Curve == elliptic.P256()
		case "ES384":
			return p.Curve == elliptic.P384()
		case "ES512":
			return p.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// Set is an immutable index of usable keys. Build it with Parse or NewSet; never modify it
// after it is published.
type Set struct {
	byKID map[string][]*Key
	keys  []*Key
}

// NewSet indexes keys, keeping at most MaxCandidates per kid.
func NewSet(keys []*Key) *Set {
	s := &Set{byKID: make(map[string][]*Key, len(keys))}
	for _, k := range keys {
		if k.KID != "" {
			if len(s.byKID[k.KID]) >= MaxCandidates {
				continue
			}
			s.byKID[k.KID] = append(s.byKID[k.KID], k)
		}
		s.keys = append(s.keys, k)
	}
	return s
}

// Lookup returns the keys published under kid (at most MaxCandidates).
func (s *Set) Lookup(kid string) []*Key {
	if s == nil {
		return nil
	}
	return s.byKID[kid]
}

// Keys returns every usable key, in document order.
func (s *Set) Keys() []*Key {
	if s == nil {
		return nil
	}
	return s.keys
}

// Len is the number of usable keys.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.keys)
}

// rawKey holds the members we judge before go-jose sees the key: go-jose drops key_ops and
// happily parses private and symmetric keys.
type rawKey struct {
	Kty    string          `json:"kty"`
	Kid    json.RawMessage `json:"kid"`
	Use    *string         `json:"use"`
	KeyOps *[]string       `json:"key_ops"`
	Alg    *string         `json:"alg"`
	D      json.RawMessage `json:"d"`
	P      json.RawMessage `json:"p"`
	Q      json.RawMessage `json:"q"`
	DP     json.RawMessage `json:"dp"`
	DQ     json.RawMessage `json:"dq"`
	QI     json.RawMessage `json:"qi"`
	K      json.RawMessage `json:"k"`
	Priv   json.RawMessage `json:"priv"`
}

// Parse reads a JWK Set document key by key (J7, J8). It fails only when the document itself is
// unusable (not a UTF-8 JSON object with a keys array, more than MaxKeysPerSet keys) or when no
// key survives; otherwise each unusable key is skipped with its reason. algorithms is the
// provider's allowlist: a key whose JWK alg is outside it can never verify, so it is skipped.
func Parse(doc []byte, algorithms []string) (*Set, []Skip, error) {
	if !utf8.Valid(doc) {
		return nil, nil, fmt.Errorf("%w: not valid UTF-8", ErrBadDocument)
	}
	trimmed := bytes.TrimLeft(doc, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, nil, fmt.Errorf("%w: not a JSON object", ErrBadDocument)
	}
	var d struct {
		Keys *[]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadDocument, err)
	}
	if d.Keys == nil {
		return nil, nil, fmt.Errorf("%w: no \"keys\" array", ErrBadDocument)
	}
	if len(*d.Keys) > MaxKeysPerSet {
		return nil, nil, fmt.Errorf("%w: %d keys, at most %d", ErrTooManyKeys, len(*d.Keys), MaxKeysPerSet)
	}
	allowed := make(map[string]bool, len(algorithms))
	for _, a := range algorithms {
		allowed[a] = true
	}
	var keys []*Key
	var skips []Skip
	perKID := map[string]int{}
	for i, raw := range *d.Keys {
		k, reason, detail := parseKey(raw, allowed)
		if reason == "" && k.KID != "" {
			if perKID[k.KID] >= MaxCandidates {
				reason, detail = SkipDuplicateKID, fmt.Sprintf("more than %d keys share this kid", MaxCandidates)
			}
			perKID[k.KID]++
		}
		if reason != "" {
			skips = append(skips, Skip{Index: i, KID: kidOf(raw), Reason: reason, Detail: detail})
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, skips, fmt.Errorf("%w: %d keys published, %d skipped", ErrNoUsableKey, len(*d.Keys), len(skips))
	}
	return NewSet(keys), skips, nil
}

func kidOf(raw json.RawMessage) string {
	var r struct {
		Kid string `json:"kid"`
	}
	if json.Unmarshal(raw, &r) != nil || len(r.Kid) > MaxKIDBytes {
		return ""
	}
	return r.Kid
}

func parseKey(raw json.RawMessage, allowed map[string]bool) (*Key, string, string) {
	var r rawKey
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, SkipUnsupported, "not a JSON object with string members: " + err.Error()
	}
	if r.Kty == "oct" {
		return nil, SkipSymmetric, "symmetric (oct) keys are never used"
	}
	if r.D != nil || r.P != nil || r.Q != nil || r.DP != nil || r.DQ != nil || r.QI != nil || r.K != nil || r.Priv != nil {
		return nil, SkipPrivate, "the key carries private members"
	}
	if r.Use != nil && *r.Use != "sig" {
		return nil, SkipWrongUse, fmt.Sprintf("use is %q, not \"sig\"", *r.Use)
	}
	if r.KeyOps != nil {
		verify := false
		for _, op := range *r.KeyOps {
			verify = verify || op == "verify"
		}
		if !verify {
			return nil, SkipWrongUse, "key_ops lacks \"verify\""
		}
	}
	var kid string
	if r.Kid != nil {
		if err := json.Unmarshal(r.Kid, &kid); err != nil {
			return nil, SkipUnsupported, "kid is not a string"
		}
		if len(kid) > MaxKIDBytes || !printable(kid) {
			return nil, SkipUnsupported, "kid is too long or has control characters"
		}
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return nil, SkipUnsupported, err.Error()
	}
	if !jwk.IsPublic() {
		return nil, SkipPrivate, "the key is not a public key"
	}
	k := &Key{KID: kid, Public: jwk.Key}
	if r.Alg != nil {
		k.Alg = *r.Alg
	}
	switch p := jwk.Key.(type) {
	case *rsa.PublicKey:
		if p.N.BitLen() < minRSAModulusLen {
			return nil, SkipRSATooSmall, fmt.Sprintf("RSA modulus of %d bits, at least %d required", p.N.BitLen(), minRSAModulusLen)
		}
		if p.E < 3 || p.E%2 == 0 {
			return nil, SkipRSABadExponent, fmt.Sprintf("RSA exponent %d", p.E)
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, SkipUnsupported, fmt.Sprintf("key type %T cannot verify JWS", jwk.Key)
	}
	if k.Alg != "" {
		if !allowed[k.Alg] {
			return nil, SkipAlgNotAllowed, fmt.Sprintf("alg %q is not in the provider's algorithms", k.Alg)
		}
		if !keyFitsAlg(k.Public, k.Alg) {
			return nil, SkipAlgNotAllowed, fmt.Sprintf("alg %q does not fit the key type", k.Alg)
		}
	}
	return k, "", ""
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}
