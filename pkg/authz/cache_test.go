package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/token"
)

// TestDecideWithTokenCache: with the token cache on, every decision (headers, metadata payloads,
// scope and claim rules, two-token requirements, denies) equals the uncached one, round after
// round, while the cache answers; and no decision changes the cached token, whose claims every
// request presenting that token now shares.
func TestDecideWithTokenCache(t *testing.T) {
	var hits, misses atomic.Int64
	cache := token.NewCache(token.CacheOptions{OnLookup: func(hit bool) {
		if hit {
			hits.Add(1)
		} else {
			misses.Add(1)
		}
	}})
	plain := newAuthorizer(t, setup{rules: testRules})
	cached := newAuthorizer(t, setup{rules: testRules, tokenCache: cache})

	m := func(r devissuer.TokenRequest) string { return mint(t, issMain, r) }
	full := m(devissuer.TokenRequest{Sub: "alice", Scope: "read admin", Extra: map[string]any{
		"email":   "alice@example.com",
		"groups":  []any{"admins", "dev ops", 7, true},
		"address": map[string]any{"zip": "75001", "city": "Paris", "geo": []any{48.85, 2.35}},
		"level":   42,
		"role":    []any{"viewer", "admin"},
		"scp":     []any{"read", "admin"},
		"tier":    2,
	}})
	mainRead := m(devissuer.TokenRequest{Sub: "bob", Scope: "read"})
	expired := mintAt(t, issMain, testNow.Add(-2*time.Hour), devissuer.TokenRequest{Sub: "alice", TTL: time.Hour})
	wrongIss := mint(t, issOther, devissuer.TokenRequest{Sub: "alice"})
	partner := mint(t, issPartner, devissuer.TokenRequest{Sub: "p1", Alg: "RS256"})
	down := mint(t, issDown, devissuer.TokenRequest{Sub: "alice"})
	bearer := func(tok string) []string { return []string{"authorization", "Bearer " + tok, "x-user-id", "mallory"} }

	// The token every request below shares once cached, and a snapshot of it.
	shared, err := cached.o.Verifier.Verify(context.Background(), full)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(shared.Claims)
	payload := bytes.Clone(shared.Payload)

	requests := []*Request{
		at("/orders", nil, "", bearer(full)...),
		at("/admin/users", nil, "", bearer(full)...),
		at("/admin/users", nil, "", bearer(mainRead)...),
		at("/ops", nil, "", bearer(full)...),
		at("/ops", nil, "", bearer(mainRead)...),
		at("/tier", nil, "", bearer(full)...),
		at("/partner", nil, "access_token="+partner),
		at("/both", nil, "access_token="+partner, bearer(full)...),
		at("/both", nil, "access_token="+partner, bearer(expired)...),
		at("/orders", map[string]string{"jwtauthz.scopes": "admin"}, "", bearer(full)...),
		at("/orders", map[string]string{"jwtauthz.provider": "partner"}, "", bearer(full)...),
		at("/orders", nil, "", bearer(expired)...),
		at("/orders", nil, "", bearer(wrongIss)...),
		at("/orders", nil, "", bearer(down)...),
		at("/healthz", nil, "", bearer(full)...),
	}
	for round := range 3 {
		for i, r := range requests {
			want, got := decide(t, plain, r), decide(t, cached, r)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round %d, request %d (%s): with the cache\n%+v\nwithout\n%+v", round, i, r.Path, got, want)
			}
		}
	}
	if hits.Load() == 0 {
		t.Fatal("the cache never answered")
	}
	if again, err := cached.o.Verifier.Verify(context.Background(), full); err != nil || again != shared {
		t.Fatalf("the shared token is no longer the cached one: %v", err)
	}
	after, _ := json.Marshal(shared.Claims)
	if !bytes.Equal(before, after) || !bytes.Equal(payload, shared.Payload) {
		t.Fatalf("a decision changed the cached token:\n%s\n%s", before, after)
	}
}
