package token

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/json"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// KeySource is what verification needs from a provider's keys. jwks.Remote and jwks.Static
// implement it.
type KeySource interface {
	// Current returns the usable set, or an error wrapping jwks.ErrKeysUnavailable.
	Current() (*jwks.Set, error)
	// RefreshForKID asks for a refresh because a kid was missing; it may refuse at once.
	RefreshForKID(ctx context.Context) (*jwks.Set, error)
}

// Provider is one trusted issuer and its verification policy.
type Provider struct {
	Name             string
	Issuer           string   // exact, byte for byte
	Audiences        []string // any-of; empty only with AllowAnyAudience
	AllowAnyAudience bool
	Algorithms       []string // allowlist, e.g. RS256, EdDSA
	// TokenTypes are the accepted typ values; "" accepts an absent typ. Compared
	// case-insensitively, with an optional "application/" prefix (RFC 7515 §4.1.9). Empty
	// accepts no token at all: pkg/config fills in the defaults.
	TokenTypes     []string
	ClockSkew      time.Duration
	MaxLifetime    time.Duration // 0 = no limit
	RequiredClaims []string
	Keys           KeySource
}

// Options configure a Verifier.
type Options struct {
	// Now is the clock for exp, nbf and iat; default time.Now.
	Now func() time.Time
	// Cache, when set, remembers successful verifications (cache.go); nil verifies every
	// token in full. One Cache may serve several Verifiers (a config reload): an entry is
	// only ever used by the Verifier that made it.
	Cache *Cache
}

// Verifier verifies tokens for a fixed set of providers. It is safe for concurrent use.
type Verifier struct {
	byIssuer map[string]*provider
	loose    map[string]*provider // near-miss issuers, to tell iss_mismatch from issuer_unknown
	now      func() time.Time
	cache    *Cache
	// onVerify, when set (by tests only), is called once per full verification: the seam
	// that shows a cache hit skips the parse, the key lookup and the signature.
	onVerify func()
}

type provider struct {
	*Provider
	algs     []jose.SignatureAlgorithm
	algSet   map[string]bool
	typSet   map[string]bool
	audience map[string]bool
}

// NewVerifier checks and indexes the providers. Issuers must be unique and non-empty, and
// audiences are required unless AllowAnyAudience: go-jose skips checks whose expected value is
// empty, and we never want that by accident (jwt-security.md §4).
func NewVerifier(providers []*Provider, o Options) (*Verifier, error) {
	v := &Verifier{byIssuer: map[string]*provider{}, loose: map[string]*provider{}, now: o.Now, cache: o.Cache}
	if v.now == nil {
		v.now = time.Now
	}
	for _, p := range providers {
		if q := v.byIssuer[p.Issuer]; q != nil {
			return nil, fmt.Errorf("token: providers %q and %q share an issuer", q.Name, p.Name)
		}
		cp, err := newProvider(p)
		if err != nil {
			return nil, err
		}
		v.byIssuer[p.Issuer] = cp
		v.loose[looseIssuer(p.Issuer)] = cp
	}
	return v, nil
}

// newProvider checks one provider and precomputes its lookup sets.
func newProvider(p *Provider) (*provider, error) {
	switch {
	case p.Issuer == "":
		return nil, fmt.Errorf("token: provider %q has no issuer", p.Name)
	case len(p.Audiences) == 0 && !p.AllowAnyAudience:
		return nil, fmt.Errorf("token: provider %q has no audiences", p.Name)
	case len(p.Algorithms) == 0:
		return nil, fmt.Errorf("token: provider %q allows no algorithm", p.Name)
	case p.Keys == nil:
		return nil, fmt.Errorf("token: provider %q has no key source", p.Name)
	case p.ClockSkew < 0:
		return nil, fmt.Errorf("token: provider %q has a negative clock skew", p.Name)
	}
	cp := &provider{Provider: p, algSet: map[string]bool{}, typSet: map[string]bool{}, audience: map[string]bool{}}
	for _, a := range p.Algorithms {
		if strings.HasPrefix(a, "HS") || a == "none" {
			return nil, fmt.Errorf("token: provider %q: algorithm %s is never allowed", p.Name, a)
		}
		cp.algs = append(cp.algs, jose.SignatureAlgorithm(a))
		cp.algSet[a] = true
	}
	for _, t := range p.TokenTypes {
		cp.typSet[normalizeTyp(t)] = true
	}
	for _, a := range p.Audiences {
		if a == "" {
			// An empty audience would match a token whose aud is "" (C7).
			return nil, fmt.Errorf("token: provider %q has an empty audience", p.Name)
		}
		cp.audience[a] = true
	}
	return cp, nil
}

