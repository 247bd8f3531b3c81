// Command jwtauthz answers Envoy's external-authorization checks by verifying bearer JWTs
// against the issuers' published keys. See README.md; the subcommands are in contract.md.
//
// main only parses flags, picks the subcommand and maps errors to exit codes (0 ok, 1 bad
// config or flags, 2 runtime failure; check uses 3 for deny); everything else is in pkg/.
package main

import (
	"fmt"
	"io"
	"os"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

const usage = `jwtauthz: Envoy ext_authz service that verifies bearer JWTs against cached JWKS keys.

Usage:
  jwtauthz serve --config FILE      run the service (ext_authz gRPC :9001, HTTP forward-auth :9002, admin :9003)
  jwtauthz serve --dev              same, with an embedded dev issuer and a provider "dev" trusting it
  jwtauthz validate FILE            check a config; print every problem with its field path
  jwtauthz issuer [--addr A]        standalone dev issuer for demos
  jwtauthz healthcheck [--addr A]   exit 0 when the admin listener's /readyz (--live: /healthz) answers 200
  jwtauthz version                  version, commit, Go version

Run "jwtauthz COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stdout, stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "issuer":
		return cmdIssuer(args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "version: unexpected argument %q\n", args[1])
			return 1
		}
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "jwtauthz: unknown command %q\n\n%s", args[0], usage)
	return 1
}
