package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/jwtauthz/jwtauthz/pkg/config"
	"github.com/jwtauthz/jwtauthz/pkg/server"
)

func cmdValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: jwtauthz validate FILE") }
	if err := fs.Parse(args); err != nil {
		return flagExit(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 1
	}
	file := fs.Arg(0)
	cfg, warnings, err := config.Load(file)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			printProblems(stdout, file, append(ps, warnings...))
		} else {
			fmt.Fprintf(stdout, "%v\n", err)
		}
		return 1
	}
	if len(cfg.Providers) == 0 {
		fmt.Fprintln(stdout, "providers: at least one provider is required")
		return 1
	}
	if err := server.CheckConfig(cfg); err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	printProblems(stdout, file, warnings)
	plural := "s"
	if len(cfg.Providers) == 1 {
		plural = ""
	}
	fmt.Fprintf(stdout, "%s: valid (%d provider%s, %d rules)\n", file, len(cfg.Providers), plural, len(cfg.Rules))
	return 0
}