// Token is a verified token. A Token returned without an error may be shared by every request
// that presents the same token while it sits in the cache: callers must treat it, its Claims
// (nested maps and slices included) and its Payload as read-only.
type Token struct {
	Provider *Provider
	Alg, KID string
	Issuer   string
	Subject  string         // "" when the token has no sub
	Claims   map[string]any // numbers as json.Number (go-jose's fork)
	Payload  []byte         // the payload JSON exactly as signed
}

// Verify runs every check of jwt-security.md §2 on raw. On failure it returns a partial Token
// whose Provider is set when the issuer picked one (for logs and metrics), and an error wrapping
// one sentinel. A nil error means the signature, issuer, audience, times and required claims
// all checked out.
//
// With a Cache, a token verified before is answered from it when a fresh verification could
// only agree: same Verifier, the provider's key set still the very one that verified the
// signature, and now within the token's time window (cache.go).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Token, error) {
	now := v.now()
	if v.cache != nil {
		return v.cache.verify(ctx, v, raw, now)
	}
	tok, _, err := v.verify(ctx, raw, now)
	return tok, err
}

// verify is Verify without the cache, at the instant now. On success keys is the set whose key
// checked the signature: the cache's entry stays usable only while the provider still serves
// that very set.
func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (tok *Token, keys *jwks.Set, err error) {
	if v.onVerify != nil {
		v.onVerify()
	}
	tok = &Token{}
	p, err := parseCompact(raw)
	if err != nil {
		return tok, nil, err
	}

	// Step 3: the unverified iss only picks a key set; the signature below binds it.
	iss, ok := p.claims["iss"]
	if !ok || iss == nil {
		return tok, nil, fmt.Errorf("%w: no iss claim", ErrIssuerUnknown)
	}
	issStr, ok := iss.(string)
	if !ok {
		return tok, nil, fmt.Errorf("%w: iss is not a string", ErrClaimType)
	}
	prov := v.byIssuer[issStr]
	if prov == nil {
		if near := v.loose[looseIssuer(issStr)]; near != nil {
			// Same issuer up to case, scheme or a trailing slash: almost always a
			// misconfiguration, and worth naming as such in the logs (C6).
			tok.Provider = near.Provider
			return tok, nil, fmt.Errorf("%w: iss differs from the configured issuer", ErrIssMismatch)
		}
		return tok, nil, fmt.Errorf("%w", ErrIssuerUnknown)
	}
	tok.Provider = prov.Provider
	tok.Issuer = issStr

	// The claims gate runs after the header policy and before any key work: claims are cheap,
	// and a token that fails them must never cause a key fetch (jwks-cache.md J16, J17). The
	// payload is the signed one, so checking it before the signature changes no outcome.
	gate := func() error { return prov.checkClaims(p.claims, now) }
	keys, err = prov.verifySignature(ctx, p.jws, tok, gate)
	if err != nil {
		return tok, nil, err
	}
	tok.Claims = p.claims
	tok.Payload = p.payload
	if s, ok := p.claims["sub"].(string); ok {
		tok.Subject = s
	}
	return tok, keys, nil
}

