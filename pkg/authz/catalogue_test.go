package authz_test

//lint:file-ignore SA1019 the tests read HeaderValueOption.append, deprecated but the field Envoy honours (envoy-notes R5).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/extauthz"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// This file asserts the bad-input catalogue of jwt-security.md §3 (X1-X10, S1-S14, K1-K15,
// H1-H14, G1-G4, C1-C12) at the wire: HTTP status, the exact WWW-Authenticate value of
// contract.md "Decisions on the wire", the body's error and the reason code, through
// Authorizer.Decide and again through the gRPC adapter (extauthz.Request -> Decide ->
// extauthz.Response). Tokens are signed here over arbitrary header and payload bytes, and keys
// reach the verifier through jwks.Parse, so key-skip rows go through the production loader.

// T of jwt-security.md §3.5, for every verifier and token of this file.
var catNow = time.Unix(1_800_000_000, 0)

const (
	catRealm     = "R"
	catIssMain   = "https://idp.example.com"
	catIssStrict = "https://strict.example.com" // RFC 9068 profile, max_lifetime 1h
	catIssB      = "https://b.example.com"      // a second issuer, for G2
	catAud       = "https://api.example.com"
	catHost      = "api.example.com"
	catPath      = "/v1/orders"
)

var catAllAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Exact challenges of contract.md "Decisions on the wire" for realm R. The descriptions are the
// coarse ones the service sends (RFC 6750 §3 charset, never token content).
const (
	catChBare       = `Bearer realm="R"`
	catChInvalid    = `Bearer realm="R", error="invalid_token", error_description="The access token is invalid"`
	catChExpired    = `Bearer realm="R", error="invalid_token", error_description="The access token expired"`
	catChNotYet     = `Bearer realm="R", error="invalid_token", error_description="The access token is not yet valid"`
	catChTooLarge   = `Bearer realm="R", error="invalid_token", error_description="The access token is too large"`
	catChMalformed  = `Bearer realm="R", error="invalid_request", error_description="The access token credential is malformed"`
	catChMultiple   = `Bearer realm="R", error="invalid_request", error_description="The request carries more than one access token"`
	catChClaimsRule = `Bearer realm="R", error="insufficient_scope"`
)

func catChScope(scopes string) string {
	return `Bearer realm="R", error="insufficient_scope", scope="` + scopes + `"`
}

// catRows is every row of jwt-security.md §3.1-§3.5; each must have at least one case.
var catRows = func() []string {
	var rows []string
	for _, g := range []struct {
		p string
		n int
	}{{"X", 10}, {"S", 14}, {"K", 15}, {"H", 14}, {"G", 4}, {"C", 12}} {
		for i := 1; i <= g.n; i++ {
			rows = append(rows, fmt.Sprintf("%s%d", g.p, i))
		}
	}
	return rows
}()

// ---- keys (generated once: RSA under -race is slow) ----

type catKeySet struct {
	rsa, rsaB, rsaAtk, rsa1024, roca *rsa.PrivateKey
	p256, p384, p256B                *ecdsa.PrivateKey
	ed                               ed25519.PrivateKey
	atkCert                          []byte // self-signed DER certificate of rsaAtk, for x5c
}

var (
	catKeysOnce sync.Once
	catKeysVal  *catKeySet
	catKeysErr  error
)

func catKeys(t testing.TB) *catKeySet {
	t.Helper()
	catKeysOnce.Do(func() { catKeysVal, catKeysErr = catGenerateKeys() })
	if catKeysErr != nil {
		t.Fatalf("generating keys: %v", catKeysErr)
	}
	return catKeysVal
}

func catGenerateKeys() (*catKeySet, error) {
	k := &catKeySet{}
	var err error
	for _, r := range []struct {
		dst  **rsa.PrivateKey
		bits int
	}{{&k.rsa, 2048}, {&k.rsaB, 2048}, {&k.rsaAtk, 2048}, {&k.rsa1024, 1024}} {
		if *r.dst, err = rsa.GenerateKey(rand.Reader, r.bits); err != nil {
			return nil, err
		}
	}
	for _, e := range []struct {
		dst   **ecdsa.PrivateKey
		curve elliptic.Curve
	}{{&k.p256, elliptic.P256()}, {&k.p384, elliptic.P384()}, {&k.p256B, elliptic.P256()}} {
		if *e.dst, err = ecdsa.GenerateKey(e.curve, rand.Reader); err != nil {
			return nil, err
		}
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	if k.roca, err = catROCAKey(); err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "attacker"},
		NotBefore:    catNow.Add(-time.Hour),
		NotAfter:     catNow.Add(time.Hour),
	}
	if k.atkCert, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsaAtk.PublicKey, k.rsaAtk); err != nil {
		return nil, err
	}
	return k, nil
}

// catSmallPrimes returns the first n primes.
func catSmallPrimes(n int) []int64 {
	var out []int64
	for c := int64(2); len(out) < n; c++ {
		prime := true
		for _, p := range out {
			if p*p > c {
				break
			}
			if c%p == 0 {
				prime = false
				break
			}
		}
		if prime {
			out = append(out, c)
		}
	}
	return out
}

// catROCAPrimes is the primorial base of the ROCA construction used here.
var catROCAPrimes = catSmallPrimes(71)

// catROCAKey builds a 2048-bit RSA key whose primes have the Infineon RSALib structure of
// CVE-2017-15361 (K15): p = k*M + (65537^a mod M), M the product of the first small primes. Its
// modulus carries the ROCA fingerprint (n mod r lies in the subgroup 65537 generates, for every
// small prime r of M).
func catROCAKey() (*rsa.PrivateKey, error) {
	m := big.NewInt(1)
	for _, p := range catROCAPrimes {
		m.Mul(m, big.NewInt(p))
	}
	one, g, e := big.NewInt(1), big.NewInt(65537), big.NewInt(65537)
	lower := new(big.Int).Sqrt(new(big.Int).Lsh(one, 2047)) // p, q above sqrt(2)*2^1023: n has 2048 bits
	upper := new(big.Int).Lsh(one, 1024)
	kBits := 1024 - m.BitLen() + 1
	prime := func() (*big.Int, error) {
		for range 1_000_000 {
			a, err := rand.Int(rand.Reader, new(big.Int).Lsh(one, 64))
			if err != nil {
				return nil, err
			}
			k, err := rand.Int(rand.Reader, new(big.Int).Lsh(one, uint(kBits)))
			if err != nil {
				return nil, err
			}
			p := new(big.Int).Mul(k, m)
			p.Add(p, new(big.Int).Exp(g, a, m))
			if p.Cmp(lower) <= 0 || p.Cmp(upper) >= 0 || !p.ProbablyPrime(20) {
				continue
			}
			if new(big.Int).GCD(nil, nil, e, new(big.Int).Sub(p, one)).Cmp(one) != 0 {
				continue
			}
			return p, nil
		}
		return nil, fmt.Errorf("no ROCA-structured prime found")
	}
	p, err := prime()
	if err != nil {
		return nil, err
	}
	q, err := prime()
	if err != nil {
		return nil, err
	}
	if p.Cmp(q) == 0 {
		return nil, fmt.Errorf("p == q")
	}
	n := new(big.Int).Mul(p, q)
	phi := new(big.Int).Mul(new(big.Int).Sub(p, one), new(big.Int).Sub(q, one))
	d := new(big.Int).ModInverse(e, phi)
	if d == nil || n.BitLen() != 2048 {
		return nil, fmt.Errorf("bad ROCA key parameters")
	}
	key := &rsa.PrivateKey{PublicKey: rsa.PublicKey{N: n, E: 65537}, D: d, Primes: []*big.Int{p, q}}
	key.Precompute()
	if err := key.Validate(); err != nil {
		return nil, err
	}
	return key, nil
}

// catHasROCAFingerprint is the published ROCA test: for each small prime r, n mod r must be a
// power of 65537 mod r.
func catHasROCAFingerprint(n *big.Int) bool {
	for _, r := range catROCAPrimes[1:] {
		nr := new(big.Int).Mod(n, big.NewInt(r)).Int64()
		in, x := false, int64(1)
		for range r {
			if x == nr {
				in = true
				break
			}
			x = x * (65537 % r) % r
		}
		if !in {
			return false
		}
	}
	return true
}

// ---- signing arbitrary bytes ----

// catSigner signs with one primitive whatever the token header says, so a header can lie.
type catSigner struct {
	alg     string
	key     crypto.Signer
	salt    int // PSS salt length when saltSet, else the hash length (RFC 7518 §3.5)
	saltSet bool
}

func (s catSigner) withSalt(n int) catSigner { s.salt, s.saltSet = n, true; return s }

func catHash(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

func catDigest(h crypto.Hash, in []byte) []byte {
	switch h {
	case crypto.SHA384:
		d := sha512.Sum384(in)
		return d[:]
	case crypto.SHA512:
		d := sha512.Sum512(in)
		return d[:]
	}
	d := sha256.Sum256(in)
	return d[:]
}

// sign returns the JWS signature of input: PKCS #1 v1.5, PSS, ECDSA as fixed-width R||S, Ed25519.
func (s catSigner) sign(t testing.TB, input []byte) []byte {
	t.Helper()
	var (
		sig []byte
		err error
	)
	switch {
	case s.alg == "EdDSA":
		sig = ed25519.Sign(s.key.(ed25519.PrivateKey), input)
	case strings.HasPrefix(s.alg, "RS"):
		h := catHash(s.alg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), h, catDigest(h, input))
	case strings.HasPrefix(s.alg, "PS"):
		h := catHash(s.alg)
		salt := h.Size()
		if s.saltSet {
			salt = s.salt
		}
		sig, err = rsa.SignPSS(rand.Reader, s.key.(*rsa.PrivateKey), h, catDigest(h, input), &rsa.PSSOptions{SaltLength: salt, Hash: h})
	case strings.HasPrefix(s.alg, "ES"):
		k := s.key.(*ecdsa.PrivateKey)
		var r, ss *big.Int
		if r, ss, err = ecdsa.Sign(rand.Reader, k, catDigest(catHash(s.alg), input)); err == nil {
			sig = catRS(k.Curve, r, ss)
		}
	default:
		t.Fatalf("signer: unknown alg %q", s.alg)
	}
	if err != nil {
		t.Fatalf("signing %s: %v", s.alg, err)
	}
	return sig
}

