package jwks

import (
	"testing"
	"time"
)

// The fake clock of the remote tests, for the external tests that drive a Remote through the
// real token.Verifier (verifier_test.go, package jwks_test).

type FakeClock = fakeClock

var NewFakeClock = newFakeClock

func (c *fakeClock) WaitPending(t *testing.T, d time.Duration, n int) { c.waitPending(t, d, n) }
func (c *fakeClock) PendingOf(d time.Duration) int                    { return c.pendingOf(d) }
