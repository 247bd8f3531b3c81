package jwks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fetch failures, wrapped with detail. They never reach a client: a failed refresh keeps the last
// good set (J18).
var (
	ErrHTTPStatus = errors.New("jwks: unexpected HTTP status")
	ErrTooLarge   = errors.New("jwks: response larger than max_bytes")
)

// Fetch results, the result label of jwtauthz_jwks_fetches_total.
const (
	ResultOK          = "ok"
	ResultError       = "error"
	ResultNotModified = "not_modified"
)

// KIDWait bounds how long a check waits for an unknown-kid fetch it started or joined (J16).
const KIDWait = 2 * time.Second

// RemoteOptions configure a Remote. Zero durations take the contract's defaults.
type RemoteOptions struct {
	// Provider names the provider in logs.
	Provider string
	// URI of the JWKS document. Required.
	URI string
	// Client makes the fetches. Default: NewHTTPClient(HTTPClientOptions{}).
	Client *http.Client
	// Algorithms is the provider's allowlist, for the per-key alg filter (J8).
	Algorithms []string

	RefreshInterval    time.Duration // 3600s: used when the response carries no cache headers
	MinRefreshInterval time.Duration // 300s
	MaxRefreshInterval time.Duration // 86400s
	KIDMissCooldown    time.Duration // 60s
	MaxStale           time.Duration // 86400s
	Timeout            time.Duration // 5s per attempt
	MaxBytes           int64         // 524288

	// Limiter caps kid-triggered fetches across all providers; nil means no global cap.
	Limiter *Limiter
	// UserAgent of the fetches; default "jwtauthz".
	UserAgent string
	// Now and After are the clock; defaults time.Now and time.After. Tests inject both.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Jitter returns a float in [0,1); default math/rand/v2.
	Jitter func() float64
	// Logger; default slog.Default().
	Logger *slog.Logger
	// OnFetch, when set, is called after every fetch attempt (metrics, readiness).
	OnFetch func(FetchResult)
}

// FetchResult describes one fetch attempt (or, for a File, one read of the file).
type FetchResult struct {
	Provider string
	Err      error // nil on success
	// NotModified: the IdP answered 304 to our If-None-Match (J15). A success: the set held is
	// confirmed current, and its age starts again from zero.
	NotModified bool
	Keys        int // usable keys in the set now installed (success only)
	Skipped     []Skip
	Trigger     string // "schedule", "kid", or for a File "start" and "change"
	URI         string // the JWKS URL asked (a discovery source finds it in the discovery document)
	ContentType string // as the IdP sent it; logged, never enforced (J6)
}

// Result is the metric label of the attempt: ResultOK, ResultNotModified or ResultError.
func (f FetchResult) Result() string {
	switch {
	case f.Err != nil:
		return ResultError
	case f.NotModified:
		return ResultNotModified
	}
	return ResultOK
}

// Remote is a provider's key set fetched from a JWKS URL: fetched at start with backoff, refreshed
// in the background on a schedule derived from the response's cache headers, refreshed early for
// an unknown kid through one shared, cooled-down fetch, and kept through failures until max_stale.
type Remote struct {
	o   RemoteOptions
	set atomic.Pointer[installed]

	mu          sync.Mutex
	inflight    *call
	lastSuccess time.Time // zero until the first good fetch
	failures    int       // consecutive failed attempts
	nextAttempt time.Time // no attempt (scheduled or kid-triggered) before this, after a failure
	nextRefresh time.Time // the scheduled refresh
	stopped     bool      // Run has returned: no new fetch may start (it would have no owner)
	// etag is the validator of the installed set's response, sent back as If-None-Match (J15);
	// etagURI is the URL that answered it (discovery may move the JWKS).
	etag, etagURI string
	// wake tells Run that a fetch it did not wait for (kid-triggered) moved the schedule.
	wake chan struct{}
	// runCtx is Run's context, the parent of every fetch, so that ending Run cancels them.
	runCtx context.Context

	// locate, when set, resolves the JWKS URL before each attempt (a Discovery source). It gets
	// the number of consecutive failed attempts so far.
	locate func(ctx context.Context, failures int) (string, error)

	// scheduled, when set (tests only), is called each time Run starts waiting, with the wait.
	scheduled func(wait time.Duration)
}

type installed struct {
	set       *Set
	fetchedAt time.Time
}

type call struct {
	done     chan struct{} // closed once the outcome is installed and err is set
	err      error
	finished chan struct{} // closed when the fetch goroutine has nothing left to do
}

