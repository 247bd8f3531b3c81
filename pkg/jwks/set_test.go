package jwks

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// testKeys are generated once per test binary (house style §18): RSA key generation is slow
// under -race.
type testKeys struct {
	rsa2048, rsa2048b, rsa1024 *rsa.PrivateKey
	p256, p256b, p384, p521    *ecdsa.PrivateKey
	ed                         ed25519.PrivateKey
}

var (
	keysOnce sync.Once
	keys     testKeys
)

func tk(t testing.TB) *testKeys {
	t.Helper()
	keysOnce.Do(func() {
		mustRSA := func(bits int) *rsa.PrivateKey {
			k, err := rsa.GenerateKey(rand.Reader, bits)
			if err != nil {
				panic(err)
			}
			return k
		}
		mustEC := func(c elliptic.Curve) *ecdsa.PrivateKey {
			k, err := ecdsa.GenerateKey(c, rand.Reader)
			if err != nil {
				panic(err)
			}
			return k
		}
		keys.rsa2048 = mustRSA(2048)
		keys.rsa2048b = mustRSA(2048)
		keys.rsa1024 = mustRSA(1024)
		keys.p256 = mustEC(elliptic.P256())
		keys.p256b = mustEC(elliptic.P256())
		keys.p384 = mustEC(elliptic.P384())
		keys.p521 = mustEC(elliptic.P521())
		_, keys.ed, _ = ed25519.GenerateKey(rand.Reader)
	})
	return &keys
}

// jwk returns key as a JWK object (go-jose's marshalling), with kid and alg when not empty, then
// extra members set (a nil value deletes the member).
func jwk(t testing.TB, key any, kid, alg string, extra ...any) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg}.MarshalJSON()
	if err != nil {
		t.Fatalf("marshal JWK: %v", err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(m, extra[i].(string))
			continue
		}
		m[extra[i].(string)] = extra[i+1]
	}
	return m
}

// doc builds a JWK Set document; entries may be JWK maps or any other JSON value.
func doc(t testing.TB, entries ...any) []byte {
	t.Helper()
	if entries == nil {
		entries = []any{}
	}
	b, err := json.Marshal(map[string]any{"keys": entries})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

var testAlgs = []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"}

// TestParseDocument covers T3 at the document level (J7, J12): a document that is not a usable JWK
// Set is an error, never an empty set.
func TestParseDocument(t *testing.T) {
	k := tk(t)
	good := jwk(t, k.rsa2048.Public(), "a", "RS256")
	goodJSON, _ := json.Marshal(good)
	hundred := make([]any, MaxKeysPerSet)
	for i := range hundred {
		hundred[i] = jwk(t, k.p256.Public(), "", "")
	}
	tooMany := append(append([]any{}, hundred...), good)

	tests := []struct {
		name    string
		doc     []byte
		wantErr error // nil: parses
		wantLen int
	}{
		{"good", doc(t, good), nil, 1},
		{"exactly MaxKeysPerSet keys", doc(t, hundred...), nil, MaxKeysPerSet},
		{"leading whitespace", append([]byte(" \n\t"), doc(t, good)...), nil, 1},

		{"empty body", []byte(""), ErrBadDocument, 0},
		{"invalid JSON", []byte(`{"keys":[`), ErrBadDocument, 0},
		{"HTML error page", []byte("<html><body>502 Bad Gateway</body></html>"), ErrBadDocument, 0},
		{"array, not an object", []byte(`[` + string(goodJSON) + `]`), ErrBadDocument, 0},
		{"string, not an object", []byte(`"keys"`), ErrBadDocument, 0},
		{"null", []byte(`null`), ErrBadDocument, 0},
		{"a single JWK, not a set", goodJSON, ErrBadDocument, 0},
		{"no keys member", []byte(`{}`), ErrBadDocument, 0},
		{"keys member in another case", []byte(`{"Keys":[` + string(goodJSON) + `]}`), ErrBadDocument, 0},
		{"keys is null", []byte(`{"keys":null}`), ErrBadDocument, 0},
		{"keys is an object", []byte(`{"keys":{"a":` + string(goodJSON) + `}}`), ErrBadDocument, 0},
		{"keys is a string", []byte(`{"keys":"x"}`), ErrBadDocument, 0},
		{"invalid UTF-8", []byte(`{"keys":[` + string(goodJSON) + `],"note":"` + "\xff\xfe" + `"}`), ErrBadDocument, 0},
		{"duplicate keys member", []byte(`{"keys":[` + string(goodJSON) + `],"keys":[` + string(goodJSON) + `]}`), ErrBadDocument, 0},
		{"trailing data", append(doc(t, good), []byte(` {}`)...), ErrBadDocument, 0},
		{"more than MaxKeysPerSet keys", doc(t, tooMany...), ErrTooManyKeys, 0},
		{"empty keys array", []byte(`{"keys":[]}`), ErrNoUsableKey, 0},
		{"only unusable keys", doc(t, jwk(t, []byte("0123456789abcdef0123456789abcdef"), "h", ""), jwk(t, k.rsa1024.Public(), "small", "")), ErrNoUsableKey, 0},
		{"only non-object entries", []byte(`{"keys":[1,"a",null,[]]}`), ErrNoUsableKey, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			set, _, err := Parse(tc.doc, testAlgs)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				if set.Len() != tc.wantLen {
					t.Fatalf("Len = %d, want %d", set.Len(), tc.wantLen)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Parse error = %v, want %v", err, tc.wantErr)
			}
			if set != nil {
				t.Fatalf("Parse returned a set (%d keys) with its error", set.Len())
			}
			for _, other := range []error{ErrBadDocument, ErrTooManyKeys, ErrNoUsableKey} {
				if other != tc.wantErr && errors.Is(err, other) {
					t.Fatalf("error %v also matches %v", err, other)
				}
			}
		})
	}
}

