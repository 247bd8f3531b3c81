package devissuer

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const testIssuer = "http://127.0.0.1:9003/dev"

// testNow is a whole second so exp = now+ttl holds exactly in Unix seconds.
var testNow = time.Unix(1_700_000_000, 0)

// RSA-2048 generation is slow under -race, so tests that only read from an
// issuer share one. Its clock is fixed, so sharing cannot leak state.
var (
	sharedOnce sync.Once
	shared     *Issuer
	sharedErr  error
)

func sharedIssuer(t *testing.T) *Issuer {
	t.Helper()
	sharedOnce.Do(func() {
		shared, sharedErr = New(Options{Issuer: testIssuer, Now: func() time.Time { return testNow }})
	})
	if sharedErr != nil {
		t.Fatalf("New: %v", sharedErr)
	}
	return shared
}

// verify checks tok's signature against the key named by its kid in jwksDoc
// (exactly as an external verifier would) and returns the raw protected
// header members and the claims.
func verify(t *testing.T, jwksDoc []byte, tok string) (map[string]any, map[string]any) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksDoc, &set); err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatalf("ParseSigned: %v", err)
	}
	if len(parsed.Headers) != 1 {
		t.Fatalf("got %d headers, want 1", len(parsed.Headers))
	}
	h := parsed.Headers[0]
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("JWKS has %d keys for kid %q, want 1", len(keys), h.KeyID)
	}
	if keys[0].Algorithm != h.Algorithm {
		t.Errorf("token alg %q signed with key bound to alg %q", h.Algorithm, keys[0].Algorithm)
	}
	var claims map[string]any
	if err := parsed.Claims(keys[0].Key, &claims); err != nil {
		t.Fatalf("signature verification: %v", err)
	}

	// Decode the header segment directly so unexpected members are caught,
	// not just the ones go-jose surfaces.
	seg, err := base64.RawURLEncoding.DecodeString(strings.SplitN(tok, ".", 2)[0])
	if err != nil {
		t.Fatalf("decode header: %v", err)
	}
	var hdr map[string]any
	if err := json.Unmarshal(seg, &hdr); err != nil {
		t.Fatalf("unmarshal header: %v", err)
	}
	return hdr, claims
}

func kidFor(t *testing.T, iss *Issuer, alg string) string {
	t.Helper()
	for _, k := range iss.PublicKeys() {
		if k.Alg == alg {
			return k.KID
		}
	}
	t.Fatalf("no public key for alg %q", alg)
	return ""
}

// checkJTI asserts jti is 16 random bytes in base64url, then removes it so
// the remaining claims can be compared exactly.
func checkJTI(t *testing.T, claims map[string]any) {
	t.Helper()
	s, ok := claims["jti"].(string)
	if !ok {
		t.Fatalf("jti = %#v, want string", claims["jti"])
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		t.Errorf("jti %q: want base64url of 16 bytes (got %d bytes, err %v)", s, len(b), err)
	}
	delete(claims, "jti")
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		opts     Options
		wantErr  string
		wantAud  string
		wantBase string
	}{
		{name: "defaults", opts: Options{Issuer: testIssuer}, wantAud: "jwtauthz-dev", wantBase: testIssuer},
		{name: "custom audience", opts: Options{Issuer: testIssuer, Audience: "api"}, wantAud: "api", wantBase: testIssuer},
		{name: "https", opts: Options{Issuer: "https://dev.example"}, wantAud: "jwtauthz-dev", wantBase: "https://dev.example"},
		{name: "trailing slash", opts: Options{Issuer: "http://localhost:1/"}, wantAud: "jwtauthz-dev", wantBase: "http://localhost:1"},
		{name: "empty issuer", opts: Options{}, wantErr: "required"},
		{name: "relative", opts: Options{Issuer: "/dev"}, wantErr: "scheme"},
		{name: "other scheme", opts: Options{Issuer: "ftp://host/dev"}, wantErr: "scheme"},
		{name: "no host", opts: Options{Issuer: "http:///dev"}, wantErr: "host"},
		{name: "query", opts: Options{Issuer: "http://host/dev?x=1"}, wantErr: "query"},
		{name: "empty query", opts: Options{Issuer: "http://host/dev?"}, wantErr: "query"},
		{name: "fragment", opts: Options{Issuer: "http://host/dev#f"}, wantErr: "fragment"},
		{name: "unparsable", opts: Options{Issuer: "http://[::1"}, wantErr: "devissuer: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss, err := New(tc.opts)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("New(%+v) succeeded, want error containing %q", tc.opts, tc.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "devissuer: ") || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q: want prefix %q and to contain %q", err, "devissuer: ", tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if got := iss.IssuerURL(); got != tc.opts.Issuer {
				t.Errorf("IssuerURL() = %q, want %q (verbatim)", got, tc.opts.Issuer)
			}
			if got := iss.Audience(); got != tc.wantAud {
				t.Errorf("Audience() = %q, want %q", got, tc.wantAud)
			}
			if iss.base != tc.wantBase {
				t.Errorf("base = %q, want %q", iss.base, tc.wantBase)
			}
		})
	}
}

