// Package s3lab runs a scenario's S3 servers on loopback: one real versitygw
// per region, reached through TCP fronts that make each connection appear
// to come from the address its network path implies.
package s3lab

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// Credentials is an S3 access key pair.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
}

// Lab is a running set of S3 servers and their fronts. Stop it when done.
type Lab struct {
	root     Credentials
	agent    Credentials
	port     int
	gateways map[string]*gateway // by region
	fronts   *forwarder

	// bucketRegion says which gateway holds each scenario bucket.
	bucketRegion map[string]string
}

// Start runs one versitygw per S3 server of s, with its data, IAM and log
// files under dir, creates the agent's user and the scenario's buckets
// (owned by that user), writes their objects and policies, and opens every
// front on one common port. Each policy gets a statement allowing the agent
// everything on its bucket, standing in for the agent's IAM policy (see
// withOwnerGrant). On error everything already started is stopped.
func Start(
	ctx context.Context,
	dir string,
	s *scenario.Scenario,
	agent Credentials,
) (*Lab, error) {
	bin, err := findVersitygw()
	if err != nil {
		return nil, err
	}
	root, err := newRootCredentials()
	if err != nil {
		return nil, err
	}
	l := &Lab{
		root:         root,
		agent:        agent,
		gateways:     make(map[string]*gateway),
		bucketRegion: make(map[string]string),
	}

	if err := l.start(ctx, bin, dir, s, agent); err != nil {
		// Stop errors matter less than the one that made Start fail,
		// but they are kept so a leaked process is not silent.
		return nil, errors.Join(err, l.Stop())
	}
	return l, nil
}

func (l *Lab) start(
	ctx context.Context,
	bin, dir string,
	s *scenario.Scenario,
	agent Credentials,
) error {
	for _, srv := range s.S3 {
		if _, dup := l.gateways[srv.Region]; dup {
			return fmt.Errorf("start s3 lab: two s3 servers for region %s", srv.Region)
		}
		gdir := filepath.Join(dir, "s3-"+srv.Region)
		g, err := startGateway(ctx, bin, gdir, srv.Region, l.root)
		if err != nil {
			return err
		}
		l.gateways[srv.Region] = g

		if err := g.createUser(ctx, agent); err != nil {
			return err
		}
	}

	for _, b := range s.Buckets {
		g := l.gateways[b.Region]
		if g == nil {
			return fmt.Errorf("create bucket %s: no s3 server for region %q", b.Name, b.Region)
		}
		if err := g.seedBucket(ctx, b, agent.AccessKeyID); err != nil {
			return err
		}
		l.bucketRegion[b.Name] = b.Region
	}

	// Fronts open last, so that the agent never meets a server whose
	// buckets are still being prepared.
	var routes []route
	for _, srv := range s.S3 {
		for _, f := range srv.Fronts {
			routes = append(routes, route{
				address:   f.Address,
				source:    f.Source,
				target:    l.gateways[srv.Region].addr,
				elsewhere: l.bucketsOutside(srv.Region),
				presented: presentedPolicies(s),
			})
		}
	}
	fw, err := openFronts(routes)
	if err != nil {
		return err
	}
	l.fronts = fw
	l.port = fw.port
	return nil
}

// presentedPolicies maps each bucket whose enforced policy is a lab
// translation to the policy GetBucketPolicy should return.
func presentedPolicies(s *scenario.Scenario) map[string]string {
	out := map[string]string{}
	for _, b := range s.Buckets {
		if b.LabPolicy != "" {
			out[b.Name] = b.Policy
		}
	}
	return out
}

// bucketsOutside maps every bucket not in region to its own region.
func (l *Lab) bucketsOutside(region string) map[string]string {
	out := map[string]string{}
	for b, r := range l.bucketRegion {
		if r != region {
			out[b] = r
		}
	}
	return out
}

// Port returns the port every front listens on, or 0 when the scenario has
// no fronts.
func (l *Lab) Port() int { return l.port }

// Root returns the credentials of the servers' root account, which
// bypasses bucket policies.
func (l *Lab) Root() Credentials { return l.root }

// Regions returns the regions that have an S3 server, sorted.
func (l *Lab) Regions() []string {
	out := make([]string, 0, len(l.gateways))
	for r := range l.gateways {
		out = append(out, r)
	}
	sort.Strings(out)
	return out
}

// DirectURL returns the base URL of the region's versitygw itself, bypassing
// the fronts, or "" when the region has no server. Requests sent there come
// from 127.0.0.1.
func (l *Lab) DirectURL(region string) string {
	g := l.gateways[region]
	if g == nil {
		return ""
	}
	return g.url()
}

// LogPath returns the file that holds the region's versitygw output, or ""
// when the region has no server.
func (l *Lab) LogPath(region string) string {
	g := l.gateways[region]
	if g == nil {
		return ""
	}
	return g.logPath
}

// SetBucketPolicy replaces a scenario bucket's policy as root; an empty
// policy deletes it. A statement allowing the agent everything on the
// bucket is added to every policy (see withOwnerGrant), so only Deny
// statements change what the agent may do.
func (l *Lab) SetBucketPolicy(ctx context.Context, bucket, policy string) error {
	g, err := l.gatewayFor(bucket)
	if err != nil {
		return err
	}
	return g.setBucketPolicy(ctx, bucket, policy, l.agent.AccessKeyID)
}

// ListObjects returns the size of every object in a scenario bucket, keyed
// by object key, as the root account sees it.
func (l *Lab) ListObjects(ctx context.Context, bucket string) (map[string]int64, error) {
	g, err := l.gatewayFor(bucket)
	if err != nil {
		return nil, err
	}
	return g.listObjects(ctx, bucket)
}

func (l *Lab) gatewayFor(bucket string) (*gateway, error) {
	region, ok := l.bucketRegion[bucket]
	if !ok {
		return nil, fmt.Errorf("find bucket %s: not a scenario bucket", bucket)
	}
	return l.gateways[region], nil
}

// Stop closes the fronts and their connections, then stops every versitygw
// and waits for it to exit. It is safe to call more than once.
func (l *Lab) Stop() error {
	var errs []error
	if l.fronts != nil {
		errs = append(errs, l.fronts.close())
	}
	for _, g := range l.gateways {
		errs = append(errs, g.stop())
	}
	return errors.Join(errs...)
}
