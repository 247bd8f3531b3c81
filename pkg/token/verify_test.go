package token

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/parser"
	gotoken "go/token"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// Table tests for jwt-security.md §3.2-§3.5. Case names start with the catalogue id. Every
// case runs through Verifier.Verify with a fixed clock T and asserts, besides the reason:
//   - the error wraps exactly one sentinel (one reason code);
//   - RefreshForKID was called exactly `refresh` times (0 unless stated: J16, J17);
//   - Token.Provider is set exactly when the issuer selected a provider (metrics).

// fixture is the main key set of the catalogue tests, loaded through jwks.Parse like a
// provider's JWKS, hostile keys included (they must be skipped).
type fixture struct {
	k   *testKeySet
	set *jwks.Set

	rs256, rs384, rs512, ps256, ps384, ps512, es256, es384, es512, eddsa signer
	rsB, attacker                                                        signer
}

var (
	fixtureOnce sync.Once
	fixtureVal  *fixture
)

// The kids of the main set, and the skip reason jwks.Parse must give the hostile ones.
var hostileKIDs = map[string]string{
	"enc":     jwks.SkipWrongUse,       // K6: use enc
	"ops-enc": jwks.SkipWrongUse,       // K6: key_ops without verify
	"rsa1024": jwks.SkipRSATooSmall,    // K10
	"e-even":  jwks.SkipRSABadExponent, // K11
	"e-one":   jwks.SkipUnsupported,    // K11: go-jose refuses e < 2
	"rsa-big": jwks.SkipUnsupported,    // K11: > 4096 bits
	"ec-off":  jwks.SkipUnsupported,    // K12: point off the curve
	"ed-weak": jwks.SkipUnsupported,    // K12: small-order Ed25519 point
	"oct":     jwks.SkipSymmetric,      // K13
	"priv":    jwks.SkipPrivate,        // K14
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	k := testKeys(t)
	f := &fixture{k: k}
	f.rs256 = signer{alg: "RS256", key: k.rsa}
	f.rs384 = signer{alg: "RS384", key: k.rsa}
	f.rs512 = signer{alg: "RS512", key: k.rsa}
	f.ps256 = signer{alg: "PS256", key: k.rsa}
	f.ps384 = signer{alg: "PS384", key: k.rsa}
	f.ps512 = signer{alg: "PS512", key: k.rsa}
	f.es256 = signer{alg: "ES256", key: k.p256}
	f.es384 = signer{alg: "ES384", key: k.p384}
	f.es512 = signer{alg: "ES512", key: k.p521}
	f.eddsa = signer{alg: "EdDSA", key: k.ed}
	f.rsB = signer{alg: "RS256", key: k.rsaB}
	f.attacker = signer{alg: "RS256", key: k.rsaAttacker}

	encKey := jwk(t, &k.rsaB.PublicKey, "enc", "")
	encKey["use"] = "enc"
	opsEnc := jwk(t, &k.rsaB.PublicKey, "ops-enc", "")
	delete(opsEnc, "use")
	opsEnc["key_ops"] = []string{"encrypt"}
	opsVerify := jwk(t, &k.rsaB.PublicKey, "ops-verify", "")
	delete(opsVerify, "use")
	opsVerify["key_ops"] = []string{"sign", "verify"}
	eEven := jwk(t, &k.rsaB.PublicKey, "e-even", "")
	eEven["e"] = "BA" // 4
	eOne := jwk(t, &k.rsaB.PublicKey, "e-one", "")
	eOne["e"] = "AQ" // 1

	bigN := make([]byte, 513) // 4097..4104 bits
	if _, err := rand.Read(bigN); err != nil {
		t.Fatal(err)
	}
	bigN[0] |= 0x80
	bigN[len(bigN)-1] |= 1
	rsaBig := jwk(t, &k.rsaB.PublicKey, "rsa-big", "")
	rsaBig["n"] = enc(bigN)
	ecOff := jwk(t, &k.p256B.PublicKey, "ec-off", "")
	y := new(big.Int).Add(k.p256B.Y, big.NewInt(1))
	ecOff["y"] = enc(y.FillBytes(make([]byte, 32)))
	weak := make([]byte, 32)
	weak[0] = 1
	edWeak := map[string]any{"kty": "OKP", "crv": "Ed25519", "kid": "ed-weak", "x": enc(weak)}
	oct := map[string]any{"kty": "oct", "kid": "oct", "k": enc([]byte("0123456789abcdef0123456789abcdef"))}
	privJSON, err := jose.JSONWebKey{Key: k.rsaB, KeyID: "priv", Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var priv map[string]any
	if err := json.Unmarshal(privJSON, &priv); err != nil {
		t.Fatal(err)
	}

	keys := []map[string]any{
		jwk(t, &k.rsa.PublicKey, "rsa", ""),
		jwk(t, &k.rsaB.PublicKey, "rs-bound", "RS256"), // K5
		jwk(t, &k.p256.PublicKey, "p256", ""),
		jwk(t, &k.p384.PublicKey, "p384", ""),
		jwk(t, &k.p521.PublicKey, "p521", ""),
		jwk(t, k.ed.Public(), "ed", ""),
		jwk(t, &k.rsaB.PublicKey, "dup", ""), // J10: the first of two "dup" keys is not the signer
		jwk(t, &k.rsa.PublicKey, "dup", ""),
		opsVerify,
		encKey, opsEnc,
		jwk(t, &k.rsa1024.PublicKey, "rsa1024", ""),
		eEven, eOne, rsaBig, ecOff, edWeak, oct, priv,
	}
	doc, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	set, skips, err := jwks.Parse(doc, allAlgs)
	if err != nil {
		t.Fatalf("jwks.Parse: %v", err)
	}
	got := map[string]string{}
	for _, s := range skips {
		got[s.KID] = s.Reason
	}
	for kid, want := range hostileKIDs {
		if got[kid] != want {
			t.Fatalf("jwks.Parse skipped kid %q with %q, want %q (skips: %v)", kid, got[kid], want, skips)
		}
	}
	if len(skips) != len(hostileKIDs) {
		t.Fatalf("jwks.Parse skipped %d keys, want %d: %v", len(skips), len(hostileKIDs), skips)
	}
	f.set = set
	return f
}

func fx(t testing.TB) *fixture {
	t.Helper()
	fixtureOnce.Do(func() { fixtureVal = newFixture(t) })
	if fixtureVal == nil {
		t.Fatal("fixture setup failed")
	}
	return fixtureVal
}

// tok signs the standard claims changed by mods, with header {"alg","kid"} (no typ).
func (f *fixture) tok(t testing.TB, s signer, kid string, mods map[string]any) string {
	t.Helper()
	return compact(t, s, hdr(s.alg, kid), claimsJSON(t, mods))
}

// claimsPlus appends raw members (possibly invalid UTF-8 or duplicates) to the standard claims.
func claimsPlus(t testing.TB, mods map[string]any, members ...string) string {
	t.Helper()
	c := claimsJSON(t, mods)
	return strings.TrimSuffix(c, "}") + "," + strings.Join(members, ",") + "}"
}

func segments(t testing.TB, raw string) (h, p, s string) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", raw)
	}
	return parts[0], parts[1], parts[2]
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// nonCanonical sets an unused low bit of a segment's last character: a lenient decoder gives
// the same bytes, a strict one refuses (S8). It checks both facts.
func nonCanonical(t testing.TB, seg string) string {
	t.Helper()
	if r := len(seg) % 4; r != 2 && r != 3 {
		t.Fatalf("segment length %d has no unused bits", len(seg))
	}
	i := strings.IndexByte(b64Alphabet, seg[len(seg)-1])
	out := seg[:len(seg)-1] + string(b64Alphabet[i|1])
	a, err1 := base64.RawURLEncoding.DecodeString(seg)
	b, err2 := base64.RawURLEncoding.DecodeString(out)
	if out == seg || err1 != nil || err2 != nil || string(a) != string(b) {
		t.Fatalf("nonCanonical(%q) = %q is not a lenient alias", seg, out)
	}
	if _, err := base64.RawURLEncoding.Strict().DecodeString(out); err == nil {
		t.Fatalf("nonCanonical(%q): strict decoding accepts %q", seg, out)
	}
	return out
}

// vcase is one catalogue case.
type vcase struct {
	name    string
	raw     string
	want    error           // nil: allow
	prov    func(*Provider) // changes to the default provider
	src     *fakeSource     // nil: a fresh source over the main set that refuses refreshes
	others  []*Provider     // more providers in the same verifier
	refresh int             // expected RefreshForKID calls on src
	check   func(t *testing.T, tok *Token, err error)
}

func runCases(t *testing.T, cases []vcase) {
	t.Helper()
	f := fx(t)
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case name %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if src == nil {
				src = &fakeSource{set: f.set}
			}
			p := testProvider(src, tc.prov)
			v := newTestVerifier(t, append([]*Provider{p}, tc.others...)...)
			tok, err := v.Verify(context.Background(), tc.raw)
			if tok == nil {
				t.Fatal("Verify returned a nil *Token")
			}
			checkErr(t, err, tc.want)
			if got := src.refreshCount(); got != tc.refresh {
				t.Errorf("RefreshForKID called %d times, want %d", got, tc.refresh)
			}
			if want := expectedProvider(v, tc.raw, err); tok.Provider != want {
				t.Errorf("Token.Provider = %v, want %v", providerName(tok.Provider), providerName(want))
			}
			if tc.want == nil {
				checkAllowed(t, tok, tc.raw)
			}
			if tc.check != nil {
				tc.check(t, tok, err)
			}
		})
	}
}

func providerName(p *Provider) string {
	if p == nil {
		return "<nil>"
	}
	return p.Name
}