func TestMint(t *testing.T) {
	iss := sharedIssuer(t)
	edKID, rsaKID := kidFor(t, iss, "EdDSA"), kidFor(t, iss, "RS256")
	if edKID == rsaKID {
		t.Fatalf("kids must differ, both %q", edKID)
	}
	now := float64(testNow.Unix())
	base := func(overrides map[string]any) map[string]any {
		m := map[string]any{
			"iss":       testIssuer,
			"sub":       "dev-user",
			"aud":       "jwtauthz-dev",
			"iat":       now,
			"nbf":       now,
			"exp":       now + 3600,
			"client_id": "jwtauthz-dev",
		}
		for k, v := range overrides {
			if v == nil {
				delete(m, k)
				continue
			}
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name       string
		req        TokenRequest
		wantAlg    string
		wantKID    string
		wantClaims map[string]any
	}{
		{name: "zero request", req: TokenRequest{}, wantAlg: "EdDSA", wantKID: edKID, wantClaims: base(nil)},
		{name: "explicit EdDSA", req: TokenRequest{Alg: "EdDSA"}, wantAlg: "EdDSA", wantKID: edKID, wantClaims: base(nil)},
		{name: "RS256", req: TokenRequest{Alg: "RS256"}, wantAlg: "RS256", wantKID: rsaKID, wantClaims: base(nil)},
		{
			name:    "all fields EdDSA",
			req:     TokenRequest{Sub: "alice", Aud: "orders", Scope: "read write", TTL: 90 * time.Second, Alg: "EdDSA"},
			wantAlg: "EdDSA", wantKID: edKID,
			wantClaims: base(map[string]any{"sub": "alice", "aud": "orders", "scope": "read write", "exp": now + 90}),
		},
		{
			name:    "all fields RS256",
			req:     TokenRequest{Sub: "bob", Aud: "billing", Scope: "admin", TTL: 2 * time.Minute, Alg: "RS256"},
			wantAlg: "RS256", wantKID: rsaKID,
			wantClaims: base(map[string]any{"sub": "bob", "aud": "billing", "scope": "admin", "exp": now + 120}),
		},
		{name: "max ttl", req: TokenRequest{TTL: 24 * time.Hour}, wantAlg: "EdDSA", wantKID: edKID, wantClaims: base(map[string]any{"exp": now + 86400})},
		{name: "sub-second ttl truncates", req: TokenRequest{TTL: 1500 * time.Millisecond}, wantAlg: "EdDSA", wantKID: edKID, wantClaims: base(map[string]any{"exp": now + 1})},
		{
			name:    "extra claims",
			req:     TokenRequest{Extra: map[string]any{"email": "a@example.com", "groups": []string{"a", "b"}, "n": 7, "null": nil}},
			wantAlg: "EdDSA", wantKID: edKID,
			wantClaims: func() map[string]any {
				m := base(map[string]any{"email": "a@example.com", "groups": []any{"a", "b"}, "n": float64(7)})
				m["null"] = nil
				return m
			}(),
		},
		{
			name:    "extra overrides sub aud scope client_id",
			req:     TokenRequest{Sub: "ignored", Scope: "ignored", Extra: map[string]any{"sub": "svc", "aud": []string{"a", "b"}, "scope": "x", "client_id": "other"}},
			wantAlg: "EdDSA", wantKID: edKID,
			wantClaims: base(map[string]any{"sub": "svc", "aud": []any{"a", "b"}, "scope": "x", "client_id": "other"}),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := iss.Mint(tc.req)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			if strings.Count(tok, ".") != 2 {
				t.Fatalf("not a compact JWS: %q", tok)
			}
			hdr, claims := verify(t, iss.JWKS(), tok)
			wantHdr := map[string]any{"alg": tc.wantAlg, "kid": tc.wantKID, "typ": "JWT"}
			if !reflect.DeepEqual(hdr, wantHdr) {
				t.Errorf("header = %v, want %v", hdr, wantHdr)
			}
			checkJTI(t, claims)
			if !reflect.DeepEqual(claims, tc.wantClaims) {
				t.Errorf("claims =\n  %v\nwant\n  %v", claims, tc.wantClaims)
			}
		})
	}
}

