package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrKeysUnavailable means the provider holds no usable key set: never fetched, or the last good
// fetch is older than max_stale (J19, J20). Tokens of that provider get 503, not 401: the token
// is not at fault.
var ErrKeysUnavailable = errors.New("jwks: no usable keys")

// ErrRefreshRefused means an unknown-kid refresh was not attempted (cooldown, backoff, the global
// cap, or a source that cannot refresh). The caller denies with kid_unknown at once (J16).
var ErrRefreshRefused = errors.New("jwks: refresh refused")

// Static is a key set that never changes: inline or file JWKS, or keys held in process.
type Static struct{ set *Set }

// NewStatic wraps a parsed set.
func NewStatic(set *Set) *Static { return &Static{set: set} }

// Current returns the set.
func (s *Static) Current() (*Set, error) {
	if s.set == nil {
		return nil, ErrKeysUnavailable
	}
	return s.set, nil
}

// RefreshForKID always refuses: there is nowhere to fetch from.
func (s *Static) RefreshForKID(context.Context) (*Set, error) { return nil, ErrRefreshRefused }

// Ready reports whether the set holds keys.
func (s *Static) Ready() bool { return s.set != nil }

// LoadFile reads and parses a JWKS file, bounded like a fetch.
func LoadFile(path string, algorithms []string, maxBytes int64) (*Set, []Skip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("jwks: reading %s: %w", path, err)
	}
	if int64(len(doc)) > maxBytes {
		return nil, nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadDocument, path, maxBytes)
	}
	return Parse(doc, algorithms)
}