// TestParseNoUsableKeyReportsSkips: a refused set still says why each key was skipped, so the
// alert names the cause.
func TestParseNoUsableKeyReportsSkips(t *testing.T) {
	k := tk(t)
	_, skips, err := Parse(doc(t, jwk(t, k.rsa1024.Public(), "small", ""), map[string]any{"kty": "oct", "k": "c2VjcmV0"}), testAlgs)
	if !errors.Is(err, ErrNoUsableKey) {
		t.Fatalf("err = %v, want ErrNoUsableKey", err)
	}
	if len(skips) != 2 || skips[0].Reason != SkipRSATooSmall || skips[1].Reason != SkipSymmetric {
		t.Fatalf("skips = %+v", skips)
	}
}

// TestParseMixedSet is T8 (J8, J10): each bad key is skipped with its reason and position, the
// good keys load, and nothing else does.
func TestParseMixedSet(t *testing.T) {
	k := tk(t)
	rsaPub := k.rsa2048.Public().(*rsa.PublicKey)

	x25519 := map[string]any{"kty": "OKP", "crv": "X25519", "x": b64(make([]byte, 32)), "kid": "x25519"}
	oct := map[string]any{"kty": "oct", "k": b64([]byte("a shared secret, never a verification key")), "kid": "oct", "alg": "HS256"}
	evenE := jwk(t, rsaPub, "even-e", "", "e", b64(big.NewInt(65538).Bytes()))
	eTwo := jwk(t, rsaPub, "e-two", "", "e", b64([]byte{2}))
	eOne := jwk(t, rsaPub, "e-one", "", "e", b64([]byte{1}))
	offCurve := jwk(t, k.p256.Public(), "off-curve", "")
	{
		// The uncompressed point is 0x04 || X || Y: flip Y's last bit to leave the curve.
		raw, err := k.p256.Public().(*ecdsa.PublicKey).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		y := raw[33:65]
		y[31] ^= 1
		offCurve["y"] = b64(y)
	}
	big4097 := new(big.Int).Lsh(big.NewInt(1), 4096)
	big4097.Or(big4097, big.NewInt(1))
	rsa4097 := jwk(t, rsaPub, "rsa-4097", "", "n", b64(big4097.Bytes()))

	type want struct {
		kid    string
		reason string // "" = loads
	}
	entries := []struct {
		entry any
		want  want
	}{
		{x25519, want{"x25519", SkipUnsupported}},
		{oct, want{"oct", SkipSymmetric}},
		{jwk(t, rsaPub, "enc", "", "use", "enc"), want{"enc", SkipWrongUse}},
		{jwk(t, rsaPub, "ops-encrypt", "", "key_ops", []string{"encrypt", "wrapKey"}), want{"ops-encrypt", SkipWrongUse}},
		{jwk(t, rsaPub, "ops-sign", "", "key_ops", []string{"sign"}), want{"ops-sign", SkipWrongUse}},
		{jwk(t, k.rsa1024.Public(), "rsa-1024", "RS256"), want{"rsa-1024", SkipRSATooSmall}},
		{evenE, want{"even-e", SkipRSABadExponent}},
		{eTwo, want{"e-two", SkipRSABadExponent}},
		{eOne, want{"e-one", SkipUnsupported}}, // go-jose refuses e < 2 at parse
		{rsa4097, want{"rsa-4097", SkipUnsupported}},
		{jwk(t, k.rsa2048, "rsa-private", "RS256"), want{"rsa-private", SkipPrivate}},
		{jwk(t, k.p256, "ec-private", "ES256"), want{"ec-private", SkipPrivate}},
		{jwk(t, k.ed, "ed-private", "EdDSA"), want{"ed-private", SkipPrivate}},
		{jwk(t, rsaPub, "rsa-stray-p", "", "p", b64([]byte{7})), want{"rsa-stray-p", SkipPrivate}},
		{offCurve, want{"off-curve", SkipUnsupported}},
		{map[string]any{"kty": "EC", "crv": "secp256k1", "x": b64(make([]byte, 32)), "y": b64(make([]byte, 32)), "kid": "k1"}, want{"k1", SkipUnsupported}},
		{map[string]any{"kty": "FOO", "kid": "foo"}, want{"foo", SkipUnsupported}},
		{jwk(t, rsaPub, "rs512", "RS512"), want{"rs512", SkipAlgNotAllowed}},                               // not in the allowlist
		{jwk(t, k.p256.Public(), "ec-rs256", "", "alg", "RS256"), want{"ec-rs256", SkipAlgNotAllowed}},     // allowed, wrong key type
		{jwk(t, k.p256.Public(), "p256-es384", "", "alg", "ES384"), want{"p256-es384", SkipAlgNotAllowed}}, // allowed, wrong curve
		{jwk(t, rsaPub, "", "", "kid", 42), want{"", SkipUnsupported}},
		{jwk(t, rsaPub, "bad\nkid", ""), want{"bad\nkid", SkipUnsupported}},
		{jwk(t, rsaPub, strings.Repeat("k", MaxKIDBytes+1), ""), want{"", SkipUnsupported}},
		{"not an object", want{"", SkipUnsupported}},
		// Five good keys sharing one kid: MaxCandidates are kept, the fifth is skipped.
		{jwk(t, rsaPub, "dup", "RS256"), want{"dup", ""}},
		{jwk(t, k.rsa2048b.Public(), "dup", "PS256"), want{"dup", ""}},
		{jwk(t, k.p256b.Public(), "dup", "ES256"), want{"dup", ""}},
		{jwk(t, k.p384.Public(), "dup", ""), want{"dup", ""}},
		{jwk(t, k.p521.Public(), "dup", ""), want{"dup", SkipDuplicateKID}},
		// The good ones.
		{jwk(t, rsaPub, "rsa", "RS256", "use", "sig", "key_ops", []string{"verify"}), want{"rsa", ""}},
		{jwk(t, k.p256.Public(), "ec", ""), want{"ec", ""}},
		{jwk(t, k.ed.Public(), "ed", "EdDSA", "use", "sig"), want{"ed", ""}},
		{jwk(t, k.p384.Public(), "", "ES384"), want{"", ""}}, // no kid: kept (J11)
	}
	var docEntries []any
	var wantSkips []Skip
	var wantKIDs []string
	for i, e := range entries {
		docEntries = append(docEntries, e.entry)
		if e.want.reason == "" {
			wantKIDs = append(wantKIDs, e.want.kid)
		} else {
			wantSkips = append(wantSkips, Skip{Index: i, KID: e.want.kid, Reason: e.want.reason})
		}
	}

	set, skips, err := Parse(doc(t, docEntries...), testAlgs)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(skips) != len(wantSkips) {
		t.Errorf("%d skips, want %d", len(skips), len(wantSkips))
	}
	for i := range min(len(skips), len(wantSkips)) {
		got, w := skips[i], wantSkips[i]
		if got.Index != w.Index || got.KID != w.KID || got.Reason != w.Reason {
			t.Errorf("skip %d = {Index:%d KID:%q Reason:%s}, want {Index:%d KID:%q Reason:%s}", i, got.Index, got.KID, got.Reason, w.Index, w.KID, w.Reason)
		}
		if got.Detail == "" {
			t.Errorf("skip %d (%s) has no detail", i, got.Reason)
		}
	}
	var gotKIDs []string
	for _, key := range set.Keys() {
		gotKIDs = append(gotKIDs, key.KID)
		switch key.Public.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			t.Errorf("key %q has public key type %T", key.KID, key.Public)
		}
	}
	if strings.Join(gotKIDs, ",") != strings.Join(wantKIDs, ",") {
		t.Errorf("loaded kids %q, want %q", gotKIDs, wantKIDs)
	}
	if n := len(set.Lookup("dup")); n != MaxCandidates {
		t.Errorf("Lookup(dup) = %d candidates, want %d", n, MaxCandidates)
	}
	if got := set.Lookup("rsa"); len(got) != 1 || !rsaPub.Equal(got[0].Public) || got[0].Alg != "RS256" {
		t.Errorf("Lookup(rsa) = %+v", got)
	}
	if got := set.Lookup("ec"); len(got) != 1 || !k.p256.PublicKey.Equal(got[0].Public) || got[0].Alg != "" {
		t.Errorf("Lookup(ec) = %+v", got)
	}
	if got := set.Lookup("ed"); len(got) != 1 || !k.ed.Public().(ed25519.PublicKey).Equal(got[0].Public) {
		t.Errorf("Lookup(ed) = %+v", got)
	}
	for _, absent := range []string{"x25519", "oct", "enc", "rsa-1024", "rsa-private", "off-curve", "rs512", ""} {
		if got := set.Lookup(absent); len(got) != 0 {
			t.Errorf("Lookup(%q) = %d keys, want none", absent, len(got))
		}
	}
}

