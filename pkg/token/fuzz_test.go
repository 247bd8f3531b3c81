package token

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// Fuzz properties (house style 21): never panic; every error is exactly one reason; and never
// an allow that an independent check, written with crypto/* and encoding/json only, disagrees
// with. Seeds are the catalogue cases. Inputs that once failed live in testdata/fuzz.

var compactRE = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

// fuzzKeys maps the kids of the main set that hold usable keys to their public keys.
func fuzzKeys(f *fixture) map[string][]crypto.PublicKey {
	k := f.k
	return map[string][]crypto.PublicKey{
		"rsa":        {&k.rsa.PublicKey},
		"rs-bound":   {&k.rsaB.PublicKey},
		"ops-verify": {&k.rsaB.PublicKey},
		"dup":        {&k.rsaB.PublicKey, &k.rsa.PublicKey},
		"p256":       {&k.p256.PublicKey},
		"p384":       {&k.p384.PublicKey},
		"p521":       {&k.p521.PublicKey},
		"ed":         {k.ed.Public()},
	}
}

func FuzzVerify(f *testing.F) {
	fix := fx(f)
	for _, c := range catalogueCases(f) {
		if len(c.raw) <= 1<<16 {
			f.Add(c.raw)
		}
	}
	pubs := fuzzKeys(fix)
	p := testProvider(&fakeSource{set: fix.set})
	v := newTestVerifier(f, p)
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(ctx, raw)
		if tok == nil {
			t.Fatal("nil *Token")
		}
		if err != nil {
			if m := matchedSentinels(err); len(m) != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, len(m))
			}
			if tok.Claims != nil || tok.Payload != nil {
				t.Fatalf("denied token carries claims: %v", err)
			}
			return
		}
		// Allowed: re-derive everything without the code under test.
		if !compactRE.MatchString(raw) {
			t.Fatalf("allowed a token outside the compact grammar: %q", raw)
		}
		segs := strings.Split(raw, ".")
		strict := base64.RawURLEncoding.Strict()
		var hdrJSON, payload, sig []byte
		for i, dst := range []*[]byte{&hdrJSON, &payload, &sig} {
			b, derr := strict.DecodeString(segs[i])
			if derr != nil {
				t.Fatalf("allowed a token with non-canonical segment %d: %v", i, derr)
			}
			*dst = b
		}
		if !utf8.Valid(hdrJSON) || !utf8.Valid(payload) {
			t.Fatalf("allowed invalid UTF-8")
		}
		var h map[string]json.RawMessage // exact member names, as JOSE wants
		var alg string
		if json.Unmarshal(hdrJSON, &h) != nil || json.Unmarshal(h["alg"], &alg) != nil || alg != tok.Alg {
			t.Fatalf("header alg %q, Token.Alg %q", alg, tok.Alg)
		}
		var claims map[string]any
		if json.Unmarshal(payload, &claims) != nil || claims == nil {
			t.Fatalf("allowed a payload that is not a JSON object: %q", payload)
		}
		if claims["iss"] != testIssuer {
			t.Fatalf("allowed iss %v", claims["iss"])
		}
		exp, ok := claims["exp"].(float64)
		if !ok || exp < float64(testNow.Unix()-60) {
			t.Fatalf("allowed exp %v", claims["exp"])
		}
		if _, ok := claims["cnf"]; ok {
			t.Fatal("allowed a cnf claim")
		}
		candidates := pubs[tok.KID]
		if _, hasKID := h["kid"]; !hasKID {
			for _, ks := range pubs {
				candidates = append(candidates, ks...)
			}
		}
		input := []byte(raw[:strings.LastIndexByte(raw, '.')])
		for _, pub := range candidates {
			if cryptoVerify(alg, pub, input, sig) {
				return
			}
		}
		t.Fatalf("allowed a token whose signature crypto/* does not verify: %q", raw)
	})
}

// b64TokenRE is RFC 6750 §2.1's b64token.
var b64TokenRE = regexp.MustCompile(`^[A-Za-z0-9._~+/-]+=*$`)