// verifySignature is the JWS half of Verify, kept apart so that generic JWS test vectors
// (Wycheproof) run through the production code: header policy (jwt-security.md §2 step 5),
// go-jose's parse with only this token's algorithm allowed, then gate (nil for none), key
// resolution (step 7) and the signature (step 8). It records alg and kid in tok as soon as they
// are known, for logs and metrics. On success it returns the key set whose key verified.
func (p *provider) verifySignature(ctx context.Context, j *jws, tok *Token, gate func() error) (*jwks.Set, error) {
	alg, kid, hasKID, err := p.checkHeader(j.header)
	if err != nil {
		return nil, err
	}
	tok.Alg, tok.KID = alg, kid
	if j.unsigned {
		return nil, fmt.Errorf("%w: empty signature", ErrMalformed)
	}

	// go-jose parses the header once more and gives us its verifier. Errors here are
	// structure go-jose refuses (a garbage x5c, a private embedded jwk...).
	sig, err := jwt.ParseSigned(j.raw, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)})
	if err != nil {
		var unexpected *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &unexpected) {
			return nil, fmt.Errorf("%w: %v", ErrAlgNotAllowed, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(sig.Headers) != 1 {
		return nil, fmt.Errorf("%w: %d signatures", ErrMalformed, len(sig.Headers))
	}

	if gate != nil {
		if err := gate(); err != nil {
			return nil, err
		}
	}

	keys, set, err := p.resolveKeys(ctx, kid, hasKID, alg)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		// No destination: go-jose only verifies; our own strict decode is the claims set.
		if sig.Claims(verificationKey(k.Public, alg)) == nil {
			return set, nil
		}
	}
	return nil, fmt.Errorf("%w", ErrBadSignature)
}