// TestParseX5C: x5c is accepted when its leaf matches the JWK (go-jose checks it, J9); a
// certificate of another key, or one that does not parse, skips the key.
func TestParseX5C(t *testing.T) {
	k := tk(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1, 0)}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.p256.Public(), k.p256)
	if err != nil {
		t.Fatal(err)
	}
	x5c := []string{base64.StdEncoding.EncodeToString(cert)}
	set, skips, err := Parse(doc(t,
		jwk(t, k.p256.Public(), "match", "", "x5c", x5c), // an expired certificate: no expiry check (J9)
		jwk(t, k.p256b.Public(), "mismatch", "", "x5c", x5c),
		jwk(t, k.p256b.Public(), "garbage", "", "x5c", []string{"bm90IGEgY2VydA=="}),
	), testAlgs)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 1 || len(set.Lookup("match")) != 1 {
		t.Fatalf("loaded %d keys, want only kid match", set.Len())
	}
	if len(skips) != 2 || skips[0].KID != "mismatch" || skips[0].Reason != SkipUnsupported || skips[1].KID != "garbage" || skips[1].Reason != SkipUnsupported {
		t.Fatalf("skips = %+v", skips)
	}
}

// TestKeyFits checks every algorithm against every key type (RFC 7518 §3; K4, K5).
func TestKeyFits(t *testing.T) {
	k := tk(t)
	algs := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
		"HS256", "none", "", "rs256", "Ed25519", "ES256K"}
	rsaAlgs := "RS256 RS384 RS512 PS256 PS384 PS512"
	type keyCase struct {
		name string
		pub  crypto.PublicKey
		fits string // space-separated algs that fit
	}
	keyCases := []keyCase{
		{"RSA-2048", k.rsa2048.Public(), rsaAlgs},
		{"RSA-1024", k.rsa1024.Public(), rsaAlgs}, // size is Parse's job, not Fits'
		{"P-256", k.p256.Public(), "ES256"},
		{"P-384", k.p384.Public(), "ES384"},
		{"P-521", k.p521.Public(), "ES512"},
		{"Ed25519", k.ed.Public(), "EdDSA"},
		{"HMAC secret", []byte("secret"), ""},
		{"RSA private key", k.rsa2048, ""},
		{"nil", nil, ""},
	}
	for _, kc := range keyCases {
		for _, alg := range algs {
			want := false
			for _, f := range strings.Fields(kc.fits) {
				want = want || f == alg
			}
			key := &Key{KID: "k", Public: kc.pub}
			if got := key.Fits(alg); got != want {
				t.Errorf("%s.Fits(%q) = %v, want %v", kc.name, alg, got, want)
			}
			// A JWK alg pins the key to that one algorithm (RFC 8725 §3.1).
			for _, pinned := range []string{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"} {
				key := &Key{KID: "k", Alg: pinned, Public: kc.pub}
				if got := key.Fits(alg); got != (want && alg == pinned) {
					t.Errorf("%s pinned to %s: Fits(%q) = %v, want %v", kc.name, pinned, alg, got, want && alg == pinned)
				}
			}
		}
	}
}

