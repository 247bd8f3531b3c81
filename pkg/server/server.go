package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/jwtauthz/jwtauthz/proto-gen/jwtauthz/config/v1"

	"github.com/jwtauthz/jwtauthz/pkg/config"
	"github.com/jwtauthz/jwtauthz/pkg/devissuer"
	"github.com/jwtauthz/jwtauthz/pkg/extauthz"
	"github.com/jwtauthz/jwtauthz/pkg/forwardauth"
	"github.com/jwtauthz/jwtauthz/pkg/jwks"
	"github.com/jwtauthz/jwtauthz/pkg/metrics"
)

// DevProvider is the name of the provider dev mode adds.
const DevProvider = "dev"

// DevAudience is the dev provider's audience.
const DevAudience = "jwtauthz-dev"

// kidFetchesPerMinute caps unknown-kid fetches across all providers (jwks-cache.md J16).
const kidFetchesPerMinute = 10

// ConfigError is a configuration problem found while building (exit code 1).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// ListenError is a listener that could not bind (exit code 2).
type ListenError struct {
	Listener, Address string
	Err               error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("%s listener on %s: %v", e.Listener, e.Address, e.Err)
}
func (e *ListenError) Unwrap() error { return e.Err }

// Options configure Run.
type Options struct {
	// Config is a defaulted, validated configuration. In dev mode it may have no providers.
	Config *configv1.Config
	// Dev adds the embedded dev issuer and its provider (contract "Dev mode").
	Dev bool
	// Logger for everything; default slog.Default().
	Logger *slog.Logger
	// Banner receives the dev-mode banner (standard output); default io.Discard.
	Banner io.Writer
	// Version for the User-Agent of JWKS fetches and the banner.
	Version string
	// Now is the clock; default time.Now.
	Now func() time.Time
	// After is the timer of key refreshes and local file polls; default time.After. Tests
	// inject a fake clock (with Now) to drive schedules, backoff and max_stale.
	After func(time.Duration) <-chan time.Time
	// Listening, when set, is called once every listener is bound, with their addresses
	// (tests use it to learn ":0" ports).
	Listening func(Addrs)
}

// Addrs are the bound listener addresses; HTTP is "" when disabled.
type Addrs struct{ GRPC, HTTP, Admin string }

