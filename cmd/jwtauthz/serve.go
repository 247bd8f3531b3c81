package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

	"github.com/jwtauthz/jwtauthz/pkg/config"
	"github.com/jwtauthz/jwtauthz/pkg/server"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML)")
	dev := fs.Bool("dev", false, "add an embedded dev issuer and a provider \"dev\" trusting it")
	grpcAddr := optString(fs, "grpc-addr", "ext_authz gRPC listener address (overrides server.grpc_address)")
	httpAddr := optString(fs, "http-addr", "HTTP forward-auth listener address, \"\" disables (overrides server.http_address)")
	adminAddr := optString(fs, "admin-addr", "admin listener address (overrides server.admin_address)")
	logLevel := optString(fs, "log-level", "debug, info, warn or error (overrides logging.level)")
	logFormat := optString(fs, "log-format", "json or text (overrides logging.format)")
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "serve: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	if *cfgPath == "" && !*dev {
		fmt.Fprintln(stderr, "serve: --config FILE is required (or --dev to try jwtauthz with its embedded issuer)")
		return 1
	}

	cfg := &configv1.Config{}
	if *cfgPath != "" {
		var err error
		if cfg, err = config.ParseFile(*cfgPath); err != nil {
			printProblems(stderr, *cfgPath, err)
			return 1
		}
	}
	if *dev {
		// Dev mode serves a token endpoint that mints accepted tokens: keep every listener
		// on loopback unless the config or a flag says otherwise.
		if cfg.Server == nil {
			cfg.Server = &configv1.Server{}
		}
		for _, a := range []struct {
			dst  **string
			port string
		}{{&cfg.Server.GrpcAddress, "9001"}, {&cfg.Server.HttpAddress, "9002"}, {&cfg.Server.AdminAddress, "9003"}} {
			if *a.dst == nil {
				*a.dst = proto.String("127.0.0.1:" + a.port)
			}
		}
	}
	config.ApplyDefaults(cfg)
	s := cfg.Server
	grpcAddr.apply(&s.GrpcAddress)
	httpAddr.apply(&s.HttpAddress)
	adminAddr.apply(&s.AdminAddress)
	if logLevel.set {
		cfg.Logging.Level = logLevel.v
	}
	if logFormat.set {
		cfg.Logging.Format = logFormat.v
	}
	var extra []string
	if *dev {
		extra = []string{server.DevProvider}
	}
	if errs := config.ValidateWith(cfg, extra).Errors(); len(errs) > 0 {
		printProblems(stderr, *cfgPath, errs)
		return 1
	}
	log := newLogger(stderr, cfg.Logging.Level, cfg.Logging.Format)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := server.Run(ctx, server.Options{Config: cfg, Dev: *dev, Logger: log, Banner: stdout, Version: version})
	var ce *server.ConfigError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "jwtauthz: %v\n", err)
		return 1
	default:
		log.Error("jwtauthz stopped", "error", err.Error())
		fmt.Fprintf(stderr, "jwtauthz: %v\n", err)
		return 2
	}
}

// optFlag is a string flag that remembers whether it was given, so that an explicit ""
// (--http-addr "" disables forward-auth) differs from absent.
type optFlag struct {
	v   string
	set bool
}

func (o *optFlag) String() string     { return o.v }
func (o *optFlag) Set(s string) error { o.v, o.set = s, true; return nil }
func (o *optFlag) apply(dst **string) {
	if o.set {
		*dst = proto.String(o.v)
	}
}

func optString(fs *flag.FlagSet, name, usage string) *optFlag {
	o := &optFlag{}
	fs.Var(o, name, usage)
	return o
}

func printProblems(w io.Writer, file string, err error) {
	var ps config.Problems
	if errors.As(err, &ps) {
		for _, p := range ps {
			prefix := ""
			if p.Warning {
				prefix = "warning: "
			}
			fmt.Fprintf(w, "%s%s\n", prefix, p.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}

// flagExit maps a flag parsing error to an exit code: -h is a successful request for help.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 1
}

// secretKeys are attribute keys whose values never reach a log line (house-style 25).
var secretKeys = map[string]bool{"authorization": true, "cookie": true, "token": true, "access_token": true, "set-cookie": true, "proxy-authorization": true}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if secretKeys[strings.ToLower(a.Key)] {
				return slog.String(a.Key, "[REDACTED]")
			}
			return a
		},
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