// attempt is what a fetch goroutine needs from the Remote's state, read under its lock when the
// fetch starts.
type attempt struct {
	trigger       string
	reserved      bool // a Limiter token was taken (kid-triggered), to give back on failure
	failures      int  // consecutive failed attempts before this one
	etag, etagURI string
}

// outcome is one fetch's result.
type outcome struct {
	set         *Set
	skips       []Skip
	ttl         time.Duration
	etag        string
	notModified bool
	uri         string
	contentType string
}

// NewRemote checks the options and applies defaults. Call Run to start fetching.
func NewRemote(o RemoteOptions) (*Remote, error) {
	if o.URI == "" {
		return nil, errors.New("jwks: remote source needs a URI")
	}
	return newRemote(o, nil)
}

func newRemote(o RemoteOptions, locate func(context.Context, int) (string, error)) (*Remote, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RefreshInterval, time.Hour)
	def(&o.MinRefreshInterval, 5*time.Minute)
	def(&o.MaxRefreshInterval, 24*time.Hour)
	def(&o.KIDMissCooldown, time.Minute)
	def(&o.MaxStale, 24*time.Hour)
	def(&o.Timeout, 5*time.Second)
	if o.MaxBytes <= 0 {
		o.MaxBytes = 512 << 10
	}
	if o.Client == nil {
		c, err := NewHTTPClient(HTTPClientOptions{})
		if err != nil {
			return nil, err
		}
		o.Client = c
	}
	if o.UserAgent == "" {
		o.UserAgent = "jwtauthz"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.After == nil {
		o.After = time.After
	}
	if o.Jitter == nil {
		o.Jitter = rand.Float64
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Remote{o: o, wake: make(chan struct{}, 1), runCtx: context.Background(), locate: locate}, nil
}

// Current returns the installed set, or ErrKeysUnavailable when there is none or it is older
// than max_stale (fail closed, J19).
func (r *Remote) Current() (*Set, error) {
	in := r.set.Load()
	if in == nil {
		return nil, ErrKeysUnavailable
	}
	if r.o.Now().Sub(in.fetchedAt) > r.o.MaxStale {
		return nil, fmt.Errorf("%w: last good fetch %s ago", ErrKeysUnavailable, r.o.Now().Sub(in.fetchedAt).Round(time.Second))
	}
	return in.set, nil
}

// Ready reports whether Current would return keys.
func (r *Remote) Ready() bool {
	_, err := r.Current()
	return err == nil
}

// RetryAfter estimates when keys may next arrive: the time to the next fetch attempt, at least 1s.
// It feeds the Retry-After header of a 503.
func (r *Remote) RetryAfter() time.Duration {
	r.mu.Lock()
	next := r.nextAttempt
	r.mu.Unlock()
	d := next.Sub(r.o.Now())
	if d < time.Second {
		d = time.Second
	}
	return d.Round(time.Second)
}

// Run fetches at once, then on schedule, until ctx ends. Every fetch (scheduled or
// kid-triggered) runs under ctx, so ending ctx cancels the one in flight; Run returns only once
// that fetch's goroutine is done, and no fetch starts after Run has returned (house style §14).
// Call Run once per Remote.
func (r *Remote) Run(ctx context.Context) {
	r.mu.Lock()
	r.runCtx = ctx
	r.stopped = false
	r.mu.Unlock()
	defer r.stop()
	for ctx.Err() == nil {
		c, _ := r.startOrJoin(false)
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
		// The fetch just awaited queued its wake-up before closing done: drop it, this loop
		// reads the schedule that fetch left anyway.
		select {
		case <-r.wake:
		default:
		}
		if !r.waitForNext(ctx) {
			return
		}
	}
}

// waitForNext waits until the next fetch is due: the scheduled refresh, or the end of the backoff
// after a failure (J14, J18). It reports false when ctx ends first.
func (r *Remote) waitForNext(ctx context.Context) bool {
	for {
		r.mu.Lock()
		next := r.nextRefresh
		if r.failures > 0 {
			next = r.nextAttempt
		}
		r.mu.Unlock()
		wait := next.Sub(r.o.Now())
		if wait <= 0 {
			return true
		}
		timer := r.o.After(wait)
		if r.scheduled != nil {
			r.scheduled(wait)
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer:
		case <-r.wake:
		}
		// Recompute in every case: a kid-triggered fetch may have moved the schedule while
		// the timer ran (a success pushes it back, a failure brings the retry forward), and a
		// timer that fires together with that wake-up must not cause a second fetch at once.
	}
}

// stop marks the Remote stopped and waits for the fetch in flight, if any: cancelled with Run's
// context, so the wait is short (a kid-triggered fetch started before Run ends at its timeout).
func (r *Remote) stop() {
	r.mu.Lock()
	r.stopped = true
	c := r.inflight
	r.mu.Unlock()
	if c != nil {
		<-c.finished
	}
}

// RefreshForKID is called for a kid missing from the current set, after the token passed the
// cheap checks (J16). It joins a running fetch or starts one, unless the cooldown, the failure
// backoff or the global cap forbids it, or Run has returned, in which case it returns
// ErrRefreshRefused at once. It waits at most min(ctx deadline, KIDWait); it never retries. A
// joined fetch that fails returns that fetch's error: the caller denies either way.
func (r *Remote) RefreshForKID(ctx context.Context) (*Set, error) {
	if err := ctx.Err(); err != nil {
		// The request is already over: starting a fetch for it would only add load.
		return nil, err
	}
	c, err := r.startOrJoin(true)
	if err != nil {
		return nil, err
	}
	wait := r.o.After(KIDWait)
	select {
	case <-c.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait:
		return nil, fmt.Errorf("%w: fetch still running after %s", ErrRefreshRefused, KIDWait)
	}
	if c.err != nil {
		return nil, c.err
	}
	return r.Current()
}

func (r *Remote) startOrJoin(kidTriggered bool) (*call, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight != nil {
		return r.inflight, nil
	}
	a := attempt{trigger: "schedule", failures: r.failures}
	if in := r.set.Load(); !kidTriggered && in != nil && r.etag != "" && r.o.Now().Sub(in.fetchedAt) <= r.o.MaxStale {
		// Scheduled refreshes revalidate (J15). A 304 may only confirm a set we still serve:
		// past max_stale, fetch it whole. So does a kid miss, evidence that the set changed: a
		// validator that failed to change with it (a CDN bug) must not hide a rotation.
		a.etag, a.etagURI = r.etag, r.etagURI
	}
	if kidTriggered {
		now := r.o.Now()
		switch {
		case r.stopped:
			return nil, fmt.Errorf("%w: the refresher has stopped", ErrRefreshRefused)
		case !r.lastSuccess.IsZero() && now.Sub(r.lastSuccess) < r.o.KIDMissCooldown:
			return nil, fmt.Errorf("%w: within kid_miss_cooldown of the last good fetch", ErrRefreshRefused)
		case r.failures > 0 && now.Before(r.nextAttempt):
			return nil, fmt.Errorf("%w: backing off after a failed fetch", ErrRefreshRefused)
		case r.o.Limiter != nil && !r.o.Limiter.Reserve():
			return nil, fmt.Errorf("%w: global cap on kid-triggered fetches reached", ErrRefreshRefused)
		}
		a.trigger = "kid"
		a.reserved = r.o.Limiter != nil
	}
	c := &call{done: make(chan struct{}), finished: make(chan struct{})}
	r.inflight = c
	ctx := r.runCtx
	go r.fetchAndInstall(ctx, c, a)
	return c, nil
}

func (r *Remote) fetchAndInstall(ctx context.Context, c *call, a attempt) {
	defer close(c.finished)
	out, err := r.fetch(ctx, a)
	now := r.o.Now()
	r.mu.Lock()
	if err == nil {
		set := out.set
		if out.notModified {
			// J15: the IdP confirms the set we hold; it is as fresh as a new download.
			set = r.set.Load().set
			out.set = set
		}
		r.set.Store(&installed{set: set, fetchedAt: now})
		if out.etag != "" || !out.notModified {
			// A 304 may omit the validator (RFC 9110 §15.4.5 only asks for it): keep ours.
			r.etag, r.etagURI = out.etag, out.uri
		}
		r.lastSuccess = now
		r.failures = 0
		r.nextAttempt = now
		r.nextRefresh = now.Add(refreshAfter(out.ttl, r.o))
	} else {
		r.failures++
		r.nextAttempt = now.Add(Backoff(r.failures, r.o.MinRefreshInterval, r.o.Jitter()))
		if a.reserved {
			// A failed fetch does not use up the global cap (J16: reserve, cancel on failure).
			r.o.Limiter.Cancel()
		}
	}
	failures := r.failures
	r.inflight = nil
	c.err = err
	r.mu.Unlock()
	// Wake Run before releasing the waiters: Run, when it was the waiter, drops this wake-up,
	// which it can do only if it is already queued.
	select {
	case r.wake <- struct{}{}:
	default:
	}
	close(c.done)

	log := r.o.Logger.With("provider", r.o.Provider, "trigger", a.trigger)
	if out.uri != "" && r.locate != nil {
		log = log.With("uri", out.uri) // found by discovery: say which
	}
	if out.contentType != "" {
		// J6: logged, never enforced (IdPs send application/json, even text/plain).
		log = log.With("content_type", out.contentType)
	}
	switch {
	case err != nil:
		msg := "jwks fetch failed; keeping the last good keys"
		if r.set.Load() == nil {
			msg = "jwks fetch failed; no keys yet, this provider's tokens get 503"
		}
		log.Warn(msg, "error", err.Error(), "consecutive_failures", failures)
	case out.notModified:
		log.Info("jwks not modified; keeping the current keys", "keys", out.set.Len())
	default:
		log.Info("jwks fetched", "keys", out.set.Len(), "skipped", len(out.skips))
	}
	for _, s := range out.skips {
		lvl := slog.LevelWarn
		if s.Reason == SkipPrivate {
			// The IdP is publishing private key material: someone must act.
			lvl = slog.LevelError
		}
		log.Log(context.Background(), lvl, "jwks key skipped", "index", s.Index, "kid", s.KID, "reason", s.Reason, "detail", s.Detail)
	}
	if r.o.OnFetch != nil {
		res := FetchResult{Provider: r.o.Provider, Err: err, NotModified: err == nil && out.notModified, Skipped: out.skips,
			Trigger: a.trigger, URI: out.uri, ContentType: out.contentType}
		if err == nil {
			res.Keys = out.set.Len()
		}
		r.o.OnFetch(res)
	}
}

// fetch performs one bounded GET (J1-J7) and returns the parsed set and the TTL its cache headers
// ask for (J14). With a validator from the set held, it sends If-None-Match and takes a 304 as
// success (J15).
func (r *Remote) fetch(parent context.Context, a attempt) (outcome, error) {
	uri := r.o.URI
	if r.locate != nil {
		u, err := r.locate(parent, a.failures)
		if err != nil {
			return outcome{}, err
		}
		uri = u
	}
	out := outcome{uri: uri}
	ctx, cancel := context.WithTimeout(parent, r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return out, fmt.Errorf("jwks: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	req.Header.Set("User-Agent", r.o.UserAgent)
	sentETag := a.etag != "" && a.etagURI == uri
	if sentETag {
		req.Header.Set("If-None-Match", a.etag)
	}
	resp, err := r.o.Client.Do(req)
	if err != nil {
		return out, fmt.Errorf("jwks: fetch: %w", err)
	}
	defer resp.Body.Close()
	out.contentType = resp.Header.Get("Content-Type")
	if resp.StatusCode == http.StatusNotModified && sentETag {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		out.notModified = true
		out.etag = resp.Header.Get("ETag")
		out.ttl = TTL(resp.Header, r.o.Now(), r.o.RefreshInterval, r.o.MinRefreshInterval)
		return out, nil
	}
	if resp.StatusCode != http.StatusOK {
		// Among them a 304 we did not ask for: there is nothing it could confirm.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return out, fmt.Errorf("%w: %d", ErrHTTPStatus, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.o.MaxBytes+1))
	if err != nil {
		return out, fmt.Errorf("jwks: reading body: %w", err)
	}
	if int64(len(body)) > r.o.MaxBytes {
		return out, fmt.Errorf("%w (%d bytes)", ErrTooLarge, r.o.MaxBytes)
	}
	set, skips, err := Parse(body, r.o.Algorithms)
	out.skips = skips
	if err != nil {
		return out, err
	}
	out.set = set
	out.etag = resp.Header.Get("ETag")
	out.ttl = TTL(resp.Header, r.o.Now(), r.o.RefreshInterval, r.o.MinRefreshInterval)
	return out, nil
}

// refreshAfter is the wait before the next scheduled refresh (J14), never more than half of
// max_stale: with the defaults (max_refresh_interval = max_stale = 24 h) a long max-age plus
// +10 % jitter would otherwise schedule the refresh after the keys expire, and a healthy IdP
// would see its tokens answered 503 until the refresh. Half leaves room for retries.
func refreshAfter(ttl time.Duration, o RemoteOptions) time.Duration {
	d := jitter(clamp(ttl, o.MinRefreshInterval, o.MaxRefreshInterval), o.Jitter())
	return min(d, o.MaxStale/2)
}

// TTL derives the refresh interval from a response's headers (J14): Cache-Control max-age minus
// Age, else Expires minus Date, else fallback. no-cache, no-store and max-age=0 ask for the
// shortest interval allowed, minimum. The caller clamps the result.
func TTL(h http.Header, now time.Time, fallback, minimum time.Duration) time.Duration {
	if cc := h.Values("Cache-Control"); len(cc) > 0 {
		maxAge := int64(-1)
		for _, v := range cc {
			for _, d := range strings.Split(v, ",") {
				d = strings.ToLower(strings.TrimSpace(d))
				switch {
				case d == "no-cache" || d == "no-store":
					return minimum
				case strings.HasPrefix(d, "max-age="):
					if n, ok := deltaSeconds(strings.Trim(d[len("max-age="):], `"`)); ok {
						maxAge = n
					}
				}
			}
		}
		if maxAge == 0 {
			return minimum
		}
		if maxAge > 0 {
			age, _ := deltaSeconds(strings.TrimSpace(h.Get("Age")))
			return time.Duration(maxAge-age) * time.Second
		}
	}
	if exp := h.Get("Expires"); exp != "" {
		e, err := http.ParseTime(exp)
		if err != nil {
			return minimum // RFC 9111 §5.3: an invalid Expires means already expired
		}
		date := now
		if d, err := http.ParseTime(h.Get("Date")); err == nil {
			date = d
		}
		return e.Sub(date)
	}
	return fallback
}

// maxDeltaSeconds is what RFC 9111 §1.2.2 says to use for a delta-seconds value too large to
// represent (2^31); it also keeps the conversion to time.Duration from overflowing.
const maxDeltaSeconds = 1 << 31

// deltaSeconds parses an RFC 9111 delta-seconds value (digits only: no sign, no space). A value
// too large to represent counts as 2^31 seconds (RFC 9111 §1.2.2) rather than wrapping around to
// a negative duration.
func deltaSeconds(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		return maxDeltaSeconds, true
	}
	return n, true
}

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}

// jitter spreads d by ±10 % (J14) so that many replicas do not refresh in step.
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*f))
}

