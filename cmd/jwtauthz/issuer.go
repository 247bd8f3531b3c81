package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
)

func cmdIssuer(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("issuer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9000", "listen address (it mints accepted tokens: loopback by default; \":9000\" for all interfaces)")
	issuer := fs.String("issuer", "", `issuer URL, the iss claim (default "http://127.0.0.1:PORT")`)
	aud := fs.String("audience", "jwtauthz-dev", "default audience of minted tokens")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "issuer: %v\n", err)
		return 2
	}
	defer ln.Close()
	if *issuer == "" {
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		*issuer = "http://127.0.0.1:" + port
	}
	iss, err := devissuer.New(devissuer.Options{Issuer: *issuer, Audience: *aud})
	if err != nil {
		fmt.Fprintf(stderr, "issuer: %v\n", err)
		return 1
	}
	log := newLogger(stderr, "info", "json")
	base := strings.TrimSuffix(*issuer, "/")
	log.Info("dev issuer serving; for development and demos only", "addr", ln.Addr().String(), "issuer", *issuer,
		"jwks_uri", base+"/.well-known/jwks.json", "token_endpoint", base+"/token")
	srv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
		return 0
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return 0
		}
		fmt.Fprintf(stderr, "issuer: %v\n", err)
		return 2
	}
}