func TestMintCustomAudienceAndTrailingSlash(t *testing.T) {
	// The default aud follows Options.Audience, and iss is the configured
	// value verbatim even with a trailing slash.
	iss, err := New(Options{Issuer: "http://localhost:8080/", Audience: "my-api", Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := iss.Mint(TokenRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, claims := verify(t, iss.JWKS(), tok)
	if claims["aud"] != "my-api" || claims["iss"] != "http://localhost:8080/" {
		t.Errorf("aud=%v iss=%v, want my-api and http://localhost:8080/", claims["aud"], claims["iss"])
	}
}

func TestMintErrors(t *testing.T) {
	iss := sharedIssuer(t)
	tests := []struct {
		name string
		req  TokenRequest
		want string
	}{
		{name: "negative ttl", req: TokenRequest{TTL: -time.Second}, want: "ttl"},
		{name: "ttl over 24h", req: TokenRequest{TTL: 24*time.Hour + time.Second}, want: "ttl"},
		{name: "alg HS256", req: TokenRequest{Alg: "HS256"}, want: "alg"},
		{name: "alg none", req: TokenRequest{Alg: "none"}, want: "alg"},
		{name: "alg wrong case", req: TokenRequest{Alg: "eddsa"}, want: "alg"},
		{name: "alg ES256", req: TokenRequest{Alg: "ES256"}, want: "alg"},
		{name: "extra iss", req: TokenRequest{Extra: map[string]any{"iss": "x"}}, want: `"iss"`},
		{name: "extra exp", req: TokenRequest{Extra: map[string]any{"exp": 1}}, want: `"exp"`},
		{name: "extra iat", req: TokenRequest{Extra: map[string]any{"iat": 1}}, want: `"iat"`},
		{name: "extra nbf", req: TokenRequest{Extra: map[string]any{"nbf": 1}}, want: `"nbf"`},
		{name: "extra jti", req: TokenRequest{Extra: map[string]any{"jti": "x"}}, want: `"jti"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := iss.Mint(tc.req)
			if err == nil {
				t.Fatalf("Mint succeeded (%q), want error", tok)
			}
			if tok != "" {
				t.Errorf("token %q returned alongside error", tok)
			}
			if !strings.HasPrefix(err.Error(), "devissuer: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want prefix devissuer: and to contain %q", err, tc.want)
			}
			if !errors.Is(err, errInvalidRequest) {
				t.Errorf("error %q does not wrap errInvalidRequest", err)
			}
		})
	}

	t.Run("unencodable extra", func(t *testing.T) {
		_, err := iss.Mint(TokenRequest{Extra: map[string]any{"ch": make(chan int)}})
		if err == nil || !strings.HasPrefix(err.Error(), "devissuer: ") {
			t.Fatalf("err = %v, want devissuer: error", err)
		}
	})
	t.Run("zero Issuer", func(t *testing.T) {
		var zero Issuer
		if _, err := zero.Mint(TokenRequest{}); err == nil {
			t.Fatal("Mint on zero Issuer succeeded")
		}
		var nilIss *Issuer
		if _, err := nilIss.Mint(TokenRequest{}); err == nil {
			t.Fatal("Mint on nil Issuer succeeded")
		}
	})
}

func TestMintUniqueJTI(t *testing.T) {
	iss := sharedIssuer(t)
	seen := map[any]bool{}
	for n := 0; n < 50; n++ {
		tok, err := iss.Mint(TokenRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		parsed, err := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		if err := parsed.UnsafeClaimsWithoutVerification(&c); err != nil {
			t.Fatal(err)
		}
		if seen[c["jti"]] {
			t.Fatalf("duplicate jti %v", c["jti"])
		}
		seen[c["jti"]] = true
	}
}

// failAfter yields n bytes of a fixed pattern and then fails, to exercise
// entropy-source error paths.
type failAfter struct{ n int }

var errEntropy = errors.New("entropy exhausted")

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errEntropy
	}
	k := min(len(p), f.n)
	for i := range p[:k] {
		p[i] = 0x42
	}
	f.n -= k
	return k, nil
}

func TestRand(t *testing.T) {
	t.Run("ed25519 key derives from Rand", func(t *testing.T) {
		seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
		r := io.MultiReader(bytes.NewReader(seed), bytes.NewReader(make([]byte, 1<<12)))
		iss, err := New(Options{Issuer: testIssuer, Rand: r})
		if err != nil {
			t.Fatal(err)
		}
		want := jose.JSONWebKey{Key: ed25519.NewKeyFromSeed(seed).Public()}
		tp, err := want.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if got := kidFor(t, iss, "EdDSA"); got != base64.RawURLEncoding.EncodeToString(tp) {
			t.Errorf("EdDSA kid %q does not match key from injected seed", got)
		}
	})
	t.Run("New fails when Rand fails", func(t *testing.T) {
		_, err := New(Options{Issuer: testIssuer, Rand: &failAfter{n: 0}})
		if !errors.Is(err, errEntropy) || !strings.HasPrefix(err.Error(), "devissuer: ") {
			t.Fatalf("err = %v, want wrapped errEntropy with devissuer: prefix", err)
		}
	})
	t.Run("Mint fails when Rand fails", func(t *testing.T) {
		// 32 bytes cover the Ed25519 seed. Go 1.26 crypto/rsa does not read
		// a custom Rand, so the next read is the jti's.
		iss, err := New(Options{Issuer: testIssuer, Rand: &failAfter{n: ed25519.SeedSize}})
		if err != nil {
			t.Skipf("crypto/rsa consumed the custom Rand (GODEBUG=cryptocustomrand=1?): %v", err)
		}
		tok, err := iss.Mint(TokenRequest{})
		if !errors.Is(err, errEntropy) || tok != "" {
			t.Fatalf("Mint = %q, %v; want empty token and wrapped errEntropy", tok, err)
		}
		// An entropy failure is a server fault, not the client's.
		rec := httptest.NewRecorder()
		iss.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/token", nil))
		if rec.Code != http.StatusInternalServerError {
			t.Errorf("handler status = %d, want 500", rec.Code)
		}
	})
}

func TestJWKSAndPublicKeys(t *testing.T) {
	iss := sharedIssuer(t)
	doc := iss.JWKS()

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS is not a key set: %v", err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(set.Keys))
	}
	pubs := iss.PublicKeys()
	if len(pubs) != 2 {
		t.Fatalf("PublicKeys has %d keys, want 2", len(pubs))
	}
	wantAlgs := []string{"EdDSA", "RS256"}
	for n, k := range set.Keys {
		if !k.IsPublic() {
			t.Errorf("key %d is not public", n)
		}
		if k.Use != "sig" || k.Algorithm != wantAlgs[n] || k.KeyID == "" {
			t.Errorf("key %d: use=%q alg=%q kid=%q, want sig/%s/non-empty", n, k.Use, k.Algorithm, k.KeyID, wantAlgs[n])
		}
		// The kid is the RFC 7638 thumbprint, so verifiers can recompute it.
		tp, err := k.Thumbprint(crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if k.KeyID != base64.RawURLEncoding.EncodeToString(tp) {
			t.Errorf("key %d kid %q is not its thumbprint", n, k.KeyID)
		}
		if pubs[n].KID != k.KeyID || pubs[n].Alg != k.Algorithm {
			t.Errorf("PublicKeys[%d] = %s/%s, JWKS has %s/%s", n, pubs[n].KID, pubs[n].Alg, k.KeyID, k.Algorithm)
		}
	}
	if set.Keys[0].KeyID == set.Keys[1].KeyID {
		t.Error("kids are not distinct")
	}

	edPub, ok := pubs[0].Key.(ed25519.PublicKey)
	if !ok || !edPub.Equal(set.Keys[0].Key) {
		t.Errorf("PublicKeys[0].Key = %T, want the JWKS ed25519.PublicKey", pubs[0].Key)
	}
	rsaPub, ok := pubs[1].Key.(*rsa.PublicKey)
	if !ok || !rsaPub.Equal(set.Keys[1].Key) || rsaPub.N.BitLen() != 2048 {
		t.Errorf("PublicKeys[1].Key = %T, want the JWKS 2048-bit *rsa.PublicKey", pubs[1].Key)
	}

	// Belt and braces: no private JWK members anywhere in the raw document.
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		t.Fatal(err)
	}
	for n, k := range raw.Keys {
		for _, priv := range []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"} {
			if _, ok := k[priv]; ok {
				t.Errorf("key %d exposes private member %q", n, priv)
			}
		}
	}

	// Callers get copies: scribbling on them must not change what is served.
	doc[0] = 'X'
	edPub[0] ^= 0xff
	rsaPub.N.SetInt64(3)
	if !bytes.Equal(iss.JWKS(), append([]byte{'{'}, doc[1:]...)) {
		t.Error("mutating JWKS() result changed the issuer's JWKS")
	}
	again := iss.PublicKeys()
	if !again[0].Key.(ed25519.PublicKey).Equal(set.Keys[0].Key) || !again[1].Key.(*rsa.PublicKey).Equal(set.Keys[1].Key) {
		t.Error("mutating PublicKeys() result changed the issuer's keys")
	}
}

func TestHandlerDiscoveryAndJWKS(t *testing.T) {
	tests := []struct {
		issuer      string
		wantJWKSURI string
		wantToken   string
	}{
		{testIssuer, testIssuer + "/.well-known/jwks.json", testIssuer + "/token"},
		{"https://dev.example/", "https://dev.example/.well-known/jwks.json", "https://dev.example/token"},
	}
	for _, tc := range tests {
		t.Run(tc.issuer, func(t *testing.T) {
			iss := sharedIssuer(t)
			if tc.issuer != testIssuer {
				var err error
				if iss, err = New(Options{Issuer: tc.issuer}); err != nil {
					t.Fatal(err)
				}
			}
			h := iss.Handler()
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(method, "/.well-known/openid-configuration", nil))
				if rec.Code != http.StatusOK {
					t.Fatalf("%s discovery status %d", method, rec.Code)
				}
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("discovery Content-Type %q", ct)
				}
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/openid-configuration", nil))
			var doc struct {
				Issuer        string   `json:"issuer"`
				JWKSURI       string   `json:"jwks_uri"`
				TokenEndpoint string   `json:"token_endpoint"`
				Algs          []string `json:"id_token_signing_alg_values_supported"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("discovery body %q: %v", rec.Body, err)
			}
			if doc.Issuer != tc.issuer || doc.JWKSURI != tc.wantJWKSURI || doc.TokenEndpoint != tc.wantToken {
				t.Errorf("discovery = %+v, want issuer %q jwks_uri %q token_endpoint %q", doc, tc.issuer, tc.wantJWKSURI, tc.wantToken)
			}
			if !reflect.DeepEqual(doc.Algs, []string{"EdDSA", "RS256"}) {
				t.Errorf("algs = %v", doc.Algs)
			}

			rec = httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("jwks status %d", rec.Code)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/jwk-set+json" {
				t.Errorf("jwks Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "max-age=300" {
				t.Errorf("jwks Cache-Control %q", cc)
			}
			if !bytes.Equal(rec.Body.Bytes(), iss.JWKS()) {
				t.Errorf("jwks body differs from JWKS()")
			}
		})
	}
}

// tokenResp decodes a /token response, asserting the headers every token
// endpoint response must carry.
func tokenResp(t *testing.T, rec *httptest.ResponseRecorder) (tokenResponse, errorResponse) {
	t.Helper()
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var ok tokenResponse
	var bad errorResponse
	dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
	dec.DisallowUnknownFields()
	var err error
	if rec.Code == http.StatusOK {
		err = dec.Decode(&ok)
	} else {
		err = dec.Decode(&bad)
	}
	if err != nil {
		t.Fatalf("status %d body %q: %v", rec.Code, rec.Body, err)
	}
	return ok, bad
}

func TestHandlerToken(t *testing.T) {
	iss := sharedIssuer(t)
	edKID, rsaKID := kidFor(t, iss, "EdDSA"), kidFor(t, iss, "RS256")
	now := float64(testNow.Unix())
	tests := []struct {
		name      string
		query     string
		wantKID   string
		wantSub   string
		wantAud   string
		wantScope any // nil when the claim must be absent
		wantTTL   int64
	}{
		{name: "defaults", query: "", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 3600},
		{name: "empty values are defaults", query: "sub=&aud=&scope=&ttl=&alg=", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 3600},
		{name: "sub", query: "sub=alice", wantKID: edKID, wantSub: "alice", wantAud: "jwtauthz-dev", wantTTL: 3600},
		{name: "aud", query: "aud=orders", wantKID: edKID, wantSub: "dev-user", wantAud: "orders", wantTTL: 3600},
		{name: "scope", query: "scope=read+write", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantScope: "read write", wantTTL: 3600},
		{name: "ttl seconds", query: "ttl=90", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 90},
		{name: "ttl duration", query: "ttl=90s", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 90},
		{name: "ttl hours", query: "ttl=2h", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 7200},
		{name: "ttl max seconds", query: "ttl=86400", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 86400},
		{name: "ttl max duration", query: "ttl=24h", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 86400},
		{name: "alg EdDSA", query: "alg=EdDSA", wantKID: edKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 3600},
		{name: "alg RS256", query: "alg=RS256", wantKID: rsaKID, wantSub: "dev-user", wantAud: "jwtauthz-dev", wantTTL: 3600},
		{
			name: "everything", query: "sub=svc%2Fa&aud=api&scope=admin&ttl=5m&alg=RS256",
			wantKID: rsaKID, wantSub: "svc/a", wantAud: "api", wantScope: "admin", wantTTL: 300,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			iss.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/token?"+tc.query, nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d body %s", rec.Code, rec.Body)
			}
			resp, _ := tokenResp(t, rec)
			if resp.TokenType != "Bearer" || resp.ExpiresIn != tc.wantTTL {
				t.Errorf("token_type=%q expires_in=%d, want Bearer/%d", resp.TokenType, resp.ExpiresIn, tc.wantTTL)
			}
			hdr, claims := verify(t, iss.JWKS(), resp.AccessToken)
			if hdr["kid"] != tc.wantKID {
				t.Errorf("kid = %v, want %v", hdr["kid"], tc.wantKID)
			}
			checkJTI(t, claims)
			want := map[string]any{
				"iss": testIssuer, "sub": tc.wantSub, "aud": tc.wantAud, "client_id": "jwtauthz-dev",
				"iat": now, "nbf": now, "exp": now + float64(tc.wantTTL),
			}
			if tc.wantScope != nil {
				want["scope"] = tc.wantScope
			}
			if !reflect.DeepEqual(claims, want) {
				t.Errorf("claims = %v, want %v", claims, want)
			}
		})
	}
}