// checkHeader applies the header policy (jwt-security.md §2 step 5, §3.4).
func (p *provider) checkHeader(h map[string]json.RawMessage) (alg, kid string, hasKID bool, err error) {
	rawAlg, ok := h["alg"]
	if !ok || json.Unmarshal(rawAlg, &alg) != nil {
		return "", "", false, fmt.Errorf("%w: alg missing or not a string", ErrAlgNotAllowed)
	}
	if !p.algSet[alg] {
		return "", "", false, fmt.Errorf("%w: %q", ErrAlgNotAllowed, truncate(alg, 16))
	}
	// Checked before crit: crit ["b64"] with b64 is the b64 problem (H8).
	for _, name := range []string{"b64", "zip", "enc", "epk", "p2c", "iv", "tag", "apu", "apv"} {
		if _, ok := h[name]; ok {
			return "", "", false, fmt.Errorf("%w: %s", ErrUnsupportedHeader, name)
		}
	}
	if _, ok := h["crit"]; ok {
		// We understand no extension, and RFC 7515 §4.1.11 forbids an empty list.
		return "", "", false, fmt.Errorf("%w", ErrUnsupportedCrit)
	}
	if rawCty, ok := h["cty"]; ok {
		var cty string
		if json.Unmarshal(rawCty, &cty) == nil && normalizeTyp(cty) == "jwt" {
			return "", "", false, fmt.Errorf("%w", ErrNestedJWT)
		}
		return "", "", false, fmt.Errorf("%w: cty", ErrUnsupportedHeader)
	}
	typ := ""
	if rawTyp, ok := h["typ"]; ok {
		if json.Unmarshal(rawTyp, &typ) != nil {
			return "", "", false, fmt.Errorf("%w: typ is not a string", ErrTypMismatch)
		}
		typ = normalizeTyp(typ)
		if typ == "" {
			return "", "", false, fmt.Errorf("%w: empty typ", ErrTypMismatch)
		}
	}
	if !p.typSet[typ] {
		return "", "", false, fmt.Errorf("%w", ErrTypMismatch)
	}
	if rawKID, ok := h["kid"]; ok {
		if !isJSONString(rawKID) || json.Unmarshal(rawKID, &kid) != nil {
			// null would decode to "" without an error (H3).
			return "", "", false, fmt.Errorf("%w: kid is not a string", ErrMalformed)
		}
		if len(kid) > jwks.MaxKIDBytes || strings.Contains(kid, "../") || strings.Contains(kid, `..\`) || hasControl(kid) {
			return "", "", false, fmt.Errorf("%w: kid too long or unsafe", ErrMalformed)
		}
		hasKID = true
	}
	return alg, kid, hasKID, nil
}

// checkClaims validates the registered claims (jwt-security.md §3.5). iss was matched exactly
// when the provider was picked.
func (p *provider) checkClaims(c map[string]any, now time.Time) error {
	skew := p.ClockSkew
	exp, present, err := numericDate(c, "exp")
	if err != nil {
		return err
	}
	if !present {
		return fmt.Errorf("%w", ErrExpMissing)
	}
	nbf, hasNBF, err := numericDate(c, "nbf")
	if err != nil {
		return err
	}
	iat, hasIAT, err := numericDate(c, "iat")
	if err != nil {
		return err
	}
	if v, ok := c["sub"]; ok && v != nil {
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%w: sub is not a string", ErrClaimType)
		}
	}
	if !p.AllowAnyAudience {
		if err := p.checkAudience(c["aud"]); err != nil {
			return err
		}
	} else if err := audienceShape(c["aud"]); err != nil {
		return err
	}
	if now.After(exp.Add(skew)) {
		return fmt.Errorf("%w", ErrExpired)
	}
	if hasNBF && now.Add(skew).Before(nbf) {
		return fmt.Errorf("%w", ErrNotYetValid)
	}
	if hasIAT && iat.After(now.Add(skew)) {
		return fmt.Errorf("%w", ErrIATFuture)
	}
	if p.MaxLifetime > 0 {
		if exp.Sub(now) > p.MaxLifetime+skew || hasIAT && exp.Sub(iat) > p.MaxLifetime {
			return fmt.Errorf("%w", ErrLifetimeTooLong)
		}
	}
	for _, name := range p.RequiredClaims {
		if isEmptyClaim(c[name]) {
			return fmt.Errorf("%w: %s", ErrClaimMissing, truncate(name, 64))
		}
	}
	if _, ok := c["cnf"]; ok {
		// A DPoP or mTLS-bound token presented as a plain bearer token: accepting it would
		// let a thief use it without the key it is bound to (RFC 9449, RFC 8705).
		return fmt.Errorf("%w", ErrSenderConstrained)
	}
	return nil
}

func (p *provider) checkAudience(aud any) error {
	switch a := aud.(type) {
	case nil:
		return fmt.Errorf("%w: no aud", ErrAudMismatch)
	case string:
		if p.audience[a] {
			return nil
		}
		return fmt.Errorf("%w", ErrAudMismatch)
	case []any:
		match := false
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("%w: aud array holds a non-string", ErrClaimType)
			}
			match = match || p.audience[s]
		}
		if match {
			return nil
		}
		return fmt.Errorf("%w", ErrAudMismatch)
	default:
		return fmt.Errorf("%w: aud is neither a string nor an array", ErrClaimType)
	}
}

func audienceShape(aud any) error {
	switch a := aud.(type) {
	case nil, string:
		return nil
	case []any:
		for _, e := range a {
			if _, ok := e.(string); !ok {
				return fmt.Errorf("%w: aud array holds a non-string", ErrClaimType)
			}
		}
		return nil
	default:
		return fmt.Errorf("%w: aud is neither a string nor an array", ErrClaimType)
	}
}

// maxNumericDate bounds NumericDate values: beyond 2^62 seconds, conversions to time.Time
// overflow and comparisons wrap (go-jose's v4.1.5 fix, C2).
const maxNumericDate = 1 << 62

// numericDate reads a NumericDate claim (RFC 7519 §2): a JSON number of seconds; fractions are
// truncated. null counts as absent.
func numericDate(c map[string]any, name string) (time.Time, bool, error) {
	v, ok := c[name]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number", ErrClaimType, name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f >= maxNumericDate || f <= -maxNumericDate {
		return time.Time{}, false, fmt.Errorf("%w: %s is out of range", ErrClaimType, name)
	}
	return time.Unix(int64(f), 0), true, nil
}

func isEmptyClaim(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

// resolveKeys picks the candidate keys ourselves (jwt-security.md §5): go-jose's key set would
// take the first of duplicate kids and check neither alg nor use. It also returns the set the
// keys come from.
func (p *provider) resolveKeys(ctx context.Context, kid string, hasKID bool, alg string) ([]*jwks.Key, *jwks.Set, error) {
	set, err := p.Keys.Current()
	if errors.Is(err, jwks.ErrKeysUnavailable) {
		// No usable keys yet (or any more): this token passed the cheap checks, so ask for a
		// fetch now instead of waiting out the failure backoff, and a recovered IdP is used
		// at once. The source gates the attempt (backoff, global cap) and bounds the wait.
		if fresh, rerr := p.Keys.RefreshForKID(ctx); rerr == nil && fresh != nil {
			set, err = fresh, nil
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("token: provider %s: %w", p.Name, err)
	}
	keys, err := pick(set, kid, hasKID, alg)
	if errors.Is(err, ErrKIDUnknown) {
		// The token passed every cheap check: a rotation may have published a new key.
		// The source decides whether a fetch is allowed now (cooldown, backoff, cap).
		fresh, rerr := p.Keys.RefreshForKID(ctx)
		if rerr != nil || fresh == nil {
			// Refused (usually the cooldown): a fetch that finished between our Current()
			// and now may already hold the kid, and refusing it would deny a valid token
			// during a rotation. Looking again costs one atomic load.
			fresh, _ = p.Keys.Current()
		}
		if fresh != nil && fresh != set {
			keys, err = pick(fresh, kid, hasKID, alg)
			set = fresh
		}
	}
	return keys, set, err
}

func pick(set *jwks.Set, kid string, hasKID bool, alg string) ([]*jwks.Key, error) {
	var cands []*jwks.Key
	if hasKID {
		cands = set.Lookup(kid)
		if len(cands) == 0 {
			return nil, fmt.Errorf("%w", ErrKIDUnknown)
		}
	} else {
		cands = set.Keys()
	}
	var fits []*jwks.Key
	for _, k := range cands {
		if k.Fits(alg) && strongEnough(k.Public) {
			fits = append(fits, k)
		}
	}
	switch {
	case len(fits) == 0:
		return nil, fmt.Errorf("%w: %s", ErrKeyAlgMismatch, alg)
	case !hasKID && len(fits) > 1:
		// Without a kid we verify only when exactly one key could have signed: trying
		// them all would turn the set into an oracle (jwt-security.md §1).
		return nil, fmt.Errorf("%w", ErrKIDRequired)
	}
	return fits, nil
}

// strongEnough repeats jwks.Parse's RSA floor (K10, RFC 7518 §3.3) for sets built in process
// with jwks.NewSet, which checks nothing: Go 1.26 still verifies with 1024-bit keys.
func strongEnough(pub crypto.PublicKey) bool {
	if rk, ok := pub.(*rsa.PublicKey); ok {
		return rk.N != nil && rk.N.BitLen() >= 2048
	}
	return true
}

// verificationKey hands go-jose the key in a form that pins the algorithm family. PS* goes
// through a strict verifier: go-jose accepts any PSS salt length (K7, RFC 7518 §3.5 requires
// the hash length).
func verificationKey(pub crypto.PublicKey, alg string) any {
	if rk, ok := pub.(*rsa.PublicKey); ok && strings.HasPrefix(alg, "PS") {
		return pssVerifier{pub: rk}
	}
	return pub
}

type pssVerifier struct{ pub *rsa.PublicKey }

func (v pssVerifier) VerifyPayload(payload, sig []byte, alg jose.SignatureAlgorithm) error {
	var h crypto.Hash
	switch alg {
	case jose.PS256:
		h = crypto.SHA256
	case jose.PS384:
		h = crypto.SHA384
	case jose.PS512:
		h = crypto.SHA512
	default:
		return fmt.Errorf("token: PSS verifier asked for %s", alg)
	}
	d := h.New()
	d.Write(payload)
	return rsa.VerifyPSS(v.pub, h, d.Sum(nil), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
}

func normalizeTyp(t string) string {
	t = asciiLower(t)
	return strings.TrimPrefix(t, "application/")
}

// looseIssuer folds the differences that make an iss a near miss of a configured issuer.
// Only ASCII letters are folded: Unicode case folding would make look-alikes (the Kelvin sign
// K for k) near misses, and C12 wants them treated as strangers.
func looseIssuer(iss string) string {
	s := asciiLower(iss)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	return strings.TrimRight(s, "/")
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func isJSONString(raw json.RawMessage) bool {
	return len(raw) >= 2 && raw[0] == '"'
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
