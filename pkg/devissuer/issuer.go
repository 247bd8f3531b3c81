package devissuer

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm names accepted by TokenRequest.Alg. They are the JOSE "alg"
// values, so the same strings appear in token headers and in the JWKS.
const (
	algEdDSA = "EdDSA"
	algRS256 = "RS256"
)

// Defaults applied to zero-valued fields. They are chosen so that a bare
// Mint(TokenRequest{}) yields a usable token for a local demo.
const (
	defaultAudience = "jwtauthz-dev"
	defaultSubject  = "dev-user"
	defaultTTL      = time.Hour
	defaultAlg      = algEdDSA
	// clientID is stamped on every token so that policies and logs can tell
	// dev-issued tokens apart from real ones at a glance.
	clientID = "jwtauthz-dev"
	// maxTTL caps token lifetime: even dev tokens leak (screenshots, shell
	// history), so they should not outlive a working day.
	maxTTL = 24 * time.Hour
	// rsaBits is the smallest RSA size that verifiers commonly accept.
	rsaBits = 2048
	// jtiBytes gives 128 bits of randomness, enough that IDs never collide.
	jtiBytes = 16
	// maxFormBytes bounds POST bodies; a token request is a handful of short
	// fields, so anything larger is a mistake or abuse.
	maxFormBytes = 64 << 10
)

// errInvalidRequest marks errors caused by the caller's input (as opposed to
// internal failures such as an entropy source error), so the HTTP handler can
// answer 400 rather than 500.
var errInvalidRequest = errors.New("invalid request")

// reservedClaims are set by the issuer itself; letting Extra replace them
// would produce tokens whose validity window or identity lies about how they
// were minted, which defeats the purpose of testing against them.
var reservedClaims = []string{"iss", "exp", "iat", "nbf", "jti"}

// Options configure an Issuer. Zero values are the documented defaults.
type Options struct {
	// Issuer is the iss claim and the base URL of the discovery document, e.g. "http://127.0.0.1:9003/dev". Required.
	// It must be an absolute http or https URL without query or fragment. It is
	// used verbatim as iss; a trailing slash is dropped only when building
	// endpoint URLs, as OpenID Connect Discovery prescribes.
	Issuer string
	// Audience is the default aud when a token request names none. Default "jwtauthz-dev".
	Audience string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand is the entropy source for key generation and jti; default crypto/rand.Reader.
	// The Ed25519 key is derived from the first 32 bytes read. Note that since
	// Go 1.26 crypto/rsa ignores a caller-supplied reader (unless
	// GODEBUG=cryptocustomrand=1), so the RSA key is always securely random;
	// use testing/cryptotest.SetGlobalRandom if a test needs it reproducible.
	Rand io.Reader
}

// PublicKey is one verification key of an Issuer, in a form an in-process
// key source can use without going through JWKS JSON.
type PublicKey struct {
	// KID is the key ID carried in the "kid" header of tokens signed by it.
	KID string
	// Alg is the only JOSE algorithm this key signs with ("EdDSA" or "RS256");
	// verifiers should reject any other alg for this kid.
	Alg string
	// Key is an ed25519.PublicKey or a *rsa.PublicKey.
	Key crypto.PublicKey
}

// signingKey bundles everything needed to sign with, and publish, one key.
type signingKey struct {
	kid    string
	alg    string
	signer jose.Signer
	pub    crypto.PublicKey
}

// Issuer mints development JWTs and publishes their verification keys.
// It is safe for concurrent use.
type Issuer struct {
	issuer   string
	base     string // issuer without trailing slash, for endpoint URLs
	audience string
	now      func() time.Time

	// randMu serialises reads from rand: crypto/rand.Reader is safe for
	// concurrent use but an injected test reader (e.g. a bytes.Reader) need
	// not be, and the handler mints from many goroutines.
	randMu sync.Mutex
	rand   io.Reader

	ed  *signingKey
	rsa *signingKey

	// Both documents are immutable after New, so they are rendered once.
	jwks      []byte
	discovery []byte
}