func TestHandlerTokenErrors(t *testing.T) {
	iss := sharedIssuer(t)
	tests := []struct {
		name     string
		query    string
		wantDesc string
	}{
		{name: "ttl garbage", query: "ttl=soon", wantDesc: "ttl"},
		{name: "ttl fractional", query: "ttl=1.5", wantDesc: "ttl"},
		{name: "ttl zero", query: "ttl=0", wantDesc: "ttl"},
		{name: "ttl zero duration", query: "ttl=0s", wantDesc: "ttl"},
		{name: "ttl negative", query: "ttl=-5", wantDesc: "ttl"},
		{name: "ttl negative duration", query: "ttl=-1m", wantDesc: "ttl"},
		{name: "ttl over 24h seconds", query: "ttl=86401", wantDesc: "ttl"},
		{name: "ttl over 24h duration", query: "ttl=25h", wantDesc: "ttl"},
		{name: "ttl int64 overflow", query: "ttl=99999999999999999999", wantDesc: "ttl"},
		{name: "ttl duration overflow", query: "ttl=9999999999h", wantDesc: "ttl"},
		{name: "alg HS256", query: "alg=HS256", wantDesc: "alg"},
		{name: "alg none", query: "alg=none", wantDesc: "alg"},
		{name: "alg lowercase", query: "alg=rs256", wantDesc: "alg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			iss.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/token?"+tc.query, nil))
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400; body %s", rec.Code, rec.Body)
			}
			_, e := tokenResp(t, rec)
			if e.Error != "invalid_request" || !strings.Contains(e.Description, tc.wantDesc) {
				t.Errorf("error = %+v, want invalid_request mentioning %q", e, tc.wantDesc)
			}
		})
	}
}

