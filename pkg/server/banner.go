package server

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
)

// printBanner writes the dev-mode banner: a ready token and commands to try it. This is the one
// place a token is ever printed, and only in dev mode (contract "Dev mode"); it goes to
// standard output, never through the logger.
func printBanner(w io.Writer, iss *devissuer.Issuer, a Addrs, tls bool) error {
	tok, err := iss.Mint(devissuer.TokenRequest{Sub: "dev-user", Scope: "read write", TTL: time.Hour})
	if err != nil {
		return err
	}
	grpcTarget := reachable(a.GRPC)
	plaintext := "-plaintext "
	if tls {
		plaintext = ""
	}
	req := fmt.Sprintf(`{"attributes":{"request":{"http":{"method":"GET","host":"api.example.com","path":"/hello","headers":{":authority":"api.example.com",":method":"GET",":path":"/hello","authorization":"Bearer %s"}}}}}`, tok)
	var b strings.Builder
	fmt.Fprintf(&b, "\njwtauthz dev mode: provider %q trusts the embedded issuer\n", DevProvider)
	fmt.Fprintf(&b, "  issuer   %s (audience %s)\n", iss.IssuerURL(), iss.Audience())
	fmt.Fprintf(&b, "  JWKS     %s/.well-known/jwks.json\n", iss.IssuerURL())
	fmt.Fprintf(&b, "  more     curl '%s/token?sub=alice&scope=read&ttl=600'\n", iss.IssuerURL())
	fmt.Fprintf(&b, "\nToken (sub dev-user, scope \"read write\", valid 1h):\n\n%s\n", tok)
	fmt.Fprintf(&b, "\nAsk the ext_authz gRPC listener (expect status OK and x-user-id: dev-user):\n\n")
	fmt.Fprintf(&b, "grpcurl %s-d '%s' %s envoy.service.auth.v3.Authorization/Check\n", plaintext, req, grpcTarget)
	if a.HTTP != "" {
		scheme := "http"
		if tls {
			scheme = "https"
		}
		fmt.Fprintf(&b, "\nAsk the HTTP forward-auth listener (expect 200 and x-user-id: dev-user):\n\n")
		fmt.Fprintf(&b, "curl -i -H 'Authorization: Bearer %s' %s://%s/hello\n", tok, scheme, reachable(a.HTTP))
	}
	b.WriteString("\n")
	_, err = io.WriteString(w, b.String())
	return err
}