// Backoff is the wait after the n-th consecutive failure (J18): 1s, 2s, 4s ... capped at
// min(minRefresh, 5 min), with full jitter and a floor of 250ms so that a broken IdP is never
// polled in a tight loop.
func Backoff(n int, minRefresh time.Duration, f float64) time.Duration {
	limit := min(minRefresh, 5*time.Minute)
	d := time.Second
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return max(time.Duration(f*float64(d)), 250*time.Millisecond)
}

// HTTPClientOptions configure NewHTTPClient.
type HTTPClientOptions struct {
	// CAFile adds PEM CAs to the system roots.
	CAFile string
}

// NewHTTPClient builds the client for JWKS fetches (J1-J3): TLS 1.2+, system roots plus CAFile,
// bounded dial, handshake and header waits, proxies from the environment, no redirects, no
// cookies. The per-attempt total is the caller's context deadline.
func NewHTTPClient(o HTTPClientOptions) (*http.Client, error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("jwks: ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("jwks: ca_file %s holds no PEM certificate", o.CAFile)
		}
		tlsConf.RootCAs = pool
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   3 * time.Second,
		ResponseHeaderTimeout: 3 * time.Second,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// J3: a redirect is a failed refresh; a JWKS URL that moves must be reconfigured.
			return http.ErrUseLastResponse
		},
	}, nil
}

// Limiter caps kid-triggered fetches across all providers (J16: 10 a minute). It is a sliding
// window: at most n reservations in any 60 s, so a full minute's quota can never be spent twice
// in one minute (a token bucket with a burst of n would allow 2n). It never blocks: Reserve
// says yes or no at once.
type Limiter struct {
	mu     sync.Mutex
	now    func() time.Time
	window time.Duration
	times  []time.Time // reservation times, oldest first, at most n
	n      int
}

// NewLimiter allows perMinute fetches in any minute.
func NewLimiter(perMinute int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, window: time.Minute, n: max(perMinute, 1)}
}

// Reserve records a reservation if fewer than n fall within the last minute.
func (l *Limiter) Reserve() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for len(l.times) > 0 && now.Sub(l.times[0]) >= l.window {
		l.times = l.times[1:]
	}
	if len(l.times) >= l.n {
		return false
	}
	l.times = append(l.times, now)
	return true
}

// Cancel returns the latest reservation (its fetch failed, J16).
func (l *Limiter) Cancel() {
	l.mu.Lock()
	if len(l.times) > 0 {
		l.times = l.times[:len(l.times)-1]
	}
	l.mu.Unlock()
}
