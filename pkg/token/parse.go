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

// parsed is a compact JWS whose syntax passed the strict checks (jwt-security.md §2 step 2),
// not yet verified.
type parsed struct {
	raw     string
	header  map[string]json.RawMessage
	claims  map[string]any // numbers as json.Number
	payload []byte         // the decoded payload, exactly as signed
}

var b64 = base64.RawURLEncoding.Strict()

// parseCompact checks the raw token: three non-empty segments of the base64url alphabet only
// (no CR/LF, spaces, padding: S5-S7), canonical base64 (S8), valid UTF-8 (S12), a JSON object
// header and payload (S9-S11) without duplicate members (S13). go-jose accepts several of these.
func parseCompact(raw string) (*parsed, error) {
	dots := strings.Count(raw, ".")
	switch {
	case dots == 4:
		return nil, fmt.Errorf("%w: five segments (JWE)", ErrJWENotSupported)
	case dots != 2:
		return nil, fmt.Errorf("%w: %d segments, want 3", ErrMalformed, dots+1)
	}
	hs, rest, _ := strings.Cut(raw, ".")
	ps, ss, _ := strings.Cut(rest, ".")
	if hs == "" || ps == "" || ss == "" {
		return nil, fmt.Errorf("%w: empty segment", ErrMalformed)
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
	if !utf8.Valid(hdr) || !utf8.Valid(payload) {
		return nil, fmt.Errorf("%w", ErrInvalidUTF8)
	}

	p := &parsed{raw: raw, payload: payload}
	if firstByte(hdr) != '{' {
		return nil, fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	if err := decodeObject(hdr, &p.header, false); err != nil {
		if err == errNotObject {
			err = fmt.Errorf("%w: header is not one JSON object", ErrMalformed)
		}
		return nil, err
	}
	if firstByte(payload) != '{' {
		return nil, fmt.Errorf("%w", ErrPayloadNotObject)
	}
	if err := decodeObject(payload, &p.claims, true); err != nil {
		if err == errNotObject {
			err = fmt.Errorf("%w: trailing data", ErrPayloadNotObject)
		}
		return nil, err
	}
	return p, nil
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
		d.UseNumber()
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
