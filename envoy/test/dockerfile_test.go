package deploytest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line  int
	cmd   string // upper case: FROM, RUN, ...
	args  string
	stage int // index of the FROM that starts its stage
}

// parseDockerfile splits a Dockerfile into instructions: comments and parser directives
// dropped, backslash continuations joined. (Heredocs are not used here.)
func parseDockerfile(text string) []instruction {
	var out []instruction
	stage := -1
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{line: start, cmd: cmd, args: strings.TrimSpace(args), stage: stage})
		cur.Reset()
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument, or returns nil for shell form.
func execForm(args string) []string {
	var argv []string
	if json.Unmarshal([]byte(args), &argv) != nil {
		return nil
	}
	return argv
}

// checkDockerfile checks the image recipe against what the deployment files rely on: a static,
// version-stamped binary at /jwtauthz on distroless as non-root, the three ports, a health check
// that runs without a shell, OCI labels.
func checkDockerfile(text, goVersion string, dockerignore []string) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	ins := parseDockerfile(text)
	var froms []instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			froms = append(froms, in)
		}
	}
	if len(froms) < 2 {
		add("not a multi-stage build (%d FROM)", len(froms))
		return problems
	}
	last := len(froms) - 1
	fromImage := func(in instruction) string {
		for _, f := range strings.Fields(in.args) {
			if !strings.HasPrefix(f, "--") {
				return f
			}
		}
		return ""
	}

	// Build stage: golang matching go.mod, static, trimmed, version-stamped.
	build := fromImage(froms[0])
	if !regexp.MustCompile(`^golang:` + regexp.QuoteMeta(goVersion) + `(\.\d+)?(-[a-z0-9.]+)?(@sha256:[0-9a-f]{64})?$`).MatchString(build) {
		add("line %d: the build stage is %q; want golang:%s (the go directive of go.mod)", froms[0].line, build, goVersion)
	}
	var goBuild string
	for _, in := range ins {
		if in.cmd == "RUN" && in.stage < last && strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags", "-X main.version=", "-X main.commit=", "./cmd/jwtauthz"} {
		if !strings.Contains(goBuild, want) {
			add("the go build RUN lacks %q", want)
		}
	}

	// Final stage.
	final := fromImage(froms[last])
	if !regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?(:nonroot(-[a-z0-9]+)?)?(@sha256:[0-9a-f]{64})?$`).MatchString(final) ||
		(!strings.Contains(final, ":nonroot") && !strings.Contains(final, "@sha256:")) {
		add("line %d: the final stage is %q; want gcr.io/distroless/static-debianNN:nonroot (or pinned by digest)", froms[last].line, final)
	}
	var user, entry, health []string
	exposed := map[string]bool{}
	labels := ""
	copied := false
	for _, in := range ins {
		if in.stage != last {
			continue
		}
		switch in.cmd {
		case "USER":
			user = append(user, in.args)
		case "EXPOSE":
			for _, p := range strings.Fields(in.args) {
				exposed[strings.TrimSuffix(p, "/tcp")] = true
			}
		case "LABEL":
			labels += " " + in.args
		case "COPY":
			if strings.HasPrefix(in.args, "--from=") && strings.HasSuffix(in.args, " /jwtauthz") {
				copied = true
			}
		case "ENTRYPOINT":
			if entry = execForm(in.args); entry == nil {
				add("line %d: ENTRYPOINT must use the exec form [\"/jwtauthz\"]: the image has no shell", in.line)
			}
		case "CMD":
			if execForm(in.args) == nil {
				add("line %d: CMD must use the exec form: the image has no shell", in.line)
			}
		case "HEALTHCHECK":
			_, after, ok := strings.Cut(in.args, "CMD ")
			if health = execForm(strings.TrimSpace(after)); !ok || health == nil {
				add("line %d: HEALTHCHECK must be CMD [\"/jwtauthz\", \"healthcheck\"] in exec form: the image has no shell", in.line)
			}
		}
	}
	if !copied {
		add("the final stage does not COPY --from the build stage to /jwtauthz")
	}
	if len(user) == 0 || !regexp.MustCompile(`^(nonroot|65532)(:(nonroot|65532))?$`).MatchString(user[len(user)-1]) {
		add("the final stage must run as USER nonroot (65532), got %q", user)
	}
	for _, p := range []string{"9001", "9002", "9003"} {
		if !exposed[p] {
			add("EXPOSE lacks %s", p)
		}
	}
	if health != nil && !slices.Equal(health, []string{"/jwtauthz", "healthcheck"}) {
		add("HEALTHCHECK runs %q; want [\"/jwtauthz\", \"healthcheck\"]", health)
	}
	if entry != nil && !slices.Equal(entry, []string{"/jwtauthz"}) {
		add("ENTRYPOINT is %q; want [\"/jwtauthz\"] (compose and Kubernetes pass the subcommand as arguments)", entry)
	}
	for _, l := range []string{"org.opencontainers.image.title", "org.opencontainers.image.source", "org.opencontainers.image.version", "org.opencontainers.image.revision"} {
		if !strings.Contains(labels, l+"=") {
			add("LABEL lacks %s", l)
		}
	}

	// The build context keeps what the build needs and drops the rest.
	for _, need := range []string{"go.mod", "go.sum", "cmd", "pkg", "proto-gen"} {
		if slices.Contains(dockerignore, need) || slices.Contains(dockerignore, need+"/") {
			add(".dockerignore excludes %s, which the build needs", need)
		}
	}
	if !slices.Contains(dockerignore, ".git") {
		add(".dockerignore should exclude .git")
	}
	return problems
}

// goDirective returns "1.26" from go.mod's "go 1.26.0".
func goDirective(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

func dockerignoreLines(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(string(readRepoFile(t, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	if problems := checkDockerfile(string(readRepoFile(t, "Dockerfile")), goDirective(t), dockerignoreLines(t)); len(problems) > 0 {
		t.Fatalf("Dockerfile:\n%s", strings.Join(problems, "\n"))
	}
	// The -X targets exist: a renamed variable would silently leave "dev" in the binary.
	main := string(readRepoFile(t, "cmd", "jwtauthz", "main.go"))
	for _, v := range []string{"version", "commit"} {
		if !regexp.MustCompile(`(?m)^\s*` + v + `\s*=\s*"`).MatchString(main) {
			t.Errorf("cmd/jwtauthz/main.go no longer declares var %s, which the Dockerfile sets with -X main.%s", v, v)
		}
	}
}