func FuzzExtract(f *testing.F) {
	for _, s := range []struct{ authz, extra, query, cookie string }{
		{"Bearer " + xtok, "", "", ""},
		{"bearer  " + xtok, "", "", ""},
		{"Bearer\t" + xtok, "", "", ""},
		{"Basic QWxhZGRpbg==", "", "access_token=" + xtok, ""},
		{`Digest username="a", realm="b,c"`, "", "", ""},
		{"Bearer a, Bearer b", "", "", ""},
		{"Bearer a", "Bearer b", "", ""},
		{"Bearer " + xtok, "", "access_token=" + xtok, ""},
		{"", "", "a=1&access_token=" + xtok, "session=x"},
		{"", "", "", `a=b; session="` + xtok + `"`},
		{"Bearer ", "", "access_token=%zz", "session="},
		{"Bearer " + strings.Repeat("a", 600), "", "", ""},
	} {
		f.Add(s.authz, s.extra, s.query, s.cookie)
	}
	sources := []Source{srcBearer, srcCustom, srcParam, srcCookie}
	const max = 512

	f.Fuzz(func(t *testing.T, authz, extra, query, cookie string) {
		headers := map[string][]string{}
		if authz != "" {
			headers["authorization"] = []string{authz}
			if extra != "" {
				headers["authorization"] = append(headers["authorization"], extra)
			}
		} else if extra != "" {
			headers["x-jwt-assertion"] = []string{extra}
		}
		if cookie != "" {
			headers["cookie"] = []string{cookie}
		}
		c, err := Extract(sources, headers, query, max)
		if err != nil {
			m := matchedSentinels(err)
			if len(m) != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, len(m))
			}
			switch m[0] {
			case ErrMissingToken, ErrUnsupportedScheme, ErrMalformedAuthorization, ErrMultipleTokens, ErrTokenTooLarge:
			default:
				t.Fatalf("Extract returned a verification error: %v", err)
			}
			if c != (Credential{}) {
				t.Fatalf("failed Extract returned %+v", c)
			}
			return
		}
		if c.Token == "" || len(c.Token) > max || !b64TokenRE.MatchString(c.Token) {
			t.Fatalf("extracted %q: empty, too long or outside b64token", c.Token)
		}
		if strings.Contains(c.Token, ",") {
			t.Fatalf("extracted a comma: %q", c.Token)
		}
		switch c.Source {
		case srcBearer:
			if extra != "" || !strings.Contains(authz, c.Token) {
				t.Fatalf("authorization %q / %q gave %q", authz, extra, c.Token)
			}
			if len(authz) < 7 || !strings.EqualFold(authz[:6], "bearer") {
				t.Fatalf("authorization %q gave a token without the Bearer scheme", authz)
			}
		case srcCustom:
			if authz != "" || strings.TrimRight(extra, " \t") != c.Token {
				t.Fatalf("x-jwt-assertion %q gave %q", extra, c.Token)
			}
		case srcParam:
			vals, _ := url.ParseQuery(strings.ReplaceAll(query, ";", "%3B"))
			found := false
			for _, v := range vals["access_token"] {
				found = found || v == c.Token
			}
			if !found && !strings.Contains(query, c.Token) {
				t.Fatalf("query %q gave %q", query, c.Token)
			}
		case srcCookie:
			if !strings.Contains(cookie, c.Token) {
				t.Fatalf("cookie %q gave %q", cookie, c.Token)
			}
		default:
			t.Fatalf("unknown source %+v", c.Source)
		}
	})
}

