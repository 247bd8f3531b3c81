package authz_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/jwtauthz/jwtauthz/pkg/authz"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/policy"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// BenchmarkDecideRules is BenchmarkDecide's EdDSA case (the cheapest signature check) with no
// rules and with 100 rules whose last one matches (policy.BenchmarkMatch100's shape), so that
// the cost rules add to a whole decision is read off one run.
func BenchmarkDecideRules(b *testing.B) {
	for _, n := range []int{0, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			a, tok := rulesAuthorizer(b, n)
			req := &authz.Request{
				Transport: "grpc", Method: "GET", Host: "api.example.com", Path: "/orders/7",
				Headers: map[string][]string{
					":authority": {"api.example.com"}, ":method": {"GET"}, ":path": {"/orders/7"},
					"authorization": {"Bearer " + tok}, "x-request-id": {"bench"}, "user-agent": {"curl/8"},
				},
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := a.Decide(ctx, req); !d.Allow {
					b.Fatalf("denied: %s", d.Reason)
				}
			}
		})
	}
}

func rulesAuthorizer(b *testing.B, n int) (*authz.Authorizer, string) {
	b.Helper()
	const iss = "https://issuer.example.com"
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	v, err := token.NewVerifier([]*token.Provider{{
		Name: "bench", Issuer: iss, Audiences: []string{"https://api.example.com"},
		Algorithms: []string{"EdDSA"}, TokenTypes: []string{"", "JWT", "at+jwt"}, ClockSkew: time.Minute,
		Keys: jwks.NewStatic(jwks.NewSet([]*jwks.Key{{KID: "k0", Alg: "EdDSA", Public: pub}})),
	}}, token.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var specs []policy.RuleSpec
	if n > 0 {
		need := &policy.RequirementSpec{Provider: "bench", Scopes: []string{"admin"}}
		for i := 0; len(specs) < n-1; i++ {
			specs = append(specs,
				policy.RuleSpec{Match: policy.MatchSpec{Prefix: fmt.Sprintf("/svc%d/", i)}, Requires: need},
				policy.RuleSpec{Match: policy.MatchSpec{SafeRegex: fmt.Sprintf("/v[0-9]+/svc%d/[a-z]+/[0-9]+", i)}, Requires: need},
				policy.RuleSpec{Match: policy.MatchSpec{PathSeparatedPrefix: "/orders", Methods: []string{"POST", "DELETE"}}, Requires: need},
				policy.RuleSpec{Match: policy.MatchSpec{Prefix: "/orders", Hosts: []string{fmt.Sprintf("svc%d.example.com", i), "*.internal.example.com"}}, Requires: need},
				policy.RuleSpec{Match: policy.MatchSpec{Path: fmt.Sprintf("/orders/%d/items", i)}},
			)
		}
		specs = append(specs[:n-1], policy.RuleSpec{
			Match:    policy.MatchSpec{PathSeparatedPrefix: "/orders", Methods: []string{"GET"}, Hosts: []string{"api.example.com"}},
			Requires: &policy.RequirementSpec{Provider: "bench", Scopes: []string{"read"}},
		})
	}
	pol, _, err := policy.Compile(specs, []string{"bench"})
	if err != nil {
		b.Fatal(err)
	}
	a, err := authz.New(authz.Options{
		Verifier: v,
		Policy:   pol,
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
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k0"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(map[string]any{
		"iss": iss, "sub": "user-123", "aud": "https://api.example.com", "email": "user@example.com",
		"scope": "read write", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}).Serialize()
	if err != nil {
		b.Fatal(err)
	}
	return a, tok
}
