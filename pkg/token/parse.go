package token

import (
	"bytes"
	"encoding/base64"
	stdjson "encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4/json"
)

// jws is a compact JWS whose syntax passed the strict checks (jwt-security.md §2 step 2), not
// yet verified. It carries no JWT rule: the payload may be empty or any bytes.
type jws struct {
	raw     string
	header  map[string]json.RawMessage
	payload []byte // the decoded payload, exactly as signed
	// unsigned is an empty signature segment. It is refused (S4) after the header policy, so
	// that the usual alg "none" token, which has one, is named alg_not_allowed (K1).
	unsigned bool
}

// parsed is a jws whose payload is also a JWT claims set: a UTF-8 JSON object.
type parsed struct {
	*jws
	claims map[string]any // numbers as json.Number
}

var b64 = base64.RawURLEncoding.Strict()

// parseJWS checks the raw token as a compact JWS: three segments (five is a JWE: S1, S2), a
// non-empty header (S4), the base64url alphabet only (no CR/LF, spaces, padding:
// S5-S7), canonical base64 (S8), and a header that is one UTF-8 JSON object (S9, S12) without
// duplicate members (S13). go-jose accepts several of these. The payload is left to the caller:
// a JWS payload may be empty or binary (RFC 7515 §7.1), a JWT's may not (parseCompact).
func parseJWS(raw string) (*jws, error) {
	if strings.HasPrefix(raw, "{") {
		return nil, fmt.Errorf("%w: JWS JSON serialization", ErrMalformed)
	}
	dots := strings.Count(raw, ".")
	switch {
	case dots == 4:
		return nil, fmt.Errorf("%w: five segments (JWE)", ErrJWENotSupported)
	case dots != 2:
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, dots+1)
	}
	hs, rest, _ := strings.Cut(raw, ".")
	ps, ss, _ := strings.Cut(rest, ".")
	if hs == "" {
		return nil, fmt.Errorf("%w: empty header", ErrMalformed)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return nil, fmt.Errorf("%w: byte 0x%02x outside the base64url alphabet", ErrBadEncoding, c)
		}
	}
	hdr, err := b64.DecodeString(hs)
	if err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadEncoding, err)
	}
	payload, err := b64.DecodeString(ps)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrBadEncoding, err)
	}
	if _, err := b64.DecodeString(ss); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrBadEncoding, err)
	}
	if err := checkText(hdr); err != nil {
		return nil, fmt.Errorf("%w: header", err)
	}

	j := &jws{raw: raw, payload: payload, unsigned: ss == ""}
	if firstByte(hdr) != '{' {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if err := decodeObject(hdr, &j.header, false); err != nil {
		if err == errNotObject {
			err = fmt.Errorf("%w: header is not one JSON object", ErrMalformed)
		}
		return nil, err
	}
	return j, nil
}

// parseCompact is parseJWS plus the JWT rules for the payload: not empty (S4), UTF-8 (S12),
// one JSON object (S10, S11) without duplicate members (S13).
func parseCompact(raw string) (*parsed, error) {
	j, err := parseJWS(raw)
	if err != nil {
		return nil, err
	}
	if len(j.payload) == 0 {
		// An empty payload segment is also how RFC 7515 Appendix F marks detached content.
		return nil, fmt.Errorf("%w: empty payload", ErrMalformed)
	}
	if err := checkText(j.payload); err != nil {
		return nil, fmt.Errorf("%w: payload", err)
	}
	p := &parsed{jws: j}
	if firstByte(j.payload) != '{' {
		return nil, fmt.Errorf("%w", ErrPayloadNotObject)
	}
	if err := decodeObject(j.payload, &p.claims, true); err != nil {
		if err == errNotObject {
			err = fmt.Errorf("%w: trailing data", ErrPayloadNotObject)
		}
		return nil, err
	}
	return p, nil
}

// checkText rejects JSON text that would not decode to exactly what was signed (S12): invalid
// UTF-8, and \u escapes of unpaired UTF-16 surrogates. Go's decoders turn both into U+FFFD, so
// two distinct signed values (a sub of "x\ud800" and one of "x\udbff") would become the same
// string; JavaScript and Java issuers can emit such escapes. RFC 8259 §8.2 leaves their meaning
// undefined; RFC 8725 §3.7 asks for valid UTF-8.
func checkText(b []byte) error {
	if !utf8.Valid(b) {
		return fmt.Errorf("%w", ErrInvalidUTF8)
	}
	// Outside strings a backslash is a JSON syntax error, reported later; inside, every
	// backslash starts an escape, so escapes can be found without tracking string state.
	for i := bytes.IndexByte(b, '\\'); i >= 0; {
		if i+1 >= len(b) {
			return nil
		}
		if b[i+1] != 'u' {
			i = next(b, i+2)
			continue
		}
		r, ok := hex4(b, i+2)
		if !ok {
			return nil // not valid JSON: the decoder says so
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("%w: unpaired UTF-16 surrogate escape", ErrInvalidUTF8)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(0), false
			if i+11 < len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
				lo, ok = hex4(b, i+8)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("%w: unpaired UTF-16 surrogate escape", ErrInvalidUTF8)
			}
			i = next(b, i+12)
		default:
			i = next(b, i+6)
		}
	}
	return nil
}

// next returns the index of the first backslash in b at or after from, or -1.
func next(b []byte, from int) int {
	if from >= len(b) {
		return -1
	}
	if j := bytes.IndexByte(b[from:], '\\'); j >= 0 {
		return from + j
	}
	return -1
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

var errNotObject = fmt.Errorf("not one JSON value")

func firstByte(b []byte) byte {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// decodeObject decodes one JSON object with go-jose's json fork (case-sensitive, rejects
// duplicate members: RFC 8725 §2.6). It returns errNotObject for trailing data after a valid
// value, ErrDuplicateMember for duplicates, and ErrMalformed for anything else (syntax,
// nesting deeper than the decoder allows).
func decodeObject(data []byte, out any, useNumber bool) error {
	if !stdjson.Valid(data) {
		// Tell trailing data after one good value from broken JSON.
		d := stdjson.NewDecoder(bytes.NewReader(data))
		var v stdjson.RawMessage
		if d.Decode(&v) == nil {
			return errNotObject
		}
		return fmt.Errorf("%w: invalid JSON", ErrMalformed)
	}
	d := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		d.SetNumberType(json.UnmarshalJSONNumber)
	}
	if err := d.Decode(out); err != nil {
		if hasDuplicateMember(data) {
			return fmt.Errorf("%w", ErrDuplicateMember)
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// hasDuplicateMember walks valid JSON and reports whether any object repeats a member name.
// It only classifies an error go-jose already raised, so it never runs on the happy path.
func hasDuplicateMember(data []byte) bool {
	d := stdjson.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys  map[string]bool
		isObj bool
		want  bool // next string token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := d.Token()
		if err == io.EOF || err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case stdjson.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.isObj {
					top.want = true
				}
				stack = append(stack, &frame{keys: map[string]bool{}, isObj: t == '{', want: t == '{'})
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.isObj && top.want {
				if top.keys[t] {
					return true
				}
				top.keys[t] = true
				top.want = false
				continue
			}
			if top != nil && top.isObj {
				top.want = true
			}
		default:
			if top != nil && top.isObj {
				top.want = true
			}
		}
	}
}