// catRS encodes r and s as RFC 7518 §3.4 wants: each left-padded to the curve's byte size.
func catRS(c elliptic.Curve, r, s *big.Int) []byte {
	n := (c.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out
}

func catEnc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// catCompact signs header and payload exactly as given and returns the compact serialization.
func catCompact(t testing.TB, s catSigner, header, payload string) string {
	t.Helper()
	in := catEnc([]byte(header)) + "." + catEnc([]byte(payload))
	return in + "." + catEnc(s.sign(t, []byte(in)))
}

func catWithSig(raw string, sig []byte) string {
	return raw[:strings.LastIndexByte(raw, '.')+1] + catEnc(sig)
}

func catSigOf(t testing.TB, raw string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
	if err != nil {
		t.Fatalf("decoding signature: %v", err)
	}
	return b
}

func catSegments(t testing.TB, raw string) (h, p, s string) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", raw)
	}
	return parts[0], parts[1], parts[2]
}

// catJSON is v as JSON (a string gets \u escapes for control bytes).
func catJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	return string(b)
}

// catHdr is a header with alg and kid (omitted when "") plus raw members (`"typ":"JWT"`).
func catHdr(t testing.TB, alg, kid string, extra ...string) string {
	t.Helper()
	parts := []string{`"alg":` + catJSON(t, alg)}
	if kid != "" {
		parts = append(parts, `"kid":`+catJSON(t, kid))
	}
	return "{" + strings.Join(append(parts, extra...), ",") + "}"
}

// catDel removes a claim in catClaimsFor's mods.
var catDel = &struct{ deleted bool }{true}

