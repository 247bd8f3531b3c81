package jwks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/json"
)

// Discovery limits and schedule (jwks-cache.md J22).
const (
	// MaxDiscoveryBytes bounds the discovery document: real ones are a few KiB.
	MaxDiscoveryBytes = 64 << 10
	// DiscoveryReread is how often the document is read again while everything works.
	DiscoveryReread = 24 * time.Hour
	// DiscoveryRereadAfterFailures consecutive failed JWKS attempts make the next attempt read
	// the document again: the IdP may have moved its jwks_uri (go-oidc#332).
	DiscoveryRereadAfterFailures = 3
)

// Discovery failures. Like fetch failures they never reach a client: they fail the attempt,
// which keeps the last good set and backs off (J18).
var (
	// ErrDiscoveryIssuer: the document names another issuer than the configured one. OpenID
	// Connect Discovery 1.0 §4.3 requires them to be identical; there is no lenient mode, not
	// even for a trailing slash (J22).
	ErrDiscoveryIssuer = errors.New("jwks: discovery document names another issuer")
	// ErrDiscoveryDocument: the document is not usable (not JSON, no or a bad jwks_uri).
	ErrDiscoveryDocument = errors.New("jwks: unusable discovery document")
)

// DiscoveryOptions configure a Discovery source.
type DiscoveryOptions struct {
	// Issuer is the provider's issuer. The document is read from
	// strings.TrimSuffix(Issuer, "/") + "/.well-known/openid-configuration", and its issuer
	// member must equal Issuer byte for byte.
	Issuer string
	// AllowInsecureHTTP accepts an http:// issuer and jwks_uri (local development only).
	AllowInsecureHTTP bool
	// Remote configures the key cache that fetches the jwks_uri found: every knob, the clock,
	// the client and OnFetch apply as for a remote_jwks provider. Its URI must be empty.
	Remote RemoteOptions
}

// Discovery is a Remote whose JWKS URL comes from the issuer's OpenID Connect discovery document
// (J22). The document is read before the first fetch, again every DiscoveryReread, and again
// after DiscoveryRereadAfterFailures consecutive failed attempts; everything else (schedule,
// backoff, unknown-kid refresh, max_stale) is the embedded Remote's.
type Discovery struct {
	*Remote
	issuer   string
	docURL   string
	insecure bool

	mu             sync.Mutex
	jwksURI        string    // "" until a document was read
	readAt         time.Time // last good read of the document
	failuresAtRead int       // the Remote's consecutive failures when the document was last read
}

// discoveryDoc holds the members of an OpenID Provider Metadata document we use.
type discoveryDoc struct {
	Issuer  *string `json:"issuer"`
	JWKSURI *string `json:"jwks_uri"`
	// Only for a warning: the allowlist rules, whatever the IdP says it signs ID tokens with.
	IDTokenAlgs []string `json:"id_token_signing_alg_values_supported"`
}

// NewDiscovery checks the options and builds the source. Nothing is fetched before Run.
func NewDiscovery(o DiscoveryOptions) (*Discovery, error) {
	if o.Remote.URI != "" {
		return nil, errors.New("jwks: a discovery source finds its JWKS URL itself; leave URI empty")
	}
	docURL, err := DiscoveryURL(o.Issuer, o.AllowInsecureHTTP)
	if err != nil {
		return nil, err
	}
	d := &Discovery{issuer: o.Issuer, docURL: docURL, insecure: o.AllowInsecureHTTP}
	r, err := newRemote(o.Remote, d.locate)
	if err != nil {
		return nil, err
	}
	d.Remote = r
	return d, nil
}

// DiscoveryURL is where an issuer's discovery document lives: the issuer without a trailing
// slash, plus /.well-known/openid-configuration (OpenID Connect Discovery 1.0 §4). The issuer
// must be an absolute https URL (http with allowInsecureHTTP) without credentials, query or
// fragment.
func DiscoveryURL(issuer string, allowInsecureHTTP bool) (string, error) {
	if err := checkURL(issuer, allowInsecureHTTP); err != nil {
		return "", fmt.Errorf("jwks: discovery issuer: %w", err)
	}
	u, _ := url.Parse(issuer)
	if u.RawQuery != "" || u.ForceQuery {
		return "", errors.New("jwks: discovery issuer: must not have a query")
	}
	return strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration", nil
}

// checkURL accepts an absolute https URL, or http when allowed (J1), without credentials or
// fragment.
func checkURL(raw string, allowInsecureHTTP bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute URL", raw)
	case u.User != nil:
		return errors.New("must not carry credentials")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not have a fragment")
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecureHTTP:
	case u.Scheme == "http":
		return errors.New("must be https (allow_insecure_http is off)")
	default:
		return fmt.Errorf("must be https, got scheme %q", u.Scheme)
	}
	return nil
}

