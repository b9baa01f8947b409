// Package daemon runs the agent continuously: a probe cycle every interval,
// the instance identity and the network topology cached between cycles,
// configuration reloads, and metrics for every step.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"

	"github.com/pathagent/pathagent/internal/agent"
	"github.com/pathagent/pathagent/internal/config"
	"github.com/pathagent/pathagent/internal/imds"
	"github.com/pathagent/pathagent/internal/metrics"
	"github.com/pathagent/pathagent/internal/probes"
	"github.com/pathagent/pathagent/internal/report"
	"github.com/pathagent/pathagent/internal/topology"
)

const (
	// jitterFraction spreads cycles and topology refreshes by up to this
	// share of their period, so that agents started together (a fleet
	// rollout, an autoscaling burst) do not stay in step.
	jitterFraction = 0.1

	// DefaultEarlyRefreshGap is the least time between two topology
	// reads triggered by a change in what the probes see. A change that
	// hits a whole fleet at once (an S3 outage) then costs each agent
	// one read, not one per cycle.
	DefaultEarlyRefreshGap = 10 * time.Minute

	// retryAfterError is when a topology read that failed in part is
	// tried again; throttling doubles it, up to maxBackoff.
	retryAfterError = time.Minute
	maxBackoff      = time.Hour

	// identityRetry is how soon a failed identity read is tried again.
	identityRetry = 30 * time.Second

	// identityTimeout and topologyTimeout bound the reads a cycle makes
	// before probing: the cycle's own context never ends (see cycle),
	// and a server that accepts a request and never answers must not
	// stop every later cycle. A healthy topology read is four calls of
	// milliseconds each; one cut short by this bound counts as failed
	// and is retried after retryAfterError.
	identityTimeout = 15 * time.Second
	topologyTimeout = 15 * time.Second

	// shutdownGrace bounds the wait for a cycle in flight at shutdown:
	// four probes at the longest timeout allowed, and the clean-up.
	shutdownGrace = 45 * time.Second
)

// Daemon runs probe cycles until its context ends.
type Daemon struct {
	// Load reads the configuration file; it is called at start and on
	// every reload.
	Load func() (*config.Config, error)

	// NewAgent builds the agent for a configuration.
	NewAgent func(*config.Config) *agent.Agent

	Metrics *metrics.Metrics
	Log     *slog.Logger

	// Ready is called once the first configuration is loaded and the
	// loop runs; systemd readiness hangs off it.
	Ready func()

	// Heartbeat is called at least every HeartbeatEvery while the loop
	// is alive; the systemd watchdog hangs off it. Nil disables it.
	Heartbeat      func()
	HeartbeatEvery time.Duration

	// EarlyRefreshGap overrides DefaultEarlyRefreshGap when positive.
	EarlyRefreshGap time.Duration

	// gap is the current least time between early reads: it doubles
	// after each early read that found nothing changed, up to the
	// topology refresh, so a bucket whose outcome flaps for reasons
	// that are not the network's (an S3 hiccup, a policy being edited)
	// costs the account's rate limit less and less.
	gap time.Duration

	reloads chan chan error

	// The fields below belong to the loop goroutine and the one cycle
	// it runs at a time, which never overlap in writing them.
	id        *imds.Identity
	idErr     error
	idRetry   time.Time
	network   *agent.Network
	netExpiry time.Time
	netRead   time.Time
	backoff   time.Duration
	lastSeen  map[string]observation
	mu        sync.Mutex
	last      *report.Report
}

// observation is what a change in a bucket's probes is judged by.
type observation struct {
	ok     bool
	remote string
}

// Reload asks the running daemon to reload its configuration and waits for
// the answer: nil, or why the new file was rejected.
func (d *Daemon) Reload(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case d.reloadChan() <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Daemon) reloadChan() chan chan error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.reloads == nil {
		d.reloads = make(chan chan error)
	}
	return d.reloads
}

