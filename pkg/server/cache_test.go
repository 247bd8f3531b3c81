package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
)

// TestTokenCacheWiring: token_cache from the config reaches the verifier, and its lookups move
// jwtauthz_token_cache_hits_total and _misses_total; a disabled cache counts nothing.
func TestTokenCacheWiring(t *testing.T) {
	k := newSigner(t, "k1")
	inline, _ := json.Marshal(string(jwksDoc(t, []*signer{k})))
	const iss = "https://inline.example.com"
	for _, c := range []struct {
		name         string
		cache        string
		order        string // tokens presented, in order: a and b valid, x a bad signature
		hits, misses string
	}{
		{"default: on", "", "aaxx", "1", "3"},
		{"disabled", "token_cache: {enabled: false}", "aaxx", "0", "0"},
		{"one entry", "token_cache: {max_entries: 1}", "abaa", "1", "3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			clk := newFakeClock()
			s := startServer(t, clk, fmt.Sprintf(`
%s
providers:
  inline:
    issuer: %q
    audiences: ["https://api.example.com"]
    local_jwks: {inline: %s}
`, c.cache, iss, inline))
			toks := map[rune]string{
				'a': k.mint(t, iss, clk.Now(), nil),
				'b': k.mint(t, iss, clk.Now(), map[string]any{"typ": "at+jwt"}), // other bytes, same key
				'x': newSigner(t, "k1").mint(t, iss, clk.Now(), nil),
			}
			for i, r := range c.order {
				code, reason := s.check(t, toks[r])
				if want := map[bool]int{true: http.StatusUnauthorized, false: http.StatusOK}[r == 'x']; code != want {
					t.Fatalf("check %d (%c): %d %s, want %d", i, r, code, reason, want)
				}
			}
			s.waitMetric(t, "jwtauthz_token_cache_hits_total", c.hits)
			s.waitMetric(t, "jwtauthz_token_cache_misses_total", c.misses)
		})
	}
}