// JWKSURI is the JWKS URL found by the last good read of the document, "" before.
func (d *Discovery) JWKSURI() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.jwksURI
}

// locate runs before every JWKS attempt, on the Remote's one fetch goroutine. It reads the
// document when none was read yet, when the last read is DiscoveryReread old, or when
// DiscoveryRereadAfterFailures more attempts have failed since the last read. A failed read
// fails the attempt only while no jwks_uri is known; otherwise the last one is used.
func (d *Discovery) locate(ctx context.Context, failures int) (string, error) {
	d.mu.Lock()
	if failures == 0 {
		d.failuresAtRead = 0 // the streak counted at the last read ended with a success
	}
	known := d.jwksURI
	due := known == "" ||
		d.Remote.o.Now().Sub(d.readAt) >= DiscoveryReread ||
		failures-d.failuresAtRead >= DiscoveryRereadAfterFailures
	if due {
		d.failuresAtRead = failures
	}
	d.mu.Unlock()
	if !due {
		return known, nil
	}

	log := d.Remote.o.Logger.With("provider", d.Remote.o.Provider, "discovery", d.docURL)
	doc, err := d.read(ctx)
	if err != nil {
		if known == "" {
			return "", err
		}
		log.Warn("discovery document unreadable; using the last jwks_uri", "error", err.Error(), "jwks_uri", known)
		return known, nil
	}

	d.mu.Lock()
	d.jwksURI = *doc.JWKSURI
	d.readAt = d.Remote.o.Now()
	d.mu.Unlock()
	switch {
	case known == "":
		log.Info("discovery document read", "jwks_uri", *doc.JWKSURI)
	case known != *doc.JWKSURI:
		old, _ := url.Parse(known)
		cur, _ := url.Parse(*doc.JWKSURI)
		if old.Host != cur.Host {
			// Keys now come from another host: legitimate in a migration, but exactly what a
			// hijacked discovery endpoint would do, so say it loudly (J22).
			log.Warn("discovery moved jwks_uri to another host", "old", known, "new", *doc.JWKSURI)
		} else {
			log.Info("discovery moved jwks_uri", "old", known, "new", *doc.JWKSURI)
		}
	}
	if len(doc.IDTokenAlgs) > 0 && !anyAllowed(doc.IDTokenAlgs, d.Remote.o.Algorithms) {
		log.Warn("the issuer signs ID tokens with none of the provider's algorithms; its tokens may all be refused",
			"id_token_signing_alg_values_supported", doc.IDTokenAlgs, "algorithms", d.Remote.o.Algorithms)
	}
	return *doc.JWKSURI, nil
}

// read fetches and checks the document: bounded like a JWKS fetch (J2, J3, J5) but at
// MaxDiscoveryBytes, its issuer identical to ours, its jwks_uri https.
func (d *Discovery) read(parent context.Context) (*discoveryDoc, error) {
	o := d.Remote.o
	ctx, cancel := context.WithTimeout(parent, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.docURL, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks: discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", o.UserAgent)
	resp, err := o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("jwks: discovery: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%w: discovery document: %d", ErrHTTPStatus, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxDiscoveryBytes+1))
	if err != nil {
		return nil, fmt.Errorf("jwks: discovery: reading body: %w", err)
	}
	if len(body) > MaxDiscoveryBytes {
		return nil, fmt.Errorf("%w: discovery document larger than %d bytes", ErrTooLarge, MaxDiscoveryBytes)
	}
	var doc discoveryDoc
	// go-jose's decoder, as for JWKS documents (J7): a duplicate member is refused, so that
	// {"issuer": A, "issuer": B} cannot pass as B.
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDiscoveryDocument, err)
	}
	switch {
	case doc.Issuer == nil:
		return nil, fmt.Errorf("%w: no issuer member", ErrDiscoveryDocument)
	case *doc.Issuer != d.issuer:
		return nil, fmt.Errorf("%w: %q, configured %q", ErrDiscoveryIssuer, truncate(*doc.Issuer, 256), d.issuer)
	case doc.JWKSURI == nil || *doc.JWKSURI == "":
		return nil, fmt.Errorf("%w: no jwks_uri", ErrDiscoveryDocument)
	}
	if err := checkURL(*doc.JWKSURI, d.insecure); err != nil {
		return nil, fmt.Errorf("%w: jwks_uri %w", ErrDiscoveryDocument, err)
	}
	return &doc, nil
}

func anyAllowed(offered, allowed []string) bool {
	for _, a := range offered {
		for _, b := range allowed {
			if a == b {
				return true
			}
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