// FuzzVerifySigned lets the fuzzer write the header and payload bytes and signs them for real,
// with the key the header's alg and kid name, so that inputs get past the signature and reach
// the policy. A nil error must then agree with the catalogue, re-checked here with
// encoding/json: object header and payload, no forbidden header member, an accepted typ, iss,
// aud, exp, nbf, iat and no cnf.
func FuzzVerifySigned(f *testing.F) {
	fix := fx(f)
	for _, c := range catalogueCases(f) {
		segs := strings.Split(c.raw, ".")
		if len(segs) != 3 || len(c.raw) > 1<<14 {
			continue
		}
		h, err1 := base64.RawURLEncoding.DecodeString(segs[0])
		p, err2 := base64.RawURLEncoding.DecodeString(segs[1])
		if err1 == nil && err2 == nil {
			f.Add(string(h), string(p))
		}
	}
	signers := map[string]signer{
		"RS256": fix.rs256, "RS384": fix.rs384, "RS512": fix.rs512,
		"PS256": fix.ps256, "PS384": fix.ps384, "PS512": fix.ps512,
		"ES256": fix.es256, "ES384": fix.es384, "ES512": fix.es512, "EdDSA": fix.eddsa,
	}
	p := testProvider(&fakeSource{set: fix.set})
	v := newTestVerifier(f, p)
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, header, payload string) {
		var peek struct {
			Alg string `json:"alg"`
		}
		_ = json.Unmarshal([]byte(header), &peek)
		s, ok := signers[peek.Alg]
		if !ok {
			s = fix.eddsa
		}
		raw := compact(t, s, header, payload)
		tok, err := v.Verify(ctx, raw)
		if err != nil {
			if m := matchedSentinels(err); len(m) != 1 {
				t.Fatalf("error %q wraps %d sentinels", err, len(m))
			}
			return
		}
		if !utf8.ValidString(header) || !utf8.ValidString(payload) {
			t.Fatal("allowed invalid UTF-8")
		}
		var h map[string]json.RawMessage
		if err := json.Unmarshal([]byte(header), &h); err != nil || h == nil {
			t.Fatalf("allowed a header that is not a JSON object: %q", header)
		}
		for _, name := range []string{"crit", "b64", "zip", "cty", "enc", "epk", "p2c", "iv", "tag"} {
			if _, ok := h[name]; ok {
				t.Fatalf("allowed header member %q: %q", name, header)
			}
		}
		if rt, ok := h["typ"]; ok {
			var typ string
			if json.Unmarshal(rt, &typ) != nil {
				t.Fatalf("allowed typ %s", rt)
			}
			switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
			case "jwt", "at+jwt":
			default:
				t.Fatalf("allowed typ %q", typ)
			}
		}
		var c map[string]any
		dec := json.NewDecoder(strings.NewReader(payload))
		dec.UseNumber()
		if err := dec.Decode(&c); err != nil || c == nil || dec.More() {
			t.Fatalf("allowed a payload that is not one JSON object: %q", payload)
		}
		if c["iss"] != testIssuer || tok.Issuer != testIssuer {
			t.Fatalf("allowed iss %v", c["iss"])
		}
		if !hasAudience(c["aud"], testAud) {
			t.Fatalf("allowed aud %v", c["aud"])
		}
		now := float64(testNow.Unix())
		// NumericDate fractions are truncated; the skew is 60 s.
		exp, ok := number(c["exp"])
		if !ok || math.Trunc(exp) < now-60 || exp >= 1<<62 {
			t.Fatalf("allowed exp %v", c["exp"])
		}
		for _, name := range []string{"nbf", "iat"} {
			if v, present := c[name]; present && v != nil {
				if n, ok := number(v); !ok || math.Trunc(n) > now+60 || n <= -(1<<62) {
					t.Fatalf("allowed %s %v", name, v)
				}
			}
		}
		if _, ok := c["cnf"]; ok {
			t.Fatal("allowed cnf")
		}
		if sub, present := c["sub"]; present && sub != nil {
			if _, ok := sub.(string); !ok {
				t.Fatalf("allowed sub %v", sub)
			}
		}
	})
}

func number(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		found := false
		for _, e := range a {
			s, ok := e.(string)
			if !ok {
				return false
			}
			found = found || s == want
		}
		return found
	}
	return false
}