// expectedProvider is the provider Verify must report: the one whose issuer equals the
// token's iss once the token parsed, or the near miss for iss_mismatch; nil before that.
func expectedProvider(v *Verifier, raw string, err error) *Provider {
	p, perr := parseCompact(raw)
	if perr != nil {
		return nil
	}
	iss, _ := p.claims["iss"].(string)
	if cp := v.byIssuer[iss]; cp != nil {
		return cp.Provider
	}
	if errors.Is(err, ErrIssMismatch) {
		return v.loose[looseIssuer(iss)].Provider
	}
	return nil
}

// checkAllowed checks what an allowed token carries: the signed payload and its claims.
func checkAllowed(t *testing.T, tok *Token, raw string) {
	t.Helper()
	_, ps, _ := strings.Cut(raw, ".")
	ps, _, _ = strings.Cut(ps, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(ps)
	if string(tok.Payload) != string(payload) {
		t.Errorf("Token.Payload = %q, want the signed payload %q", tok.Payload, payload)
	}
	if tok.Claims == nil || tok.Issuer != tok.Claims["iss"] || tok.Alg == "" {
		t.Errorf("allowed token lacks claims, issuer or alg: %+v", tok)
	}
	if sub, _ := tok.Claims["sub"].(string); tok.Subject != sub {
		t.Errorf("Token.Subject = %q, want %q", tok.Subject, sub)
	}
}

// serializationCases are the cases of jwt-security.md §3.2, S1-S14.
func serializationCases(t testing.TB) []vcase {
	f := fx(t)
	good := f.tok(t, f.rs256, "rsa", nil)
	h, p, s := segments(t, good)
	std := claimsJSON(t, nil)
	rsHdr := hdr("RS256", "rsa")

	// A payload whose length leaves unused bits in its last base64 character.
	var padded string
	for i := 0; ; i++ {
		padded = claimsJSON(t, map[string]any{"pad": strings.Repeat("x", i)})
		if len(padded)%3 != 0 {
			break
		}
	}
	ncTok := compact(t, f.rs256, rsHdr, padded)
	nh, np, ns := segments(t, ncTok)

	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	shallow := strings.Repeat("[", 100) + strings.Repeat("]", 100)

	cases := []vcase{
		{name: "control/valid RS256", raw: good},
		{name: "S1/empty string", raw: "", want: ErrMalformed},
		{name: "S1/one segment", raw: h, want: ErrMalformed},
		{name: "S1/two segments", raw: h + "." + p, want: ErrMalformed},
		{name: "S1/four segments", raw: good + "." + s, want: ErrMalformed},
		{name: "S1/six segments", raw: good + ".a.b.c", want: ErrMalformed},
		{name: "S1/ten million dots", raw: strings.Repeat(".", 10_000_000), want: ErrMalformed},
		{name: "S2/five-segment JWE", raw: enc([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)) + ".AAAA.AAAA.AAAA.AAAA", want: ErrJWENotSupported},
		{name: "S3/flattened JSON serialization", raw: fmt.Sprintf(`{"payload":%q,"protected":%q,"signature":%q}`, p, h, s), want: ErrMalformed},
		{name: "S3/general JSON serialization with dots", raw: fmt.Sprintf(`{"payload":%q,"signatures":[{"protected":%q,"header":{"x":"a.b.c"},"signature":%q}]}`, p, h, s), want: ErrMalformed},
		{name: "S4/empty header", raw: "." + p + "." + s, want: ErrMalformed},
		{name: "S4/empty payload", raw: compact(t, f.rs256, rsHdr, ""), want: ErrMalformed},
		{name: "S4/empty signature", raw: h + "." + p + ".", want: ErrMalformed},
		{name: "S4/all segments empty", raw: "..", want: ErrMalformed},
		{name: "S5/plus in signature", raw: h + "." + p + ".+" + s[1:], want: ErrBadEncoding},
		{name: "S5/slash in payload", raw: h + "./" + p[1:] + "." + s, want: ErrBadEncoding},
		{name: "S5/padding on signature", raw: good + "==", want: ErrBadEncoding},
		{name: "S5/padding on header", raw: h + "=." + p + "." + s, want: ErrBadEncoding},
		{name: "S6/space in signature", raw: h + "." + p + "." + s[:10] + " " + s[10:], want: ErrBadEncoding},
		{name: "S6/TAB in payload", raw: h + "." + p[:7] + "\t" + p[7:] + "." + s, want: ErrBadEncoding},
		{name: "S6/trailing space", raw: good + " ", want: ErrBadEncoding},
		{name: "S7/CRLF in payload", raw: h + "." + p[:5] + "\r\n" + p[5:] + "." + s, want: ErrBadEncoding},
		{name: "S7/LF in header", raw: h[:3] + "\n" + h[3:] + "." + p + "." + s, want: ErrBadEncoding},
		{name: "S7/CR in signature", raw: h + "." + p + "." + s[:3] + "\r" + s[3:], want: ErrBadEncoding},
		{name: "S8/non-canonical signature", raw: nh + "." + np + "." + nonCanonical(t, ns), want: ErrBadEncoding},
		{name: "S8/non-canonical payload", raw: nh + "." + nonCanonical(t, np) + "." + ns, want: ErrBadEncoding},
		{name: "S8/control canonical payload", raw: ncTok},
		{name: "S9/header is an array", raw: compact(t, f.rs256, `["RS256"]`, std), want: ErrMalformed},
		{name: "S9/header is a string", raw: compact(t, f.rs256, `"RS256"`, std), want: ErrMalformed},
		{name: "S9/header with BOM", raw: compact(t, f.rs256, "\ufeff"+rsHdr, std), want: ErrMalformed},
		{name: "S9/header with trailing object", raw: compact(t, f.rs256, rsHdr+`{}`, std), want: ErrMalformed},
		{name: "S9/header with trailing garbage", raw: compact(t, f.rs256, rsHdr+` x`, std), want: ErrMalformed},
		{name: "S9/header not JSON", raw: compact(t, f.rs256, `{"alg":"RS256",}`, std), want: ErrMalformed},
		{name: "S9/header whitespace allowed", raw: compact(t, f.rs256, " \n{ \"alg\" : \"RS256\" ,\t\"kid\":\"rsa\" }\n", std)},
		{name: "S10/payload null", raw: compact(t, f.rs256, rsHdr, "null"), want: ErrPayloadNotObject},
		{name: "S10/payload null with spaces", raw: compact(t, f.rs256, rsHdr, " null\n"), want: ErrPayloadNotObject},
		{name: "S11/payload array", raw: compact(t, f.rs256, rsHdr, "["+std+"]"), want: ErrPayloadNotObject},
		{name: "S11/payload string", raw: compact(t, f.rs256, rsHdr, `"sub"`), want: ErrPayloadNotObject},
		{name: "S11/payload number", raw: compact(t, f.rs256, rsHdr, `42`), want: ErrPayloadNotObject},
		{name: "S11/payload true", raw: compact(t, f.rs256, rsHdr, `true`), want: ErrPayloadNotObject},
		{name: "S11/payload with BOM", raw: compact(t, f.rs256, rsHdr, "\ufeff"+std), want: ErrPayloadNotObject},
		{name: "S11/payload with trailing object", raw: compact(t, f.rs256, rsHdr, std+`{"sub":"mallory"}`), want: ErrPayloadNotObject},
		{name: "S11/payload with trailing garbage", raw: compact(t, f.rs256, rsHdr, std+` x`), want: ErrPayloadNotObject},
		{name: "S11/payload not JSON", raw: compact(t, f.rs256, rsHdr, `{"iss":}`), want: ErrMalformed},
		{name: "S12/invalid UTF-8 in payload", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, map[string]any{"sub": del}, "\"sub\":\"al\xffice\"")), want: ErrInvalidUTF8},
		{name: "S12/invalid UTF-8 in header", raw: compact(t, f.rs256, hdr("RS256", "rsa", "\"x\":\"\xc3\x28\""), std), want: ErrInvalidUTF8},
		{name: "S12/overlong encoding", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, "\"x\":\"\xc0\xaf\"")), want: ErrInvalidUTF8},
		{name: "S12/encoded surrogate", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, "\"x\":\"\xed\xa0\x80\"")), want: ErrInvalidUTF8},
		{name: "S12/invalid UTF-8 outside strings", raw: compact(t, f.rs256, rsHdr, std+"\xff"), want: ErrInvalidUTF8},
		{name: "S12/lone high surrogate escape", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, map[string]any{"sub": del}, `"sub":"x\ud800"`)), want: ErrInvalidUTF8},
		{name: "S12/lone low surrogate escape", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, map[string]any{"sub": del}, `"sub":"x\udc00y"`)), want: ErrInvalidUTF8},
		{name: "S12/reversed surrogate pair", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\udc00\ud800"`)), want: ErrInvalidUTF8},
		{name: "S12/high surrogate then other escape", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\ud800\u0041"`)), want: ErrInvalidUTF8},
		{name: "S12/high surrogate at end of string", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\uD800"`)), want: ErrInvalidUTF8},
		{name: "S12/lone surrogate in header", raw: compact(t, f.rs256, hdr("RS256", "rsa", `"x":"\ud800"`), std), want: ErrInvalidUTF8},
		{name: "S12/lone surrogate in member name", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"\udfff":1`)), want: ErrInvalidUTF8},
		{name: "S12/escaped surrogate pair allowed", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\ud83d\ude00\uD83D\uDE00"`))},
		{name: "S12/escaped backslash before u allowed", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\\ud800\\\\"`))},
		{name: "S12/U+FFFD allowed", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"x":"\ufffd`+"\uFFFD\"", `"y":"é\u00e9\n\"\/"`))},
		{name: "S13/duplicate alg", raw: compact(t, f.rs256, `{"alg":"RS256","kid":"rsa","alg":"RS256"}`, std), want: ErrDuplicateMember},
		{name: "S13/duplicate alg none", raw: compact(t, f.rs256, `{"alg":"none","kid":"rsa","alg":"RS256"}`, std), want: ErrDuplicateMember},
		{name: "S13/duplicate kid", raw: compact(t, f.rs256, `{"alg":"RS256","kid":"rsa","kid":"p256"}`, std), want: ErrDuplicateMember},
		{name: "S13/duplicate sub", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"sub":"mallory"`)), want: ErrDuplicateMember},
		{name: "S13/duplicate iss", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"iss":"https://other.example"`)), want: ErrDuplicateMember},
		{name: "S13/duplicate through an escape", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"s\u0075b":"mallory"`)), want: ErrDuplicateMember},
		{name: "S13/duplicate in nested object", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"ctx":{"a":1,"b":[{"c":1}],"a":2}`)), want: ErrDuplicateMember},
		{name: "S13/duplicate in object inside array", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"arr":[1,{"a":1,"a":2}]`)), want: ErrDuplicateMember},
		{name: "S13/same name in sibling objects allowed", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"a":{"x":1},"b":{"x":1},"c":[{"x":1},{"x":2}]`))},
		{name: "S13/case variants are distinct", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"Sub":"mallory","SUB":"eve"`))},
		{name: "S14/payload nesting over 10000", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"deep":`+deep)), want: ErrMalformed},
		{name: "S14/header nesting over 10000", raw: compact(t, f.rs256, hdr("RS256", "rsa", `"deep":`+deep), std), want: ErrMalformed},
		{name: "S14/nesting 100 allowed", raw: compact(t, f.rs256, rsHdr, claimsPlus(t, nil, `"deep":`+shallow))},
	}
	return cases
}

