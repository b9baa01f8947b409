package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/daemon"
	"github.com/pathagent/pathagent/internal/metrics"
)

const (
	// defaultConfig is where packages install the configuration.
	defaultConfig = "/etc/pathagent/pathagent.yaml"

	// defaultListen is outside the 9100-9999 range the Prometheus
	// project hands out to exporters, which is fully allocated, and
	// below the kernel's ephemeral ports, so it clashes with neither a
	// well-known exporter nor an outgoing connection.
	defaultListen = ":19340"

	// reloadTimeout bounds an HTTP reload request's wait for the loop.
	reloadTimeout = 10 * time.Second

	// httpShutdown bounds the wait for scrapes in flight at shutdown.
	httpShutdown = 5 * time.Second
)

// stringsFlag collects a repeated string flag; the default applies only when
// the flag is never given.
type stringsFlag struct {
	values []string
	set    bool
}

func (s *stringsFlag) String() string { return fmt.Sprint(s.values) }
func (s *stringsFlag) Set(v string) error {
	if !s.set {
		s.values, s.set = nil, true
	}
	s.values = append(s.values, v)
	return nil
}

func runDaemon(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("pathagent run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := &stringsFlag{values: []string{defaultListen}}
	var (
		configPath = fs.String("config", envOr("PATHAGENT_CONFIG", defaultConfig), "YAML configuration `file`")
		webConfig  = fs.String("web.config.file", "", "TLS and basic auth configuration `file` (exporter-toolkit format)")
		logLevel   = fs.String("log-level", "info", "log `level`: debug, info, warn or error")
		logFormat  = fs.String("log-format", "text", "log `format`: text or json")
		lifecycle  = fs.Bool("web.enable-lifecycle", false, "accept reloads over HTTP (POST /-/reload); SIGHUP always works")
	)
	fs.Var(listen, "web.listen-address", "`address` to serve metrics on; repeat for more")
	if err := fs.Parse(args); err != nil {
		return 2
	}

	log, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "pathagent run: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		log.Error("load AWS configuration", "err", err)
		return 2
	}

	m := metrics.New(metrics.BuildInfo{Version: version, Revision: revision})
	d := &daemon.Daemon{
		Load: func() (*config.Config, error) { return loadRunConfig(*configPath) },
		NewAgent: func(cfg *config.Config) *agent.Agent {
			a, err := newAgent(cfg, awsCfg, log)
			if err != nil {
				// loadRunConfig resolved the resolver already, so
				// this cannot fail; log in case it ever does.
				log.Error("build agent", "err", err)
			}
			a.EC2APIOptions = append(a.EC2APIOptions, daemon.CountEC2Calls(m))
			return a
		},
		Metrics:        m,
		Log:            log,
		Ready:          func() { notify(log, sddaemon.SdNotifyReady) },
		Heartbeat:      func() { notify(log, sddaemon.SdNotifyWatchdog) },
		HeartbeatEvery: watchdogEvery(),
	}

	// SIGHUP reloads, as for most daemons.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			if err := d.Reload(ctx); err != nil {
				log.Error("reload on SIGHUP failed", "err", err)
			}
		}
	}()

	srv := &http.Server{
		Handler:           handler(d, m, *lifecycle),
		ReadHeaderTimeout: 10 * time.Second,
	}
	flags := &web.FlagConfig{
		WebListenAddresses: &listen.values,
		WebSystemdSocket:   new(bool),
		WebConfigFile:      webConfig,
	}
	httpErr := make(chan error, 1)
	go func() { httpErr <- web.ListenAndServe(srv, flags, log) }()

	runErr := make(chan error, 1)
	go func() { runErr <- d.Run(ctx) }()

	var code int
	select {
	case err := <-httpErr:
		log.Error("serve metrics", "err", err)
		stop()
		<-runErr
		code = 1
	case err := <-runErr:
		if err != nil {
			log.Error("start", "err", err)
			code = 2
		}
	}

	notify(log, sddaemon.SdNotifyStopping)
	shutdown, cancel := context.WithTimeout(context.Background(), httpShutdown)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("stop metrics server", "err", err)
	}
	return code
}

// handler serves the metrics, a liveness check, the latest report and, when
// lifecycle is set, a reload call. Reloading is off by default because
// anyone who can reach the port could call it.
func handler(d *daemon.Daemon, m *metrics.Metrics, lifecycle bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "pathagent is healthy")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if !lifecycle {
			http.Error(w, "reloading over HTTP is off; start with --web.enable-lifecycle", http.StatusForbidden)
			return
		}
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST or PUT to reload", http.StatusMethodNotAllowed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), reloadTimeout)
		defer cancel()
		if err := d.Reload(ctx); err != nil {
			http.Error(w, "configuration rejected: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "configuration reloaded")
	})
	mux.HandleFunc("/report", func(w http.ResponseWriter, r *http.Request) {
		rep := d.Last()
		if rep == nil {
			http.Error(w, "no cycle has finished yet", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		rep.WriteJSON(w)
	})
	landing, err := web.NewLandingPage(web.LandingConfig{
		Name:        "pathagent",
		Description: "Which way this instance's S3 traffic goes, and whether it gets there",
		Version:     version,
		Links: []web.LandingLinks{
			{Address: "/metrics", Text: "Metrics"},
			{Address: "/report", Text: "Last report (JSON)"},
			{Address: "/-/healthy", Text: "Health"},
		},
	})
	if err == nil {
		mux.Handle("/", landing)
	}
	return mux
}

// loadRunConfig reads the daemon's configuration and checks what `once`
// checks at start: there must be buckets, and a resolver to find.
func loadRunConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if len(cfg.Buckets) == 0 {
		return nil, fmt.Errorf("%s: buckets: no bucket to probe", path)
	}
	if cfg.Resolver == "" {
		if cfg.Resolver, err = defaultResolver(); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// watchdogEvery is half of systemd's watchdog interval, or zero when the
// unit has no watchdog.
func watchdogEvery() time.Duration {
	d, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil || d <= 0 {
		return 0
	}
	return d / 2
}

// notify tells systemd a state; outside systemd it does nothing.
func notify(log *slog.Logger, state string) {
	if _, err := sddaemon.SdNotify(false, state); err != nil {
		log.Warn("notify systemd", "state", state, "err", err)
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
