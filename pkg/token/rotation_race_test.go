package token

import (
	"context"
	"sync"
	"testing"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// installingSource models a fetch that finishes between the verifier's Current() and its
// RefreshForKID: the first Current() returns the old set, the new set is installed at once, and
// RefreshForKID refuses (the cooldown started with that very fetch).
type installingSource struct {
	mu       sync.Mutex
	old, new *jwks.Set
	calls    int
}

func (s *installingSource) Current() (*jwks.Set, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == 1 {
		return s.old, nil
	}
	return s.new, nil
}

func (s *installingSource) RefreshForKID(context.Context) (*jwks.Set, error) {
	return nil, jwks.ErrRefreshRefused
}

// TestKIDInstalledDuringRefusal: a valid token with a rotated kid is allowed when a concurrent
// fetch installed its key, even though this caller's own refresh was refused. (Seen in the
// e2e rotation test: one valid token in 1,600 denied kid_unknown at the instant a kid fetch
// completed.)
func TestKIDInstalledDuringRefusal(t *testing.T) {
	k := testKeys(t)
	old := keySet(t, jwk(t, k.rsaB.Public(), "old", ""))
	rotated := keySet(t, jwk(t, k.rsaB.Public(), "old", ""), jwk(t, k.rsa.Public(), "new", ""))
	src := &installingSource{old: old, new: rotated}
	v := newTestVerifier(t, testProvider(src))
	tok, err := v.Verify(context.Background(), fx(t).tok(t, signer{alg: "RS256", key: k.rsa}, "new", nil))
	if err != nil {
		t.Fatalf("valid token with a just-installed kid denied: %v", err)
	}
	if tok.KID != "new" {
		t.Fatalf("kid %q", tok.KID)
	}

	// And a kid that is in neither set is still unknown.
	src = &installingSource{old: old, new: rotated}
	v = newTestVerifier(t, testProvider(src))
	_, err = v.Verify(context.Background(), fx(t).tok(t, signer{alg: "RS256", key: k.rsa}, "absent", nil))
	checkErr(t, err, ErrKIDUnknown)
}