// TestCatalogueSerialization runs serializationCases through Verify.
func TestCatalogueSerialization(t *testing.T) { runCases(t, serializationCases(t)) }

// algorithmKeyCases are the cases of §3.3, K1-K14 (K15, ROCA, is not detected: see the Wycheproof
// JWK test).
func algorithmKeyCases(t testing.TB) []vcase {
	f := fx(t)
	std := claimsJSON(t, nil)
	in := func(alg, kid string) string { return enc([]byte(hdr(alg, kid))) + "." + enc([]byte(std)) }
	hmacTok := func(alg string, key []byte) string {
		i := in(alg, "rsa")
		m := hmac.New(sha256.New, key)
		m.Write([]byte(i))
		return i + "." + enc(m.Sum(nil))
	}
	der, err := x509.MarshalPKIXPublicKey(&f.k.rsa.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	es := f.tok(t, f.es256, "p256", nil)
	esSig := sigOf(t, es)
	n256 := elliptic.P256().Params().N
	ecSig := func(r, s *big.Int) []byte { return rawECDSA(elliptic.P256(), r, s) }
	r0 := new(big.Int).SetBytes(esSig[:32])
	s0 := new(big.Int).SetBytes(esSig[32:])
	h256 := sha256.Sum256([]byte(es[:strings.LastIndexByte(es, '.')]))
	derSig, err := ecdsa.SignASN1(rand.Reader, f.k.p256, h256[:])
	if err != nil {
		t.Fatal(err)
	}
	es512 := f.tok(t, f.es512, "p521", nil)
	es512Sig := sigOf(t, es512)
	n521 := elliptic.P521().Params().N
	small := &fakeSource{set: jwks.NewSet([]*jwks.Key{{KID: "small", Public: &f.k.rsa1024.PublicKey}})}

	cases := []vcase{
		{name: "K1/none with empty signature", raw: in("none", "rsa") + ".", want: ErrAlgNotAllowed},
		{name: "K1/None with empty signature", raw: in("None", "rsa") + ".", want: ErrAlgNotAllowed},
		{name: "K1/NONE with empty signature", raw: in("NONE", "rsa") + ".", want: ErrAlgNotAllowed},
		{name: "K1/nOnE with a signature", raw: compact(t, f.rs256, hdr("nOnE", "rsa"), std), want: ErrAlgNotAllowed},
		{name: "K1/none without kid", raw: in("none", "") + ".", want: ErrAlgNotAllowed},
		{name: "K2/HS256 keyed with the PEM public key", raw: hmacTok("HS256", pemKey), want: ErrAlgNotAllowed},
		{name: "K2/HS256 keyed with the DER public key", raw: hmacTok("HS256", der), want: ErrAlgNotAllowed},
		{name: "K2/HS384", raw: hmacTok("HS384", pemKey), want: ErrAlgNotAllowed},
		{name: "K2/HS512", raw: hmacTok("HS512", pemKey), want: ErrAlgNotAllowed},
		{name: "K3/ES256K", raw: compact(t, f.es256, hdr("ES256K", "p256"), std), want: ErrAlgNotAllowed},
		{name: "K3/ML-DSA-44", raw: compact(t, f.rs256, hdr("ML-DSA-44", "rsa"), std), want: ErrAlgNotAllowed},
		{name: "K3/Ed25519 fully specified", raw: compact(t, f.eddsa, hdr("Ed25519", "ed"), std), want: ErrAlgNotAllowed},
		{name: "K3/rs256 lower case", raw: compact(t, f.rs256, hdr("rs256", "rsa"), std), want: ErrAlgNotAllowed},
		{name: "K3/eddsa lower case", raw: compact(t, f.eddsa, hdr("eddsa", "ed"), std), want: ErrAlgNotAllowed},
		{name: "K3/alg missing", raw: compact(t, f.rs256, `{"kid":"rsa"}`, std), want: ErrAlgNotAllowed},
		{name: "K3/alg empty", raw: compact(t, f.rs256, hdr("", "rsa"), std), want: ErrAlgNotAllowed},
		{name: "K3/alg null", raw: compact(t, f.rs256, `{"alg":null,"kid":"rsa"}`, std), want: ErrAlgNotAllowed},
		{name: "K3/alg number", raw: compact(t, f.rs256, `{"alg":256,"kid":"rsa"}`, std), want: ErrAlgNotAllowed},
		{name: "K3/alg array", raw: compact(t, f.rs256, `{"alg":["RS256"],"kid":"rsa"}`, std), want: ErrAlgNotAllowed},
		{name: "K3/alg with trailing space", raw: compact(t, f.rs256, hdr("RS256 ", "rsa"), std), want: ErrAlgNotAllowed},
		{name: "K3/not in the provider's algorithms", raw: f.tok(t, f.ps256, "rsa", nil), want: ErrAlgNotAllowed,
			prov: func(p *Provider) { p.Algorithms = []string{"RS256", "ES256"} }},
		{name: "K4/RS256 header EC key", raw: compact(t, f.rs256, hdr("RS256", "p256"), std), want: ErrKeyAlgMismatch},
		{name: "K4/PS256 header Ed25519 key", raw: compact(t, f.ps256, hdr("PS256", "ed"), std), want: ErrKeyAlgMismatch},
		{name: "K4/ES256 header RSA key", raw: compact(t, f.es256, hdr("ES256", "rsa"), std), want: ErrKeyAlgMismatch},
		{name: "K4/ES256 header P-384 key", raw: compact(t, f.es256, hdr("ES256", "p384"), std), want: ErrKeyAlgMismatch},
		{name: "K4/ES384 header P-521 key", raw: compact(t, f.es384, hdr("ES384", "p521"), std), want: ErrKeyAlgMismatch},
		{name: "K4/ES512 header P-256 key", raw: compact(t, f.es256, hdr("ES512", "p256"), std), want: ErrKeyAlgMismatch},
		{name: "K4/EdDSA header RSA key", raw: compact(t, f.eddsa, hdr("EdDSA", "rsa"), std), want: ErrKeyAlgMismatch},
		{name: "K5/JWK alg RS256, token PS256, same key", raw: compact(t, signer{alg: "PS256", key: f.k.rsaB}, hdr("PS256", "rs-bound"), std), want: ErrKeyAlgMismatch},
		{name: "K5/JWK alg RS256, token RS384, same key", raw: compact(t, signer{alg: "RS384", key: f.k.rsaB}, hdr("RS384", "rs-bound"), std), want: ErrKeyAlgMismatch},
		{name: "K5/control JWK alg RS256, token RS256", raw: compact(t, f.rsB, hdr("RS256", "rs-bound"), std)},
		{name: "K6/use enc", raw: compact(t, f.rsB, hdr("RS256", "enc"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K6/key_ops lacks verify", raw: compact(t, f.rsB, hdr("RS256", "ops-enc"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K6/control key_ops has verify", raw: compact(t, f.rsB, hdr("RS256", "ops-verify"), std)},
		{name: "K7/PS256 salt 0", raw: compact(t, f.ps256.withSalt(0), hdr("PS256", "rsa"), std), want: ErrBadSignature},
		{name: "K7/PS256 salt 20", raw: compact(t, f.ps256.withSalt(20), hdr("PS256", "rsa"), std), want: ErrBadSignature},
		{name: "K7/PS256 salt 64", raw: compact(t, f.ps256.withSalt(64), hdr("PS256", "rsa"), std), want: ErrBadSignature},
		{name: "K7/PS256 maximal salt", raw: compact(t, f.ps256.withSalt(rsa.PSSSaltLengthAuto), hdr("PS256", "rsa"), std), want: ErrBadSignature},
		{name: "K7/PS384 salt 32", raw: compact(t, f.ps384.withSalt(32), hdr("PS384", "rsa"), std), want: ErrBadSignature},
		{name: "K7/PS512 salt 32", raw: compact(t, f.ps512.withSalt(32), hdr("PS512", "rsa"), std), want: ErrBadSignature},
		{name: "K7/control PS256 salt 32", raw: compact(t, f.ps256.withSalt(32), hdr("PS256", "rsa"), std)},
		{name: "K7/control PS384 salt 48", raw: compact(t, f.ps384.withSalt(48), hdr("PS384", "rsa"), std)},
		{name: "K7/control PS512 salt 64", raw: compact(t, f.ps512.withSalt(64), hdr("PS512", "rsa"), std)},
		{name: "K8/ES256 r=s=0", raw: withSig(es, make([]byte, 64)), want: ErrBadSignature},
		{name: "K8/ES256 r=0", raw: withSig(es, ecSig(big.NewInt(0), s0)), want: ErrBadSignature},
		{name: "K8/ES256 s=0", raw: withSig(es, ecSig(r0, big.NewInt(0))), want: ErrBadSignature},
		{name: "K8/ES256 r=n", raw: withSig(es, ecSig(n256, s0)), want: ErrBadSignature},
		{name: "K8/ES256 s=n", raw: withSig(es, ecSig(r0, n256)), want: ErrBadSignature},
		{name: "K8/ES256 r=n s=n", raw: withSig(es, ecSig(n256, n256)), want: ErrBadSignature},
		{name: "K8/ES256 r all ones", raw: withSig(es, append(bytes32(0xff), esSig[32:]...)), want: ErrBadSignature},
		{name: "K8/ES512 r=n", raw: withSig(es512, append(n521.FillBytes(make([]byte, 66)), es512Sig[66:]...)), want: ErrBadSignature},
		{name: "K8/control ES256", raw: es},
		{name: "K9/ES256 DER signature", raw: withSig(es, derSig), want: ErrBadSignature},
		{name: "K9/ES256 63 bytes", raw: withSig(es, esSig[1:]), want: ErrBadSignature},
		{name: "K9/ES256 65 bytes", raw: withSig(es, append([]byte{0}, esSig...)), want: ErrBadSignature},
		{name: "K9/ES256 r and s swapped", raw: withSig(es, append(append([]byte{}, esSig[32:]...), esSig[:32]...)), want: ErrBadSignature},
		{name: "K9/ES512 P-256-sized signature", raw: withSig(es512, esSig), want: ErrBadSignature},
		{name: "K9/control ES512 fixed width", raw: es512},
		{name: "K10/RSA-1024 in the JWKS", raw: compact(t, signer{alg: "RS256", key: f.k.rsa1024}, hdr("RS256", "rsa1024"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K10/RSA-1024 in a set built in process", raw: compact(t, signer{alg: "RS256", key: f.k.rsa1024}, hdr("RS256", "small"), std), want: ErrKeyAlgMismatch, src: small},
		{name: "K10/RSA-1024 without kid in a set built in process", raw: compact(t, signer{alg: "RS256", key: f.k.rsa1024}, hdr("RS256", ""), std), want: ErrKeyAlgMismatch, src: &fakeSource{set: small.set}},
		{name: "K11/RSA e even", raw: compact(t, f.rsB, hdr("RS256", "e-even"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K11/RSA e=1", raw: compact(t, f.rsB, hdr("RS256", "e-one"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K11/RSA over 4096 bits", raw: compact(t, f.rsB, hdr("RS256", "rsa-big"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K12/EC point off the curve", raw: compact(t, signer{alg: "ES256", key: f.k.p256B}, hdr("ES256", "ec-off"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K12/weak Ed25519 key", raw: compact(t, f.eddsa, hdr("EdDSA", "ed-weak"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K13/oct key, RS256 token", raw: compact(t, f.rs256, hdr("RS256", "oct"), std), want: ErrKIDUnknown, refresh: 1},
		{name: "K13/oct key, HS256 token", raw: func() string {
			i := in("HS256", "oct")
			m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
			m.Write([]byte(i))
			return i + "." + enc(m.Sum(nil))
		}(), want: ErrAlgNotAllowed},
		{name: "K14/private key material", raw: compact(t, f.rsB, hdr("RS256", "priv"), std), want: ErrKIDUnknown, refresh: 1},
	}
	return cases
}

// TestCatalogueAlgorithmAndKey runs algorithmKeyCases through Verify.
func TestCatalogueAlgorithmAndKey(t *testing.T) { runCases(t, algorithmKeyCases(t)) }

// catalogueCases is every catalogue case (the fuzz seeds).
func catalogueCases(t testing.TB) []vcase {
	var all []vcase
	for _, cases := range [][]vcase{serializationCases(t), algorithmKeyCases(t), algorithmCases(t), headerCases(t), bindingCases(t), claimsCases(t)} {
		all = append(all, cases...)
	}
	return all
}

func bytes32(b byte) []byte {
	out := make([]byte, 32)
	for i := range out {
		out[i] = b
	}
	return out
}

// algorithmCases are the controls of §3.3: every supported algorithm verifies.
func algorithmCases(t testing.TB) []vcase {
	f := fx(t)
	cases := []vcase{}
	for _, c := range []struct {
		s   signer
		kid string
	}{
		{f.rs256, "rsa"}, {f.rs384, "rsa"}, {f.rs512, "rsa"},
		{f.ps256, "rsa"}, {f.ps384, "rsa"}, {f.ps512, "rsa"},
		{f.es256, "p256"}, {f.es384, "p384"}, {f.es512, "p521"},
		{f.eddsa, "ed"},
	} {
		raw := f.tok(t, c.s, c.kid, nil)
		alg, kid := c.s.alg, c.kid
		cases = append(cases, vcase{name: "allow/" + alg, raw: raw, check: func(t *testing.T, tok *Token, _ error) {
			if tok.Alg != alg || tok.KID != kid || tok.Subject != "alice" || tok.Issuer != testIssuer {
				t.Errorf("token = alg %q kid %q sub %q iss %q, want %s %s alice %s", tok.Alg, tok.KID, tok.Subject, tok.Issuer, alg, kid, testIssuer)
			}
			if n, ok := tok.Claims["exp"].(interface{ Int64() (int64, error) }); !ok {
				t.Errorf("exp claim is %T, want a json.Number", tok.Claims["exp"])
			} else if v, _ := n.Int64(); v != testNow.Unix()+600 {
				t.Errorf("exp = %d", v)
			}
		}})
	}
	return cases
}

// TestCatalogueAlgorithms runs algorithmCases through Verify.
func TestCatalogueAlgorithms(t *testing.T) { runCases(t, algorithmCases(t)) }

// headerCases are the cases of §3.4, H1-H14, with the kid and refresh rules.
func headerCases(t testing.TB) []vcase {
	f := fx(t)
	std := claimsJSON(t, nil)
	rs := func(extra ...string) string { return compact(t, f.rs256, hdr("RS256", "rsa", extra...), std) }
	typ := func(v string) string { return rs(`"typ":` + v) }
	strict := func(p *Provider) { p.TokenTypes = []string{"at+jwt"} }

	kidless := jwk(t, &f.k.rsa.PublicKey, "", "")
	delete(kidless, "kid")
	oneKey := func() *fakeSource { return &fakeSource{set: keySet(t, jwk(t, &f.k.rsa.PublicKey, "rsa", ""))} }
	rotated := keySet(t, jwk(t, &f.k.rsa.PublicKey, "rsa", ""), jwk(t, &f.k.rsaB.PublicKey, "new", ""))

	attackerJWK, err := json.Marshal(jwk(t, &f.k.rsaAttacker.PublicKey, "", ""))
	if err != nil {
		t.Fatal(err)
	}
	ourJWK, err := json.Marshal(jwk(t, &f.k.rsa.PublicKey, "rsa", ""))
	if err != nil {
		t.Fatal(err)
	}
	attackerPriv, err := jose.JSONWebKey{Key: f.k.rsaAttacker}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "attacker"}, NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &f.k.rsaAttacker.PublicKey, f.k.rsaAttacker)
	if err != nil {
		t.Fatal(err)
	}
	x5c := `"x5c":["` + base64.StdEncoding.EncodeToString(cert) + `"]`
	jku := `"jku":"https://attacker.example/jwks.json"`
	x5u := `"x5u":"https://attacker.example/cert.pem"`

	cases := []vcase{
		{name: "H1/no kid, several usable keys", raw: f.tok(t, f.rs256, "", nil), want: ErrKIDRequired},
		{name: "H1/no kid, one key in the set", raw: f.tok(t, f.rs256, "", nil), src: oneKey()},
		{name: "H1/no kid, one kid-less key", raw: f.tok(t, f.rs256, "", nil), src: &fakeSource{set: keySet(t, kidless)}},
		{name: "H1/no kid, one key fits the alg", raw: f.tok(t, f.es256, "", nil),
			src: &fakeSource{set: keySet(t, jwk(t, &f.k.rsa.PublicKey, "rsa", ""), jwk(t, &f.k.p256.PublicKey, "p256", ""), jwk(t, f.k.ed.Public(), "ed", ""))}},
		{name: "H1/no kid, the other RSA key is bound to RS256", raw: f.tok(t, f.ps256, "", nil),
			src: &fakeSource{set: keySet(t, jwk(t, &f.k.rsa.PublicKey, "rsa", ""), jwk(t, &f.k.rsaB.PublicKey, "rs-bound", "RS256"))}},
		{name: "H1/no kid, the one fitting key did not sign", raw: f.tok(t, f.attacker, "", nil), want: ErrBadSignature, src: oneKey()},
		{name: "H1/no kid, no key fits the alg", raw: f.tok(t, f.es256, "", nil), want: ErrKeyAlgMismatch, src: oneKey()},
		{name: "H1/no kid, two P-256 keys", raw: f.tok(t, f.es256, "", nil), want: ErrKIDRequired,
			src: &fakeSource{set: keySet(t, jwk(t, &f.k.p256.PublicKey, "a", ""), jwk(t, &f.k.p256B.PublicKey, "b", ""))}},
		{name: "H2/kid unknown", raw: f.tok(t, f.rs256, "unknown", nil), want: ErrKIDUnknown, refresh: 1},
		{name: "H2/kid unknown, rotation publishes it", raw: f.tok(t, f.rsB, "new", nil), refresh: 1,
			src: &fakeSource{set: f.set, fresh: rotated}},
		{name: "H2/kid unknown, rotation does not publish it", raw: f.tok(t, f.rsB, "newer", nil), want: ErrKIDUnknown, refresh: 1,
			src: &fakeSource{set: f.set, fresh: rotated}},
		{name: "H2/kid unknown, rotated key does not fit the alg", raw: compact(t, f.es256, hdr("ES256", "new"), std), want: ErrKeyAlgMismatch, refresh: 1,
			src: &fakeSource{set: f.set, fresh: rotated}},
		{name: "H2/bad signature with a known kid: no refresh", raw: f.tok(t, f.attacker, "rsa", nil), want: ErrBadSignature},
		{name: "H2/duplicate kid, second candidate verifies", raw: f.tok(t, f.rs256, "dup", nil)},
		{name: "H2/duplicate kid, no candidate verifies", raw: f.tok(t, f.attacker, "dup", nil), want: ErrBadSignature},
		{name: "H2/expired with unknown kid: no refresh", raw: f.tok(t, f.rs256, "unknown", map[string]any{"exp": testNow.Unix() - 3600}), want: ErrExpired},
		{name: "H2/not yet valid with unknown kid: no refresh", raw: f.tok(t, f.rs256, "unknown", map[string]any{"nbf": testNow.Unix() + 3600}), want: ErrNotYetValid},
		{name: "H2/wrong audience with unknown kid: no refresh", raw: f.tok(t, f.rs256, "unknown", map[string]any{"aud": "other"}), want: ErrAudMismatch},
		{name: "H2/exp missing with unknown kid: no refresh", raw: f.tok(t, f.rs256, "unknown", map[string]any{"exp": del}), want: ErrExpMissing},
		{name: "H2/typ mismatch with unknown kid: no refresh", raw: compact(t, f.rs256, hdr("RS256", "unknown", `"typ":"dpop+jwt"`), std), want: ErrTypMismatch},
		{name: "H2/alg not allowed with unknown kid: no refresh", raw: compact(t, f.rs256, hdr("HS256", "unknown"), std), want: ErrAlgNotAllowed},
		{name: "H3/kid number", raw: compact(t, f.rs256, `{"alg":"RS256","kid":7}`, std), want: ErrMalformed},
		{name: "H3/kid null", raw: compact(t, f.rs256, `{"alg":"RS256","kid":null}`, std), want: ErrMalformed},
		{name: "H3/kid object", raw: compact(t, f.rs256, `{"alg":"RS256","kid":{"k":"rsa"}}`, std), want: ErrMalformed},
		{name: "H3/kid 257 bytes", raw: f.tok(t, f.rs256, strings.Repeat("k", 257), nil), want: ErrMalformed},
		{name: "H3/kid 100 KB", raw: f.tok(t, f.rs256, strings.Repeat("k", 100_000), nil), want: ErrMalformed},
		{name: "H3/kid 256 bytes is only unknown", raw: f.tok(t, f.rs256, strings.Repeat("k", 256), nil), want: ErrKIDUnknown, refresh: 1},
		{name: "H3/kid path traversal", raw: f.tok(t, f.rs256, "../../etc/passwd", nil), want: ErrMalformed},
		{name: "H3/kid backslash traversal", raw: f.tok(t, f.rs256, `..\..\keys`, nil), want: ErrMalformed},
		{name: "H3/kid NUL", raw: f.tok(t, f.rs256, "rsa\x00", nil), want: ErrMalformed},
		{name: "H3/kid newline", raw: f.tok(t, f.rs256, "rsa\nx", nil), want: ErrMalformed},
		{name: "H3/kid DEL", raw: f.tok(t, f.rs256, "rsa\x7f", nil), want: ErrMalformed},
		{name: "H4/jku to an attacker is ignored", raw: rs(jku)},
		{name: "H4/x5u to an attacker is ignored", raw: rs(x5u)},
		{name: "H4/jku with the attacker's signature", raw: compact(t, f.attacker, hdr("RS256", "rsa", jku), std), want: ErrBadSignature},
		{name: "H4/x5u with the attacker's signature, no kid", raw: compact(t, f.attacker, hdr("RS256", "", x5u), std), want: ErrBadSignature, src: oneKey()},
		{name: "H5/embedded jwk of the attacker", raw: compact(t, f.attacker, hdr("RS256", "rsa", `"jwk":`+string(attackerJWK)), std), want: ErrBadSignature},
		{name: "H5/embedded jwk of the attacker, no kid", raw: compact(t, f.attacker, hdr("RS256", "", `"jwk":`+string(attackerJWK)), std), want: ErrBadSignature, src: oneKey()},
		{name: "H5/embedded jwk of the attacker, kid unknown", raw: compact(t, f.attacker, hdr("RS256", "attacker", `"jwk":`+string(attackerJWK)), std), want: ErrKIDUnknown, refresh: 1},
		{name: "H5/embedded jwk of our key is harmless", raw: rs(`"jwk":` + string(ourJWK))},
		{name: "H5/embedded private jwk", raw: compact(t, f.attacker, hdr("RS256", "rsa", `"jwk":`+string(attackerPriv)), std), want: ErrMalformed},
		{name: "H5/x5c of the attacker", raw: compact(t, f.attacker, hdr("RS256", "rsa", x5c), std), want: ErrBadSignature},
		{name: "H5/garbage x5c", raw: rs(`"x5c":["AAAA"]`), want: ErrMalformed},
		{name: "H5/x5c not base64", raw: rs(`"x5c":["!!"]`), want: ErrMalformed},
		{name: "H6/crit exp", raw: rs(`"crit":["exp"]`, `"exp":1`), want: ErrUnsupportedCrit},
		{name: "H6/crit unknown extension", raw: rs(`"crit":["urn:example"]`, `"urn:example":true`), want: ErrUnsupportedCrit},
		{name: "H7/crit empty", raw: rs(`"crit":[]`), want: ErrUnsupportedCrit},
		{name: "H7/crit null", raw: rs(`"crit":null`), want: ErrUnsupportedCrit},
		{name: "H8/crit b64 with b64 false", raw: rs(`"crit":["b64"]`, `"b64":false`), want: ErrUnsupportedHeader},
		{name: "H9/b64 false without crit", raw: rs(`"b64":false`), want: ErrUnsupportedHeader},
		{name: "H9/b64 true", raw: rs(`"b64":true`), want: ErrUnsupportedHeader},
		{name: "H10/zip DEF", raw: rs(`"zip":"DEF"`), want: ErrUnsupportedHeader},
		{name: "H11/cty JWT", raw: rs(`"cty":"JWT"`), want: ErrNestedJWT},
		{name: "H11/cty jwt", raw: rs(`"cty":"jwt"`), want: ErrNestedJWT},
		{name: "H11/cty application/jwt", raw: rs(`"cty":"application/jwt"`), want: ErrNestedJWT},
		{name: "H11/other cty", raw: rs(`"cty":"json"`), want: ErrUnsupportedHeader},
		{name: "H11/cty not a string", raw: rs(`"cty":1`), want: ErrUnsupportedHeader},
		{name: "H12/typ JWT", raw: typ(`"JWT"`)},
		{name: "H12/typ jwt", raw: typ(`"jwt"`)},
		{name: "H12/typ application/jwt", raw: typ(`"application/jwt"`)},
		{name: "H12/typ at+jwt", raw: typ(`"at+jwt"`)},
		{name: "H12/typ application/at+jwt", raw: typ(`"application/at+jwt"`)},
		{name: "H12/typ AT+JWT", raw: typ(`"AT+JWT"`)},
		{name: "H12/typ absent", raw: rs()},
		{name: "H12/typ dpop+jwt", raw: typ(`"dpop+jwt"`), want: ErrTypMismatch},
		{name: "H12/typ secevent+jwt", raw: typ(`"secevent+jwt"`), want: ErrTypMismatch},
		{name: "H12/typ JOSE", raw: typ(`"JOSE"`), want: ErrTypMismatch},
		{name: "H12/typ empty", raw: typ(`""`), want: ErrTypMismatch},
		{name: "H12/typ null", raw: typ(`null`), want: ErrTypMismatch},
		{name: "H12/typ number", raw: typ(`1`), want: ErrTypMismatch},
		{name: "H12/typ with Unicode K", raw: typ(`"at+jw\u212a"`), want: ErrTypMismatch},
		{name: "H12/strict: typ absent", raw: rs(), want: ErrTypMismatch, prov: strict},
		{name: "H12/strict: typ JWT", raw: typ(`"JWT"`), want: ErrTypMismatch, prov: strict},
		{name: "H12/strict: typ at+jwt", raw: typ(`"at+jwt"`), prov: strict},
		{name: "H12/strict: typ application/at+jwt", raw: typ(`"application/at+jwt"`), prov: strict},
		{name: "H13/enc", raw: rs(`"enc":"A256GCM"`), want: ErrUnsupportedHeader},
		{name: "H13/epk", raw: rs(`"epk":{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}`), want: ErrUnsupportedHeader},
		{name: "H13/p2c", raw: rs(`"p2c":1000000`), want: ErrUnsupportedHeader},
		{name: "H13/iv", raw: rs(`"iv":"AAAA"`), want: ErrUnsupportedHeader},
		{name: "H13/tag", raw: rs(`"tag":"AAAA"`), want: ErrUnsupportedHeader},
		{name: "H14/x5t", raw: rs(`"x5t":"AAAA"`)},
		{name: "H14/x5t#S256", raw: rs(`"x5t#S256":"AAAA"`)},
		{name: "H14/custom parameter", raw: rs(`"example.com/custom":{"a":[1,2]}`)},
		{name: "H14/ALG none", raw: rs(`"ALG":"none"`)},
		{name: "H14/Kid other", raw: rs(`"Kid":"p256"`)},
		{name: "H14/TYP dpop+jwt", raw: rs(`"TYP":"dpop+jwt"`)},
		{name: "H14/Crit exp", raw: rs(`"Crit":["exp"]`)},
	}
	return cases
}

// TestCatalogueHeaderParameters runs headerCases through Verify.
func TestCatalogueHeaderParameters(t *testing.T) { runCases(t, headerCases(t)) }

// bindingCases are the cases of §3.5, G1-G4.
func bindingCases(t testing.TB) []vcase {
	f := fx(t)
	good := f.tok(t, f.rs256, "rsa", nil)
	h, p, s := segments(t, good)
	sig := sigOf(t, good)
	flip := func(b []byte, i int) []byte {
		out := append([]byte{}, b...)
		out[i] ^= 1
		return out
	}
	payload, _ := base64.RawURLEncoding.DecodeString(p)
	hx := compact(t, f.rs256, hdr("RS256", "rsa", `"x":"a"`), claimsJSON(t, nil))
	hxh, hxp, hxs := segments(t, hx)
	hxHeader, _ := base64.RawURLEncoding.DecodeString(hxh)
	es := f.tok(t, f.es256, "p256", nil)
	ed := f.tok(t, f.eddsa, "ed", nil)
	other := f.tok(t, f.rs256, "rsa", map[string]any{"sub": "mallory"})

	const issB = "https://b.example"
	srcB := &fakeSource{set: keySet(t, jwk(t, &f.k.rsaB.PublicKey, "b1", ""), jwk(t, &f.k.p256B.PublicKey, "shared", ""))}
	provB := testProvider(srcB, func(p *Provider) { p.Name, p.Issuer = "b", issB })
	bRefreshes := func(want int) func(*testing.T, *Token, error) {
		return func(t *testing.T, tok *Token, _ error) {
			if got := srcB.refreshCount(); got != want {
				t.Errorf("provider b: RefreshForKID called %d times, want %d", got, want)
			}
			srcB.mu.Lock()
			srcB.refreshes = 0
			srcB.mu.Unlock()
		}
	}
	strict := func(p *Provider) {
		p.TokenTypes = []string{"at+jwt"}
		p.RequiredClaims = []string{"sub", "client_id", "iat", "jti"}
	}
	idToken := compact(t, f.rs256, hdr("RS256", "rsa", `"typ":"JWT"`), claimsJSON(t, map[string]any{"aud": "web-client", "nonce": "n-0S6_WzA2Mj"}))

	cases := []vcase{
		{name: "G1/control", raw: good},
		{name: "G1/bit flipped in the signature", raw: withSig(good, flip(sig, len(sig)-1))},
		{name: "G1/first bit flipped in the signature", raw: withSig(good, flip(sig, 0))},
		{name: "G1/bit flipped in the payload", raw: h + "." + enc(flip(payload, strings.Index(string(payload), "alice"))) + "." + s},
		{name: "G1/bit flipped in the header", raw: enc(flip(hxHeader, strings.Index(string(hxHeader), `"a"`)+1)) + "." + hxp + "." + hxs},
		{name: "G1/header member re-encoded with an escape", raw: enc([]byte(strings.Replace(string(hxHeader), `"a"`, `"\u0061"`, 1))) + "." + hxp + "." + hxs},
		{name: "G1/signature cut by one byte", raw: withSig(good, sig[:len(sig)-1])},
		{name: "G1/signature cut in half", raw: withSig(good, sig[:len(sig)/2])},
		{name: "G1/signature padded with a zero byte", raw: withSig(good, append(append([]byte{}, sig...), 0))},
		{name: "G1/signature with a leading zero byte", raw: withSig(good, append([]byte{0}, sig...))},
		{name: "G1/signature of another token", raw: withSig(good, sigOf(t, other))},
		{name: "G1/ES256 bit flipped", raw: withSig(es, flip(sigOf(t, es), 5))},
		{name: "G1/EdDSA bit flipped", raw: withSig(ed, flip(sigOf(t, ed), 5))},
		{name: "G1/EdDSA signature cut", raw: withSig(ed, sigOf(t, ed)[:63])},
		{name: "G2/signed by A, iss B, A's kid", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": issB}), want: ErrKIDUnknown,
			others: []*Provider{provB}, check: bRefreshes(1)},
		{name: "G2/signed by A, iss B, kid B publishes for another key", raw: f.tok(t, f.rs256, "b1", map[string]any{"iss": issB}), want: ErrBadSignature,
			others: []*Provider{provB}, check: bRefreshes(0)},
		{name: "G2/signed by A, iss B, kid names an EC key in B", raw: f.tok(t, f.rs256, "shared", map[string]any{"iss": issB}), want: ErrKeyAlgMismatch,
			others: []*Provider{provB}, check: bRefreshes(0)},
		{name: "G2/control signed by B for B", raw: f.tok(t, f.rsB, "b1", map[string]any{"iss": issB}),
			others: []*Provider{provB}, check: bRefreshes(0)},
		{name: "G3/iss matches no provider", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": "https://evil.example"}), want: ErrIssuerUnknown},
		{name: "G3/iss missing", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": del}), want: ErrIssuerUnknown},
		{name: "G3/iss null", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": nil}), want: ErrIssuerUnknown},
		{name: "G3/iss empty", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": ""}), want: ErrIssuerUnknown},
		{name: "G3/iss is a prefix", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": "https://issuer.exampl"}), want: ErrIssuerUnknown},
		{name: "G3/iss with a path", raw: f.tok(t, f.rs256, "rsa", map[string]any{"iss": testIssuer + "/tenant"}), want: ErrIssuerUnknown},
		{name: "G4/other audience", raw: f.tok(t, f.rs256, "rsa", map[string]any{"aud": "billing"}), want: ErrAudMismatch},
		{name: "G4/id_token as access token", raw: idToken, want: ErrAudMismatch},
		{name: "G4/id_token as access token, strict profile", raw: idToken, want: ErrTypMismatch, prov: strict},
		{name: "G4/id_token audience allowed, strict profile", raw: idToken, want: ErrTypMismatch,
			prov: func(p *Provider) { strict(p); p.Audiences = []string{"web-client"} }},
	}
	// G1 cases without an explicit reason are bad signatures.
	for i := range cases {
		if strings.HasPrefix(cases[i].name, "G1/") && cases[i].name != "G1/control" {
			cases[i].want = ErrBadSignature
		}
	}
	return cases
}

// TestCatalogueSignatureBinding runs bindingCases through Verify.
func TestCatalogueSignatureBinding(t *testing.T) { runCases(t, bindingCases(t)) }

// claimsCases are the cases of §3.5 C1-C8, C12, and X9 (cnf).
func claimsCases(t testing.TB) []vcase {
	f := fx(t)
	T := testNow.Unix()
	c := func(mods map[string]any) string { return f.tok(t, f.rs256, "rsa", mods) }
	cRaw := func(mods map[string]any, members ...string) string {
		return compact(t, f.rs256, hdr("RS256", "rsa"), claimsPlus(t, mods, members...))
	}
	num := func(s string) json.RawMessage { return rawJSON(s) }
	hour := func(p *Provider) { p.MaxLifetime = time.Hour }
	required := func(p *Provider) { p.RequiredClaims = []string{"sub", "client_id", "iat", "jti"} }
	anyAud := func(p *Provider) { p.Audiences, p.AllowAnyAudience = nil, true }
	full := map[string]any{"client_id": "c1", "jti": "j1"}
	with := func(base map[string]any, k string, v any) map[string]any {
		out := map[string]any{k: v}
		for bk, bv := range base {
			if bk != k {
				out[bk] = bv
			}
		}
		return out
	}
	subIs := func(want string) func(*testing.T, *Token, error) {
		return func(t *testing.T, tok *Token, _ error) {
			if tok.Subject != want {
				t.Errorf("Subject = %q (% x), want %q (% x)", tok.Subject, tok.Subject, want, want)
			}
		}
	}

	cases := []vcase{
		{name: "C1/exp missing", raw: c(map[string]any{"exp": del}), want: ErrExpMissing},
		{name: "C1/exp null", raw: c(map[string]any{"exp": nil}), want: ErrExpMissing},
		{name: "C1/exp missing with allow-any audience", raw: c(map[string]any{"exp": del}), want: ErrExpMissing, prov: anyAud},
		{name: "C2/exp string", raw: c(map[string]any{"exp": strconv.FormatInt(T+600, 10)}), want: ErrClaimType},
		{name: "C2/exp bool", raw: c(map[string]any{"exp": true}), want: ErrClaimType},
		{name: "C2/exp object", raw: c(map[string]any{"exp": map[string]any{"v": T + 600}}), want: ErrClaimType},
		{name: "C2/exp array", raw: c(map[string]any{"exp": []int64{T + 600}}), want: ErrClaimType},
		{name: "C2/exp 2^62", raw: c(map[string]any{"exp": num("4611686018427387904")}), want: ErrClaimType},
		{name: "C2/exp 2^63", raw: c(map[string]any{"exp": num("9223372036854775808")}), want: ErrClaimType},
		{name: "C2/exp 1e300", raw: c(map[string]any{"exp": num("1e300")}), want: ErrClaimType},
		{name: "C2/exp 1e400 overflows", raw: c(map[string]any{"exp": num("1e400")}), want: ErrClaimType},
		{name: "C2/exp -2^62", raw: c(map[string]any{"exp": num("-4611686018427387904")}), want: ErrClaimType},
		{name: "C2/nbf 2^62", raw: c(map[string]any{"nbf": num("4611686018427387904")}), want: ErrClaimType},
		{name: "C2/nbf string", raw: c(map[string]any{"nbf": "0"}), want: ErrClaimType},
		{name: "C2/iat string", raw: c(map[string]any{"iat": "0"}), want: ErrClaimType},
		{name: "C2/iat -1e300", raw: c(map[string]any{"iat": num("-1e300")}), want: ErrClaimType},
		{name: "C2/exp just below 2^62 is far future", raw: c(map[string]any{"exp": num("4611686018427380000")})},
		{name: "C2/exp fractional", raw: c(map[string]any{"exp": num(fmt.Sprintf("%d.75", T+600))})},
		{name: "C2/exp exponent notation", raw: c(map[string]any{"exp": num("1.7600006e9")})},
		{name: "C2/exp fractional truncated: T-60.1 is T-61", raw: c(map[string]any{"exp": num(fmt.Sprintf("%d.9", T-61))}), want: ErrExpired},
		{name: "C2/nbf fractional truncated: T+60.9 is T+60", raw: c(map[string]any{"nbf": num(fmt.Sprintf("%d.9", T+60))})},
		{name: "C3/exp T-30 within skew", raw: c(map[string]any{"exp": T - 30})},
		{name: "C3/exp T-60 at the skew", raw: c(map[string]any{"exp": T - 60})},
		{name: "C3/exp T-61 expired", raw: c(map[string]any{"exp": T - 61}), want: ErrExpired},
		{name: "C3/exp long ago", raw: c(map[string]any{"exp": 0}), want: ErrExpired},
		{name: "C3/exp negative", raw: c(map[string]any{"exp": -1}), want: ErrExpired},
		{name: "C3/nbf T+30 within skew", raw: c(map[string]any{"nbf": T + 30})},
		{name: "C3/nbf T+60 at the skew", raw: c(map[string]any{"nbf": T + 60})},
		{name: "C3/nbf T+61 not yet valid", raw: c(map[string]any{"nbf": T + 61}), want: ErrNotYetValid},
		{name: "C3/nbf null is absent", raw: c(map[string]any{"nbf": nil})},
		{name: "C3/zero skew: exp T-1 expired", raw: c(map[string]any{"exp": T - 1}), want: ErrExpired, prov: func(p *Provider) { p.ClockSkew = 0 }},
		{name: "C3/zero skew: exp T allowed", raw: c(map[string]any{"exp": T}), prov: func(p *Provider) { p.ClockSkew = 0 }},
		{name: "C4/iat T+120", raw: c(map[string]any{"iat": T + 120}), want: ErrIATFuture},
		{name: "C4/iat T+61", raw: c(map[string]any{"iat": T + 61}), want: ErrIATFuture},
		{name: "C4/iat T+60 within skew", raw: c(map[string]any{"iat": T + 60})},
		{name: "C4/iat absent", raw: c(map[string]any{"iat": del})},
		{name: "C5/exp-iat over max_lifetime", raw: c(map[string]any{"iat": T - 7200, "exp": T + 600}), want: ErrLifetimeTooLong, prov: hour},
		{name: "C5/exp-T over max_lifetime, no iat", raw: c(map[string]any{"iat": del, "exp": T + 7200}), want: ErrLifetimeTooLong, prov: hour},
		{name: "C5/exp-T over max_lifetime, iat forged recent", raw: c(map[string]any{"iat": T + 30, "exp": T + 7200}), want: ErrLifetimeTooLong, prov: hour},
		{name: "C5/exp-iat equals max_lifetime", raw: c(map[string]any{"iat": T - 10, "exp": T + 3590}), prov: hour},
		{name: "C5/exp-T equals max_lifetime plus skew", raw: c(map[string]any{"iat": del, "exp": T + 3660}), prov: hour},
		{name: "C5/no max_lifetime", raw: c(map[string]any{"iat": T - 10, "exp": T + 365*86400})},
		{name: "C6/iss trailing slash", raw: c(map[string]any{"iss": testIssuer + "/"}), want: ErrIssMismatch},
		{name: "C6/iss upper case", raw: c(map[string]any{"iss": strings.ToUpper(testIssuer)}), want: ErrIssMismatch},
		{name: "C6/iss http scheme", raw: c(map[string]any{"iss": "http://issuer.example"}), want: ErrIssMismatch},
		{name: "C6/iss without scheme", raw: c(map[string]any{"iss": "issuer.example"}), want: ErrIssMismatch},
		{name: "C6/iss array", raw: c(map[string]any{"iss": []string{testIssuer}}), want: ErrClaimType},
		{name: "C6/iss number", raw: c(map[string]any{"iss": 42}), want: ErrClaimType},
		{name: "C6/iss object", raw: c(map[string]any{"iss": map[string]any{}}), want: ErrClaimType},
		{name: "C7/aud wrong", raw: c(map[string]any{"aud": "apis"}), want: ErrAudMismatch},
		{name: "C7/aud empty array", raw: c(map[string]any{"aud": []string{}}), want: ErrAudMismatch},
		{name: "C7/aud empty string", raw: c(map[string]any{"aud": ""}), want: ErrAudMismatch},
		{name: "C7/aud null", raw: c(map[string]any{"aud": nil}), want: ErrAudMismatch},
		{name: "C7/aud missing", raw: c(map[string]any{"aud": del}), want: ErrAudMismatch},
		{name: "C7/aud array with a number", raw: c(map[string]any{"aud": []any{"api", 5}}), want: ErrClaimType},
		{name: "C7/aud array with null", raw: c(map[string]any{"aud": []any{"api", nil}}), want: ErrClaimType},
		{name: "C7/aud number", raw: c(map[string]any{"aud": 5}), want: ErrClaimType},
		{name: "C7/aud object", raw: c(map[string]any{"aud": map[string]any{"api": true}}), want: ErrClaimType},
		{name: "C7/aud case differs", raw: c(map[string]any{"aud": "API"}), want: ErrAudMismatch},
		{name: "C7/aud string", raw: c(map[string]any{"aud": "api"})},
		{name: "C7/aud array", raw: c(map[string]any{"aud": []string{"other", "api"}})},
		{name: "C7/any audience: aud missing", raw: c(map[string]any{"aud": del}), prov: anyAud},
		{name: "C7/any audience: aud other", raw: c(map[string]any{"aud": []string{"other"}}), prov: anyAud},
		{name: "C7/any audience: aud array with a number", raw: c(map[string]any{"aud": []any{"api", 5}}), want: ErrClaimType, prov: anyAud},
		{name: "C7/any audience: aud number", raw: c(map[string]any{"aud": 5}), want: ErrClaimType, prov: anyAud},
		{name: "C8/all required claims", raw: c(full), prov: required},
		{name: "C8/client_id missing", raw: c(map[string]any{"jti": "j1"}), want: ErrClaimMissing, prov: required},
		{name: "C8/jti empty", raw: c(with(full, "jti", "")), want: ErrClaimMissing, prov: required},
		{name: "C8/sub missing", raw: c(with(full, "sub", del)), want: ErrClaimMissing, prov: required},
		{name: "C8/sub null", raw: c(with(full, "sub", nil)), want: ErrClaimMissing, prov: required},
		{name: "C8/iat missing", raw: c(with(full, "iat", del)), want: ErrClaimMissing, prov: required},
		{name: "C8/client_id empty array", raw: c(with(full, "client_id", []string{})), want: ErrClaimMissing, prov: required},
		{name: "C8/sub not a string", raw: c(map[string]any{"sub": 42}), want: ErrClaimType},
		{name: "C12/iss with a Cyrillic a", raw: c(map[string]any{"iss": "https://issuer.ex\u0430mple"}), want: ErrIssuerUnknown},
		{name: "C12/iss with a Kelvin sign is not a near miss", raw: c(map[string]any{"iss": "https://issuer.example/\u212a"}), want: ErrIssuerUnknown,
			prov: func(p *Provider) { p.Issuer = "https://issuer.example/k" }},
		{name: "C12/iss with fullwidth letters", raw: c(map[string]any{"iss": "https://\uff49ssuer.example"}), want: ErrIssuerUnknown},
		{name: "C12/iss NFD form", raw: c(map[string]any{"iss": "https://issue\u0301r.example"}), want: ErrIssuerUnknown,
			prov: func(p *Provider) { p.Issuer = "https://issu\u00e9r.example" }},
		{name: "C12/sub NFC kept byte for byte", raw: c(map[string]any{"sub": "jos\u00e9"}), check: subIs("jos\u00e9")},
		{name: "C12/sub NFD kept byte for byte", raw: c(map[string]any{"sub": "jose\u0301"}), check: subIs("jose\u0301")},
		{name: "C12/sub fullwidth kept", raw: c(map[string]any{"sub": "\uff41lice"}), check: subIs("\uff41lice")},
		{name: "C12/sub escaped equals literal", raw: cRaw(map[string]any{"sub": del}, `"sub":"\u0061lice"`), check: subIs("alice")},
		{name: "X9/cnf jkt", raw: c(map[string]any{"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}), want: ErrSenderConstrained},
		{name: "X9/cnf x5t#S256", raw: c(map[string]any{"cnf": map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}}), want: ErrSenderConstrained},
		{name: "X9/cnf null", raw: c(map[string]any{"cnf": nil}), want: ErrSenderConstrained},
		{name: "X9/cnf with allow-any audience", raw: c(map[string]any{"cnf": map[string]any{}}), want: ErrSenderConstrained, prov: anyAud},
	}
	return cases
}

// TestCatalogueClaims runs claimsCases through Verify.
func TestCatalogueClaims(t *testing.T) { runCases(t, claimsCases(t)) }

// TestKeysUnavailable: no usable keys is jwks.ErrKeysUnavailable (503), never a token error.
// A token that passed the cheap checks asks the source for one (gated) fetch, so that a
// recovered IdP is used at once.
func TestKeysUnavailable(t *testing.T) {
	f := fx(t)
	tests := []struct {
		name string
		src  KeySource
	}{
		{"source error", &fakeSource{err: fmt.Errorf("remote: %w", jwks.ErrKeysUnavailable)}},
		{"static source without a set", jwks.NewStatic(nil)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := testProvider(tc.src)
			v := newTestVerifier(t, p)
			tok, err := v.Verify(context.Background(), f.tok(t, f.rs256, "unknown", nil))
			checkErr(t, err, jwks.ErrKeysUnavailable)
			if tok.Provider != p {
				t.Errorf("Token.Provider = %v, want the provider", providerName(tok.Provider))
			}
			if fs, ok := tc.src.(*fakeSource); ok && fs.refreshCount() != 1 {
				t.Errorf("RefreshForKID called %d times, want 1", fs.refreshCount())
			}
		})
	}
	t.Run("expired token asks for no fetch", func(t *testing.T) {
		src := &fakeSource{err: jwks.ErrKeysUnavailable}
		v := newTestVerifier(t, testProvider(src))
		_, err := v.Verify(context.Background(), f.tok(t, f.rs256, "unknown", map[string]any{"exp": testNow.Add(-time.Hour).Unix()}))
		checkErr(t, err, ErrExpired)
		if src.refreshCount() != 0 {
			t.Errorf("RefreshForKID called %d times for an expired token, want 0", src.refreshCount())
		}
	})
}

// TestProviderOnErrors: the partial Token names the provider, alg and kid as far as
// verification got, for logs and metrics.
func TestProviderOnErrors(t *testing.T) {
	f := fx(t)
	p := testProvider(&fakeSource{set: f.set})
	v := newTestVerifier(t, p)
	tests := []struct {
		name     string
		raw      string
		want     error
		provider bool
		alg, kid string
	}{
		{"malformed", "a.b", ErrMalformed, false, "", ""},
		{"issuer unknown", f.tok(t, f.rs256, "rsa", map[string]any{"iss": "https://x.example"}), ErrIssuerUnknown, false, "", ""},
		{"iss mismatch", f.tok(t, f.rs256, "rsa", map[string]any{"iss": testIssuer + "/"}), ErrIssMismatch, true, "", ""},
		{"alg not allowed", compact(t, f.rs256, hdr("HS256", "rsa"), claimsJSON(t, nil)), ErrAlgNotAllowed, true, "", ""},
		{"expired", f.tok(t, f.es256, "p256", map[string]any{"exp": 1}), ErrExpired, true, "ES256", "p256"},
		{"kid unknown", f.tok(t, f.eddsa, "nope", nil), ErrKIDUnknown, true, "EdDSA", "nope"},
		{"bad signature", f.tok(t, f.attacker, "rsa", nil), ErrBadSignature, true, "RS256", "rsa"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := v.Verify(context.Background(), tc.raw)
			checkErr(t, err, tc.want)
			if (tok.Provider == p) != tc.provider || (tok.Provider != nil && tok.Provider != p) {
				t.Errorf("Token.Provider = %v, want set: %v", providerName(tok.Provider), tc.provider)
			}
			if tok.Alg != tc.alg || tok.KID != tc.kid {
				t.Errorf("Token alg, kid = %q, %q; want %q, %q", tok.Alg, tok.KID, tc.alg, tc.kid)
			}
			if tok.Claims != nil || tok.Payload != nil || tok.Subject != "" {
				t.Errorf("a denied token carries claims: %+v", tok)
			}
		})
	}
}

// TestNewVerifier: configurations that would weaken verification are refused.
func TestNewVerifier(t *testing.T) {
	src := &fakeSource{}
	tests := []struct {
		name    string
		provs   []*Provider
		wantErr string
	}{
		{"valid", []*Provider{testProvider(src)}, ""},
		{"allow any audience", []*Provider{testProvider(src, func(p *Provider) { p.Audiences, p.AllowAnyAudience = nil, true })}, ""},
		{"no issuer", []*Provider{testProvider(src, func(p *Provider) { p.Issuer = "" })}, "no issuer"},
		{"no audiences", []*Provider{testProvider(src, func(p *Provider) { p.Audiences = nil })}, "no audiences"},
		{"empty audience", []*Provider{testProvider(src, func(p *Provider) { p.Audiences = []string{"api", ""} })}, "empty audience"},
		{"no algorithms", []*Provider{testProvider(src, func(p *Provider) { p.Algorithms = nil })}, "no algorithm"},
		{"HS256", []*Provider{testProvider(src, func(p *Provider) { p.Algorithms = []string{"RS256", "HS256"} })}, "never allowed"},
		{"none", []*Provider{testProvider(src, func(p *Provider) { p.Algorithms = []string{"none"} })}, "never allowed"},
		{"no key source", []*Provider{testProvider(nil)}, "no key source"},
		{"negative skew", []*Provider{testProvider(src, func(p *Provider) { p.ClockSkew = -time.Second })}, "negative clock skew"},
		{"shared issuer", []*Provider{testProvider(src), testProvider(src, func(p *Provider) { p.Name = "b" })}, "share an issuer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := NewVerifier(tc.provs, Options{})
			if tc.wantErr == "" {
				if err != nil || v == nil {
					t.Fatalf("NewVerifier: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewVerifier error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestDefaultClock: without Options.Now the wall clock is used (a token valid now verifies, one
// that expired an hour ago does not).
func TestDefaultClock(t *testing.T) {
	f := fx(t)
	v, err := NewVerifier([]*Provider{testProvider(&fakeSource{set: f.set})}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	if _, err := v.Verify(context.Background(), f.tok(t, f.rs256, "rsa", map[string]any{"exp": now + 600, "iat": now})); err != nil {
		t.Errorf("fresh token: %v", err)
	}
	_, err = v.Verify(context.Background(), f.tok(t, f.rs256, "rsa", map[string]any{"exp": now - 3600, "iat": now - 7200}))
	checkErr(t, err, ErrExpired)
}

// TestNoNetworkIO backs H4 and J23: the package that reads jku and x5u cannot fetch them, because
// it imports no network package.
func TestNoNetworkIO(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := gotoken.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		file, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case path == "net", path == "net/http", strings.HasPrefix(path, "net/http/"), path == "os/exec", path == "net/rpc":
				t.Errorf("%s imports %s: pkg/token must never do I/O on a token's behalf", name, path)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no source files checked")
	}
}

// TestGoJoseGaps shows that the ⚠ rows of jwt-security.md still hold for go-jose v4.1.9 alone:
// each token below verifies with go-jose and is refused by Verify. If go-jose starts refusing
// one, the case still passes; if our check were removed, the catalogue case above would fail.
func TestGoJoseGaps(t *testing.T) {
	f := fx(t)
	good := f.tok(t, f.rs256, "rsa", nil)
	h, p, s := segments(t, good)
	var padded string
	for i := 0; ; i++ {
		padded = claimsJSON(t, map[string]any{"pad": strings.Repeat("x", i)})
		if len(padded)%3 != 0 {
			break
		}
	}
	nc := compact(t, f.rs256, hdr("RS256", "rsa"), padded)
	nh, np, ns := segments(t, nc)
	tests := []struct {
		name string
		raw  string
		key  any
		want error
	}{
		{"S7 CRLF", h + "." + p[:5] + "\r\n" + p[5:] + "." + s, &f.k.rsa.PublicKey, ErrBadEncoding},
		{"S8 non-canonical payload", nh + "." + nonCanonical(t, np) + "." + ns, &f.k.rsa.PublicKey, ErrBadEncoding},
		{"S10 null payload", compact(t, f.rs256, hdr("RS256", "rsa"), "null"), &f.k.rsa.PublicKey, ErrPayloadNotObject},
		{"S12 invalid UTF-8", compact(t, f.rs256, hdr("RS256", "rsa"), claimsPlus(t, map[string]any{"sub": del}, "\"sub\":\"\xff\"")), &f.k.rsa.PublicKey, ErrInvalidUTF8},
		{"H7 crit empty", compact(t, f.rs256, hdr("RS256", "rsa", `"crit":[]`), claimsJSON(t, nil)), &f.k.rsa.PublicKey, ErrUnsupportedCrit},
		{"H10 zip", compact(t, f.rs256, hdr("RS256", "rsa", `"zip":"DEF"`), claimsJSON(t, nil)), &f.k.rsa.PublicKey, ErrUnsupportedHeader},
		{"K7 PSS salt 0", compact(t, f.ps256.withSalt(0), hdr("PS256", "rsa"), claimsJSON(t, nil)), &f.k.rsa.PublicKey, ErrBadSignature},
		{"K5 PS256 with an RS256 key", compact(t, signer{alg: "PS256", key: f.k.rsaB}, hdr("PS256", "rs-bound"), claimsJSON(t, nil)), &f.k.rsaB.PublicKey, ErrKeyAlgMismatch},
		{"K10 RSA-1024", compact(t, signer{alg: "RS256", key: f.k.rsa1024}, hdr("RS256", "small"), claimsJSON(t, nil)), &f.k.rsa1024.PublicKey, ErrKeyAlgMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var algs []jose.SignatureAlgorithm
			for _, a := range allAlgs {
				algs = append(algs, jose.SignatureAlgorithm(a))
			}
			parsed, err := jwt.ParseSigned(tc.raw, algs)
			if err == nil {
				err = parsed.Claims(tc.key)
			}
			if err != nil {
				t.Logf("go-jose v4.1.9 now refuses this token itself: %v", err)
			}
			src := &fakeSource{set: f.set}
			if tc.name == "K10 RSA-1024" {
				src.set = jwks.NewSet([]*jwks.Key{{KID: "small", Public: &f.k.rsa1024.PublicKey}})
			}
			_, verr := newTestVerifier(t, testProvider(src)).Verify(context.Background(), tc.raw)
			checkErr(t, verr, tc.want)
		})
	}
}