func TestHandlerTokenPOST(t *testing.T) {
	iss := sharedIssuer(t)
	rsaKID := kidFor(t, iss, "RS256")
	form := func(v url.Values) io.Reader { return strings.NewReader(v.Encode()) }
	tests := []struct {
		name     string
		target   string
		body     io.Reader
		ct       string
		wantCode int
		wantSub  string
		wantKID  string
		wantTTL  int64
	}{
		{
			name: "form body", target: "/token",
			body: form(url.Values{"sub": {"carol"}, "alg": {"RS256"}, "ttl": {"90s"}}), ct: "application/x-www-form-urlencoded",
			wantCode: 200, wantSub: "carol", wantKID: rsaKID, wantTTL: 90,
		},
		{
			name: "query and body merge, body wins", target: "/token?alg=RS256&sub=fromquery",
			body: form(url.Values{"sub": {"frombody"}}), ct: "application/x-www-form-urlencoded",
			wantCode: 200, wantSub: "frombody", wantKID: rsaKID, wantTTL: 3600,
		},
		{
			name: "non-form body ignored", target: "/token?alg=RS256&sub=q",
			body: strings.NewReader(`{"sub":"json"}`), ct: "application/json",
			wantCode: 200, wantSub: "q", wantKID: rsaKID, wantTTL: 3600,
		},
		{
			name: "bad ttl in body", target: "/token",
			body: form(url.Values{"ttl": {"forever"}}), ct: "application/x-www-form-urlencoded",
			wantCode: 400,
		},
		{
			name: "bad alg in body", target: "/token",
			body: form(url.Values{"alg": {"PS256"}}), ct: "application/x-www-form-urlencoded",
			wantCode: 400,
		},
		{
			name: "malformed content type", target: "/token",
			body: strings.NewReader("sub=x"), ct: "application/x-www-form-urlencoded; =bad",
			wantCode: 400,
		},
		{
			name: "body over 64 KiB", target: "/token",
			body: strings.NewReader("sub=" + strings.Repeat("a", 64<<10)), ct: "application/x-www-form-urlencoded",
			wantCode: 413,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, tc.target, tc.body)
			req.Header.Set("Content-Type", tc.ct)
			rec := httptest.NewRecorder()
			iss.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantCode, rec.Body)
			}
			resp, e := tokenResp(t, rec)
			if tc.wantCode != http.StatusOK {
				if e.Error != "invalid_request" || e.Description == "" {
					t.Errorf("error = %+v, want invalid_request with description", e)
				}
				return
			}
			if resp.ExpiresIn != tc.wantTTL {
				t.Errorf("expires_in = %d, want %d", resp.ExpiresIn, tc.wantTTL)
			}
			hdr, claims := verify(t, iss.JWKS(), resp.AccessToken)
			if hdr["kid"] != tc.wantKID || claims["sub"] != tc.wantSub {
				t.Errorf("kid=%v sub=%v, want %v/%v", hdr["kid"], claims["sub"], tc.wantKID, tc.wantSub)
			}
		})
	}
}

