package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"
	dto "github.com/prometheus/client_model/go"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/daemon"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
	"github.com/pathagent/pathagent/internal/metrics"
)

const (
	// fleetAgents is the fleet the arithmetic is for.
	fleetAgents = 10_000

	// describeRefill is the account's token refill for EC2 describe
	// calls, shared by every agent and tool in the account and region.
	describeRefill = 20.0 // per second

	// inProcessInterval is the cycle period of the in-process daemon
	// that sees a path change: short, since only the count of calls
	// around the change matters, not the pace.
	inProcessInterval = 500 * time.Millisecond

	// changeWait bounds the wait for the in-process daemon to notice.
	changeWait = 30 * time.Second
)

// earlyResult is what one path change cost in EC2 calls.
type earlyResult struct {
	callsBefore float64 // after the first read, before the change
	callsAfter  float64 // once the new path shows
	readsBefore float64
	readsAfter  float64
	newKind     string
}

// benchEarlyRefresh runs the daemon in this process against the lab, lets
// it read the topology, then moves S3's name to the front outside the prefix
// list (the NAT gateway's path) and counts the EC2 calls until the daemon
// reports the new path. The early-refresh gap is shortened to nothing so the
// change is judged at once; in production it is DefaultEarlyRefreshGap.
func benchEarlyRefresh(ctx context.Context, l *lab.Lab, bucket string, natRecords []scenario.Record) (*earlyResult, error) {
	cfg, err := config.Load(l.ConfigPath())
	if err != nil {
		return nil, err
	}
	cfg.Buckets = []config.Bucket{{Name: bucket}}
	cfg.Interval = inProcessInterval

	m := metrics.New(metrics.BuildInfo{Version: "bench"})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	awsCfg := aws.Config{
		Region:       l.Scenario.Region,
		BaseEndpoint: aws.String(l.EC2URL()),
		Credentials: credentials.NewStaticCredentialsProvider(
			lab.AgentAccessKeyID, lab.AgentSecretAccessKey, ""),
	}
	d := &daemon.Daemon{
		Load: func() (*config.Config, error) { return cfg, nil },
		NewAgent: func(c *config.Config) *agent.Agent {
			return &agent.Agent{
				Config:        c,
				IMDS:          imds.NewClient(imds.ClientOptions{Endpoint: l.IMDS.URL()}),
				AWS:           awsCfg,
				EC2APIOptions: []func(*middleware.Stack) error{daemon.CountEC2Calls(m)},
				Resolver:      c.Resolver,
				Log:           log,
			}
		},
		Metrics:         m,
		Log:             log,
		EarlyRefreshGap: time.Nanosecond,
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()

	r := &earlyResult{}
	// Two cycles on the old path: the first read, then one with nothing
	// changed, which must cost no call.
	if err := waitFor(ctx, m, func(g gathered) bool { return g.sum("pathagent_cycles_total") >= 2 }); err != nil {
		return nil, err
	}
	g, err := gather(m)
	if err != nil {
		return nil, err
	}
	r.callsBefore = g.sum("pathagent_ec2_api_calls_total")
	r.readsBefore = g.sum("pathagent_topology_refreshes_total")

	old := l.Scenario.DNS
	if err := l.DNS.SetRecords(natRecords); err != nil {
		return nil, fmt.Errorf("move s3 to the nat front: %w", err)
	}
	defer l.DNS.SetRecords(old)

	err = waitFor(ctx, m, func(g gathered) bool {
		return g.sum("pathagent_path_info", "kind=nat_gateway") > 0
	})
	if err != nil {
		return nil, fmt.Errorf("path change not seen: %w", err)
	}
	g, err = gather(m)
	if err != nil {
		return nil, err
	}
	r.callsAfter = g.sum("pathagent_ec2_api_calls_total")
	r.readsAfter = g.sum("pathagent_topology_refreshes_total")
	r.newKind = "nat_gateway"
	return r, nil
}

// gathered is a registry's families by name.
type gathered map[string]*dto.MetricFamily

func gather(m *metrics.Metrics) (gathered, error) {
	mfs, err := m.Registry.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather metrics: %w", err)
	}
	g := gathered{}
	for _, mf := range mfs {
		g[mf.GetName()] = mf
	}
	return g, nil
}

// sum adds up the series of a family that carry every given name=value
// label.
func (g gathered) sum(name string, labels ...string) float64 {
	total := 0.0
	mf := g[name]
	if mf == nil {
		return 0
	}
	for _, mt := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range mt.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		all := true
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			all = all && have[k] == v
		}
		if !all {
			continue
		}
		switch {
		case mt.Counter != nil:
			total += mt.GetCounter().GetValue()
		case mt.Gauge != nil:
			total += mt.GetGauge().GetValue()
		}
	}
	return total
}

func waitFor(ctx context.Context, m *metrics.Metrics, ok func(gathered) bool) error {
	deadline := time.Now().Add(changeWait)
	for time.Now().Before(deadline) {
		g, err := gather(m)
		if err != nil {
			return err
		}
		if ok(g) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return errors.New("timed out")
}