// New generates an Ed25519 key and an RSA-2048 key (each with a distinct kid, e.g. base64url of a
// SHA-256 thumbprint prefix, RFC 7638 thumbprint is fine via go-jose's Thumbprint).
//
// The kid is the full base64url RFC 7638 SHA-256 thumbprint, so anyone can
// recompute it from the JWKS and the two keys can never share one.
func New(opts Options) (*Issuer, error) {
	base, err := validateIssuer(opts.Issuer)
	if err != nil {
		return nil, err
	}
	i := &Issuer{
		issuer:   opts.Issuer,
		base:     base,
		audience: opts.Audience,
		now:      opts.Now,
		rand:     opts.Rand,
	}
	if i.audience == "" {
		i.audience = defaultAudience
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.rand == nil {
		i.rand = rand.Reader
	}

	// Derive Ed25519 from an explicit seed rather than ed25519.GenerateKey so
	// that the use of Options.Rand does not depend on Go-version-specific
	// behaviour of the standard library.
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(i.rand, seed); err != nil {
		return nil, fmt.Errorf("devissuer: reading Ed25519 seed: %w", err)
	}
	edPriv := ed25519.NewKeyFromSeed(seed)
	i.ed, err = newSigningKey(algEdDSA, jose.EdDSA, edPriv, edPriv.Public())
	if err != nil {
		return nil, err
	}

	rsaPriv, err := rsa.GenerateKey(i.rand, rsaBits)
	if err != nil {
		return nil, fmt.Errorf("devissuer: generating RSA key: %w", err)
	}
	i.rsa, err = newSigningKey(algRS256, jose.RS256, rsaPriv, &rsaPriv.PublicKey)
	if err != nil {
		return nil, err
	}

	i.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{i.ed.jwk(), i.rsa.jwk()}})
	if err != nil {
		return nil, fmt.Errorf("devissuer: encoding JWKS: %w", err)
	}
	i.discovery, err = json.Marshal(discoveryDoc{
		Issuer:                 i.issuer,
		JWKSURI:                i.base + "/.well-known/jwks.json",
		TokenEndpoint:          i.base + "/token",
		ResponseTypes:          []string{"token"},
		SubjectTypes:           []string{"public"},
		IDTokenSigningAlgs:     []string{algEdDSA, algRS256},
		TokenEndpointAuthMeths: []string{"none"},
		ClaimsSupported:        []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id"},
	})
	if err != nil {
		return nil, fmt.Errorf("devissuer: encoding discovery document: %w", err)
	}
	return i, nil
}

// validateIssuer rejects issuer values that would produce unusable discovery
// documents, and returns the base used to build endpoint URLs.
func validateIssuer(iss string) (string, error) {
	if iss == "" {
		return "", errors.New("devissuer: Options.Issuer is required")
	}
	u, err := url.Parse(iss)
	if err != nil {
		return "", fmt.Errorf("devissuer: Options.Issuer %q: %w", iss, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("devissuer: Options.Issuer %q: scheme must be http or https", iss)
	}
	if u.Host == "" {
		return "", fmt.Errorf("devissuer: Options.Issuer %q: missing host", iss)
	}
	// Discovery (OpenID Connect Discovery 1.0 §3) forbids these, and verifiers
	// compare iss byte for byte, so they would only cause confusion.
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(iss, "?#") {
		return "", fmt.Errorf("devissuer: Options.Issuer %q: must not contain a query or fragment", iss)
	}
	return strings.TrimRight(iss, "/"), nil
}

func newSigningKey(alg string, sigAlg jose.SignatureAlgorithm, priv crypto.Signer, pub crypto.PublicKey) (*signingKey, error) {
	jwk := jose.JSONWebKey{Key: pub}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %s thumbprint: %w", alg, err)
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: sigAlg, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid),
	)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %s signer: %w", alg, err)
	}
	return &signingKey{kid: kid, alg: alg, signer: signer, pub: pub}, nil
}

// jwk renders the public half only; the private key never leaves signer.
func (k *signingKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.pub, KeyID: k.kid, Algorithm: k.alg, Use: "sig"}
}

// TokenRequest describes a token to mint. Zero values: Sub "dev-user", Aud = Options.Audience,
// Scope "" (claim omitted when empty), TTL 1h, Alg "EdDSA". Alg may be "EdDSA" or "RS256" only.
type TokenRequest struct {
	Sub   string
	Aud   string
	Scope string
	TTL   time.Duration
	Alg   string
	// Extra claims merged into the payload (cannot override iss, exp, iat, nbf, jti).
	// Naming one of those is an error rather than being silently dropped, so a
	// test that tries it learns immediately. Extra may override sub, aud,
	// scope and client_id, e.g. to mint a token with an array aud.
	Extra map[string]any
}

// Mint signs a compact JWS: header {alg, kid, typ:"JWT"}, claims iss, sub, aud (string), iat, nbf, exp,
// jti (random 16 bytes base64url), scope (if non-empty), client_id "jwtauthz-dev", plus Extra.
// TTL must be >0 and <= 24h, else an error.
//
// iat and nbf are the clock's current time and exp is now+TTL, all in whole
// Unix seconds (truncated).
func (i *Issuer) Mint(r TokenRequest) (string, error) {
	tok, _, err := i.mint(r)
	return tok, err
}

