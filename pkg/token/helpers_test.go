package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// Test fixture shared by every test of the package: real keys generated once, a signer that
// signs arbitrary header and payload bytes with crypto/* directly (so tests can build tokens
// no library would produce), a fixed clock, and a counting key source.

// testNow is "now" (T in jwt-security.md §3.5) for every verifier built by the tests.
var testNow = time.Unix(1_760_000_000, 0)

const (
	testIssuer = "https://issuer.example"
	testAud    = "api"
)

// allAlgs is every algorithm jwtauthz supports (jwt-security.md §1).
var allAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// testKeySet holds the private keys. rsa1024 is only for negative cases (K10).
type testKeySet struct {
	rsa, rsaB, rsaAttacker, rsa1024 *rsa.PrivateKey
	p256, p384, p521, p256B         *ecdsa.PrivateKey
	ed                              ed25519.PrivateKey
}

var (
	keysOnce    sync.Once
	testKeysVal *testKeySet
	keysErr     error
)

func testKeys(t testing.TB) *testKeySet {
	t.Helper()
	keysOnce.Do(func() { testKeysVal, keysErr = generateKeys() })
	if keysErr != nil {
		t.Fatalf("generating test keys: %v", keysErr)
	}
	return testKeysVal
}

func generateKeys() (*testKeySet, error) {
	k := &testKeySet{}
	var err error
	for _, r := range []struct {
		dst  **rsa.PrivateKey
		bits int
	}{{&k.rsa, 2048}, {&k.rsaB, 2048}, {&k.rsaAttacker, 2048}, {&k.rsa1024, 1024}} {
		if *r.dst, err = rsa.GenerateKey(rand.Reader, r.bits); err != nil {
			return nil, err
		}
	}
	for _, e := range []struct {
		dst   **ecdsa.PrivateKey
		curve elliptic.Curve
	}{{&k.p256, elliptic.P256()}, {&k.p384, elliptic.P384()}, {&k.p521, elliptic.P521()}, {&k.p256B, elliptic.P256()}} {
		if *e.dst, err = ecdsa.GenerateKey(e.curve, rand.Reader); err != nil {
			return nil, err
		}
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		return nil, err
	}
	return k, nil
}

// signer signs with one primitive, whatever the token header claims (so tests can lie in the
// header). salt is the PSS salt length when saltSet, else the hash length (RFC 7518 §3.5).
type signer struct {
	alg     string
	key     crypto.Signer
	salt    int
	saltSet bool
}

func (s signer) withSalt(n int) signer { s.salt, s.saltSet = n, true; return s }

func hashFor(alg string) crypto.Hash {
	switch alg[len(alg)-3:] {
	case "384":
		return crypto.SHA384
	case "512":
		return crypto.SHA512
	}
	return crypto.SHA256
}

func digest(h crypto.Hash, in []byte) []byte {
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

// sign returns the JWS signature of input (RFC 7518 §3): PKCS #1 v1.5, PSS, ECDSA as R||S of
// fixed width, or Ed25519.
func (s signer) sign(t testing.TB, input []byte) []byte {
	t.Helper()
	var (
		sig []byte
		err error
	)
	switch {
	case s.alg == "EdDSA":
		sig = ed25519.Sign(s.key.(ed25519.PrivateKey), input)
	case strings.HasPrefix(s.alg, "RS"):
		h := hashFor(s.alg)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key.(*rsa.PrivateKey), h, digest(h, input))
	case strings.HasPrefix(s.alg, "PS"):
		h := hashFor(s.alg)
		salt := h.Size()
		if s.saltSet {
			salt = s.salt
		}
		sig, err = rsa.SignPSS(rand.Reader, s.key.(*rsa.PrivateKey), h, digest(h, input), &rsa.PSSOptions{SaltLength: salt, Hash: h})
	case strings.HasPrefix(s.alg, "ES"):
		k := s.key.(*ecdsa.PrivateKey)
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, k, digest(hashFor(s.alg), input))
		if err == nil {
			sig = rawECDSA(k.Curve, r, ss)
		}
	default:
		t.Fatalf("signer: unknown alg %q", s.alg)
	}
	if err != nil {
		t.Fatalf("signing %s: %v", s.alg, err)
	}
	return sig
}

