package authz_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// BenchmarkDecide measures one full decision on the hot path: extraction, strict parsing,
// provider selection, claim checks, key lookup in the cached set, signature verification and
// header projection. Keys are in a static set (the remote cache serves the same *jwks.Set).
// Compare with Authorino's AuthPipeline (RS256, cached JWKS, one rule): ~350-390 µs/op,
// ~80 KiB/op, ~890 allocs/op (landscape.md §3.1).
//
// cache=off verifies every token in full (no token cache). cache=hit presents one token over
// and over with the token cache on: every decision but the first is answered from the cache.
// cache=miss alternates two tokens through a cache of one entry: every decision looks up,
// verifies in full and inserts (evicting the other token), the cost of a token seen for the
// first time.
func BenchmarkDecide(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		alg  jose.SignatureAlgorithm
		priv crypto.Signer
	}{
		{jose.RS256, rsaKey},
		{jose.ES256, ecKey},
		{jose.EdDSA, edKey},
	}
	caches := []struct {
		suffix string
		cache  func() *token.Cache // nil: no token cache
		tokens int                 // distinct tokens presented in turn
	}{
		{"/cache=off", nil, 1},
		{"/cache=hit", func() *token.Cache { return token.NewCache(token.CacheOptions{}) }, 1},
		{"/cache=miss", func() *token.Cache { return token.NewCache(token.CacheOptions{MaxEntries: 1}) }, 2},
	}
	for _, nkeys := range []int{1, 5} {
		for _, c := range cases {
			for _, tc := range caches {
				b.Run(fmt.Sprintf("%s/keys=%d%s", c.alg, nkeys, tc.suffix), func(b *testing.B) {
					var cache *token.Cache
					if tc.cache != nil {
						cache = tc.cache()
					}
					a, toks := benchAuthorizer(b, c.alg, c.priv, nkeys, cache, tc.tokens)
					var reqs []*authz.Request
					for _, tok := range toks {
						reqs = append(reqs, &authz.Request{
							Transport: "grpc", Method: "GET", Host: "api.example.com", Path: "/orders",
							Headers: map[string][]string{
								":authority": {"api.example.com"}, ":method": {"GET"}, ":path": {"/orders"},
								"authorization": {"Bearer " + tok}, "x-request-id": {"bench"}, "user-agent": {"curl/8"},
							},
						})
					}
					ctx := context.Background()
					b.ReportAllocs()
					b.ResetTimer()
					i := 0
					for b.Loop() {
						if d := a.Decide(ctx, reqs[i%len(reqs)]); !d.Allow {
							b.Fatalf("denied: %s", d.Reason)
						}
						i++
					}
				})
			}
		}
	}
}

// benchAuthorizer builds one provider over a static set of nkeys keys, with the given token
// cache (nil for none), and mints ntokens distinct valid tokens.
func benchAuthorizer(b *testing.B, alg jose.SignatureAlgorithm, priv crypto.Signer, nkeys int, cache *token.Cache, ntokens int) (*authz.Authorizer, []string) {
	b.Helper()
	const iss = "https://issuer.example.com"
	keys := []*jwks.Key{{KID: "k0", Alg: string(alg), Public: priv.Public()}}
	for i := 1; i < nkeys; i++ {
		// Decoys: other kids of the same type, as a real set during rotation.
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keys = append(keys, &jwks.Key{KID: fmt.Sprintf("k%d", i), Public: other.Public()})
	}
	v, err := token.NewVerifier([]*token.Provider{{
		Name: "bench", Issuer: iss, Audiences: []string{"https://api.example.com"},
		Algorithms: []string{"RS256", "ES256", "EdDSA"}, TokenTypes: []string{"", "JWT", "at+jwt"},
		ClockSkew: time.Minute, Keys: jwks.NewStatic(jwks.NewSet(keys)),
	}}, token.Options{Cache: cache})
	if err != nil {
		b.Fatal(err)
	}
	a, err := authz.New(authz.Options{
		Verifier: v,
		Providers: []authz.Provider{{
			Name:    "bench",
			Sources: []token.Source{{Kind: token.FromHeader, Name: "authorization", Prefix: "Bearer "}},
			ClaimToHeaders: []authz.ClaimHeader{
				{Claim: "sub", Header: "x-user-id"}, {Claim: "email", Header: "x-user-email"}, {Claim: "scope", Header: "x-user-scopes"},
			},
		}},
		Logger: discardLogger(),
	})
	if err != nil {
		b.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k0"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	var toks []string
	for i := range ntokens {
		tok, err := jwt.Signed(signer).Claims(map[string]any{
			"iss": iss, "sub": fmt.Sprintf("user-%d", 123+i), "aud": "https://api.example.com", "email": "user@example.com",
			"scope": "read write", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		}).Serialize()
		if err != nil {
			b.Fatal(err)
		}
		toks = append(toks, tok)
	}
	return a, toks
}