// mint is Mint that also reports the lifetime actually encoded (exp-iat), so
// the token endpoint's expires_in agrees with the token even after
// sub-second truncation.
func (i *Issuer) mint(r TokenRequest) (string, int64, error) {
	if i == nil || i.ed == nil || i.rsa == nil {
		return "", 0, errors.New("devissuer: Issuer not initialised; use New")
	}
	if r.Sub == "" {
		r.Sub = defaultSubject
	}
	if r.Aud == "" {
		r.Aud = i.audience
	}
	if r.TTL == 0 {
		r.TTL = defaultTTL
	}
	if r.Alg == "" {
		r.Alg = defaultAlg
	}
	if r.TTL < 0 || r.TTL > maxTTL {
		return "", 0, fmt.Errorf("devissuer: ttl %v out of range (0, %v]: %w", r.TTL, maxTTL, errInvalidRequest)
	}
	var key *signingKey
	switch r.Alg {
	case algEdDSA:
		key = i.ed
	case algRS256:
		key = i.rsa
	default:
		return "", 0, fmt.Errorf("devissuer: unsupported alg %q (want %s or %s): %w", r.Alg, algEdDSA, algRS256, errInvalidRequest)
	}

	claims := make(map[string]any, 9+len(r.Extra))
	for k, v := range r.Extra {
		for _, reserved := range reservedClaims {
			if k == reserved {
				return "", 0, fmt.Errorf("devissuer: Extra may not set claim %q: %w", k, errInvalidRequest)
			}
		}
		claims[k] = v
	}

	jti := make([]byte, jtiBytes)
	i.randMu.Lock()
	_, err := io.ReadFull(i.rand, jti)
	i.randMu.Unlock()
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: generating jti: %w", err)
	}

	now := i.now()
	iat := now.Unix()
	exp := now.Add(r.TTL).Unix()

	// Issuer-controlled claims are set after Extra so they always win; the
	// overridable ones only fill in what Extra left unset.
	setDefault := func(k string, v any) {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	setDefault("sub", r.Sub)
	setDefault("aud", r.Aud)
	setDefault("client_id", clientID)
	if r.Scope != "" {
		setDefault("scope", r.Scope)
	}
	claims["iss"] = i.issuer
	claims["iat"] = iat
	claims["nbf"] = iat
	claims["exp"] = exp
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti)

	// encoding/json sorts map keys, so the payload is deterministic for a
	// given input, which keeps golden tests and debugging diffs stable.
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: encoding claims: %w", err)
	}
	jws, err := key.signer.Sign(payload)
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: signing: %w", err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		return "", 0, fmt.Errorf("devissuer: serializing: %w", err)
	}
	return tok, exp - iat, nil
}

// JWKS returns the public JSON Web Key Set document {"keys":[...]}: each key with kid, use "sig", alg ("EdDSA" / "RS256"), no private members.
// The Ed25519 key is listed first. The returned slice is a copy the caller may modify.
func (i *Issuer) JWKS() []byte {
	return append([]byte(nil), i.jwks...)
}

// PublicKeys returns the public keys (for an in-process key source): kid -> crypto.PublicKey
// (ed25519.PublicKey and *rsa.PublicKey) and the alg bound to each.
// The keys are deep copies, so a caller cannot alter what the Issuer publishes.
func (i *Issuer) PublicKeys() []PublicKey {
	var out []PublicKey
	for _, k := range []*signingKey{i.ed, i.rsa} {
		if k == nil {
			continue
		}
		var pub crypto.PublicKey
		switch p := k.pub.(type) {
		case ed25519.PublicKey:
			pub = append(ed25519.PublicKey(nil), p...)
		case *rsa.PublicKey:
			pub = &rsa.PublicKey{N: new(big.Int).Set(p.N), E: p.E}
		default:
			pub = p
		}
		out = append(out, PublicKey{KID: k.kid, Alg: k.alg, Key: pub})
	}
	return out
}

// IssuerURL returns the configured issuer URL (the iss claim), verbatim.
func (i *Issuer) IssuerURL() string { return i.issuer }

// Audience returns the default audience.
func (i *Issuer) Audience() string { return i.audience }

