// Command pathagent tells whether this EC2 instance can reach its S3 buckets
// and which way the traffic goes.
//
//	pathagent once [flags]    diagnose once, print a report, exit 0, 1 or 2
//	pathagent run [flags]     probe continuously and serve Prometheus metrics
//	pathagent version         print the version
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

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/report"
	"github.com/pathagent/pathagent/internal/resolve"
)

// version and revision are set at build time with
// -ldflags "-X main.version=... -X main.revision=...".
var (
	version  = "dev"
	revision = "unknown"
)

// resolvConf is where the default resolver is read from: on EC2 its first
// nameserver is the VPC resolver.
const resolvConf = "/etc/resolv.conf"

const usage = `usage: pathagent <command> [flags]

commands:
  once      diagnose once and print a report
  run       probe continuously and serve Prometheus metrics
  version   print the version

Run 'pathagent once -h' or 'pathagent run -h' for the flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "once":
		return once(args[1:], stdout, stderr)
	case "run":
		return runDaemon(args[1:], stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "pathagent %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "pathagent: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// bucketFlags collects repeated --bucket flags.
type bucketFlags []string

func (b *bucketFlags) String() string     { return strings.Join(*b, ",") }
func (b *bucketFlags) Set(v string) error { *b = append(*b, v); return nil }

func once(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pathagent once", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		buckets    bucketFlags
		configPath = fs.String("config", os.Getenv("PATHAGENT_CONFIG"), "YAML configuration `file` (default $PATHAGENT_CONFIG)")
		asJSON     = fs.Bool("json", false, "print the report as JSON")
		resolver   = fs.String("resolver", "", "DNS server `host:port` for S3 names (default: first nameserver of "+resolvConf+")")
		endpoint   = fs.String("s3-endpoint", "", "S3 endpoint `URL`; {region} stands for the bucket's region")
		pathStyle  = fs.Bool("path-style", false, "use path-style S3 addressing")
		allowV1    = fs.Bool("allow-imdsv1", false, "read instance metadata without a token when none can be had")
		logLevel   = fs.String("log-level", "warn", "log `level`: debug, info, warn or error")
	)
	fs.Var(&buckets, "bucket", "bucket `name` to probe; repeat for more (replaces the config's list)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pathagent once: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "pathagent once: --log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	cfg, err := loadConfig(*configPath, fs, buckets, *resolver, *endpoint, *pathStyle, *allowV1)
	if err != nil {
		fmt.Fprintf(stderr, "pathagent once: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	rep, err := diagnose(ctx, cfg, log)
	if err != nil {
		rep = &report.Report{
			Schema:   report.Schema,
			Status:   report.Error,
			Error:    err.Error(),
			Buckets:  []report.Bucket{},
			Findings: []report.Finding{},
		}
	}

	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pathagent once: write report: %v\n", err)
		return 2
	}
	return rep.Status.ExitCode()
}

// loadConfig reads the file, if any, and lets the flags that were given
// override it.
func loadConfig(path string, fs *flag.FlagSet, buckets []string, resolver, endpoint string, pathStyle, allowV1 bool) (*config.Config, error) {
	cfg := &config.Config{}
	if path != "" {
		c, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		cfg = c
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	if len(buckets) > 0 {
		// Flags go through the same checks as the file.
		var doc strings.Builder
		doc.WriteString("buckets:\n")
		for _, b := range buckets {
			fmt.Fprintf(&doc, "  - %q\n", b)
		}
		c, err := config.Parse("--bucket", []byte(doc.String()))
		if err != nil {
			return nil, err
		}
		cfg.Buckets = c.Buckets
	}
	if set["resolver"] {
		if err := config.CheckHostPort(resolver); err != nil {
			return nil, fmt.Errorf("--resolver: %w", err)
		}
		cfg.Resolver = resolver
	}
	if set["s3-endpoint"] {
		cfg.S3Endpoint = endpoint
	}
	if set["path-style"] {
		cfg.PathStyle = pathStyle
	}
	if set["allow-imdsv1"] {
		cfg.AllowIMDSv1 = allowV1
	}

	if len(cfg.Buckets) == 0 {
		return nil, errors.New("no bucket to probe: give --bucket NAME or a config file with buckets")
	}
	return cfg, nil
}

// diagnose builds the agent from the configuration and the environment and
// runs it once. An error means the agent could not be set up.
func diagnose(ctx context.Context, cfg *config.Config, log *slog.Logger) (*report.Report, error) {
	// The SDK's default chain: credentials from the environment, shared
	// files or the instance role; endpoint overrides and AWS_CA_BUNDLE
	// from the environment. The buildable client lets the CA bundle
	// apply.
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithHTTPClient(awshttp.NewBuildableClient()))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}

	a, err := newAgent(cfg, awsCfg, log)
	if err != nil {
		return nil, err
	}
	return a.Check(ctx), nil
}

// newAgent wires an agent for a configuration.
func newAgent(cfg *config.Config, awsCfg aws.Config, log *slog.Logger) (*agent.Agent, error) {
	server := cfg.Resolver
	if server == "" {
		s, err := defaultResolver()
		if err != nil {
			return nil, err
		}
		server = s
	}
	return &agent.Agent{
		Config:   cfg,
		IMDS:     imds.NewClient(imds.ClientOptions{AllowV1: cfg.AllowIMDSv1}),
		AWS:      awsCfg,
		Resolver: server,
		Log:      log,
	}, nil
}

// defaultResolver is the first nameserver of /etc/resolv.conf: on EC2, the
// VPC resolver.
func defaultResolver() (string, error) {
	s, err := resolve.FromResolvConf(resolvConf)
	if err != nil {
		return "", fmt.Errorf("find the DNS resolver: %w (set --resolver or resolver:)", err)
	}
	return s, nil
}