// rawECDSA encodes r and s as RFC 7518 §3.4 wants: each left-padded to the curve's byte size.
func rawECDSA(c elliptic.Curve, r, s *big.Int) []byte {
	n := (c.Params().BitSize + 7) / 8
	out := make([]byte, 2*n)
	r.FillBytes(out[:n])
	s.FillBytes(out[n:])
	return out
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// compact signs header and payload exactly as given (any bytes: duplicate members, bad UTF-8,
// null...) and returns the compact serialization.
func compact(t testing.TB, s signer, header, payload string) string {
	t.Helper()
	in := enc([]byte(header)) + "." + enc([]byte(payload))
	return in + "." + enc(s.sign(t, []byte(in)))
}

// withSig replaces the signature segment of a compact token.
func withSig(raw string, sig []byte) string {
	return raw[:strings.LastIndexByte(raw, '.')+1] + enc(sig)
}

// sigOf returns the decoded signature of a compact token.
func sigOf(t testing.TB, raw string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(raw[strings.LastIndexByte(raw, '.')+1:])
	if err != nil {
		t.Fatalf("decoding signature: %v", err)
	}
	return b
}

// del removes a claim in claimsJSON's mods.
var del = struct{ deleted bool }{true}

// claimsJSON returns the standard claims (iss, aud, sub, exp T+10m, iat T-10s) changed by mods;
// a json.RawMessage value is inserted verbatim (1e300, null...), del removes the claim.
func claimsJSON(t testing.TB, mods map[string]any) string {
	t.Helper()
	c := map[string]any{
		"iss": testIssuer,
		"aud": testAud,
		"sub": "alice",
		"exp": testNow.Unix() + 600,
		"iat": testNow.Unix() - 10,
	}
	for k, v := range mods {
		if v == del {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatalf("claims: %v", err)
	}
	return string(b)
}

// rawJSON is a shorthand for a verbatim JSON value in claimsJSON.
func rawJSON(s string) json.RawMessage { return json.RawMessage(s) }

// hdr returns a header JSON with alg and kid (omitted when empty) and extra members given as
// raw JSON ("\"typ\":\"JWT\"").
func hdr(alg, kid string, extra ...string) string {
	parts := []string{fmt.Sprintf(`"alg":%q`, alg)}
	if kid != "" {
		parts = append(parts, fmt.Sprintf(`"kid":%q`, kid))
	}
	parts = append(parts, extra...)
	return "{" + strings.Join(parts, ",") + "}"
}

// jwk returns the public JWK JSON of key, as an object we can still change.
func jwk(t testing.TB, pub crypto.PublicKey, kid, alg string) map[string]any {
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

// keySet parses JWKs through jwks.Parse, the production loader, with every algorithm allowed.
func keySet(t testing.TB, keys ...map[string]any) *jwks.Set {
	t.Helper()
	doc, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatalf("jwks: %v", err)
	}
	set, _, err := jwks.Parse(doc, allAlgs)
	if err != nil {
		t.Fatalf("jwks.Parse: %v", err)
	}
	return set
}

// fakeSource is a KeySource that counts RefreshForKID calls. A refresh returns fresh (a
// rotation) when set, else refuses like a cooldown would.
type fakeSource struct {
	mu        sync.Mutex
	set       *jwks.Set
	err       error
	fresh     *jwks.Set
	refreshes int
}

func (f *fakeSource) Current() (*jwks.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return f.set, nil
}

func (f *fakeSource) RefreshForKID(context.Context) (*jwks.Set, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	if f.fresh == nil {
		return nil, fmt.Errorf("fake: %w", jwks.ErrRefreshRefused)
	}
	f.set = f.fresh
	return f.fresh, nil
}

func (f *fakeSource) refreshCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshes
}

// testProvider is the default provider of the catalogue: issuer, audience "api", every
// algorithm, the default token_types, clock_skew 60 s.
func testProvider(src KeySource, mods ...func(*Provider)) *Provider {
	p := &Provider{
		Name:       "test",
		Issuer:     testIssuer,
		Audiences:  []string{testAud},
		Algorithms: allAlgs,
		TokenTypes: []string{"", "JWT", "at+jwt"},
		ClockSkew:  60 * time.Second,
		Keys:       src,
	}
	for _, m := range mods {
		if m != nil {
			m(p)
		}
	}
	return p
}

func newTestVerifier(t testing.TB, ps ...*Provider) *Verifier {
	t.Helper()
	v, err := NewVerifier(ps, Options{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	return v
}

// sentinels is the closed set of errors Verify and Extract may wrap (errors.go), plus
// jwks.ErrKeysUnavailable.
var sentinels = []error{
	ErrMissingToken, ErrUnsupportedScheme, ErrMalformedAuthorization, ErrMultipleTokens, ErrTokenTooLarge,
	ErrMalformed, ErrBadEncoding, ErrPayloadNotObject, ErrInvalidUTF8, ErrDuplicateMember, ErrJWENotSupported,
	ErrAlgNotAllowed, ErrKeyAlgMismatch, ErrKIDRequired, ErrKIDUnknown, ErrBadSignature, ErrUnsupportedCrit,
	ErrUnsupportedHeader, ErrNestedJWT, ErrTypMismatch, ErrIssuerUnknown, ErrIssMismatch, ErrAudMismatch,
	ErrExpMissing, ErrExpired, ErrNotYetValid, ErrIATFuture, ErrLifetimeTooLong, ErrClaimType, ErrClaimMissing,
	ErrSenderConstrained, jwks.ErrKeysUnavailable,
}

// matchedSentinels lists the sentinels err wraps.
func matchedSentinels(err error) []error {
	var out []error
	for _, s := range sentinels {
		if errors.Is(err, s) {
			out = append(out, s)
		}
	}
	return out
}

// checkErr asserts err is nil when want is, and otherwise wraps want and no other sentinel:
// one error, one reason code.
func checkErr(t testing.TB, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got error %v, want success", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("got success, want %v", want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want errors.Is(err, %v)", err, want)
	}
	if m := matchedSentinels(err); len(m) != 1 {
		t.Fatalf("error %v wraps %d sentinels (%v), want exactly one", err, len(m), m)
	}
}

// cryptoVerify checks a JWS signature with crypto/* alone, independently of the code under
// test: PKCS #1 v1.5, PSS with salt = hash length, R||S ECDSA of the curve's width, Ed25519.
func cryptoVerify(alg string, pub crypto.PublicKey, input, sig []byte) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		h := hashFor(alg)
		switch alg {
		case "RS256", "RS384", "RS512":
			return rsa.VerifyPKCS1v15(k, h, digest(h, input), sig) == nil
		case "PS256", "PS384", "PS512":
			return rsa.VerifyPSS(k, h, digest(h, input), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}) == nil
		}
	case *ecdsa.PublicKey:
		want := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}[alg]
		if want == nil || k.Curve != want {
			return false
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return false
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(k, digest(hashFor(alg), input), r, s)
	case ed25519.PublicKey:
		return alg == "EdDSA" && ed25519.Verify(k, input, sig)
	}
	return false
}