// discoveryDoc is the subset of OpenID Provider Metadata that verifiers need
// to locate keys, plus enough required fields that strict parsers accept it.
type discoveryDoc struct {
	Issuer                 string   `json:"issuer"`
	JWKSURI                string   `json:"jwks_uri"`
	TokenEndpoint          string   `json:"token_endpoint"`
	ResponseTypes          []string `json:"response_types_supported"`
	SubjectTypes           []string `json:"subject_types_supported"`
	IDTokenSigningAlgs     []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMeths []string `json:"token_endpoint_auth_methods_supported"`
	ClaimsSupported        []string `json:"claims_supported"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

type errorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// Handler serves, relative to its own root (the caller mounts it, e.g. with http.StripPrefix("/dev", h)):
//
//	GET /.well-known/openid-configuration -> {"issuer":..., "jwks_uri": Issuer+"/.well-known/jwks.json",
//	     "token_endpoint": Issuer+"/token", "id_token_signing_alg_values_supported":["EdDSA","RS256"], ...}
//	GET /.well-known/jwks.json -> JWKS(), content-type application/jwk-set+json, Cache-Control: max-age=300
//	GET or POST /token?sub=&aud=&scope=&ttl=&alg=  -> 200 {"access_token":"...","token_type":"Bearer","expires_in":N}
//	     ttl is seconds (integer) or a Go duration ("90s", "1h"); bad ttl/alg -> 400 JSON {"error":"invalid_request","error_description":"..."}
//	     (POST: read the same names from the form body too; bound the body with http.MaxBytesReader 64 KiB).
//	     Responses carry Cache-Control: no-store.
//	anything else -> 404. Wrong method -> 405.
//
// HEAD is also accepted on the two discovery endpoints, as for any static
// GET resource. The handler does no logging, so tokens never reach logs.
func (i *Issuer) Handler() http.Handler {
	// A hand-written switch instead of http.ServeMux: ServeMux redirects
	// unclean paths (e.g. "//token") instead of answering 404, and we want
	// the routing to be exactly the three documented paths.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=300")
			_, _ = w.Write(i.discovery)
		case "/.well-known/jwks.json":
			if !allowMethod(w, r, http.MethodGet, http.MethodHead) {
				return
			}
			w.Header().Set("Content-Type", "application/jwk-set+json")
			// Keys never change during the process lifetime; a short max-age
			// still lets a restarted dev issuer's new keys propagate quickly.
			w.Header().Set("Cache-Control", "max-age=300")
			_, _ = w.Write(i.jwks)
		case "/token":
			// Set before the method check so even errors are never cached.
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
			if !allowMethod(w, r, http.MethodGet, http.MethodPost) {
				return
			}
			i.serveToken(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// allowMethod answers 405 with an Allow header unless r uses one of methods.
func allowMethod(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	return false
}

func (i *Issuer) serveToken(w http.ResponseWriter, r *http.Request) {
	// A nil Body only occurs with hand-built requests; wrapping it would
	// turn ParseForm's clean error into a nil dereference.
	if r.Method == http.MethodPost && r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	// ParseForm merges the query with a urlencoded POST body (body first);
	// for GET it only parses the query.
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body exceeds 64 KiB")
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_request", "malformed request: "+err.Error())
		return
	}
	req := TokenRequest{
		Sub:   r.Form.Get("sub"),
		Aud:   r.Form.Get("aud"),
		Scope: r.Form.Get("scope"),
		Alg:   r.Form.Get("alg"),
	}
	if s := r.Form.Get("ttl"); s != "" {
		ttl, err := parseTTL(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		req.TTL = ttl
	}
	tok, expiresIn, err := i.mint(req)
	if err != nil {
		if errors.Is(err, errInvalidRequest) {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: expiresIn})
}

// parseTTL accepts integer seconds ("90") or a Go duration ("90s", "1h").
// An explicit ttl must be positive: unlike the zero TokenRequest.TTL, "ttl=0"
// is a deliberate value and silently turning it into 1h would surprise.
func parseTTL(s string) (time.Duration, error) {
	var d time.Duration
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("devissuer: ttl %q out of range (0, %v]", s, maxTTL)
	case err == nil:
		// Range-check before multiplying so huge values cannot overflow
		// into a small or negative duration.
		if n <= 0 || n > int64(maxTTL/time.Second) {
			return 0, fmt.Errorf("devissuer: ttl %q out of range (0, %v]", s, maxTTL)
		}
		d = time.Duration(n) * time.Second
	default:
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("devissuer: ttl %q is neither integer seconds nor a Go duration: %w", s, err)
		}
	}
	if d <= 0 || d > maxTTL {
		return 0, fmt.Errorf("devissuer: ttl %q out of range (0, %v]", s, maxTTL)
	}
	return d, nil
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, errorResponse{Error: code, Description: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain structs of strings and ints reach here, so this is
		// unreachable in practice; answer something valid regardless.
		status = http.StatusInternalServerError
		b = []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