// catClaimsFor returns the standard claims of iss (aud, sub alice, exp T+10m, iat T-10s)
// changed by mods; a json.RawMessage is inserted verbatim, catDel removes the claim.
func catClaimsFor(t testing.TB, iss string, mods map[string]any) string {
	t.Helper()
	c := map[string]any{
		"iss": iss, "aud": catAud, "sub": "alice",
		"exp": catNow.Unix() + 600, "iat": catNow.Unix() - 10,
	}
	for k, v := range mods {
		if v == any(catDel) {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return catJSON(t, c)
}

// catPlus appends raw members (bad UTF-8, duplicates...) to a claims object.
func catPlus(claims string, members ...string) string {
	return strings.TrimSuffix(claims, "}") + "," + strings.Join(members, ",") + "}"
}

// catJWK is the public JWK of pub as an object still open to changes.
func catJWK(t testing.TB, pub crypto.PublicKey, kid, alg string) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: alg, Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatalf("jwk: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("jwk: %v", err)
	}
	return m
}

// catOctSecret is the oct key of the main JWKS (K13), which must never be used.
var catOctSecret = []byte("0123456789abcdef0123456789abcdef")

// catHostileKIDs are the keys of the main JWKS that jwks.Parse must skip, with the reason.
var catHostileKIDs = map[string]string{
	"enc":     jwks.SkipWrongUse,       // K6
	"ops-enc": jwks.SkipWrongUse,       // K6
	"rsa1024": jwks.SkipRSATooSmall,    // K10
	"e-even":  jwks.SkipRSABadExponent, // K11
	"e-one":   jwks.SkipUnsupported,    // K11 (go-jose refuses e < 2)
	"rsa-big": jwks.SkipUnsupported,    // K11 (> 4096 bits)
	"ec-off":  jwks.SkipUnsupported,    // K12
	"ed-weak": jwks.SkipUnsupported,    // K12
	"oct":     jwks.SkipSymmetric,      // K13
	"priv":    jwks.SkipPrivate,        // K14
}

// catMainJWKS is the JWKS document of the main and strict providers: usable keys, then every
// hostile key of §3.3.
func catMainJWKS(t testing.TB, k *catKeySet) []byte {
	t.Helper()
	encKey := catJWK(t, &k.rsaB.PublicKey, "enc", "")
	encKey["use"] = "enc"
	opsEnc := catJWK(t, &k.rsaB.PublicKey, "ops-enc", "")
	delete(opsEnc, "use")
	opsEnc["key_ops"] = []string{"encrypt"}
	opsVerify := catJWK(t, &k.rsaB.PublicKey, "ops-verify", "")
	delete(opsVerify, "use")
	opsVerify["key_ops"] = []string{"sign", "verify"}
	eEven := catJWK(t, &k.rsaB.PublicKey, "e-even", "")
	eEven["e"] = "BA" // 4
	eOne := catJWK(t, &k.rsaB.PublicKey, "e-one", "")
	eOne["e"] = "AQ"          // 1
	bigN := make([]byte, 513) // 4097..4104 bits
	if _, err := rand.Read(bigN); err != nil {
		t.Fatal(err)
	}
	bigN[0] |= 0x80
	bigN[len(bigN)-1] |= 1
	rsaBig := catJWK(t, &k.rsaB.PublicKey, "rsa-big", "")
	rsaBig["n"] = catEnc(bigN)
	ecOff := catJWK(t, &k.p256B.PublicKey, "ec-off", "")
	y, _ := base64.RawURLEncoding.DecodeString(ecOff["y"].(string))
	ecOff["y"] = catEnc(new(big.Int).Add(new(big.Int).SetBytes(y), big.NewInt(1)).FillBytes(make([]byte, 32)))
	weak := make([]byte, 32)
	weak[0] = 1 // the small-order point (0, 1)
	edWeak := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed-weak", "x": catEnc(weak)}
	oct := map[string]any{"kty": "oct", "kid": "oct", "k": catEnc(catOctSecret)}
	privJSON, err := jose.JSONWebKey{Key: k.rsaB, KeyID: "priv", Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var priv map[string]any
	if err := json.Unmarshal(privJSON, &priv); err != nil {
		t.Fatal(err)
	}
	keys := []map[string]any{
		catJWK(t, &k.rsa.PublicKey, "k-rsa", ""),
		catJWK(t, &k.rsaB.PublicKey, "k-rs-bound", "RS256"), // K5
		catJWK(t, &k.p256.PublicKey, "k-p256", ""),
		catJWK(t, &k.p384.PublicKey, "k-p384", ""),
		catJWK(t, k.ed.Public(), "k-ed", ""),
		catJWK(t, &k.roca.PublicKey, "k-roca", ""), // K15
		opsVerify,
		encKey, opsEnc, catJWK(t, &k.rsa1024.PublicKey, "rsa1024", ""),
		eEven, eOne, rsaBig, ecOff, edWeak, oct, priv,
	}
	return []byte(catJSON(t, map[string]any{"keys": keys}))
}

// catParse runs a JWKS document through the production loader.
func catParse(t testing.TB, doc []byte) (*jwks.Set, []jwks.Skip) {
	t.Helper()
	set, skips, err := jwks.Parse(doc, catAllAlgs)
	if err != nil {
		t.Fatalf("jwks.Parse: %v", err)
	}
	return set, skips
}

// ---- the authorizers under test ----

type catEnv int

const (
	// catEnvDefault: providers main (lenient), strict (RFC 9068 profile, max_lifetime 1h) and
	// b, all from Authorization: Bearer only (from_params, from_cookies unset); rules /public
	// (no token), /admin (scope admin), /billing (two scopes), /ops (claim role).
	catEnvDefault catEnv = iota
	// catEnvParams: main also reads ?access_token= and the session_token cookie.
	catEnvParams
	// catEnvBigTokens: max_token_bytes 65536, so that S14's deep nesting gets past X8.
	catEnvBigTokens
)

var catRules = []policy.RuleSpec{
	{Match: policy.MatchSpec{PathSeparatedPrefix: "/public"}},
	{Match: policy.MatchSpec{Prefix: "/admin"}, Requires: &policy.RequirementSpec{Provider: "main", Scopes: []string{"admin"}}},
	{Match: policy.MatchSpec{Prefix: "/billing"}, Requires: &policy.RequirementSpec{Provider: "main", Scopes: []string{"billing.read", "billing.write"}}},
	{Match: policy.MatchSpec{Prefix: "/ops"}, Requires: &policy.RequirementSpec{Provider: "main", Claims: map[string][]any{"role": {"admin", "owner"}}}},
}

func catAuthorizer(t testing.TB, env catEnv, mainSet, bSet *jwks.Set) *authz.Authorizer {
	t.Helper()
	now := func() time.Time { return catNow }
	tp := func(name, iss string, set *jwks.Set, mods func(*token.Provider)) *token.Provider {
		p := &token.Provider{
			Name: name, Issuer: iss, Audiences: []string{catAud}, Algorithms: catAllAlgs,
			TokenTypes: []string{"", "JWT", "at+jwt"}, ClockSkew: 60 * time.Second, Keys: jwks.NewStatic(set),
		}
		if mods != nil {
			mods(p)
		}
		return p
	}
	v, err := token.NewVerifier([]*token.Provider{
		tp("main", catIssMain, mainSet, nil),
		tp("strict", catIssStrict, mainSet, func(p *token.Provider) {
			p.TokenTypes = []string{"at+jwt"}
			p.RequiredClaims = []string{"sub", "client_id", "iat", "jti"}
			p.MaxLifetime = time.Hour
		}),
		tp("b", catIssB, bSet, nil),
	}, token.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	pol, problems, err := policy.Compile(catRules, []string{"main", "strict", "b"})
	if err != nil {
		t.Fatalf("policy.Compile: %v %+v", err, problems)
	}
	bearer := token.Source{Kind: token.FromHeader, Name: "authorization", Prefix: "Bearer "}
	mainSources := []token.Source{bearer}
	if env == catEnvParams {
		mainSources = append(mainSources,
			token.Source{Kind: token.FromParam, Name: "access_token"},
			token.Source{Kind: token.FromCookie, Name: "session_token"})
	}
	maxBytes := 0 // the default, 8192
	if env == catEnvBigTokens {
		maxBytes = 65536
	}
	a, err := authz.New(authz.Options{
		Realm: catRealm,
		Providers: []authz.Provider{
			{
				Name: "main", Sources: mainSources, ForwardPayloadHeader: "x-jwt-payload",
				ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-user-id"}, {Claim: "email", Header: "x-user-email"}},
			},
			{Name: "strict", Sources: []token.Source{bearer}, ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-user-id"}, {Claim: "client_id", Header: "x-client-id"}}},
			{Name: "b", Sources: []token.Source{bearer}, ClaimToHeaders: []authz.ClaimHeader{{Claim: "sub", Header: "x-user-id"}}},
		},
		Verifier:        v,
		MaxTokenBytes:   maxBytes,
		Logger:          discardLogger(),
		AllowSampleRate: 1,
		Now:             now,
		Policy:          pol,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// ---- cases ----

type catKV struct{ k, v string }

type catWant struct {
	status    int
	reason    authz.Reason
	errorCode string
	challenge string
	user      string // allow only: the x-user-id value sent upstream ("" = none set)
}

type catCase struct {
	id, name string
	env      catEnv
	path     string // default catPath
	query    string
	hdrs     []catKV // lower-case keys, in order; a key may repeat (header_map entries)
	want     catWant
	alt      *catWant // an equally acceptable outcome (K15: the ROCA skip is optional)
	check    func(t *testing.T, d authz.Decision)
}

func (c catCase) fullPath() string {
	p := c.path
	if p == "" {
		p = catPath
	}
	if c.query != "" {
		p += "?" + c.query
	}
	return p
}

// request is the authz.Request as an adapter builds it: pseudo-headers included.
func (c catCase) request() *authz.Request {
	path, query, _ := strings.Cut(c.fullPath(), "?")
	r := &authz.Request{
		Transport: "grpc", Method: "GET", Host: catHost, Path: path, Query: query,
		Headers: map[string][]string{":authority": {catHost}, ":method": {"GET"}, ":path": {c.fullPath()}},
	}
	for _, h := range c.hdrs {
		r.Headers[h.k] = append(r.Headers[h.k], h.v)
	}
	return r
}

// checkRequest is the CheckRequest Envoy sends: with encode_raw_headers (header_map, repeats
// kept apart, raw_value), or the headers map (repeats joined with ",").
func (c catCase) checkRequest(raw bool) *authv3.CheckRequest {
	h := &authv3.AttributeContext_HttpRequest{Method: "GET", Host: catHost, Path: c.fullPath(), Scheme: "https", Protocol: "HTTP/2"}
	all := append([]catKV{{":authority", catHost}, {":method", "GET"}, {":path", c.fullPath()}}, c.hdrs...)
	if raw {
		h.HeaderMap = &corev3.HeaderMap{}
		for _, kv := range all {
			h.HeaderMap.Headers = append(h.HeaderMap.Headers, &corev3.HeaderValue{Key: kv.k, RawValue: []byte(kv.v)})
		}
	} else {
		h.Headers = map[string]string{}
		for _, kv := range all {
			if prev, ok := h.Headers[kv.k]; ok {
				h.Headers[kv.k] = prev + "," + kv.v
			} else {
				h.Headers[kv.k] = kv.v
			}
		}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:  &authv3.AttributeContext_Peer{Address: &corev3.Address{}},
		Request: &authv3.AttributeContext_Request{Http: h},
	}}
}

func catBearer(tok string) []catKV { return []catKV{{"authorization", "Bearer " + tok}} }

func catOK(user string) catWant { return catWant{status: 200, reason: authz.ReasonOK, user: user} }

func catBad(reason authz.Reason) catWant {
	return catWant{status: 401, reason: reason, errorCode: "invalid_token", challenge: catChInvalid}
}

func catBadRequest(reason authz.Reason, challenge string) catWant {
	return catWant{status: 400, reason: reason, errorCode: "invalid_request", challenge: challenge}
}

var catNoCredential = catWant{status: 401, reason: authz.ReasonMissingToken, errorCode: "unauthorized", challenge: catChBare}

// catNonCanonical sets an unused low bit of a segment's last character: a lenient decoder
// reads the same bytes, a strict one refuses (S8).
func catNonCanonical(t testing.TB, seg string) string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	if r := len(seg) % 4; r != 2 && r != 3 {
		t.Fatalf("segment length %d has no unused bits", len(seg))
	}
	i := strings.IndexByte(alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(alphabet[i|1])
	a, err1 := base64.RawURLEncoding.DecodeString(seg)
	b, err2 := base64.RawURLEncoding.DecodeString(out)
	if out == seg || err1 != nil || err2 != nil || string(a) != string(b) {
		t.Fatalf("catNonCanonical(%q) = %q is not a lenient alias", seg, out)
	}
	return out
}

// catSized returns a valid RS256 token (kid k-rsa) of exactly n bytes.
func catSized(t testing.TB, s catSigner, n int) string {
	t.Helper()
	sigLen := len(catEnc(make([]byte, s.key.(*rsa.PrivateKey).Size())))
	for filler := 0; filler < 4; filler++ {
		h := catHdr(t, "RS256", "k-rsa", `"x":"`+strings.Repeat("x", filler)+`"`)
		for pad := 0; pad < n; pad++ {
			p := catClaimsFor(t, catIssMain, map[string]any{"pad": strings.Repeat("p", pad)})
			l := len(catEnc([]byte(h))) + 1 + len(catEnc([]byte(p))) + 1 + sigLen
			if l == n {
				tok := catCompact(t, s, h, p)
				if len(tok) != n {
					t.Fatalf("catSized: %d bytes, want %d", len(tok), n)
				}
				return tok
			}
			if l > n {
				break
			}
		}
	}
	t.Fatalf("catSized: no token of %d bytes", n)
	return ""
}

// TestCatalogueOnTheWire runs every row of jwt-security.md §3 through Authorizer.Decide and the
// gRPC adapter, and pins status, challenge, body error and reason code.
func TestCatalogueOnTheWire(t *testing.T) {
	k := catKeys(t)
	ctx := context.Background()
	T := catNow.Unix()

	// Key sets through the production loader; the hostile keys must be skipped for the reason
	// the catalogue gives (K6, K10-K14), and the ROCA key (K15) may be.
	mainSet, skips := catParse(t, catMainJWKS(t, k))
	gotSkips := map[string]string{}
	for _, s := range skips {
		gotSkips[s.KID] = s.Reason
	}
	for kid, want := range catHostileKIDs {
		if gotSkips[kid] != want {
			t.Errorf("jwks.Parse skipped kid %q with %q, want %q", kid, gotSkips[kid], want)
		}
	}
	for kid, reason := range gotSkips {
		if _, ok := catHostileKIDs[kid]; !ok && kid != "k-roca" {
			t.Errorf("jwks.Parse skipped usable kid %q (%s)", kid, reason)
		}
	}
	if !catHasROCAFingerprint(k.roca.N) {
		t.Fatal("the K15 key lacks the ROCA fingerprint")
	}
	bSet, _ := catParse(t, []byte(catJSON(t, map[string]any{"keys": []map[string]any{
		catJWK(t, &k.rsaB.PublicKey, "b1", ""),
		catJWK(t, &k.p256B.PublicKey, "shared", ""),
	}})))
	auths := map[catEnv]*authz.Authorizer{
		catEnvDefault:   catAuthorizer(t, catEnvDefault, mainSet, bSet),
		catEnvParams:    catAuthorizer(t, catEnvParams, mainSet, bSet),
		catEnvBigTokens: catAuthorizer(t, catEnvBigTokens, mainSet, bSet),
	}

	// H4: a jku/x5u target that records every request.
	var fetched atomic.Int64
	rec := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetched.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"keys":[]}`)
	}))
	t.Cleanup(rec.Close)
	noFetch := func(t *testing.T, _ authz.Decision) {
		if n := fetched.Load(); n != 0 {
			t.Errorf("the jku/x5u server got %d requests, want 0", n)
		}
	}

	// Signers.
	rs256 := catSigner{alg: "RS256", key: k.rsa}
	ps256 := catSigner{alg: "PS256", key: k.rsa}
	ps384 := catSigner{alg: "PS384", key: k.rsa}
	es256 := catSigner{alg: "ES256", key: k.p256}
	eddsa := catSigner{alg: "EdDSA", key: k.ed}
	rsB := catSigner{alg: "RS256", key: k.rsaB}
	atk := catSigner{alg: "RS256", key: k.rsaAtk}

	std := catClaimsFor(t, catIssMain, nil)
	claims := func(mods map[string]any) string { return catClaimsFor(t, catIssMain, mods) }
	tok := func(mods map[string]any) string {
		return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), claims(mods))
	}
	rs := func(extra ...string) string { return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa", extra...), std) }
	plus := func(members ...string) string {
		return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), catPlus(std, members...))
	}
	withPayload := func(payload string) string { return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), payload) }
	withHeader := func(header string) string { return catCompact(t, rs256, header, std) }
	raw := func(v string) json.RawMessage { return json.RawMessage(v) }
	// strictTok is an RFC 9068 token of the strict provider, changed by mods.
	strictTok := func(mods map[string]any) string {
		m := map[string]any{"iss": catIssStrict, "client_id": "c1", "jti": "j1"}
		for k, v := range mods {
			m[k] = v
		}
		return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa", `"typ":"at+jwt"`), catClaimsFor(t, catIssStrict, m))
	}

	good := rs()
	h, p, s := catSegments(t, good)
	sig := catSigOf(t, good)
	flip := func(b []byte, i int) []byte {
		out := slices.Clone(b)
		out[i] ^= 1
		return out
	}

	// S8: a payload whose base64 leaves unused bits in its last character.
	var padded string
	for i := 0; ; i++ {
		padded = claims(map[string]any{"pad": strings.Repeat("x", i)})
		if len(padded)%3 != 0 {
			break
		}
	}
	ncTok := catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), padded)
	nh, np, ns := catSegments(t, ncTok)

	// K2: HMAC keyed with the public key (PEM and DER).
	der, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hmacTok := func(alg, kid string, key []byte) string {
		in := catEnc([]byte(catHdr(t, alg, kid))) + "." + catEnc([]byte(std))
		var m = hmac.New(sha256.New, key)
		if alg == "HS512" {
			m = hmac.New(sha512.New, key)
		}
		m.Write([]byte(in))
		return in + "." + catEnc(m.Sum(nil))
	}
	unsigned := func(alg string) string {
		return catEnc([]byte(catHdr(t, alg, "k-rsa"))) + "." + catEnc([]byte(std)) + "."
	}

	// K8, K9: ECDSA signatures.
	es := catCompact(t, es256, catHdr(t, "ES256", "k-p256"), std)
	esSig := catSigOf(t, es)
	n256 := elliptic.P256().Params().N
	ecSig := func(r, s *big.Int) []byte { return catRS(elliptic.P256(), r, s) }
	r0, s0 := new(big.Int).SetBytes(esSig[:32]), new(big.Int).SetBytes(esSig[32:])
	h256 := sha256.Sum256([]byte(es[:strings.LastIndexByte(es, '.')]))
	derSig, err := ecdsa.SignASN1(rand.Reader, k.p256, h256[:])
	if err != nil {
		t.Fatal(err)
	}
	ed := catCompact(t, eddsa, catHdr(t, "EdDSA", "k-ed"), std)

	// H5: the attacker's key, embedded.
	atkJWK, err := jose.JSONWebKey{Key: &k.rsaAtk.PublicKey}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	ourJWK, err := jose.JSONWebKey{Key: &k.rsa.PublicKey, KeyID: "k-rsa"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	x5c := `"x5c":["` + base64.StdEncoding.EncodeToString(k.atkCert) + `"]`
	jku := `"jku":"` + rec.URL + `/jwks.json"`
	x5u := `"x5u":"` + rec.URL + `/cert.pem"`

	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	jsonSerialization := fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, p, h, s)
	idToken := func(iss string) string {
		return catCompact(t, rs256, catHdr(t, "RS256", "k-rsa", `"typ":"JWT"`),
			catClaimsFor(t, iss, map[string]any{"aud": "web-client", "nonce": "n-0S6_WzA2Mj", "client_id": "c1", "jti": "j1"}))
	}

	// X10: identity headers a client tries to smuggle.
	spoofPayload := catEnc([]byte(`{"sub":"root"}`))
	spoof := []catKV{{"x-user-id", "root"}, {"x-user-email", "root@evil.example"}, {"x-client-id", "evil"}, {"x-jwt-payload", spoofPayload}}
	spoofed := func(t *testing.T, d authz.Decision) {
		for _, hd := range d.SetHeaders {
			if hd.Value == "root" || hd.Value == "root@evil.example" || hd.Value == "evil" || hd.Value == spoofPayload {
				t.Errorf("client-sent identity %q=%q passed upstream", hd.Name, hd.Value)
			}
		}
		for _, name := range []string{"x-user-id", "x-user-email", "x-client-id", "x-jwt-payload"} {
			set := slices.ContainsFunc(d.SetHeaders, func(h authz.Header) bool { return h.Name == name })
			if !set && !slices.Contains(d.RemoveHeaders, name) {
				t.Errorf("client-sent %s neither overwritten (SetHeaders %v) nor removed (RemoveHeaders %v)", name, d.SetHeaders, d.RemoveHeaders)
			}
		}
	}
	headerIs := func(name, want string) func(*testing.T, authz.Decision) {
		return func(t *testing.T, d authz.Decision) {
			for _, hd := range d.SetHeaders {
				if hd.Name == name {
					if hd.Value != want {
						t.Errorf("%s = %q, want %q (byte-exact)", name, hd.Value, want)
					}
					return
				}
			}
			t.Errorf("%s not set; SetHeaders %v", name, d.SetHeaders)
		}
	}

	cnf := map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
	expired := catWant{status: 401, reason: authz.ReasonExpired, errorCode: "invalid_token", challenge: catChExpired}
	notYet := catWant{status: 401, reason: authz.ReasonNotYetValid, errorCode: "invalid_token", challenge: catChNotYet}
	tooLarge := catWant{status: 401, reason: authz.ReasonTokenTooLarge, errorCode: "invalid_token", challenge: catChTooLarge}
	unsupportedScheme := catWant{status: 401, reason: authz.ReasonUnsupportedScheme, errorCode: "unauthorized", challenge: catChBare}
	malformedAuthz := catBadRequest(authz.ReasonMalformedAuthz, catChMalformed)
	multiple := catBadRequest(authz.ReasonMultipleTokens, catChMultiple)
	scope := func(s string) catWant {
		return catWant{status: 403, reason: authz.ReasonInsufficientScope, errorCode: "insufficient_scope", challenge: catChScope(s)}
	}
	claimsRule := catWant{status: 403, reason: authz.ReasonClaimsNotAllowed, errorCode: "insufficient_scope", challenge: catChClaimsRule}
	kidUnknown := catBad(authz.ReasonKIDUnknown)
	badSig := catBad(authz.ReasonBadSignature)

	cases := []catCase{
		// §3.1 Credential extraction.
		{id: "X1", name: "no credential", want: catNoCredential},
		{id: "X1", name: "empty authorization header", hdrs: []catKV{{"authorization", ""}}, want: catNoCredential},
		{id: "X2", name: "Basic", hdrs: []catKV{{"authorization", "Basic dXNlcjpwYXNz"}}, want: unsupportedScheme},
		{id: "X2", name: "Digest with auth-params", hdrs: []catKV{{"authorization", `Digest username="a", realm="b", nonce="c", uri="/", response="d"`}}, want: unsupportedScheme},
		{id: "X2", name: "DPoP with a valid token", hdrs: []catKV{{"authorization", "DPoP " + good}}, want: unsupportedScheme},
		{id: "X2", name: "Bearerx is another scheme", hdrs: []catKV{{"authorization", "Bearerx " + good}}, want: unsupportedScheme},
		{id: "X3", name: "bearer lower case", hdrs: []catKV{{"authorization", "bearer " + good}}, want: catOK("alice")},
		{id: "X3", name: "BEARER upper case", hdrs: []catKV{{"authorization", "BEARER " + good}}, want: catOK("alice")},
		{id: "X3", name: "several spaces after the scheme", hdrs: []catKV{{"authorization", "Bearer    " + good}}, want: catOK("alice")},
		{id: "X4", name: "TAB after Bearer", hdrs: []catKV{{"authorization", "Bearer\t" + good}}, want: malformedAuthz},
		{id: "X4", name: "spaces then TAB after Bearer", hdrs: []catKV{{"authorization", "Bearer  \t" + good}}, want: malformedAuthz},
		{id: "X4", name: "Bearer with no token", hdrs: []catKV{{"authorization", "Bearer"}}, want: malformedAuthz},
		{id: "X4", name: "Bearer and a space, no token", hdrs: []catKV{{"authorization", "Bearer "}}, want: malformedAuthz},
		{id: "X4", name: "token with a space", hdrs: []catKV{{"authorization", "Bearer a b"}}, want: malformedAuthz},
		{id: "X4", name: "token in quotes", hdrs: []catKV{{"authorization", `Bearer "` + good + `"`}}, want: malformedAuthz},
		{id: "X5", name: "comma-merged authorization", hdrs: []catKV{{"authorization", "Bearer " + good + ", Bearer " + good}}, want: multiple},
		{id: "X5", name: "two header_map entries", hdrs: []catKV{{"authorization", "Bearer " + good}, {"authorization", "Bearer " + good}}, want: multiple},
		{id: "X6", name: "header and access_token param", env: catEnvParams, query: "access_token=" + good, hdrs: catBearer(good), want: multiple},
		{id: "X6", name: "header and session_token cookie", env: catEnvParams, hdrs: append(catBearer(good), catKV{"cookie", "theme=dark; session_token=" + good}), want: multiple},
		{id: "X7", name: "token only in the query, from_params unset", query: "access_token=" + good, want: catNoCredential},
		{id: "X7", name: "token only in a cookie, from_cookies unset", hdrs: []catKV{{"cookie", "session_token=" + good}}, want: catNoCredential},
		{id: "X7", name: "control: from_params set, param stripped", env: catEnvParams, query: "access_token=" + good, want: catOK("alice"),
			check: func(t *testing.T, d authz.Decision) {
				if !slices.Equal(d.RemoveQueryParams, []string{"access_token"}) {
					t.Errorf("RemoveQueryParams = %v, want [access_token]", d.RemoveQueryParams)
				}
			}},
		{id: "X8", name: "8193 bytes", hdrs: catBearer(catSized(t, rs256, 8193)), want: tooLarge},
		{id: "X8", name: "12 KiB", hdrs: catBearer(tok(map[string]any{"pad": strings.Repeat("x", 9000)})), want: tooLarge},
		{id: "X8", name: "control: exactly 8192 bytes", hdrs: catBearer(catSized(t, rs256, 8192)), want: catOK("alice")},
		{id: "X9", name: "cnf jkt (DPoP-bound)", hdrs: catBearer(tok(map[string]any{"cnf": cnf})), want: catBad(authz.ReasonSenderConstrained)},
		{id: "X9", name: "cnf x5t#S256 (mTLS-bound)", hdrs: catBearer(tok(map[string]any{"cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}})), want: catBad(authz.ReasonSenderConstrained)},
		{id: "X10", name: "client identity headers overwritten or removed", hdrs: append(catBearer(good), spoof...), want: catOK("alice"), check: spoofed},
		{id: "X10", name: "client identity headers removed for another provider's token", hdrs: append(catBearer(catCompact(t, rsB, catHdr(t, "RS256", "b1"), catClaimsFor(t, catIssB, nil))), spoof...),
			want: catOK("alice"), check: spoofed},
		{id: "X10", name: "client identity headers removed on a public route", path: "/public/status", hdrs: spoof,
			want: catWant{status: 200, reason: authz.ReasonNotRequired}, check: spoofed},

		// §3.2 Serialization and encoding.
		{id: "S1", name: "one segment", hdrs: catBearer(h), want: catBad(authz.ReasonMalformed)},
		{id: "S1", name: "two segments", hdrs: catBearer(h + "." + p), want: catBad(authz.ReasonMalformed)},
		{id: "S1", name: "four segments", hdrs: catBearer(good + "." + s), want: catBad(authz.ReasonMalformed)},
		{id: "S1", name: "8000 dots", hdrs: catBearer(strings.Repeat(".", 8000)), want: catBad(authz.ReasonMalformed)},
		// 10 M dots are over max_token_bytes: the size check comes first (§2 step 2; X8).
		{id: "S1", name: "10M dots: size first", hdrs: catBearer(strings.Repeat(".", 10_000_000)), want: tooLarge},
		{id: "S2", name: "five-segment JWE", hdrs: catBearer(catEnc([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".AAAA.AAAA.AAAA.AAAA"), want: catBad(authz.ReasonJWENotSupported)},
		// A JSON serialization is never a b64token: at the wire it is X4 (§2 step 1 before 2).
		{id: "S3", name: "JSON serialization: outside b64token", hdrs: catBearer(jsonSerialization), want: malformedAuthz},
		{id: "S3", name: "JSON serialization in the query: outside b64token", env: catEnvParams, query: "access_token=" + url.QueryEscape(jsonSerialization), want: malformedAuthz},
		{id: "S4", name: "empty header", hdrs: catBearer("." + p + "." + s), want: catBad(authz.ReasonMalformed)},
		{id: "S4", name: "empty payload", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), "")), want: catBad(authz.ReasonMalformed)},
		{id: "S4", name: "empty signature", hdrs: catBearer(h + "." + p + "."), want: catBad(authz.ReasonMalformed)},
		{id: "S4", name: "all segments empty", hdrs: catBearer(".."), want: catBad(authz.ReasonMalformed)},
		{id: "S5", name: "plus in the signature", hdrs: catBearer(h + "." + p + ".+" + s[1:]), want: catBad(authz.ReasonBadEncoding)},
		{id: "S5", name: "slash in the payload", hdrs: catBearer(h + "./" + p[1:] + "." + s), want: catBad(authz.ReasonBadEncoding)},
		{id: "S5", name: "padding on the signature", hdrs: catBearer(good + "=="), want: catBad(authz.ReasonBadEncoding)},
		// b64token allows '=' only at the end: an inner '=' is X4.
		{id: "S5", name: "padding on the header: outside b64token", hdrs: catBearer(h + "=." + p + "." + s), want: malformedAuthz},
		// A space or TAB inside the credential is outside b64token (X4's "a b").
		{id: "S6", name: "space in the signature: outside b64token", hdrs: catBearer(h + "." + p + "." + s[:10] + " " + s[10:]), want: malformedAuthz},
		{id: "S6", name: "TAB in the payload: outside b64token", hdrs: catBearer(h + "." + p[:7] + "\t" + p[7:] + "." + s), want: malformedAuthz},
		// Trailing whitespace is not part of a field value (RFC 9110 §5.5).
		{id: "S6", name: "trailing space is OWS", hdrs: catBearer(good + " "), want: catOK("alice")},
		{id: "S7", name: "CRLF in the payload: outside b64token", hdrs: catBearer(h + "." + p[:5] + "\r\n" + p[5:] + "." + s), want: malformedAuthz},
		{id: "S7", name: "LF in the header: outside b64token", hdrs: catBearer(h[:3] + "\n" + h[3:] + "." + p + "." + s), want: malformedAuthz},
		{id: "S7", name: "CR in the query param: outside b64token", env: catEnvParams, query: "access_token=" + url.QueryEscape(h+"."+p+"."+s[:3]+"\r"+s[3:]), want: malformedAuthz},
		{id: "S8", name: "non-canonical signature", hdrs: catBearer(nh + "." + np + "." + catNonCanonical(t, ns)), want: catBad(authz.ReasonBadEncoding)},
		{id: "S8", name: "non-canonical payload", hdrs: catBearer(nh + "." + catNonCanonical(t, np) + "." + ns), want: catBad(authz.ReasonBadEncoding)},
		{id: "S8", name: "control: canonical", hdrs: catBearer(ncTok), want: catOK("alice")},
		{id: "S9", name: "header is an array", hdrs: catBearer(withHeader(`["RS256"]`)), want: catBad(authz.ReasonMalformed)},
		{id: "S9", name: "header with BOM", hdrs: catBearer(withHeader("\ufeff" + catHdr(t, "RS256", "k-rsa"))), want: catBad(authz.ReasonMalformed)},
		{id: "S9", name: "header with trailing data", hdrs: catBearer(withHeader(catHdr(t, "RS256", "k-rsa") + `{}`)), want: catBad(authz.ReasonMalformed)},
		{id: "S10", name: "payload null", hdrs: catBearer(withPayload("null")), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S11", name: "payload array", hdrs: catBearer(withPayload(`[` + std + `]`)), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S11", name: "payload string", hdrs: catBearer(withPayload(`"alice"`)), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S11", name: "payload number", hdrs: catBearer(withPayload(`42`)), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S11", name: "payload with BOM", hdrs: catBearer(withPayload("\ufeff" + std)), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S11", name: "payload with trailing data", hdrs: catBearer(withPayload(std + `{}`)), want: catBad(authz.ReasonPayloadNotObject)},
		{id: "S12", name: "invalid UTF-8 in the payload", hdrs: catBearer(plus("\"note\":\"\xff\xfe\"")), want: catBad(authz.ReasonInvalidUTF8)},
		{id: "S12", name: "invalid UTF-8 in sub", hdrs: catBearer(withPayload(strings.Replace(std, `"sub":"alice"`, "\"sub\":\"alic\xe9\"", 1))), want: catBad(authz.ReasonInvalidUTF8)},
		{id: "S12", name: "invalid UTF-8 in the header", hdrs: catBearer(withHeader(catHdr(t, "RS256", "k-rsa", "\"x\":\"\xc3\x28\""))), want: catBad(authz.ReasonInvalidUTF8)},
		{id: "S12", name: "unpaired surrogate escape", hdrs: catBearer(plus(`"note":"\ud800"`)), want: catBad(authz.ReasonInvalidUTF8)},
		{id: "S13", name: "alg twice", hdrs: catBearer(withHeader(`{"alg":"RS256","alg":"RS256","kid":"k-rsa"}`)), want: catBad(authz.ReasonDuplicateMember)},
		{id: "S13", name: "sub twice", hdrs: catBearer(plus(`"sub":"mallory"`)), want: catBad(authz.ReasonDuplicateMember)},
		{id: "S14", name: "payload nesting over 10000", env: catEnvBigTokens, hdrs: catBearer(plus(`"deep":` + deep)), want: catBad(authz.ReasonMalformed)},
		{id: "S14", name: "header nesting over 10000", env: catEnvBigTokens, hdrs: catBearer(withHeader(catHdr(t, "RS256", "k-rsa", `"deep":`+deep))), want: catBad(authz.ReasonMalformed)},
		{id: "S14", name: "nesting over 10000 at the default size: X8 first", hdrs: catBearer(plus(`"deep":` + deep)), want: tooLarge},

		// §3.3 Algorithm and key.
		{id: "K1", name: "none", hdrs: catBearer(unsigned("none")), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K1", name: "None", hdrs: catBearer(unsigned("None")), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K1", name: "NONE", hdrs: catBearer(unsigned("NONE")), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K1", name: "nOnE with a signature", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "nOnE", "k-rsa"), std)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K2", name: "HS256 keyed with the PEM public key", hdrs: catBearer(hmacTok("HS256", "k-rsa", pemKey)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K2", name: "HS256 keyed with the DER public key", hdrs: catBearer(hmacTok("HS256", "k-rsa", der)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K2", name: "HS512 keyed with the PEM public key", hdrs: catBearer(hmacTok("HS512", "k-rsa", pemKey)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K3", name: "ES256K", hdrs: catBearer(catCompact(t, es256, catHdr(t, "ES256K", "k-p256"), std)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K3", name: "ML-DSA-44", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "ML-DSA-44", "k-rsa"), std)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K3", name: "Ed25519 fully specified", hdrs: catBearer(catCompact(t, eddsa, catHdr(t, "Ed25519", "k-ed"), std)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K3", name: "rs256 lower case", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "rs256", "k-rsa"), std)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K3", name: "alg missing", hdrs: catBearer(withHeader(`{"kid":"k-rsa"}`)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K4", name: "RS256 header, EC key", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "k-p256"), std)), want: catBad(authz.ReasonKeyAlgMismatch)},
		{id: "K4", name: "ES256 header, RSA key", hdrs: catBearer(catCompact(t, es256, catHdr(t, "ES256", "k-rsa"), std)), want: catBad(authz.ReasonKeyAlgMismatch)},
		{id: "K4", name: "ES256 header, P-384 key", hdrs: catBearer(catCompact(t, es256, catHdr(t, "ES256", "k-p384"), std)), want: catBad(authz.ReasonKeyAlgMismatch)},
		{id: "K5", name: "JWK alg RS256, token PS256, same key", hdrs: catBearer(catCompact(t, catSigner{alg: "PS256", key: k.rsaB}, catHdr(t, "PS256", "k-rs-bound"), std)), want: catBad(authz.ReasonKeyAlgMismatch)},
		{id: "K5", name: "control: JWK alg RS256, token RS256", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "k-rs-bound"), std)), want: catOK("alice")},
		{id: "K6", name: "use enc: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "enc"), std)), want: kidUnknown},
		{id: "K6", name: "key_ops lacks verify: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "ops-enc"), std)), want: kidUnknown},
		{id: "K6", name: "control: key_ops has verify", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "ops-verify"), std)), want: catOK("alice")},
		{id: "K7", name: "PS256 salt 0", hdrs: catBearer(catCompact(t, ps256.withSalt(0), catHdr(t, "PS256", "k-rsa"), std)), want: badSig},
		{id: "K7", name: "PS256 salt 20", hdrs: catBearer(catCompact(t, ps256.withSalt(20), catHdr(t, "PS256", "k-rsa"), std)), want: badSig},
		{id: "K7", name: "PS256 salt 64", hdrs: catBearer(catCompact(t, ps256.withSalt(64), catHdr(t, "PS256", "k-rsa"), std)), want: badSig},
		{id: "K7", name: "PS256 maximal salt", hdrs: catBearer(catCompact(t, ps256.withSalt(rsa.PSSSaltLengthAuto), catHdr(t, "PS256", "k-rsa"), std)), want: badSig},
		{id: "K7", name: "PS384 salt 32", hdrs: catBearer(catCompact(t, ps384.withSalt(32), catHdr(t, "PS384", "k-rsa"), std)), want: badSig},
		{id: "K7", name: "control: PS256 salt 32", hdrs: catBearer(catCompact(t, ps256.withSalt(32), catHdr(t, "PS256", "k-rsa"), std)), want: catOK("alice")},
		{id: "K7", name: "control: PS384 salt 48", hdrs: catBearer(catCompact(t, ps384.withSalt(48), catHdr(t, "PS384", "k-rsa"), std)), want: catOK("alice")},
		{id: "K8", name: "ES256 r=s=0", hdrs: catBearer(catWithSig(es, make([]byte, 64))), want: badSig},
		{id: "K8", name: "ES256 r=0", hdrs: catBearer(catWithSig(es, ecSig(big.NewInt(0), s0))), want: badSig},
		{id: "K8", name: "ES256 r=n", hdrs: catBearer(catWithSig(es, ecSig(n256, s0))), want: badSig},
		{id: "K8", name: "ES256 s=n", hdrs: catBearer(catWithSig(es, ecSig(r0, n256))), want: badSig},
		{id: "K8", name: "control: ES256", hdrs: catBearer(es), want: catOK("alice")},
		{id: "K9", name: "ES256 DER-encoded", hdrs: catBearer(catWithSig(es, derSig)), want: badSig},
		{id: "K9", name: "ES256 63 bytes", hdrs: catBearer(catWithSig(es, esSig[1:])), want: badSig},
		{id: "K9", name: "ES256 65 bytes", hdrs: catBearer(catWithSig(es, append([]byte{0}, esSig...))), want: badSig},
		{id: "K10", name: "RSA-1024 in the JWKS: key skipped", hdrs: catBearer(catCompact(t, catSigner{alg: "RS256", key: k.rsa1024}, catHdr(t, "RS256", "rsa1024"), std)), want: kidUnknown},
		{id: "K11", name: "RSA e even: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "e-even"), std)), want: kidUnknown},
		{id: "K11", name: "RSA e=1: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "e-one"), std)), want: kidUnknown},
		{id: "K11", name: "RSA over 4096 bits: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "rsa-big"), std)), want: kidUnknown},
		{id: "K12", name: "EC point off the curve: key skipped", hdrs: catBearer(catCompact(t, catSigner{alg: "ES256", key: k.p256B}, catHdr(t, "ES256", "ec-off"), std)), want: kidUnknown},
		{id: "K12", name: "weak Ed25519 point: key skipped", hdrs: catBearer(catCompact(t, eddsa, catHdr(t, "EdDSA", "ed-weak"), std)), want: kidUnknown},
		{id: "K13", name: "oct key, RS256 token: key skipped", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "oct"), std)), want: kidUnknown},
		{id: "K13", name: "oct key, HS256 token keyed with its secret", hdrs: catBearer(hmacTok("HS256", "oct", catOctSecret)), want: catBad(authz.ReasonAlgNotAllowed)},
		{id: "K14", name: "private key material: key skipped", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "priv"), std)), want: kidUnknown},
		// The catalogue makes the ROCA skip optional ("not detected" today): either answer.
		{id: "K15", name: "ROCA-weak RSA key", hdrs: catBearer(catCompact(t, catSigner{alg: "RS256", key: k.roca}, catHdr(t, "RS256", "k-roca"), std)),
			want: catOK("alice"), alt: &kidUnknown},

		// §3.4 Header parameters.
		{id: "H1", name: "no kid, several usable RSA keys", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", ""), std)), want: catBad(authz.ReasonKIDRequired)},
		{id: "H1", name: "control: no kid, exactly one key fits ES256", hdrs: catBearer(catCompact(t, es256, catHdr(t, "ES256", ""), std)), want: catOK("alice")},
		{id: "H2", name: "kid unknown", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "unknown"), std)), want: kidUnknown},
		{id: "H3", name: "kid number", hdrs: catBearer(withHeader(`{"alg":"RS256","kid":7}`)), want: catBad(authz.ReasonMalformed)},
		{id: "H3", name: "kid null", hdrs: catBearer(withHeader(`{"alg":"RS256","kid":null}`)), want: catBad(authz.ReasonMalformed)},
		{id: "H3", name: "kid 257 bytes", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", strings.Repeat("k", 257)), std)), want: catBad(authz.ReasonMalformed)},
		{id: "H3", name: "kid path traversal", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "../../etc/passwd"), std)), want: catBad(authz.ReasonMalformed)},
		{id: "H3", name: "kid backslash traversal", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", `..\..\keys`), std)), want: catBad(authz.ReasonMalformed)},
		{id: "H3", name: "kid NUL", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "k-rsa\x00"), std)), want: catBad(authz.ReasonMalformed)},
		{id: "H4", name: "jku to the recording server: ignored", hdrs: catBearer(rs(jku)), want: catOK("alice"), check: noFetch},
		{id: "H4", name: "x5u to the recording server: ignored", hdrs: catBearer(rs(x5u)), want: catOK("alice"), check: noFetch},
		{id: "H4", name: "jku with the attacker's signature", hdrs: catBearer(catCompact(t, atk, catHdr(t, "RS256", "k-rsa", jku), std)), want: badSig, check: noFetch},
		{id: "H4", name: "x5u with the attacker's signature, unknown kid", hdrs: catBearer(catCompact(t, atk, catHdr(t, "RS256", "attacker", x5u), std)), want: kidUnknown, check: noFetch},
		{id: "H5", name: "embedded jwk of the attacker", hdrs: catBearer(catCompact(t, atk, catHdr(t, "RS256", "k-rsa", `"jwk":`+string(atkJWK)), std)), want: badSig},
		{id: "H5", name: "x5c of the attacker", hdrs: catBearer(catCompact(t, atk, catHdr(t, "RS256", "k-rsa", x5c), std)), want: badSig},
		{id: "H5", name: "embedded jwk of our key is ignored", hdrs: catBearer(rs(`"jwk":` + string(ourJWK))), want: catOK("alice")},
		{id: "H5", name: "garbage x5c", hdrs: catBearer(rs(`"x5c":["AAAA"]`)), want: catBad(authz.ReasonMalformed)},
		{id: "H6", name: "crit exp", hdrs: catBearer(rs(`"crit":["exp"]`, `"exp":1`)), want: catBad(authz.ReasonUnsupportedCrit)},
		{id: "H7", name: "crit empty", hdrs: catBearer(rs(`"crit":[]`)), want: catBad(authz.ReasonUnsupportedCrit)},
		{id: "H8", name: "crit b64, b64 false", hdrs: catBearer(rs(`"crit":["b64"]`, `"b64":false`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H9", name: "b64 false without crit", hdrs: catBearer(rs(`"b64":false`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H10", name: "zip DEF", hdrs: catBearer(rs(`"zip":"DEF"`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H11", name: "cty JWT", hdrs: catBearer(rs(`"cty":"JWT"`)), want: catBad(authz.ReasonNestedJWT)},
		{id: "H12", name: "typ dpop+jwt", hdrs: catBearer(rs(`"typ":"dpop+jwt"`)), want: catBad(authz.ReasonTypMismatch)},
		{id: "H12", name: "control: typ application/at+jwt", hdrs: catBearer(rs(`"typ":"application/at+jwt"`)), want: catOK("alice")},
		{id: "H13", name: "enc", hdrs: catBearer(rs(`"enc":"A256GCM"`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H13", name: "epk", hdrs: catBearer(rs(`"epk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H13", name: "p2c", hdrs: catBearer(rs(`"p2c":1000000`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H13", name: "iv", hdrs: catBearer(rs(`"iv":"AAAA"`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H13", name: "tag", hdrs: catBearer(rs(`"tag":"AAAA"`)), want: catBad(authz.ReasonUnsupportedHeader)},
		{id: "H14", name: "x5t", hdrs: catBearer(rs(`"x5t":"AAAA"`)), want: catOK("alice")},
		{id: "H14", name: "custom parameter", hdrs: catBearer(rs(`"example.com/custom":{"a":[1,2]}`)), want: catOK("alice")},
		{id: "H14", name: "ALG none", hdrs: catBearer(rs(`"ALG":"none"`)), want: catOK("alice")},
		{id: "H14", name: "Kid of another key", hdrs: catBearer(rs(`"Kid":"k-p256"`)), want: catOK("alice")},

		// §3.5 Signature binding.
		{id: "G1", name: "bit flipped in the signature", hdrs: catBearer(catWithSig(good, flip(sig, len(sig)-1))), want: badSig},
		{id: "G1", name: "bit flipped in the payload", hdrs: catBearer(h + "." + catEnc(flip([]byte(std), strings.Index(std, "alice"))) + "." + s), want: badSig},
		{id: "G1", name: "signature cut by one byte", hdrs: catBearer(catWithSig(good, sig[:len(sig)-1])), want: badSig},
		{id: "G1", name: "signature padded with a zero byte", hdrs: catBearer(catWithSig(good, append(slices.Clone(sig), 0))), want: badSig},
		{id: "G1", name: "ES256 bit flipped", hdrs: catBearer(catWithSig(es, flip(esSig, 5))), want: badSig},
		{id: "G1", name: "EdDSA bit flipped", hdrs: catBearer(catWithSig(ed, flip(catSigOf(t, ed), 5))), want: badSig},
		{id: "G2", name: "signed by A, iss B, A's kid", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "k-rsa"), catClaimsFor(t, catIssB, nil))), want: kidUnknown},
		{id: "G2", name: "signed by A, iss B, B's kid", hdrs: catBearer(catCompact(t, rs256, catHdr(t, "RS256", "b1"), catClaimsFor(t, catIssB, nil))), want: badSig},
		{id: "G2", name: "control: signed by B for B", hdrs: catBearer(catCompact(t, rsB, catHdr(t, "RS256", "b1"), catClaimsFor(t, catIssB, nil))), want: catOK("alice")},
		{id: "G3", name: "iss matches no provider", hdrs: catBearer(tok(map[string]any{"iss": "https://evil.example"})), want: catBad(authz.ReasonIssuerUnknown)},
		{id: "G3", name: "iss missing", hdrs: catBearer(tok(map[string]any{"iss": catDel})), want: catBad(authz.ReasonIssuerUnknown)},
		{id: "G4", name: "other audience", hdrs: catBearer(tok(map[string]any{"aud": "https://other.example.com"})), want: catBad(authz.ReasonAudMismatch)},
		{id: "G4", name: "id_token as access token", hdrs: catBearer(idToken(catIssMain)), want: catBad(authz.ReasonAudMismatch)},
		{id: "G4", name: "id_token as access token, strict profile", hdrs: catBearer(idToken(catIssStrict)), want: catBad(authz.ReasonTypMismatch)},

		// §3.5 Claims.
		{id: "C1", name: "exp missing", hdrs: catBearer(tok(map[string]any{"exp": catDel})), want: catBad(authz.ReasonExpMissing)},
		{id: "C1", name: "exp null", hdrs: catBearer(tok(map[string]any{"exp": nil})), want: catBad(authz.ReasonExpMissing)},
		{id: "C2", name: "exp string", hdrs: catBearer(tok(map[string]any{"exp": fmt.Sprint(T + 600)})), want: catBad(authz.ReasonClaimType)},
		{id: "C2", name: "exp bool", hdrs: catBearer(tok(map[string]any{"exp": true})), want: catBad(authz.ReasonClaimType)},
		{id: "C2", name: "exp object", hdrs: catBearer(tok(map[string]any{"exp": map[string]any{"v": T + 600}})), want: catBad(authz.ReasonClaimType)},
		{id: "C2", name: "exp 2^62", hdrs: catBearer(tok(map[string]any{"exp": raw("4611686018427387904")})), want: catBad(authz.ReasonClaimType)},
		{id: "C2", name: "exp 1e300", hdrs: catBearer(tok(map[string]any{"exp": raw("1e300")})), want: catBad(authz.ReasonClaimType)},
		{id: "C2", name: "control: exp fractional is truncated", hdrs: catBearer(tok(map[string]any{"exp": raw(fmt.Sprintf("%d.75", T+600))})), want: catOK("alice")},
		{id: "C3", name: "exp T-30 within skew", hdrs: catBearer(tok(map[string]any{"exp": T - 30})), want: catOK("alice")},
		{id: "C3", name: "exp T-61", hdrs: catBearer(tok(map[string]any{"exp": T - 61})), want: expired},
		{id: "C3", name: "nbf T+30 within skew", hdrs: catBearer(tok(map[string]any{"nbf": T + 30})), want: catOK("alice")},
		{id: "C3", name: "nbf T+61", hdrs: catBearer(tok(map[string]any{"nbf": T + 61})), want: notYet},
		{id: "C4", name: "iat T+120", hdrs: catBearer(tok(map[string]any{"iat": T + 120})), want: catBad(authz.ReasonIATFuture)},
		{id: "C5", name: "exp-iat over max_lifetime", hdrs: catBearer(strictTok(map[string]any{"iat": T - 7200, "exp": T + 600})), want: catBad(authz.ReasonLifetimeTooLong)},
		{id: "C5", name: "exp-T over max_lifetime", hdrs: catBearer(strictTok(map[string]any{"iat": T - 10, "exp": T + 7200})), want: catBad(authz.ReasonLifetimeTooLong)},
		{id: "C5", name: "control: within max_lifetime", hdrs: catBearer(strictTok(nil)), want: catOK("alice")},
		{id: "C6", name: "iss trailing slash", hdrs: catBearer(tok(map[string]any{"iss": catIssMain + "/"})), want: catBad(authz.ReasonIssMismatch)},
		{id: "C6", name: "iss upper case", hdrs: catBearer(tok(map[string]any{"iss": strings.ToUpper(catIssMain)})), want: catBad(authz.ReasonIssMismatch)},
		{id: "C6", name: "iss http scheme", hdrs: catBearer(tok(map[string]any{"iss": "http://idp.example.com"})), want: catBad(authz.ReasonIssMismatch)},
		{id: "C6", name: "iss array", hdrs: catBearer(tok(map[string]any{"iss": []string{catIssMain}})), want: catBad(authz.ReasonClaimType)},
		{id: "C6", name: "iss number", hdrs: catBearer(tok(map[string]any{"iss": 42})), want: catBad(authz.ReasonClaimType)},
		{id: "C7", name: "aud wrong", hdrs: catBearer(tok(map[string]any{"aud": "https://api.example.org"})), want: catBad(authz.ReasonAudMismatch)},
		{id: "C7", name: "aud empty array", hdrs: catBearer(tok(map[string]any{"aud": []string{}})), want: catBad(authz.ReasonAudMismatch)},
		{id: "C7", name: "aud empty string", hdrs: catBearer(tok(map[string]any{"aud": ""})), want: catBad(authz.ReasonAudMismatch)},
		{id: "C7", name: "aud null", hdrs: catBearer(tok(map[string]any{"aud": nil})), want: catBad(authz.ReasonAudMismatch)},
		{id: "C7", name: "aud missing", hdrs: catBearer(tok(map[string]any{"aud": catDel})), want: catBad(authz.ReasonAudMismatch)},
		{id: "C7", name: "aud array with a number", hdrs: catBearer(tok(map[string]any{"aud": []any{catAud, 5}})), want: catBad(authz.ReasonClaimType)},
		{id: "C7", name: "control: aud array", hdrs: catBearer(tok(map[string]any{"aud": []string{"other", catAud}})), want: catOK("alice")},
		{id: "C8", name: "jti missing", hdrs: catBearer(strictTok(map[string]any{"jti": catDel})), want: catBad(authz.ReasonClaimMissing)},
		{id: "C8", name: "client_id empty", hdrs: catBearer(strictTok(map[string]any{"client_id": ""})), want: catBad(authz.ReasonClaimMissing)},
		{id: "C8", name: "sub empty", hdrs: catBearer(strictTok(map[string]any{"sub": ""})), want: catBad(authz.ReasonClaimMissing)},
		{id: "C8", name: "control: every required claim", hdrs: catBearer(strictTok(nil)), want: catOK("alice"), check: headerIs("x-client-id", "c1")},
		{id: "C8", name: "sub missing", hdrs: catBearer(strictTok(map[string]any{"sub": catDel})), want: catBad(authz.ReasonClaimMissing)},
		{id: "C9", name: "scope string too small", path: "/admin/users", hdrs: catBearer(tok(map[string]any{"scope": "read write"})), want: scope("admin")},
		{id: "C9", name: "scp array too small", path: "/admin", hdrs: catBearer(tok(map[string]any{"scp": []string{"read", "write"}})), want: scope("admin")},
		{id: "C9", name: "no scope at all", path: "/admin", hdrs: catBearer(good), want: scope("admin")},
		{id: "C9", name: "two scopes required, one held", path: "/billing", hdrs: catBearer(tok(map[string]any{"scope": "billing.read"})), want: scope("billing.read billing.write")},
		{id: "C9", name: "control: scope string", path: "/admin", hdrs: catBearer(tok(map[string]any{"scope": "read admin"})), want: catOK("alice")},
		{id: "C9", name: "control: scp array", path: "/admin", hdrs: catBearer(tok(map[string]any{"scp": []string{"admin"}})), want: catOK("alice")},
		{id: "C10", name: "claim value not accepted", path: "/ops", hdrs: catBearer(tok(map[string]any{"role": "viewer"})), want: claimsRule},
		{id: "C10", name: "claim array lacks every accepted value", path: "/ops", hdrs: catBearer(tok(map[string]any{"role": []string{"viewer"}})), want: claimsRule},
		{id: "C10", name: "claim absent", path: "/ops", hdrs: catBearer(good), want: claimsRule},
		{id: "C10", name: "control: claim array holds an accepted value", path: "/ops", hdrs: catBearer(tok(map[string]any{"role": []string{"viewer", "owner"}})), want: catOK("alice")},
		{id: "C11", name: "sub with CRLF", hdrs: catBearer(tok(map[string]any{"sub": "alice\r\nx-admin: 1"})), want: catBad(authz.ReasonUnsafeClaimValue)},
		{id: "C11", name: "email with NUL", hdrs: catBearer(tok(map[string]any{"email": "a@example.com\x00"})), want: catBad(authz.ReasonUnsafeClaimValue)},
		{id: "C11", name: "sub with DEL", hdrs: catBearer(tok(map[string]any{"sub": "alice\x7f"})), want: catBad(authz.ReasonUnsafeClaimValue)},
		{id: "C11", name: "control: CRLF in a claim no header carries", hdrs: catBearer(tok(map[string]any{"note": "a\r\nb"})), want: catOK("alice")},
		{id: "C11", name: "control: TAB is allowed", hdrs: catBearer(tok(map[string]any{"email": "a\t@example.com"})), want: catOK("alice"),
			check: headerIs("x-user-email", "a\t@example.com")},
		{id: "C12", name: "iss with a Cyrillic a", hdrs: catBearer(tok(map[string]any{"iss": "https://idp.ex\u0430mple.com"})), want: catBad(authz.ReasonIssuerUnknown)},
		{id: "C12", name: "iss with fullwidth letters", hdrs: catBearer(tok(map[string]any{"iss": "https://\uff49dp.example.com"})), want: catBad(authz.ReasonIssuerUnknown)},
		{id: "C12", name: "sub with a Cyrillic a passes byte-exact", hdrs: catBearer(tok(map[string]any{"sub": "\u0430lice"})), want: catOK("\u0430lice")},
		{id: "C12", name: "sub in NFD passes unnormalised", hdrs: catBearer(tok(map[string]any{"sub": "jose\u0301"})), want: catOK("jose\u0301")},
	}

	covered := map[string]int{}
	seen := map[string]bool{}
	for _, tc := range cases {
		name := tc.id + "/" + tc.name
		if seen[name] {
			t.Fatalf("duplicate case %q", name)
		}
		seen[name] = true
		if !slices.Contains(catRows, tc.id) {
			t.Fatalf("case %q names no catalogue row", name)
		}
		covered[tc.id]++
	}
	for _, row := range catRows {
		if covered[row] == 0 {
			t.Errorf("catalogue row %s has no case", row)
		}
	}

	for _, tc := range cases {
		t.Run(tc.id+"/"+tc.name, func(t *testing.T) {
			a := auths[tc.env]
			d := a.Decide(ctx, tc.request())
			want := tc.want
			if tc.alt != nil && !catMatches(d, want) && catMatches(d, *tc.alt) {
				want = *tc.alt
			}
			catCheckDecision(t, a, tc, want, d)
			if tc.check != nil {
				tc.check(t, d)
			}
			// The same request as Envoy sends it, through the gRPC adapter: with header_map
			// (encode_raw_headers) and with the headers map.
			for _, rawHeaders := range []bool{true, false} {
				cr := tc.checkRequest(rawHeaders)
				dw := a.Decide(ctx, extauthz.Request(cr))
				if got, w := catProject(dw), catProject(d); !reflect.DeepEqual(got, w) {
					t.Errorf("%s: decision via extauthz.Request (header_map=%v) differs:\n got %+v\nwant %+v", tc.id, rawHeaders, got, w)
				}
				catCheckResponse(t, tc.id, dw, extauthz.Response(dw))
			}
		})
	}
	if n := fetched.Load(); n != 0 {
		t.Errorf("H4: the jku/x5u server got %d requests over the whole run, want 0", n)
	}
}

func catMatches(d authz.Decision, w catWant) bool {
	return d.Status == w.status && d.Reason == w.reason && d.ErrorCode == w.errorCode && d.Challenge == w.challenge
}

// catCheckDecision pins the Decision of one row.
func catCheckDecision(t *testing.T, a *authz.Authorizer, tc catCase, want catWant, d authz.Decision) {
	t.Helper()
	row := tc.id
	if d.Status != want.status {
		t.Errorf("%s: Status = %d, want %d (reason %s)", row, d.Status, want.status, d.Reason)
	}
	if d.Reason != want.reason {
		t.Errorf("%s: Reason = %q, want %q", row, d.Reason, want.reason)
	}
	if d.ErrorCode != want.errorCode {
		t.Errorf("%s: ErrorCode = %q, want %q", row, d.ErrorCode, want.errorCode)
	}
	if d.Challenge != want.challenge {
		t.Errorf("%s: Challenge =\n  %s\nwant\n  %s", row, d.Challenge, want.challenge)
	}
	if wantAllow := want.status == 200; d.Allow != wantAllow {
		t.Errorf("%s: Allow = %v, want %v", row, d.Allow, wantAllow)
	}
	if !d.Allow {
		if len(d.SetHeaders) != 0 {
			t.Errorf("%s: a deny sets headers %v", row, d.SetHeaders)
		}
		return
	}
	// X10, on every allow: every identity header is either set by this decision or removed,
	// so a client's own value never reaches the upstream.
	user := ""
	set := map[string]bool{}
	for _, h := range d.SetHeaders {
		if set[h.Name] {
			t.Errorf("%s: header %s set twice", row, h.Name)
		}
		set[h.Name] = true
		if h.Name == "x-user-id" {
			user = h.Value
		}
		for i := 0; i < len(h.Value); i++ {
			if c := h.Value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				t.Errorf("%s: header %s carries control byte 0x%02x", row, h.Name, c)
			}
		}
	}
	if user != want.user {
		t.Errorf("%s: x-user-id = %q, want %q", row, user, want.user)
	}
	for _, id := range a.IdentityHeaders() {
		removed := slices.Contains(d.RemoveHeaders, id)
		if set[id] == removed {
			t.Errorf("%s: identity header %s: set=%v removed=%v, want exactly one", row, id, set[id], removed)
		}
	}
	if d.Reason == authz.ReasonOK && len(tc.request().Headers["authorization"]) > 0 && !slices.Contains(d.RemoveHeaders, "authorization") {
		t.Errorf("%s: forward is false but authorization is not removed: %v", row, d.RemoveHeaders)
	}
}

type catProjection struct {
	Allow                                     bool
	Status                                    int
	Reason                                    authz.Reason
	ErrorCode, Description, Challenge, Issuer string
	SetHeaders                                []authz.Header
	RemoveHeaders, RemoveQueryParams          []string
}

func catProject(d authz.Decision) catProjection {
	return catProjection{d.Allow, d.Status, d.Reason, d.ErrorCode, d.Description, d.Challenge, d.Issuer, d.SetHeaders, d.RemoveHeaders, d.RemoveQueryParams}
}

// catCheckResponse checks that the CheckResponse says what the Decision says (contract.md
// "Decisions on the wire"): one helper for every row.
func catCheckResponse(t *testing.T, row string, d authz.Decision, resp *authv3.CheckResponse) {
	t.Helper()
	if got := resp.GetDynamicMetadata().GetFields()["reason"].GetStringValue(); got != string(d.Reason) {
		t.Errorf("%s: gRPC dynamic_metadata reason = %q, want %q", row, got, d.Reason)
	}
	if d.Allow {
		if resp.GetStatus().GetCode() != int32(codes.OK) || resp.GetDeniedResponse() != nil || resp.GetOkResponse() == nil {
			t.Errorf("%s: gRPC allow: status %v, denied %v, ok %v", row, resp.GetStatus(), resp.GetDeniedResponse(), resp.GetOkResponse())
			return
		}
		ok := resp.GetOkResponse()
		var got []authz.Header
		for _, h := range ok.GetHeaders() {
			got = append(got, authz.Header{Name: h.GetHeader().GetKey(), Value: h.GetHeader().GetValue()})
			if h.GetAppend() == nil || h.GetAppend().GetValue() {
				t.Errorf("%s: gRPC ok_response header %s: append = %v, want explicit false", row, h.GetHeader().GetKey(), h.GetAppend())
			}
			if strings.EqualFold(h.GetHeader().GetKey(), "www-authenticate") {
				t.Errorf("%s: an allow carries www-authenticate", row)
			}
		}
		if !slices.Equal(got, d.SetHeaders) {
			t.Errorf("%s: gRPC ok_response headers %v, want %v", row, got, d.SetHeaders)
		}
		if !slices.Equal(ok.GetHeadersToRemove(), d.RemoveHeaders) {
			t.Errorf("%s: gRPC headers_to_remove %v, want %v", row, ok.GetHeadersToRemove(), d.RemoveHeaders)
		}
		if !slices.Equal(ok.GetQueryParametersToRemove(), d.RemoveQueryParams) {
			t.Errorf("%s: gRPC query_parameters_to_remove %v, want %v", row, ok.GetQueryParametersToRemove(), d.RemoveQueryParams)
		}
		return
	}
	wantCode := map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied, 503: codes.Unavailable}[d.Status]
	if got := codes.Code(resp.GetStatus().GetCode()); got != wantCode {
		t.Errorf("%s: gRPC status %v, want %v for HTTP %d", row, got, wantCode, d.Status)
	}
	dr := resp.GetDeniedResponse()
	if dr == nil || resp.GetOkResponse() != nil {
		t.Errorf("%s: gRPC deny without a denied_response", row)
		return
	}
	if got := int(dr.GetStatus().GetCode()); got != d.Status {
		t.Errorf("%s: gRPC denied_response status %d, want %d", row, got, d.Status)
	}
	values := map[string][]string{}
	for _, h := range dr.GetHeaders() {
		k := h.GetHeader().GetKey()
		if k != strings.ToLower(k) {
			t.Errorf("%s: gRPC denied_response header %q is not lower case", row, k)
		}
		values[k] = append(values[k], h.GetHeader().GetValue())
		if h.GetAppend() == nil || h.GetAppend().GetValue() {
			t.Errorf("%s: gRPC denied_response header %s: append = %v, want explicit false", row, k, h.GetAppend())
		}
	}
	wantChallenge := []string(nil)
	if d.Challenge != "" {
		wantChallenge = []string{d.Challenge}
	}
	if !slices.Equal(values["www-authenticate"], wantChallenge) {
		t.Errorf("%s: gRPC www-authenticate %q, want %q", row, values["www-authenticate"], wantChallenge)
	}
	if !slices.Equal(values["content-type"], []string{"application/json"}) || !slices.Equal(values["cache-control"], []string{"no-store"}) {
		t.Errorf("%s: gRPC content-type %q, cache-control %q", row, values["content-type"], values["cache-control"])
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(dr.GetBody()), &body); err != nil {
		t.Errorf("%s: gRPC body %q: %v", row, dr.GetBody(), err)
	}
	if body.Error != d.ErrorCode || body.Description != d.Description {
		t.Errorf("%s: gRPC body %q, want error %q and description %q", row, dr.GetBody(), d.ErrorCode, d.Description)
	}
	for i := 0; i < len(d.Description); i++ {
		// RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
		if c := d.Description[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			t.Errorf("%s: error_description %q has byte 0x%02x outside RFC 6750's set", row, d.Description, c)
		}
	}
}
