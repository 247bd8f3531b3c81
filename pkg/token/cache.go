package token

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
)

// DefaultCacheEntries is the size of a Cache whose MaxEntries is 0 (contract: token_cache
// max_entries 10000).
const DefaultCacheEntries = 10000

// cacheShards is the most shards a Cache splits into: lookups of different tokens rarely wait
// on one another, and each shard's lock is held for a map access only.
const cacheShards = 16

// CacheOptions configure a Cache.
type CacheOptions struct {
	// MaxEntries bounds the number of tokens held; 0 means DefaultCacheEntries. When full,
	// the oldest insertion of a shard makes room. Memory is taken as entries arrive, never
	// reserved up front.
	MaxEntries int
	// OnLookup, when set, is called once per Verify with whether the answer came from the
	// cache: jwtauthz_token_cache_hits_total and jwtauthz_token_cache_misses_total. It must
	// be cheap and safe for concurrent use.
	OnLookup func(hit bool)
}

// Cache remembers successful verifications so that a token presented again skips the parse,
// the key lookup and the signature check. Its one rule: it never answers what a fresh
// verification would deny at that instant. So it holds successes only (an error is never
// cached, so a bad token costs a full verification every time and cannot evict good entries
// in bulk without valid signatures), and an entry is used only when
//
//   - it was made by the Verifier asking (a reload builds a new Verifier, with new providers);
//   - the provider's key source still serves the very *jwks.Set whose key verified the
//     signature: any other set (a rotation, a removed kid, a refetch, a changed file) or no set
//     (past max_stale) means a full verification again. jwks.Remote installs a new *Set on every
//     good download and keeps the same one on a 304, which confirms it;
//   - now is within [verification instant, exp + clock_skew]. exp is checked at every hit with
//     the same rule as checkClaims. nbf, iat and max_lifetime held at the verification instant
//     and can only keep holding later; a wall clock stepped back before that instant means a
//     full verification, which judges them again.
//
// Everything else Verify checks (header policy, issuer, audience, types, required claims,
// algorithms, key strength) depends only on the token bytes, the Verifier and the key set, all
// fixed for an entry. Keys are the SHA-256 of the exact token bytes: the token itself is
// neither stored as a key nor ever logged. It is safe for concurrent use; build it with
// NewCache (the zero value is not usable).
type Cache struct {
	shards   []cacheShard
	onLookup func(hit bool)
}

type cacheKey [sha256.Size]byte

// cacheEntry is immutable once published, except slot, which only its shard's lock guards.
type cacheEntry struct {
	key      cacheKey
	tok      *Token
	verifier *Verifier
	source   KeySource
	keys     *jwks.Set // the set whose key verified the signature
	from     time.Time // the verification instant, wall clock only
	until    time.Time // exp + clock_skew
	slot     int
}

// cacheShard is a map bounded by a ring of its entries in insertion order: when the ring is
// full, the entry under the hand (the oldest insertion) is replaced. Insert, lookup and
// removal are O(1).
type cacheShard struct {
	mu   sync.Mutex
	m    map[cacheKey]*cacheEntry
	ring []*cacheEntry // grows to size by append; removed entries leave nil holes
	size int
	hand int
	_    [64]byte // keeps neighbouring shards' locks off one cache line
}

// NewCache returns an empty cache.
func NewCache(o CacheOptions) *Cache {
	size := o.MaxEntries
	if size <= 0 {
		size = DefaultCacheEntries
	}
	n := cacheShards
	for n > size {
		n /= 2
	}
	c := &Cache{shards: make([]cacheShard, n), onLookup: o.OnLookup}
	for i := range c.shards {
		// The shards' sizes add up to MaxEntries exactly.
		c.shards[i].size = size / n
		if i < size%n {
			c.shards[i].size++
		}
		c.shards[i].m = map[cacheKey]*cacheEntry{}
	}
	return c
}

// Len is the number of entries held, usable or not.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// verify answers Verify for v from the cache, or verifies in full and remembers a success.
func (c *Cache) verify(ctx context.Context, v *Verifier, raw string, now time.Time) (*Token, error) {
	k := cacheKey(sha256.Sum256([]byte(raw)))
	s := c.shard(k)
	if tok := s.get(k, v, now); tok != nil {
		c.observe(true)
		return tok, nil
	}
	c.observe(false)
	tok, keys, err := v.verify(ctx, raw, now)
	if err != nil {
		return tok, err
	}
	exp, _, _ := numericDate(tok.Claims, "exp") // present and valid: checkClaims passed
	s.put(&cacheEntry{
		key: k, tok: tok, verifier: v, source: tok.Provider.Keys, keys: keys,
		from: now.Round(0), until: exp.Add(tok.Provider.ClockSkew),
	})
	return tok, nil
}

func (c *Cache) observe(hit bool) {
	if c.onLookup != nil {
		c.onLookup(hit)
	}
}

func (c *Cache) shard(k cacheKey) *cacheShard {
	// SHA-256 output is uniform, and the shard count divides 256: the first byte picks.
	return &c.shards[int(k[0])%len(c.shards)]
}

// get returns the token cached under k when it may answer for v at now, and removes an entry
// that may not.
func (s *cacheShard) get(k cacheKey, v *Verifier, now time.Time) *Token {
	s.mu.Lock()
	e := s.m[k]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	// Current is consulted outside the lock: it is an atomic load for every jwks source.
	// The comparisons mirror checkClaims: now.After(exp + skew) is expired; the wall clock
	// (now carries a monotonic reading, from none) is what the claim checks compare too.
	if e.verifier == v && !now.After(e.until) && !now.Before(e.from) {
		if set, err := e.source.Current(); err == nil && set == e.keys {
			return e.tok
		}
	}
	s.remove(e)
	return nil
}

// put inserts e, replacing an entry under the same key in place, or else the oldest entry when
// the shard is full.
func (s *cacheShard) put(e *cacheEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.m[e.key]; old != nil {
		e.slot = old.slot
		s.ring[e.slot] = e
		s.m[e.key] = e
		return
	}
	if len(s.ring) < s.size {
		e.slot = len(s.ring)
		s.ring = append(s.ring, e)
	} else {
		if victim := s.ring[s.hand]; victim != nil {
			delete(s.m, victim.key)
		}
		e.slot = s.hand
		s.ring[s.hand] = e
		s.hand = (s.hand + 1) % s.size
	}
	s.m[e.key] = e
}

// remove drops e if it is still the entry under its key (another request may have replaced
// it with a good one meanwhile).
func (s *cacheShard) remove(e *cacheEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[e.key] == e {
		delete(s.m, e.key)
		s.ring[e.slot] = nil
	}
}