// Run serves until ctx ends, then drains and returns nil; or returns a *ConfigError or a
// *ListenError at start.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Banner == nil {
		o.Banner = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	cfg := o.Config
	log := o.Logger
	if len(cfg.Providers) == 0 && !o.Dev {
		return &ConfigError{Err: errors.New("providers: at least one provider is required")}
	}
	if _, taken := cfg.Providers[DevProvider]; taken && o.Dev {
		return &ConfigError{Err: fmt.Errorf("providers.%s: the name %q is reserved in dev mode", DevProvider, DevProvider)}
	}
	var extra0 []string
	if o.Dev {
		extra0 = []string{DevProvider}
	}
	for _, w := range config.ValidateWith(cfg, extra0).Warnings() {
		log.Warn("configuration warning", "field", w.Path, "warning", w.Message)
	}

	tlsConf, err := listenerTLS(cfg.GetServer().GetTls())
	if err != nil {
		return &ConfigError{Err: err}
	}

	// Bind everything first: a port in use is exit 2 before any work starts, and dev mode
	// needs the admin address for its issuer URL.
	s := cfg.GetServer()
	grpcLn, err := net.Listen("tcp", s.GetGrpcAddress())
	if err != nil {
		return &ListenError{"gRPC", s.GetGrpcAddress(), err}
	}
	defer grpcLn.Close()
	adminLn, err := net.Listen("tcp", s.GetAdminAddress())
	if err != nil {
		return &ListenError{"admin", s.GetAdminAddress(), err}
	}
	defer adminLn.Close()
	var httpLn net.Listener
	if s.GetHttpAddress() != "" {
		httpLn, err = net.Listen("tcp", s.GetHttpAddress())
		if err != nil {
			return &ListenError{"HTTP", s.GetHttpAddress(), err}
		}
		defer httpLn.Close()
	}

	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	hs := health.NewServer()
	setServing(hs, false)

	var dev *devissuer.Issuer
	var extra []extraProvider
	if o.Dev {
		dev, extra, err = devSetup(adminLn.Addr().String(), o.Now)
		if err != nil {
			return &ConfigError{Err: err}
		}
	}

	var draining atomic.Bool
	var c *core
	// Providers without usable keys at the last update. It starts as "unknown" so that the
	// first fetches at start log nothing alarming; a provider still without keys then is
	// reported by its fetch errors, and later losses and recoveries are logged here.
	var lastMissing atomic.Value
	lastMissing.Store("\x00unknown")
	update := func() {
		if c == nil {
			return
		}
		setServing(hs, !draining.Load() && c.ready())
		// Say so when a provider loses or regains its keys: past max_stale nothing else
		// logs the moment checks start answering 503.
		missing := strings.Join(c.notReady(), ",")
		switch prev := lastMissing.Swap(missing).(string); {
		case prev == missing:
		case prev == "\x00unknown":
			if missing == "" {
				log.Info("every provider has usable keys")
			}
		case missing != "":
			log.Warn("providers without usable keys: their tokens get 503 and /readyz fails", "providers", missing)
		default:
			log.Info("every provider has usable keys again")
		}
	}
	c, err = buildCore(buildOptions{
		cfg: cfg, extra: extra, logger: log, metrics: m, now: o.Now, after: o.After,
		limiter: jwks.NewLimiter(kidFetchesPerMinute, o.Now), onUpdate: update, version: o.Version,
	})
	if err != nil {
		return &ConfigError{Err: err}
	}

	grpcOpts := []grpc.ServerOption{}
	if tlsConf != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(tlsConf)))
	}
	gs := grpc.NewServer(grpcOpts...)
	authv3.RegisterAuthorizationServer(gs, extauthz.New(c.authz, extauthz.Options{Logger: log}))
	stopWatches := make(chan struct{})
	healthpb.RegisterHealthServer(gs, drainableHealth{Server: hs, stop: stopWatches})
	reflection.Register(gs)

	admin := &http.Server{Handler: adminMux(c, &draining, reg, cfg.GetServer().GetPprof(), dev), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second}
	var fwd *http.Server
	if httpLn != nil {
		fwd = &http.Server{Handler: forwardauth.New(c.authz, forwardauth.Options{
			Logger:       log,
			MethodHeader: cfg.GetServer().GetForwardAuth().GetMethodHeader(),
			URIHeader:    cfg.GetServer().GetForwardAuth().GetUriHeader(),
			HostHeader:   cfg.GetServer().GetForwardAuth().GetHostHeader(),
		}), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
		if tlsConf != nil {
			httpLn = tls.NewListener(httpLn, tlsConf)
		}
	}

	runCtx, stopRun := context.WithCancel(context.Background())
	defer stopRun()
	var wg sync.WaitGroup
	for _, p := range c.providers {
		if p.run != nil {
			wg.Go(func() { p.run(runCtx) })
		}
	}
	// Key sets can also expire (max_stale) with no fetch event: re-check readiness each second.
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			update()
			select {
			case <-runCtx.Done():
				return
			case <-t.C:
			}
		}
	})

	serveErr := make(chan error, 3)
	wg.Go(func() {
		if err := gs.Serve(grpcLn); err != nil {
			serveErr <- fmt.Errorf("gRPC listener: %w", err)
		}
	})
	wg.Go(func() {
		if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("admin listener: %w", err)
		}
	})
	if fwd != nil {
		wg.Go(func() {
			if err := fwd.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				serveErr <- fmt.Errorf("HTTP listener: %w", err)
			}
		})
	}

	addrs := Addrs{GRPC: grpcLn.Addr().String(), Admin: adminLn.Addr().String()}
	if httpLn != nil {
		addrs.HTTP = httpLn.Addr().String()
	}
	if dev != nil {
		if err := printBanner(o.Banner, dev, addrs, tlsConf != nil); err != nil {
			log.Warn("could not print the dev banner", "error", err.Error())
		}
	}
	log.Info("jwtauthz serving", "grpc", addrs.GRPC, "http", addrs.HTTP, "admin", addrs.Admin, "providers", len(c.providers), "version", o.Version, "dev", o.Dev, "shadow", cfg.Shadow)
	if fwd == nil {
		log.Info("HTTP forward-auth listener disabled (server.http_address is empty)")
	}
	if o.Listening != nil {
		o.Listening(addrs)
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-serveErr:
		log.Error("listener failed; shutting down", "error", runErr.Error())
	}

	// Shutdown (house-style 26): not ready at once so that load balancers and Envoy's
	// health checks move away, keep serving through drain_delay, then stop accepting and
	// wait at most drain_timeout for checks in flight.
	draining.Store(true)
	setServing(hs, false)
	delay := s.GetDrainDelay().AsDuration()
	timeout := s.GetDrainTimeout().AsDuration()
	log.Info("draining", "drain_delay", delay.String(), "drain_timeout", timeout.String())
	if delay > 0 && runErr == nil {
		t := time.NewTimer(delay)
		<-t.C
	}
	close(stopWatches)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	shutCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if fwd != nil {
		_ = fwd.Shutdown(shutCtx)
	}
	select {
	case <-stopped:
	case <-shutCtx.Done():
		log.Warn("drain timeout reached; closing remaining gRPC streams")
		gs.Stop()
		<-stopped
	}
	_ = admin.Shutdown(shutCtx)
	stopRun()
	wg.Wait()
	log.Info("stopped")
	if runErr != nil {
		return runErr
	}
	return nil
}

