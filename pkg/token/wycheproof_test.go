package token

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// Wycheproof JOSE vectors (testdata/wycheproof, see SOURCE there) run through the production
// code: jwks.Parse for the keys, then parseJWS, the header policy, key resolution and the
// signature check that Verify uses (provider.verifySignature). Claims are not checked: the
// vectors are generic JWS, mostly without iss/exp/aud, often with a non-JSON payload.

// verifySignature is Verify without the JWT layer: the same parseJWS and
// provider.verifySignature, with no claims gate and no requirement that the payload be a JSON
// object. It builds a provider with the given algorithms over a static set.
func verifySignature(ctx context.Context, raw string, set *jwks.Set, algs []string) error {
	p, err := newProvider(&Provider{
		Name: "wycheproof", Issuer: "wycheproof", AllowAnyAudience: true,
		Algorithms: algs, TokenTypes: []string{"", "JWT"}, Keys: jwks.NewStatic(set),
	})
	if err != nil {
		return err
	}
	j, err := parseJWS(raw)
	if err != nil {
		return err
	}
	_, err = p.verifySignature(ctx, j, &Token{}, nil)
	return err
}

type wycheproofFile struct {
	NumberOfTests int `json:"numberOfTests"`
	TestGroups    []struct {
		Comment string          `json:"comment"`
		Public  json.RawMessage `json:"public"`
		Private json.RawMessage `json:"private"`
		Tests   []struct {
			TcID    int             `json:"tcId"`
			Comment string          `json:"comment"`
			JWS     json.RawMessage `json:"jws"`
			Result  string          `json:"result"`
			Flags   []string        `json:"flags"`
		} `json:"tests"`
	} `json:"testGroups"`
}

func loadWycheproof(t *testing.T, name string) *wycheproofFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wycheproof", name))
	if err != nil {
		t.Fatal(err)
	}
	var f wycheproofFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	n := 0
	for _, g := range f.TestGroups {
		n += len(g.Tests)
	}
	if n != f.NumberOfTests || n == 0 {
		t.Fatalf("%s: %d tests in groups, numberOfTests %d", name, n, f.NumberOfTests)
	}
	return &f
}

// jwsString returns the vector's JWS: a compact string, or the JSON serialization as text.
func jwsString(t *testing.T, m json.RawMessage) string {
	t.Helper()
	var s string
	if json.Unmarshal(m, &s) == nil {
		return s
	}
	return string(m)
}

