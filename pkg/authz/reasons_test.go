package authz

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"sort"
	"strconv"
	"testing"

	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	tok "github.com/jwtauthz/jwtauthz/pkg/token"
)

// closedSet is the reason-code list of jwt-security.md, in its order.
var closedSet = []Reason{
	"ok", "cors_preflight", "not_required", "ambiguous_path",
	"missing_token", "unsupported_scheme", "malformed_authorization", "multiple_tokens",
	"token_too_large", "malformed", "bad_encoding", "payload_not_object", "invalid_utf8",
	"duplicate_member", "jwe_not_supported", "alg_not_allowed", "key_alg_mismatch", "kid_required",
	"kid_unknown", "bad_signature", "unsupported_crit", "unsupported_header",
	"nested_jwt_not_supported", "typ_mismatch", "issuer_unknown", "iss_mismatch", "aud_mismatch",
	"exp_missing", "expired", "not_yet_valid", "iat_future", "lifetime_too_long", "claim_type",
	"claim_missing", "sender_constrained_unsupported", "unsafe_claim_value", "insufficient_scope",
	"claims_not_allowed", "route_misconfigured", "keys_unavailable",
}

// reasonConstants reads every constant of type Reason declared in reasons.go, so that a code
// added later without a row below fails this test.
func reasonConstants(t *testing.T) map[string]Reason {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Reason{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for i, n := range vs.Names {
				v, err := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				out[n.Name] = Reason(v)
			}
		}
	}
	return out
}

func TestReasonsAreTheClosedSet(t *testing.T) {
	consts := reasonConstants(t)
	got := map[Reason]bool{}
	for _, r := range consts {
		got[r] = true
	}
	want := map[Reason]bool{}
	for _, r := range closedSet {
		want[r] = true
		if !got[r] {
			t.Errorf("reason %q of jwt-security.md has no constant", r)
		}
	}
	for n, r := range consts {
		if !want[r] {
			t.Errorf("%s = %q is outside the closed set", n, r)
		}
	}
}

// TestAnswerForEveryReason: each deny reason maps to the contract's HTTP status, body error and
// challenge form ("Decisions on the wire"; jwt-security.md §6).
func TestAnswerForEveryReason(t *testing.T) {
	type row struct {
		status    int
		errorCode string
		challenge int
	}
	invalidToken := row{401, "invalid_token", challengeError}
	want := map[Reason]row{
		ReasonMissingToken:       {401, "unauthorized", challengeBare},
		ReasonUnsupportedScheme:  {401, "unauthorized", challengeBare},
		ReasonMalformedAuthz:     {400, "invalid_request", challengeError},
		ReasonMultipleTokens:     {400, "invalid_request", challengeError},
		ReasonTokenTooLarge:      invalidToken,
		ReasonMalformed:          invalidToken,
		ReasonBadEncoding:        invalidToken,
		ReasonPayloadNotObject:   invalidToken,
		ReasonInvalidUTF8:        invalidToken,
		ReasonDuplicateMember:    invalidToken,
		ReasonJWENotSupported:    invalidToken,
		ReasonAlgNotAllowed:      invalidToken,
		ReasonKeyAlgMismatch:     invalidToken,
		ReasonKIDRequired:        invalidToken,
		ReasonKIDUnknown:         invalidToken,
		ReasonBadSignature:       invalidToken,
		ReasonUnsupportedCrit:    invalidToken,
		ReasonUnsupportedHeader:  invalidToken,
		ReasonNestedJWT:          invalidToken,
		ReasonTypMismatch:        invalidToken,
		ReasonIssuerUnknown:      invalidToken,
		ReasonIssMismatch:        invalidToken,
		ReasonAudMismatch:        invalidToken,
		ReasonExpMissing:         invalidToken,
		ReasonExpired:            invalidToken,
		ReasonNotYetValid:        invalidToken,
		ReasonIATFuture:          invalidToken,
		ReasonLifetimeTooLong:    invalidToken,
		ReasonClaimType:          invalidToken,
		ReasonClaimMissing:       invalidToken,
		ReasonSenderConstrained:  invalidToken,
		ReasonUnsafeClaimValue:   invalidToken,
		ReasonInsufficientScope:  {403, "insufficient_scope", challengeError},
		ReasonClaimsNotAllowed:   {403, "insufficient_scope", challengeError},
		ReasonRouteMisconfigured: {403, "access_denied", challengeNone},
		ReasonKeysUnavailable:    {503, "temporarily_unavailable", challengeNone},
		ReasonAmbiguousPath:      {400, "invalid_request", challengeError},
	}
	allowReasons := map[Reason]bool{ReasonOK: true, ReasonCORSPreflight: true, ReasonNotRequired: true}
	a := &Authorizer{o: Options{Realm: "R"}}
	for name, r := range reasonConstants(t) {
		if allowReasons[r] {
			continue
		}
		w, ok := want[r]
		if !ok {
			t.Errorf("%s (%q): no expected answer in this test", name, r)
			continue
		}
		got := answerFor(r)
		if got.status != w.status || got.errorCode != w.errorCode || got.challenge != w.challenge {
			t.Errorf("answerFor(%s) = %d %s challenge=%d, want %d %s challenge=%d", r, got.status, got.errorCode, got.challenge, w.status, w.errorCode, w.challenge)
		}
		// The description goes in a quoted-string: RFC 6750 §3's charset, no '"' or '\'.
		if got.description == "" {
			t.Errorf("%s: empty description", r)
		}
		for _, c := range []byte(got.description) {
			if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
				t.Errorf("%s: description %q has byte %q outside RFC 6750's charset", r, got.description, c)
			}
		}
		d := a.deny(r, "")
		var wantChallenge string
		switch w.challenge {
		case challengeBare:
			wantChallenge = `Bearer realm="R"`
		case challengeError:
			wantChallenge = fmt.Sprintf(`Bearer realm="R", error=%q, error_description=%q`, w.errorCode, got.description)
		}
		if d.Challenge != wantChallenge || d.Status != w.status || d.ErrorCode != w.errorCode || d.Allow {
			t.Errorf("deny(%s) = %+v, want challenge %s", r, d, wantChallenge)
		}
		if (r == ReasonKeysUnavailable) != (d.RetryAfter > 0) {
			t.Errorf("deny(%s).RetryAfter = %v", r, d.RetryAfter)
		}
	}
}