// TestParsedKeysFit: keys that come out of Parse fit exactly their algorithms.
func TestParsedKeysFit(t *testing.T) {
	k := tk(t)
	set, _, err := Parse(doc(t,
		jwk(t, k.rsa2048.Public(), "rsa", ""),
		jwk(t, k.p256.Public(), "p256", ""),
		jwk(t, k.p384.Public(), "p384", ""),
		jwk(t, k.p521.Public(), "p521", ""),
		jwk(t, k.ed.Public(), "ed", ""),
		jwk(t, k.rsa2048b.Public(), "rsa-pinned", "RS256"),
	), testAlgs)
	if err != nil {
		t.Fatal(err)
	}
	for kid, alg := range map[string]string{"rsa": "PS512", "p256": "ES256", "p384": "ES384", "p521": "ES512", "ed": "EdDSA", "rsa-pinned": "RS256"} {
		got := set.Lookup(kid)
		if len(got) != 1 || !got[0].Fits(alg) {
			t.Errorf("%s does not fit %s", kid, alg)
		}
	}
	if set.Lookup("rsa-pinned")[0].Fits("PS256") {
		t.Error("a key published with alg RS256 fits PS256 (K5)")
	}
	if set.Lookup("p256")[0].Fits("ES384") {
		t.Error("a P-256 key fits ES384 (K4)")
	}
}