// Last returns the report of the last finished cycle, or nil.
func (d *Daemon) Last() *report.Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// Run loads the configuration and runs cycles until ctx ends; then it waits
// for the cycle in flight, whose probes finish or time out and delete what
// they wrote. It returns an error only when the first configuration cannot
// be loaded.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, err := d.Load()
	d.Metrics.ConfigLoaded(err == nil)
	if err != nil {
		return err
	}
	a := d.NewAgent(cfg)
	reloads := d.reloadChan()

	// The first cycle starts soon but not at once, so a fleet restarted
	// together spreads out from the beginning.
	timer := time.NewTimer(jitter(time.Duration(float64(interval(cfg)) * jitterFraction)))
	defer timer.Stop()

	var heartbeat <-chan time.Time
	if d.Heartbeat != nil && d.HeartbeatEvery > 0 {
		t := time.NewTicker(d.HeartbeatEvery)
		defer t.Stop()
		heartbeat = t.C
		d.Heartbeat()
	}

	if d.Ready != nil {
		d.Ready()
	}

	var done chan struct{}
	for {
		select {
		case <-ctx.Done():
			d.Log.Info("stopping", "cycle_in_flight", done != nil)
			if done != nil {
				select {
				case <-done:
				case <-time.After(shutdownGrace):
					d.Log.Warn("cycle still running at shutdown; leaving it")
				}
			}
			return nil

		case <-heartbeat:
			d.Heartbeat()

		case reply := <-reloads:
			next, err := d.Load()
			d.Metrics.ConfigLoaded(err == nil)
			if err != nil {
				d.Log.Error("configuration rejected; keeping the running one", "err", err)
				reply <- err
				continue
			}
			a = d.NewAgent(next)
			cfg = next
			d.Log.Info("configuration reloaded", "buckets", len(cfg.Buckets))
			reply <- nil

		case <-timer.C:
			timer.Reset(jitterAround(interval(cfg)))
			if done != nil {
				d.Metrics.CycleSkipped()
				d.Log.Warn("previous cycle still running; skipping this one")
				continue
			}
			done = make(chan struct{})
			go func(a *agent.Agent, done chan struct{}) {
				defer close(done)
				d.cycle(a)
			}(a, done)

		case <-doneOrNil(done):
			done = nil
		}
	}
}

func doneOrNil(done chan struct{}) <-chan struct{} {
	if done == nil {
		return nil
	}
	return done
}

// cycle runs one probe cycle. Its context is not the daemon's: a probe cut
// off in the middle would leave its object behind, so shutdown waits for
// the cycle instead, and the probes' own timeouts bound it.
func (d *Daemon) cycle(a *agent.Agent) {
	ctx := context.Background()
	start := time.Now()

	id, err := d.identity(ctx, a)
	if err != nil {
		d.publish(agent.IdentityFailure(err), time.Since(start), false)
		return
	}
	d.refreshTopology(ctx, a, *id, false)

	obs := a.Probe(ctx, *id, a.Config.Buckets)
	rep := a.Assemble(*id, d.network, obs)

	// What the probes saw changed: the route table may have too. Read
	// it again now, within a rate limit, and judge the paths by it.
	if d.gap <= 0 {
		d.gap = d.EarlyRefreshGap
		if d.gap <= 0 {
			d.gap = DefaultEarlyRefreshGap
		}
	}
	// A throttled account gets no early read before its backoff ends.
	throttled := d.backoff > 0 && time.Now().Before(d.netExpiry)
	if d.changed(obs.Results) && time.Since(d.netRead) >= d.gap && !throttled {
		d.Log.Info("probe outcome or address changed; reading the topology again")
		before := d.network
		d.refreshTopology(ctx, a, *id, true)
		rep = a.Assemble(*id, d.network, obs)

		if sameNetwork(before, d.network) {
			d.gap = min(2*d.gap, topologyRefresh(a.Config))
		} else {
			d.gap = 0
		}
	}
	d.publish(rep, time.Since(start), true)
}

// identity returns the cached identity, reading it when there is none.
func (d *Daemon) identity(ctx context.Context, a *agent.Agent) (*imds.Identity, error) {
	if d.id != nil {
		return d.id, nil
	}
	// Between retries the last failure stands, with its cause: a
	// report of "retrying" would hide the fix.
	if time.Now().Before(d.idRetry) {
		return nil, d.idErr
	}
	ctx, cancel := context.WithTimeout(ctx, identityTimeout)
	defer cancel()
	id, err := imds.Load(ctx, a.IMDS)
	if err != nil {
		d.Metrics.IMDSError(imdsReason(err))
		d.idErr = err
		d.idRetry = time.Now().Add(identityRetry)
		d.Log.Error("read instance identity", "err", err)
		return nil, err
	}
	d.id = &id
	d.Log.Info("instance identity",
		"instance_id", id.InstanceID,
		"region", id.Region,
		"vpc_id", id.VPCID,
		"subnet_id", id.SubnetID)
	return d.id, nil
}

