// Package lab runs a stand-in VPC on loopback from a scenario file: the
// instance metadata service (amazon-ec2-metadata-mock), the EC2 API (a
// Query-protocol server answering from the scenario), the VPC resolver (a
// miekg/dns server) and S3 (versitygw behind path-aware fronts). The agent
// runs against it unchanged, pointed there by standard SDK variables and a
// configuration file the lab writes.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/ec2api"
	"github.com/pathagent/pathagent/internal/lab/imdsmock"
	"github.com/pathagent/pathagent/internal/lab/proxy"
	"github.com/pathagent/pathagent/internal/lab/s3lab"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

// The agent's credentials in every lab. They are not secret: they open only
// the lab's own servers, on loopback, for as long as the lab runs.
const (
	AgentAccessKeyID     = "AKIALABAGENT00000001"
	AgentSecretAccessKey = "lab-agent-secret-key-not-a-real-one-0001"
)

// LabInterval is the probe interval `pathagent run` uses in a lab.
const LabInterval = 10 * time.Second

// ConfigFile is the name of the agent configuration the lab writes.
const ConfigFile = "pathagent.yaml"

// Lab is a running stand-in VPC.
type Lab struct {
	Scenario *scenario.Scenario
	Dir      string

	IMDS *imdsmock.Mock
	EC2  *ec2api.Server
	DNS  *dnsserver.Server
	S3   *s3lab.Lab

	// Proxy is the forward proxy, for scenarios that have one.
	Proxy *proxy.Proxy

	ec2URL string
	ec2Srv *http.Server
}

// Start brings up every part of the lab described by s, with its files
// under dir. On error, whatever started is stopped again.
func Start(ctx context.Context, dir string, s *scenario.Scenario) (*Lab, error) {
	l := &Lab{Scenario: s, Dir: dir}
	if err := l.start(ctx); err != nil {
		return nil, errors.Join(err, l.Stop())
	}
	return l, nil
}

func (l *Lab) start(ctx context.Context) error {
	var err error
	s := l.Scenario

	l.IMDS, err = imdsmock.Start(ctx, l.Dir, s)
	if err != nil {
		return fmt.Errorf("start imds: %w", err)
	}

	l.EC2 = ec2api.New(s, aws.Credentials{
		AccessKeyID:     AgentAccessKeyID,
		SecretAccessKey: AgentSecretAccessKey,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("start ec2 api: %w", err)
	}
	l.ec2URL = "http://" + ln.Addr().String()
	l.ec2Srv = &http.Server{Handler: l.EC2, ReadHeaderTimeout: 5 * time.Second}
	go l.ec2Srv.Serve(ln)

	l.DNS, err = dnsserver.Start("127.0.0.1:0", s.DNS)
	if err != nil {
		return fmt.Errorf("start dns: %w", err)
	}

	l.S3, err = s3lab.Start(ctx, l.Dir, s, s3lab.Credentials{
		AccessKeyID:     AgentAccessKeyID,
		SecretAccessKey: AgentSecretAccessKey,
	})
	if err != nil {
		return fmt.Errorf("start s3: %w", err)
	}

	if p := s.Proxy; p != nil {
		l.Proxy, err = proxy.Start(net.JoinHostPort(p.Address, "0"), l.DNS.Addr())
		if err != nil {
			return err
		}
	}

	return os.WriteFile(l.ConfigPath(), []byte(l.agentConfig()), 0o644)
}

// EC2URL is the EC2 API stand-in's endpoint.
func (l *Lab) EC2URL() string { return l.ec2URL }

// ConfigPath is the agent configuration the lab wrote.
func (l *Lab) ConfigPath() string { return filepath.Join(l.Dir, ConfigFile) }

// S3Endpoint is the endpoint template that reaches the lab's S3 fronts: the
// real AWS names, which the lab resolver maps to the fronts, on the lab's
// port.
func (l *Lab) S3Endpoint() string {
	return fmt.Sprintf("http://s3.{region}.amazonaws.com:%d", l.S3.Port())
}

// agentConfig is the configuration the agent runs with in the lab: the
// scenario's buckets, the lab resolver, the lab's S3 port.
func (l *Lab) agentConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by the pathagent lab for scenario %s.\n", l.Scenario.Name)
	b.WriteString("buckets:\n")
	for _, bk := range l.Scenario.Buckets {
		fmt.Fprintf(&b, "  - %s\n", bk.Name)
	}
	fmt.Fprintf(&b, "resolver: %q\n", l.DNS.Addr())
	fmt.Fprintf(&b, "s3_endpoint: %q\n", l.S3Endpoint())
	// versitygw serves path-style requests only.
	b.WriteString("path_style: true\n")
	// A lab is watched by a person or a test: cycle quickly.
	fmt.Fprintf(&b, "interval: %s\n", LabInterval)
	return b.String()
}

// Env returns the variables the agent runs with in the lab, to be added to a
// base environment cleaned by CleanEnv.
func (l *Lab) Env() []string {
	secret := AgentSecretAccessKey
	if l.Scenario.AgentSecret != "" {
		secret = l.Scenario.AgentSecret
	}
	env := []string{
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + l.IMDS.URL(),
		"AWS_ENDPOINT_URL_EC2=" + l.ec2URL,
		"AWS_ACCESS_KEY_ID=" + AgentAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		// No shared files: the lab's credentials and nothing else.
		"AWS_CONFIG_FILE=" + filepath.Join(l.Dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(l.Dir, "no-aws-credentials"),
		"PATHAGENT_CONFIG=" + l.ConfigPath(),
	}
	if l.Proxy != nil {
		env = append(env, "HTTP_PROXY="+l.Proxy.URL(), "HTTPS_PROXY="+l.Proxy.URL())
		if np := l.Scenario.Proxy.NoProxy; np != "" {
			env = append(env, "NO_PROXY="+np)
		}
	}
	return env
}

// CleanEnv drops from env every variable that would point the agent
// somewhere other than the lab: AWS profiles, credentials, regions and
// endpoints, metadata settings and proxies. AWS_CA_BUNDLE and the TLS
// variables stay, as they may on an instance.
func CleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if dropped(name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func dropped(name string) bool {
	switch strings.ToUpper(name) {
	case "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "PATHAGENT_CONFIG":
		return true
	}
	return strings.HasPrefix(name, "AWS_ENDPOINT_URL") ||
		strings.HasPrefix(name, "AWS_EC2_METADATA_")
}

// Stop ends every part of the lab that was started.
func (l *Lab) Stop() error {
	var errs []error
	if l.Proxy != nil {
		errs = append(errs, l.Proxy.Close())
	}
	if l.S3 != nil {
		errs = append(errs, l.S3.Stop())
	}
	if l.DNS != nil {
		errs = append(errs, l.DNS.Close())
	}
	if l.ec2Srv != nil {
		errs = append(errs, l.ec2Srv.Close())
	}
	if l.IMDS != nil {
		errs = append(errs, l.IMDS.Stop())
	}
	return errors.Join(errs...)
}