func TestNewSet(t *testing.T) {
	k := tk(t)
	var ks []*Key
	for range MaxCandidates + 2 {
		ks = append(ks, &Key{KID: "same", Public: k.p256.Public()})
	}
	ks = append(ks, &Key{Public: k.ed.Public()}, &Key{KID: "other", Public: k.rsa2048.Public()})
	s := NewSet(ks)
	if got := len(s.Lookup("same")); got != MaxCandidates {
		t.Errorf("Lookup(same) = %d, want %d", got, MaxCandidates)
	}
	if s.Len() != MaxCandidates+2 || len(s.Keys()) != s.Len() {
		t.Errorf("Len = %d, Keys = %d, want %d", s.Len(), len(s.Keys()), MaxCandidates+2)
	}
	if s.Keys()[MaxCandidates].KID != "" || s.Keys()[MaxCandidates+1].KID != "other" {
		t.Error("Keys is not in input order")
	}
	var nilSet *Set
	if nilSet.Len() != 0 || nilSet.Keys() != nil || nilSet.Lookup("x") != nil {
		t.Error("a nil *Set is not empty")
	}
}

func TestStatic(t *testing.T) {
	k := tk(t)
	set := NewSet([]*Key{{KID: "a", Public: k.p256.Public()}})
	s := NewStatic(set)
	if got, err := s.Current(); err != nil || got != set || !s.Ready() {
		t.Fatalf("Current = %v, %v; Ready %v", got, err, s.Ready())
	}
	if _, err := s.RefreshForKID(context.Background()); !errors.Is(err, ErrRefreshRefused) {
		t.Errorf("RefreshForKID = %v, want ErrRefreshRefused", err)
	}
	empty := NewStatic(nil)
	if _, err := empty.Current(); !errors.Is(err, ErrKeysUnavailable) || empty.Ready() {
		t.Errorf("empty static: Current err %v, Ready %v", err, empty.Ready())
	}
}

func TestLoadFile(t *testing.T) {
	k := tk(t)
	dir := t.TempDir()
	d := doc(t, jwk(t, k.p256.Public(), "a", "ES256"))
	good := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(good, d, 0o600); err != nil {
		t.Fatal(err)
	}
	if set, _, err := LoadFile(good, testAlgs, int64(len(d))); err != nil || set.Len() != 1 {
		t.Fatalf("LoadFile at exactly maxBytes: %v", err)
	}
	if _, _, err := LoadFile(good, testAlgs, int64(len(d))-1); !errors.Is(err, ErrBadDocument) {
		t.Errorf("LoadFile over maxBytes: %v, want ErrBadDocument", err)
	}
	if _, _, err := LoadFile(filepath.Join(dir, "missing.json"), testAlgs, 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadFile of a missing file: %v", err)
	}
}