// keySetDoc wraps a single JWK in a JWK Set document; a set is returned as it is.
func keySetDoc(m json.RawMessage) []byte {
	if len(m) == 0 {
		return nil
	}
	var probe struct {
		Keys json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(m, &probe) == nil && probe.Keys != nil {
		return m
	}
	return []byte(`{"keys":[` + string(m) + `]}`)
}

// groupSet loads a group's public key(s) like a provider's JWKS. A document left without usable
// keys becomes an empty set: a provider with other keys, none of them this one.
func groupSet(t *testing.T, doc []byte) *jwks.Set {
	t.Helper()
	if doc == nil {
		return jwks.NewSet(nil)
	}
	set, _, err := jwks.Parse(doc, allAlgs)
	if errors.Is(err, jwks.ErrNoUsableKey) {
		return jwks.NewSet(nil)
	}
	if err != nil {
		t.Fatalf("jwks.Parse: %v", err)
	}
	return set
}

// jwsDeviations are the JWS vectors where our verdict differs from Wycheproof's, with the error
// we give instead. Anything else must agree.
var jwsDeviations = map[int]struct {
	want   error
	reason string
}{
	346: {ErrKeyAlgMismatch, "RFC 7520 fig. 20: a PS384 token under a JWK whose alg is PS256; keys are bound to their JWK alg (K5, RFC 8725 §3.1)"},
	350: {ErrKeyAlgMismatch, "as 346, with key_ops"},
	347: {ErrKIDUnknown, `RFC 7520 fig. 27: the P-521 JWK carries alg "ES521", which is no JWS algorithm (ES512 is); ` +
		"a key whose alg is outside the provider's algorithms is skipped at load (J8, K5), so its kid is unknown"},
	351: {ErrKIDUnknown, "as 347, with key_ops"},
	372: {ErrBadEncoding, "suspect vector: '?' in the header segment, marked valid"},
	373: {ErrBadEncoding, "suspect vector: '?' in the payload segment, marked valid"},
	// HMAC: jwtauthz never verifies HS* (jwt-security.md §1, K2, K13). The HMAC vectors also run
	// through TestWycheproofHMACSyntax, which checks our parser against them.
	1:   {ErrAlgNotAllowed, "HS256 never allowed"},
	348: {ErrAlgNotAllowed, "HS256 never allowed (RFC 7520 fig. 35)"},
	352: {ErrAlgNotAllowed, "HS256 never allowed (RFC 7520 fig. 35)"},
	357: {ErrAlgNotAllowed, "HS256 never allowed"},
	358: {ErrAlgNotAllowed, "HS256 never allowed"},
	359: {ErrAlgNotAllowed, "HS256 never allowed"},
	376: {ErrAlgNotAllowed, "HS256 never allowed"},
	377: {ErrAlgNotAllowed, "HS256 never allowed"},
}

// jwsReasons pins the reason for vectors that name a catalogue rule.
var jwsReasons = map[int]error{
	16:  ErrAlgNotAllowed, // alg none, no signature (K1)
	17:  ErrMalformed,     // JSON serialization (S3)
	21:  ErrMalformed,     // ES256 without signature and separator (S1)
	23:  ErrBadSignature,  // ES256 with the payload removed: a JWS may have an empty payload
	31:  ErrAlgNotAllowed, // HS256 keyed with the EC key's bytes (K2)
	32:  ErrBadSignature,  // embedded jwk of the attacker (H5)
	46:  ErrBadSignature,  // RS256 modified padding (G1)
	281: ErrBadSignature,  // PSS salt length changed (K7)
	282: ErrBadSignature,  //
	283: ErrBadSignature,  //
	284: ErrBadSignature,  //
	285: ErrBadSignature,  //
	286: ErrBadSignature,  //
	353: ErrKIDUnknown,    // use enc: key skipped (K6)
	354: ErrKIDUnknown,    //
	355: ErrKIDUnknown,    // key_ops encrypt (K6)
	356: ErrKIDUnknown,    //
	360: ErrBadEncoding,   // spaces (S6)
	365: ErrBadEncoding,   // spaces in the header (S6)
	368: ErrBadEncoding,   // spaces in the payload (S6)
	374: ErrBadEncoding,   // non-canonical base64 (S8)
	378: nil,              // SpecialCaseEs256 valid
	379: ErrBadSignature,  // ES256 signature too long (K9)
	380: ErrBadSignature,  // trailing zeros (K9)
	381: ErrBadSignature,  // r too big (K8)
	382: ErrBadSignature,  // s too big (K8)
	386: ErrBadSignature,  // r = 0, s = 0 (K8)
	401: ErrBadSignature,  // r = n, s = n (K8)
}

func TestWycheproofJWS(t *testing.T) {
	f := loadWycheproof(t, "json_web_signature_test.json")
	ctx := context.Background()
	var agree, deviate int
	var deviations []int
	for _, g := range f.TestGroups {
		set := groupSet(t, keySetDoc(g.Public))
		for _, tc := range g.Tests {
			raw := jwsString(t, tc.JWS)
			err := verifySignature(ctx, raw, set, allAlgs)
			name := g.Comment + "/" + itoa(tc.TcID) + "/" + tc.Comment
			t.Run(name, func(t *testing.T) {
				if err != nil {
					if m := matchedSentinels(err); len(m) != 1 {
						t.Errorf("error %v wraps %d sentinels", err, len(m))
					}
				}
				if want, ok := jwsReasons[tc.TcID]; ok {
					checkErr(t, err, want)
				}
				if d, ok := jwsDeviations[tc.TcID]; ok {
					if tc.Result != "valid" {
						t.Fatalf("deviation listed for a vector marked %q", tc.Result)
					}
					// Deviations must still deviate, for the documented reason: if one
					// starts to agree, update the list.
					checkErr(t, err, d.want)
					return
				}
				switch tc.Result {
				case "valid":
					if err != nil {
						t.Errorf("valid vector refused: %v (flags %v)", err, tc.Flags)
					}
				case "invalid":
					if err == nil {
						t.Errorf("invalid vector accepted (flags %v)", tc.Flags)
					}
				case "acceptable":
					// Either verdict is correct; only the closed-set check above applies.
				default:
					t.Fatalf("unknown result %q", tc.Result)
				}
			})
			if _, ok := jwsDeviations[tc.TcID]; ok {
				deviate++
				deviations = append(deviations, tc.TcID)
			} else {
				agree++
			}
		}
	}
	sort.Ints(deviations)
	t.Logf("Wycheproof JWS: %d vectors, %d agree, %d listed deviations %v", agree+deviate, agree, deviate, deviations)
	if agree+deviate != f.NumberOfTests || deviate != len(jwsDeviations) {
		t.Errorf("ran %d vectors with %d deviations; want %d and %d", agree+deviate, deviate, f.NumberOfTests, len(jwsDeviations))
	}
}

// hmacSyntaxDeviations are HMAC vectors our parser judges differently from Wycheproof.
var hmacSyntaxDeviations = map[int]string{
	367: "suspect vector: byte-identical to valid tc 357, marked invalid (invalidBase64Padding)",
	370: "suspect vector: byte-identical to valid tc 357, marked invalid (invalidBase64PaddingInPayload)",
	372: "suspect vector: '?' in the header segment, marked valid",
	373: "suspect vector: '?' in the payload segment, marked valid",
}

// TestWycheproofHMACSyntax runs the HMAC vectors, which the production path refuses outright
// (HS* is never allowed), through our parser with an HMAC check written here: parseJWS, the
// empty-signature rule, alg HS256, then HMAC-SHA256 over the signing input. Half of them are
// about base64 and segment syntax (S4-S8), which this checks against Wycheproof's verdicts.
func TestWycheproofHMACSyntax(t *testing.T) {
	f := loadWycheproof(t, "json_web_signature_test.json")
	var agree, deviate, total int
	for _, g := range f.TestGroups {
		if len(g.Public) != 0 {
			continue
		}
		var priv struct {
			Kty string `json:"kty"`
			K   string `json:"k"`
		}
		if err := json.Unmarshal(g.Private, &priv); err != nil || priv.Kty != "oct" {
			t.Fatalf("group %s without a public key is not an HMAC group: %s", g.Comment, g.Private)
		}
		key, err := base64.RawURLEncoding.DecodeString(priv.K)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range g.Tests {
			total++
			raw := jwsString(t, tc.JWS)
			got := hmacVerify(raw, key)
			t.Run(g.Comment+"/"+itoa(tc.TcID)+"/"+tc.Comment, func(t *testing.T) {
				want := tc.Result == "valid"
				if _, ok := hmacSyntaxDeviations[tc.TcID]; ok {
					if got == want {
						t.Fatalf("listed deviation now agrees (got valid=%v): update the list", got)
					}
					return
				}
				if got != want {
					t.Errorf("parser+HMAC says valid=%v, Wycheproof %s", got, tc.Result)
				}
			})
			if _, ok := hmacSyntaxDeviations[tc.TcID]; ok {
				deviate++
			} else {
				agree++
			}
		}
	}
	t.Logf("Wycheproof HMAC vectors through parseJWS + HMAC: %d, %d agree, %d suspect", total, agree, deviate)
	if total == 0 || deviate != len(hmacSyntaxDeviations) {
		t.Errorf("ran %d HMAC vectors, %d deviations; want %d", total, deviate, len(hmacSyntaxDeviations))
	}
}

func hmacVerify(raw string, key []byte) bool {
	j, err := parseJWS(raw)
	if err != nil || j.unsigned {
		return false
	}
	var alg string
	if json.Unmarshal(j.header["alg"], &alg) != nil || alg != "HS256" {
		return false
	}
	i := strings.LastIndexByte(raw, '.')
	sig, err := b64.DecodeString(raw[i+1:])
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(raw[:i]))
	return hmac.Equal(m.Sum(nil), sig)
}

