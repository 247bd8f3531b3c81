package token

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// Extraction tests: jwt-security.md §3.1 X1-X8. Header maps are shaped as Envoy sends them
// (envoy-notes §1): lower-case keys; repeats joined with "," in request.http.headers, or one
// slice element per entry from request.http.header_map.

const xtok = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"

var (
	srcBearer = Source{Kind: FromHeader, Name: "authorization", Prefix: "Bearer "}
	srcCustom = Source{Kind: FromHeader, Name: "x-jwt-assertion"}
	srcParam  = Source{Kind: FromParam, Name: "access_token"}
	srcCookie = Source{Kind: FromCookie, Name: "session"}
)

type xcase struct {
	name    string
	sources []Source // nil: srcBearer only
	headers map[string][]string
	query   string
	max     int    // 0: 8192
	want    error  // nil: success
	tok     string // on success; "" means xtok
	from    Source // on success; zero means sources[0]
}

func auth(vs ...string) map[string][]string { return map[string][]string{"authorization": vs} }

func TestExtract(t *testing.T) {
	all := []Source{srcBearer, srcParam, srcCookie}
	digest := `Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, ` +
		`nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", ` +
		`qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`
	big := strings.Repeat("a", 8192)

	cases := []xcase{
		{name: "X1/no headers", headers: nil, want: ErrMissingToken},
		{name: "X1/other headers only", headers: map[string][]string{":path": {"/"}, "x-request-id": {"r1"}}, want: ErrMissingToken},
		{name: "X1/empty authorization", headers: auth(""), want: ErrMissingToken},
		{name: "X1/blank authorization", headers: auth("  \t"), want: ErrMissingToken},
		{name: "X1/every source configured, none present", sources: all, want: ErrMissingToken},
		{name: "X1/mixed-case key is not Envoy's shape", headers: map[string][]string{"Authorization": {"Bearer " + xtok}}, want: ErrMissingToken},
		{name: "X2/Basic", headers: auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="), want: ErrUnsupportedScheme},
		{name: "X2/Digest with auth-params", headers: auth(digest), want: ErrUnsupportedScheme},
		{name: "X2/Digest with a comma inside a quoted string", headers: auth(`Digest realm="a,b", username="x\",y"`), want: ErrUnsupportedScheme},
		{name: "X2/DPoP", headers: auth("DPoP " + xtok), want: ErrUnsupportedScheme},
		{name: "X2/Negotiate", headers: auth("Negotiate YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEF"), want: ErrUnsupportedScheme},
		{name: "X2/scheme glued to the token", headers: auth("Bearer" + xtok), want: ErrUnsupportedScheme},
		{name: "X2/Basic with a token in the query", sources: all, headers: auth("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
			query: "access_token=" + xtok, from: srcParam},
		{name: "X3/Bearer", headers: auth("Bearer " + xtok)},
		{name: "X3/bearer", headers: auth("bearer " + xtok)},
		{name: "X3/BEARER", headers: auth("BEARER " + xtok)},
		{name: "X3/bEaReR", headers: auth("bEaReR " + xtok)},
		{name: "X3/several spaces", headers: auth("Bearer     " + xtok)},
		{name: "X3/trailing whitespace", headers: auth("Bearer " + xtok + " \t")},
		{name: "X3/b64token padding and symbols", headers: auth("Bearer a-b.c_d~e+f/g=="), tok: "a-b.c_d~e+f/g=="},
		{name: "X4/TAB after the scheme", headers: auth("Bearer\t" + xtok), want: ErrMalformedAuthorization},
		{name: "X4/space then TAB", headers: auth("Bearer \t" + xtok), want: ErrMalformedAuthorization},
		{name: "X4/Bearer alone", headers: auth("Bearer"), want: ErrMalformedAuthorization},
		{name: "X4/Bearer and spaces", headers: auth("Bearer    "), want: ErrMalformedAuthorization},
		{name: "X4/space inside the token", headers: auth("Bearer a b"), want: ErrMalformedAuthorization},
		{name: "X4/quoted token", headers: auth(`Bearer "` + xtok + `"`), want: ErrMalformedAuthorization},
		{name: "X4/padding in the middle", headers: auth("Bearer ab=c"), want: ErrMalformedAuthorization},
		{name: "X4/only padding", headers: auth("Bearer =="), want: ErrMalformedAuthorization},
		{name: "X4/NUL in the token", headers: auth("Bearer abc\x00def"), want: ErrMalformedAuthorization},
		{name: "X4/non-ASCII in the token", headers: auth("Bearer abcé"), want: ErrMalformedAuthorization},
		{name: "X4/Envoy's ! for non-UTF-8", headers: auth("Bearer abc!def"), want: ErrMalformedAuthorization},
		{name: "X4/bad query escape", sources: []Source{srcParam}, query: "access_token=%zz", want: ErrMalformedAuthorization},
		{name: "X4/empty query parameter", sources: []Source{srcParam}, query: "access_token=", want: ErrMalformedAuthorization},
		{name: "X4/query parameter with a space", sources: []Source{srcParam}, query: "access_token=a%20b", want: ErrMalformedAuthorization},
		{name: "X4/query parameter with a plus", sources: []Source{srcParam}, query: "access_token=a+b", want: ErrMalformedAuthorization},
		{name: "X4/empty cookie", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"session="}}, want: ErrMalformedAuthorization},
		{name: "X4/cookie with a space", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {`session="a b"`}}, want: ErrMalformedAuthorization},
		{name: "X5/two header_map entries", headers: auth("Bearer "+xtok, "Bearer "+xtok), want: ErrMultipleTokens},
		{name: "X5/two header_map entries, one empty", headers: auth("Bearer "+xtok, ""), want: ErrMultipleTokens},
		{name: "X5/comma-joined, no space", headers: auth("Bearer " + xtok + ",Bearer " + xtok), want: ErrMultipleTokens},
		{name: "X5/comma-joined with a space", headers: auth("Bearer " + xtok + ", Bearer other"), want: ErrMultipleTokens},
		{name: "X5/comma-joined Basic then Bearer", headers: auth("Basic QWxhZGRpbg==,Bearer " + xtok), want: ErrMultipleTokens},
		{name: "X5/comma-joined Bearer then Basic", headers: auth("Bearer " + xtok + ",Basic QWxhZGRpbg=="), want: ErrMultipleTokens},
		{name: "X5/comma-joined Basic twice", headers: auth("Basic QWxhZGRpbg==,Basic b3RoZXI="), want: ErrMultipleTokens},
		{name: "X5/comma-joined Digest twice", headers: auth(`Digest username="a", realm="r",Digest username="b", realm="r"`), want: ErrMultipleTokens},
		{name: "X5/comma inside the token", headers: auth("Bearer abc,def"), want: ErrMultipleTokens},
		{name: "X5/trailing comma", headers: auth("Bearer " + xtok + ","), want: ErrMalformedAuthorization},
		{name: "X5/two header_map entries of another scheme", headers: auth("Basic QWxhZGRpbg==", "Basic b3RoZXI="), want: ErrMultipleTokens},
		{name: "X5/custom header comma-joined", sources: []Source{srcCustom}, headers: map[string][]string{"x-jwt-assertion": {xtok + "," + xtok}}, want: ErrMultipleTokens},
		{name: "X5/custom header twice", sources: []Source{srcCustom}, headers: map[string][]string{"x-jwt-assertion": {xtok, xtok}}, want: ErrMultipleTokens},
		{name: "X5/query parameter twice", sources: []Source{srcParam}, query: "access_token=" + xtok + "&access_token=" + xtok, want: ErrMultipleTokens},
		{name: "X5/cookie twice in one header", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"session=" + xtok + "; session=" + xtok}}, want: ErrMultipleTokens},
		{name: "X5/cookie in two cookie headers", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"session=" + xtok, "a=b; session=" + xtok}}, want: ErrMultipleTokens},
		{name: "X6/header and access_token", sources: all, headers: auth("Bearer " + xtok), query: "access_token=" + xtok, want: ErrMultipleTokens},
		{name: "X6/header and cookie", sources: all, headers: map[string][]string{"authorization": {"Bearer " + xtok}, "cookie": {"session=" + xtok}}, want: ErrMultipleTokens},
		{name: "X6/access_token and cookie", sources: all, headers: map[string][]string{"cookie": {"session=" + xtok}}, query: "access_token=" + xtok, want: ErrMultipleTokens},
		{name: "X6/two configured headers", sources: []Source{srcBearer, srcCustom}, headers: map[string][]string{"authorization": {"Bearer " + xtok}, "x-jwt-assertion": {xtok}}, want: ErrMultipleTokens},
		{name: "X6/malformed header wins over a param", sources: all, headers: auth("Bearer\t" + xtok), query: "access_token=" + xtok, want: ErrMalformedAuthorization},
		{name: "X7/token in the query, from_params unset", headers: nil, query: "access_token=" + xtok, want: ErrMissingToken},
		{name: "X7/token in a cookie, from_cookies unset", headers: map[string][]string{"cookie": {"session=" + xtok}}, want: ErrMissingToken},
		{name: "X7/access_token with from_params", sources: []Source{srcParam}, query: "a=1&access_token=" + xtok + "&b=2"},
		{name: "X7/escaped parameter name", sources: []Source{srcParam}, query: "access%5Ftoken=" + url.QueryEscape(xtok)},
		{name: "X7/parameter name is case-sensitive", sources: []Source{srcParam}, query: "Access_Token=" + xtok, want: ErrMissingToken},
		{name: "X7/semicolon is no separator", sources: []Source{srcParam}, query: "x=1;access_token=" + xtok, want: ErrMissingToken},
		{name: "X7/cookie among others", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"a=b; session=" + xtok + "; c=d"}}},
		{name: "X7/quoted cookie", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {`session="` + xtok + `"`}}},
		{name: "X7/cookie name is exact", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"Session=" + xtok + "; session_x=" + xtok}}, want: ErrMissingToken},
		{name: "X7/custom header without prefix", sources: []Source{srcCustom}, headers: map[string][]string{"x-jwt-assertion": {xtok}}},
		{name: "X8/one byte over the limit", headers: auth("Bearer " + big + "a"), want: ErrTokenTooLarge},
		{name: "X8/at the limit", headers: auth("Bearer " + big), tok: big},
		{name: "X8/small limit", headers: auth("Bearer " + xtok), max: len(xtok) - 1, want: ErrTokenTooLarge},
		{name: "X8/size before syntax", headers: auth("Bearer " + big + " x"), want: ErrTokenTooLarge},
		{name: "X8/in the query", sources: []Source{srcParam}, query: "access_token=" + big + "a", want: ErrTokenTooLarge},
		{name: "X8/in a cookie", sources: []Source{srcCookie}, headers: map[string][]string{"cookie": {"session=" + big + "a"}}, want: ErrTokenTooLarge},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		if seen[tc.name] {
			t.Fatalf("duplicate case %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			sources := tc.sources
			if sources == nil {
				sources = []Source{srcBearer}
			}
			max := tc.max
			if max == 0 {
				max = 8192
			}
			c, err := Extract(sources, tc.headers, tc.query, max)
			checkErr(t, err, tc.want)
			if tc.want != nil {
				if c != (Credential{}) {
					t.Errorf("failed Extract returned credential %+v", c)
				}
				return
			}
			wantTok, wantFrom := tc.tok, tc.from
			if wantTok == "" {
				wantTok = xtok
			}
			if wantFrom == (Source{}) {
				wantFrom = sources[0]
			}
			if c.Token != wantTok {
				t.Errorf("Token = %q, want %q", c.Token, wantTok)
			}
			if c.Source != wantFrom {
				t.Errorf("Source = %+v, want %+v", c.Source, wantFrom)
			}
		})
	}
}

// TestCredentials checks the comma rule's list parser on its own (RFC 9110 §5.6.1, §11.6.2).
func TestCredentials(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"", 0},
		{",,", 0},
		{"Bearer a", 1},
		{"Bearer a, Bearer b", 2},
		{"Bearer a,b", 2},
		{`Digest a="1", b = 2, c=3`, 1},
		{`Digest a="x,Bearer y"`, 1},
		{`Digest a="x\",Bearer y"`, 1},
		{`Digest a="x\\",Bearer y`, 2},
		{"Basic abc==, Bearer d", 2},
		{"=x, =y", 0},
		{"Bearer a, , ,", 1},
	}
	for _, tc := range tests {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			if got := credentials(tc.in); got != tc.want {
				t.Errorf("credentials(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}