func TestHandlerRouting(t *testing.T) {
	h := sharedIssuer(t).Handler()
	tests := []struct {
		method    string
		path      string
		wantCode  int
		wantAllow string
	}{
		{http.MethodGet, "/", 404, ""},
		{http.MethodGet, "/foo", 404, ""},
		{http.MethodGet, "/token/", 404, ""},
		{http.MethodGet, "//token", 404, ""},
		{http.MethodGet, "/.well-known/", 404, ""},
		{http.MethodGet, "/.well-known/jwks", 404, ""},
		{http.MethodGet, "/dev/token", 404, ""},
		{http.MethodPost, "/nope", 404, ""},
		{http.MethodDelete, "/token", 405, "GET, POST"},
		{http.MethodPut, "/token", 405, "GET, POST"},
		{http.MethodHead, "/token", 405, "GET, POST"},
		{http.MethodPost, "/.well-known/jwks.json", 405, "GET, HEAD"},
		{http.MethodDelete, "/.well-known/openid-configuration", 405, "GET, HEAD"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.wantCode {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantCode)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tc.wantAllow)
			}
			if strings.Contains(rec.Body.String(), "eyJ") {
				t.Errorf("error response contains something token-like: %q", rec.Body)
			}
		})
	}
}

// TestHandlerMountedEndToEnd drives the handler the way serve --dev does:
// mounted under a prefix on a real server, discovering the JWKS through the
// discovery document and verifying a token fetched from token_endpoint.
func TestHandlerMountedEndToEnd(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	issURL := "http://" + srv.Listener.Addr().String() + "/dev"
	iss, err := New(Options{Issuer: issURL, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dev/", http.StripPrefix("/dev", iss.Handler()))
	srv.Config.Handler = mux
	srv.Start()
	defer srv.Close()

	get := func(u string) []byte {
		t.Helper()
		resp, err := srv.Client().Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
		}
		return b
	}
	var disc struct {
		Issuer        string `json:"issuer"`
		JWKSURI       string `json:"jwks_uri"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := json.Unmarshal(get(issURL+"/.well-known/openid-configuration"), &disc); err != nil {
		t.Fatal(err)
	}
	if disc.Issuer != issURL {
		t.Errorf("issuer %q, want %q", disc.Issuer, issURL)
	}
	jwks := get(disc.JWKSURI)
	var tr tokenResponse
	if err := json.Unmarshal(get(disc.TokenEndpoint+"?sub=e2e&alg=RS256"), &tr); err != nil {
		t.Fatal(err)
	}
	hdr, claims := verify(t, jwks, tr.AccessToken)
	if hdr["alg"] != "RS256" || claims["sub"] != "e2e" || claims["iss"] != issURL {
		t.Errorf("alg=%v sub=%v iss=%v", hdr["alg"], claims["sub"], claims["iss"])
	}
}

func TestHandlerConcurrent(t *testing.T) {
	// Many goroutines mint through one handler; -race checks the shared
	// Rand and signers, and every token must still verify.
	iss := sharedIssuer(t)
	h := iss.Handler()
	const n = 16
	toks := make([]string, n)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			alg := []string{"EdDSA", "RS256"}[k%2]
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/token?alg="+alg, nil))
			var tr tokenResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &tr); err == nil {
				toks[k] = tr.AccessToken
			}
		}()
	}
	wg.Wait()
	for k, tok := range toks {
		if tok == "" {
			t.Fatalf("request %d got no token", k)
		}
		verify(t, iss.JWKS(), tok)
	}
}