// TestReasonForEverySentinel: every sentinel error that token exports (read from its source, so
// a new one cannot be missed) and jwks.ErrKeysUnavailable map to their reason, bare or wrapped.
func TestReasonForEverySentinel(t *testing.T) {
	want := map[string]struct {
		err    error
		reason Reason
	}{
		"ErrMissingToken":           {tok.ErrMissingToken, ReasonMissingToken},
		"ErrUnsupportedScheme":      {tok.ErrUnsupportedScheme, ReasonUnsupportedScheme},
		"ErrMalformedAuthorization": {tok.ErrMalformedAuthorization, ReasonMalformedAuthz},
		"ErrMultipleTokens":         {tok.ErrMultipleTokens, ReasonMultipleTokens},
		"ErrTokenTooLarge":          {tok.ErrTokenTooLarge, ReasonTokenTooLarge},
		"ErrMalformed":              {tok.ErrMalformed, ReasonMalformed},
		"ErrBadEncoding":            {tok.ErrBadEncoding, ReasonBadEncoding},
		"ErrPayloadNotObject":       {tok.ErrPayloadNotObject, ReasonPayloadNotObject},
		"ErrInvalidUTF8":            {tok.ErrInvalidUTF8, ReasonInvalidUTF8},
		"ErrDuplicateMember":        {tok.ErrDuplicateMember, ReasonDuplicateMember},
		"ErrJWENotSupported":        {tok.ErrJWENotSupported, ReasonJWENotSupported},
		"ErrAlgNotAllowed":          {tok.ErrAlgNotAllowed, ReasonAlgNotAllowed},
		"ErrKeyAlgMismatch":         {tok.ErrKeyAlgMismatch, ReasonKeyAlgMismatch},
		"ErrKIDRequired":            {tok.ErrKIDRequired, ReasonKIDRequired},
		"ErrKIDUnknown":             {tok.ErrKIDUnknown, ReasonKIDUnknown},
		"ErrBadSignature":           {tok.ErrBadSignature, ReasonBadSignature},
		"ErrUnsupportedCrit":        {tok.ErrUnsupportedCrit, ReasonUnsupportedCrit},
		"ErrUnsupportedHeader":      {tok.ErrUnsupportedHeader, ReasonUnsupportedHeader},
		"ErrNestedJWT":              {tok.ErrNestedJWT, ReasonNestedJWT},
		"ErrTypMismatch":            {tok.ErrTypMismatch, ReasonTypMismatch},
		"ErrIssuerUnknown":          {tok.ErrIssuerUnknown, ReasonIssuerUnknown},
		"ErrIssMismatch":            {tok.ErrIssMismatch, ReasonIssMismatch},
		"ErrAudMismatch":            {tok.ErrAudMismatch, ReasonAudMismatch},
		"ErrExpMissing":             {tok.ErrExpMissing, ReasonExpMissing},
		"ErrExpired":                {tok.ErrExpired, ReasonExpired},
		"ErrNotYetValid":            {tok.ErrNotYetValid, ReasonNotYetValid},
		"ErrIATFuture":              {tok.ErrIATFuture, ReasonIATFuture},
		"ErrLifetimeTooLong":        {tok.ErrLifetimeTooLong, ReasonLifetimeTooLong},
		"ErrClaimType":              {tok.ErrClaimType, ReasonClaimType},
		"ErrClaimMissing":           {tok.ErrClaimMissing, ReasonClaimMissing},
		"ErrSenderConstrained":      {tok.ErrSenderConstrained, ReasonSenderConstrained},
	}
	f, err := parser.ParseFile(token.NewFileSet(), "../token/errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	sort.Strings(names)
	if len(names) != len(want) {
		t.Errorf("token exports %d sentinels %v; this test knows %d", len(names), names, len(want))
	}
	for _, n := range names {
		w, ok := want[n]
		if !ok {
			t.Errorf("token.%s has no expected reason here", n)
			continue
		}
		if got := ReasonFor(w.err); got != w.reason {
			t.Errorf("ReasonFor(token.%s) = %s, want %s", n, got, w.reason)
		}
		wrapped := fmt.Errorf("token: provider main: %w", fmt.Errorf("%w: detail", w.err))
		if got := ReasonFor(wrapped); got != w.reason {
			t.Errorf("ReasonFor(wrapped token.%s) = %s, want %s", n, got, w.reason)
		}
	}
	if got := ReasonFor(fmt.Errorf("token: provider down: %w", jwks.ErrKeysUnavailable)); got != ReasonKeysUnavailable {
		t.Errorf("ReasonFor(keys unavailable) = %s", got)
	}
	// An error nobody mapped fails closed as a bad token, never as an allow or a 5xx.
	for _, e := range []error{errors.New("surprise"), jwks.ErrRefreshRefused, nil} {
		if got := ReasonFor(e); got != ReasonInternal || answerFor(got).status != 401 {
			t.Errorf("ReasonFor(%v) = %s", e, got)
		}
	}
}