func setServing(hs *health.Server, ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	hs.SetServingStatus("", st)
	hs.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, st)
}

func adminMux(c *core, draining *atomic.Bool, reg *prometheus.Registry, withPprof bool, dev *devissuer.Issuer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		// Liveness never depends on an IdP (J20).
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		switch {
		case draining.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining\n")
		case !c.ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "no usable keys for: "+strings.Join(c.notReady(), ", ")+"\n")
		default:
			_, _ = io.WriteString(w, "ok\n")
		}
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if dev != nil {
		mux.Handle("/dev/", http.StripPrefix("/dev", dev.Handler()))
	}
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// listenerTLS builds the gRPC and HTTP listeners' TLS config; nil without TLS.
func listenerTLS(t *configv1.Tls) (*tls.Config, error) {
	if t == nil || t.CertFile == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	if t.ClientCaFile != "" {
		pem, err := os.ReadFile(t.ClientCaFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("server.tls.client_ca_file: no PEM certificate in %s", t.ClientCaFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return conf, nil
}

// devSetup makes the dev issuer, served under /dev on the admin listener, and its provider.
func devSetup(adminAddr string, now func() time.Time) (*devissuer.Issuer, []extraProvider, error) {
	iss, err := devissuer.New(devissuer.Options{Issuer: "http://" + reachable(adminAddr) + "/dev", Audience: DevAudience, Now: now})
	if err != nil {
		return nil, nil, err
	}
	var keys []*jwks.Key
	for _, k := range iss.PublicKeys() {
		keys = append(keys, &jwks.Key{KID: k.KID, Alg: k.Alg, Public: k.Key})
	}
	p := &configv1.Provider{
		Issuer:    iss.IssuerURL(),
		Audiences: []string{DevAudience},
		ClaimToHeaders: []*configv1.ClaimToHeader{
			{Claim: "sub", Header: "x-user-id"},
			{Claim: "scope", Header: "x-user-scopes"},
		},
	}
	config.ApplyProviderDefaults(p)
	p = proto.Clone(p).(*configv1.Provider)
	return iss, []extraProvider{{name: DevProvider, cfg: p, static: jwks.NewStatic(jwks.NewSet(keys))}}, nil
}

// reachable turns a bound address into one a client on this host can dial: ":9003" and
// "0.0.0.0:9003" become "127.0.0.1:9003".
func reachable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		// Go's wildcard listeners are dual-stack, so IPv4 loopback reaches them.
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}