func TestDockerfileBrokenCopies(t *testing.T) {
	base := string(readRepoFile(t, "Dockerfile"))
	cases := []struct{ name, old, new, want string }{
		{"shell-form health check", `CMD ["/jwtauthz", "healthcheck"]`, `CMD /jwtauthz healthcheck`, "HEALTHCHECK must be CMD"},
		{"root", "USER nonroot:nonroot", "USER root", "must run as USER nonroot"},
		{"unpinned base", "gcr.io/distroless/static-debian13:nonroot", "gcr.io/distroless/static-debian13:latest", "the final stage is"},
		{"cgo", "CGO_ENABLED=0 ", "", `lacks "CGO_ENABLED=0"`},
		{"port missing", "EXPOSE 9001 9002 9003", "EXPOSE 9001 9002", "EXPOSE lacks 9003"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(base, c.old) {
				t.Fatalf("Dockerfile no longer contains %q; update this case", c.old)
			}
			problems := checkDockerfile(strings.Replace(base, c.old, c.new, 1), goDirective(t), dockerignoreLines(t))
			if len(problems) == 0 {
				t.Fatal("the broken copy passed")
			}
			msg := strings.Join(problems, "\n")
			t.Logf("rejected as expected:\n%s", msg)
			if !strings.Contains(msg, c.want) {
				t.Errorf("message lacks %q", c.want)
			}
		})
	}
}