// jwkDeviations are JWK vectors where our verdict differs from Wycheproof's.
var jwkDeviations = map[int]struct {
	want   error // nil: we accept
	reason string
}{
	2:  {ErrAlgNotAllowed, "HS256 key set: HMAC is never allowed"},
	7:  {nil, "ROCA-weak RSA key: not detected (K15 is optional)"},
	13: {ErrAlgNotAllowed, "HS256 never allowed"},
	14: {ErrAlgNotAllowed, "HS384 never allowed"},
	15: {ErrAlgNotAllowed, "HS512 never allowed"},
}

// jwkKeyAtFault are the JWK vectors whose point is the key itself: the key a JWS names must be
// skipped, or the whole set refused (J7, J8). tc 3 is a modified signature under a good key.
var jwkKeyAtFault = map[int]bool{
	1: true, 4: true, 6: true, 8: true, 9: true, 10: true, 11: true, 12: true, 16: true, 17: true, 18: true,
	19: true, 20: true, 21: true, 22: true, 23: true, 24: true, 25: true, 26: true,
}

func TestWycheproofJWK(t *testing.T) {
	f := loadWycheproof(t, "json_web_key_test.json")
	ctx := context.Background()
	var agree, deviate int
	for _, g := range f.TestGroups {
		src := g.Public
		if len(src) == 0 {
			src = g.Private
		}
		set, skips, perr := jwks.Parse(keySetDoc(src), allAlgs)
		for _, tc := range g.Tests {
			raw := jwsString(t, tc.JWS)
			err := verifySignature(ctx, raw, set, allAlgs)
			t.Run(g.Comment+"/"+itoa(tc.TcID)+"/"+tc.Comment, func(t *testing.T) {
				if perr != nil && !errors.Is(perr, jwks.ErrNoUsableKey) {
					t.Fatalf("jwks.Parse refused the document itself: %v", perr)
				}
				if jwkKeyAtFault[tc.TcID] {
					kid := headerKID(t, raw)
					if perr == nil && len(set.Lookup(kid)) != 0 {
						t.Errorf("key %q loaded; Wycheproof says it must be refused (skips %v)", kid, skips)
					}
				}
				if d, ok := jwkDeviations[tc.TcID]; ok {
					checkErr(t, err, d.want)
					return
				}
				if got := err == nil; got != (tc.Result == "valid") {
					t.Errorf("verdict valid=%v (err %v), Wycheproof %s", got, err, tc.Result)
				}
			})
			if _, ok := jwkDeviations[tc.TcID]; ok {
				deviate++
			} else {
				agree++
			}
		}
	}
	t.Logf("Wycheproof JWK: %d vectors, %d agree, %d listed deviations", agree+deviate, agree, deviate)
	if agree+deviate != f.NumberOfTests || deviate != len(jwkDeviations) {
		t.Errorf("ran %d vectors with %d deviations; want %d and %d", agree+deviate, deviate, f.NumberOfTests, len(jwkDeviations))
	}
}

func headerKID(t *testing.T, raw string) string {
	t.Helper()
	j, err := parseJWS(raw)
	if err != nil {
		t.Fatalf("vector does not parse: %v", err)
	}
	var kid string
	if err := json.Unmarshal(j.header["kid"], &kid); err != nil {
		t.Fatalf("vector has no kid: %v", err)
	}
	return kid
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