// refreshTopology reads the network when the cached copy has expired, or
// when force is set.
func (d *Daemon) refreshTopology(ctx context.Context, a *agent.Agent, id imds.Identity, force bool) {
	now := time.Now()
	if d.network != nil && !force && now.Before(d.netExpiry) {
		return
	}

	ctx, cancel := context.WithTimeout(ctx, topologyTimeout)
	defer cancel()
	n := a.ReadNetwork(ctx, id)
	d.netRead = now

	var failed []metrics.CallError
	throttled := false
	for _, p := range n.Topology.Problems {
		reason := callReason(p)
		throttled = throttled || reason == "throttled"
		failed = append(failed, metrics.CallError{Call: p.Call, Reason: reason})
	}
	d.Metrics.TopologyRefreshed(now, failed)

	switch {
	case len(failed) == 0:
		d.backoff = 0
		d.netExpiry = now.Add(jitterAround(topologyRefresh(a.Config)))
	case throttled:
		// The account's rate limit is exhausted: back off hard, the
		// whole fleet is likely seeing the same.
		d.backoff = min(max(2*d.backoff, retryAfterError), maxBackoff)
		d.netExpiry = now.Add(jitterAround(d.backoff))
	default:
		d.netExpiry = now.Add(jitterAround(retryAfterError))
	}

	// A partial read replaces the cache only when it learned the route
	// table: without it no path can be judged, and the old one is the
	// better guess.
	if d.network == nil || n.Topology.RouteTable != nil {
		d.network = n
	}
	if len(failed) > 0 {
		d.Log.Warn("topology read incomplete",
			"failed_calls", len(failed),
			"retry_in", d.netExpiry.Sub(now).Round(time.Second))
	}
}

// sameNetwork reports whether two reads of the topology found the same
// route table and endpoints.
func sameNetwork(a, b *agent.Network) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(a.Topology.RouteTable, b.Topology.RouteTable) &&
		reflect.DeepEqual(a.Topology.Endpoints, b.Topology.Endpoints)
}

// changed reports whether any bucket's outcome or remote address differs
// from the last cycle, and remembers this cycle's.
func (d *Daemon) changed(results []probes.BucketResult) bool {
	now := map[string]observation{}
	for _, br := range results {
		o := observation{ok: true}
		for _, p := range br.Probes {
			if !p.Success && !p.Skipped {
				o.ok = false
			}
			if o.remote == "" && p.Remote.IsValid() {
				o.remote = p.Remote.Addr().String()
			}
		}
		now[br.Bucket] = o
	}

	changed := false
	if d.lastSeen != nil {
		for b, o := range now {
			if old, ok := d.lastSeen[b]; ok && old != o {
				changed = true
			}
		}
	}
	d.lastSeen = now
	return changed
}

// publish records a finished cycle: metrics, the summary log line, and the
// report kept for Last.
func (d *Daemon) publish(rep *report.Report, took time.Duration, probed bool) {
	if probed {
		d.Metrics.ObserveCycle(rep, took)
	}
	d.mu.Lock()
	d.last = rep
	d.mu.Unlock()

	var paths, failing []string
	for _, b := range rep.Buckets {
		paths = append(paths, b.Name+"="+b.Path.Kind)
		for _, p := range b.Probes {
			if !p.Success && !p.Skipped {
				failing = append(failing, fmt.Sprintf("%s/%s:%s", b.Name, p.Op, p.Reason))
			}
		}
	}
	d.Log.Info("cycle",
		"status", string(rep.Status),
		"buckets", len(rep.Buckets),
		"paths", strings.Join(paths, ","),
		"failing", strings.Join(failing, ","),
		"findings", len(rep.Findings),
		"duration", took.Round(time.Millisecond))
}

func interval(c *config.Config) time.Duration {
	if c.Interval > 0 {
		return c.Interval
	}
	return config.DefaultInterval
}

func topologyRefresh(c *config.Config) time.Duration {
	if c.TopologyRefresh > 0 {
		return c.TopologyRefresh
	}
	return config.DefaultTopologyRefresh
}

// jitterAround returns d moved by up to jitterFraction either way.
func jitterAround(d time.Duration) time.Duration {
	spread := float64(d) * jitterFraction
	return d + time.Duration((rand.Float64()*2-1)*spread)
}

// jitter returns a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

func imdsReason(err error) string {
	switch {
	case errors.Is(err, imds.ErrNoToken):
		return "no_token"
	case errors.Is(err, imds.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, imds.ErrDisabled):
		return "disabled"
	}
	return "other"
}

// callReason sorts a failed EC2 call into unauthorized, throttled or other.
func callReason(p topology.Problem) string {
	switch {
	case p.Code == "UnauthorizedOperation" || p.Code == "AuthFailure" ||
		strings.HasPrefix(p.Code, "AccessDenied"):
		return "unauthorized"
	case p.Code == "RequestLimitExceeded" || strings.HasPrefix(p.Code, "Throttling"):
		return "throttled"
	}
	return "other"
}

// CountEC2Calls returns an SDK stack option that counts every attempt of
// every EC2 call, retries included: each attempt spends a token of the
// account's rate limit.
func CountEC2Calls(m *metrics.Metrics) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		count := middleware.FinalizeMiddlewareFunc("pathagentCountCalls",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (
				middleware.FinalizeOutput, middleware.Metadata, error,
			) {
				m.EC2Call(awsmiddleware.GetOperationName(ctx))
				return next.HandleFinalize(ctx, in)
			})
		return stack.Finalize.Add(count, middleware.After)
	}
}
