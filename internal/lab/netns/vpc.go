package netns

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/pathagent/pathagent/internal/lab"
	"github.com/pathagent/pathagent/internal/lab/dnsserver"
	"github.com/pathagent/pathagent/internal/lab/ec2api"
	"github.com/pathagent/pathagent/internal/lab/imdsmock"
	"github.com/pathagent/pathagent/internal/lab/scenario"
)

const (
	// readyTimeout bounds the wait for a fresh server to answer. They
	// start in well under a second; this leaves room for a loaded host.
	readyTimeout = 15 * time.Second

	// readyPoll spaces the readiness probes.
	readyPoll = 50 * time.Millisecond

	// labHTTPTimeout bounds one request from the lab to its own servers,
	// which are a veth away.
	labHTTPTimeout = 5 * time.Second

	// httpsPort is where S3 and the EC2 API listen, as on AWS.
	httpsPort = 443
)

// Options says where a lab keeps its files and how its names differ from
// another run's.
type Options struct {
	// Dir holds certificates, logs and S3's data. The caller removes it.
	Dir string

	// Tag makes namespace and link names unique. The process id is
	// best: RemoveStale then knows when a run's leftovers are stale.
	Tag string

	// Buckets are created, owned by the agent's user.
	Buckets []string
}

// VPC is a running network-namespace VPC. Stop it when done.
type VPC struct {
	Instance, Router, Service *NS

	// CA signed the servers' certificates.
	CA *CA

	IMDS *Proc
	S3   *S3
	EC2  *ec2api.Server
	DNS  *dnsserver.Server

	opts   Options
	links  []string
	path   Path
	ec2Srv *http.Server
	ec2Log *os.File
}

// Start builds the namespaces, their links and routes, and starts every
// server in the namespace it belongs to, with the subnet's route table set
// for ViaGatewayEndpoint. On error whatever was made is removed again.
func Start(ctx context.Context, opts Options) (*VPC, error) {
	v := &VPC{opts: opts, path: ViaGatewayEndpoint}
	if err := v.start(ctx); err != nil {
		return nil, errors.Join(err, v.Stop(context.WithoutCancel(ctx)))
	}
	return v, nil
}

func (v *VPC) start(ctx context.Context) error {
	if err := v.build(ctx); err != nil {
		return err
	}

	var err error
	v.CA, err = NewCA(v.opts.Dir)
	if err != nil {
		return err
	}
	sc := Scenario(v.path, v.opts.Buckets)

	if err := v.startDNS(sc); err != nil {
		return err
	}
	if err := v.startIMDS(ctx); err != nil {
		return err
	}
	if err := v.startEC2(); err != nil {
		return err
	}
	v.S3, err = startS3(ctx, v.Service, v.CA, v.opts.Dir, lab.AgentAccessKeyID, lab.AgentSecretAccessKey)
	if err != nil {
		return err
	}
	for _, b := range v.opts.Buckets {
		if err := v.S3.CreateBucket(ctx, b, lab.AgentAccessKeyID); err != nil {
			return err
		}
	}
	return v.SetPath(ctx, v.path)
}

// namePrefixes start the names of the instance, router and service
// namespaces; the tag follows.
var namePrefixes = []string{"pa-inst-", "pa-vpc-", "pa-aws-"}

// build makes the three namespaces, the two veth pairs, the addresses and
// the routes that do not depend on the path.
func (v *VPC) build(ctx context.Context) error {
	tag := v.opts.Tag
	var err error
	if v.Instance, err = Add(ctx, namePrefixes[0]+tag); err != nil {
		return err
	}
	if v.Router, err = Add(ctx, namePrefixes[1]+tag); err != nil {
		return err
	}
	if v.Service, err = Add(ctx, namePrefixes[2]+tag); err != nil {
		return err
	}

	// Link names carry the tag too, so a leftover would be recognisable
	// wherever it ended up.
	instEth, routerSub := "pa"+tag+"-i", "pa"+tag+"-ri"
	routerPub, svcEth := "pa"+tag+"-rs", "pa"+tag+"-s"
	v.links = []string{instEth, routerSub, routerPub, svcEth}
	if err := Veth(ctx, v.Instance, instEth, v.Router, routerSub); err != nil {
		return err
	}
	if err := Veth(ctx, v.Router, routerPub, v.Service, svcEth); err != nil {
		return err
	}

	steps := []struct {
		ns   *NS
		args []string
	}{
		{v.Instance, []string{"addr", "add", mustPrefix(InstanceIP, subnetBits), "dev", instEth}},
		// As on EC2: everything goes to the subnet's gateway, and the
		// metadata address is on the link.
		{v.Instance, []string{"route", "add", "default", "via", SubnetGW}},
		{v.Instance, []string{"route", "add", IMDSIP + "/32", "dev", instEth}},

		{v.Router, []string{"addr", "add", mustPrefix(SubnetGW, subnetBits), "dev", routerSub}},
		{v.Router, []string{"addr", "add", IMDSIP + "/32", "dev", routerSub}},
		{v.Router, []string{"addr", "add", ResolverIP + "/32", "dev", "lo"}},
		{v.Router, []string{"addr", "add", EC2IP + "/32", "dev", "lo"}},
		{v.Router, []string{"addr", "add", mustPrefix(PublicIP, publicBits), "dev", routerPub}},

		{v.Service, []string{"addr", "add", mustPrefix(ServiceIP, publicBits), "dev", svcEth}},
		{v.Service, []string{"addr", "add", S3IP + "/32", "dev", svcEth}},
		// Through the gateway endpoint S3 answers the private address.
		{v.Service, []string{"route", "add", VPCCIDR, "via", PublicIP}},
	}
	for _, s := range steps {
		if err := s.ns.IP(ctx, s.args...); err != nil {
			return err
		}
	}

	cmd := v.Router.CommandContext(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("enable forwarding in %s: %w: %s", v.Router.Name, err, out)
	}
	return v.Instance.SetResolvConf(ResolverIP)
}

// startDNS serves the VPC resolver from this process, on sockets opened in
// the router namespace.
func (v *VPC) startDNS(sc *scenario.Scenario) error {
	addr := net.JoinHostPort(ResolverIP, "53")
	pc, err := v.Router.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("start resolver: %w", err)
	}
	ln, err := v.Router.Listen("tcp", addr)
	if err != nil {
		pc.Close()
		return fmt.Errorf("start resolver: %w", err)
	}
	v.DNS, err = dnsserver.Serve(pc, ln, sc.DNS)
	return err
}

// startIMDS runs ec2-metadata-mock in the router namespace on the metadata
// address and port 80, where the SDK looks without being told, and waits
// until it answers the instance namespace as the lab's instance.
func (v *VPC) startIMDS(ctx context.Context) error {
	bin, err := imdsmock.FindBinary(imdsmock.BinaryName)
	if err != nil {
		return err
	}
	dir := filepath.Join(v.opts.Dir, "imds")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create imds dir: %w", err)
	}

	// The identity does not change with the path.
	cfg, err := imdsmock.ConfigJSON(Scenario(v.path, nil))
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		return fmt.Errorf("write imds config: %w", err)
	}

	cmd := v.Router.Command(bin, "-n", IMDSIP, "-p", "80", "-c", cfgPath, "-I")
	// The mock reads a config under HOME and AEMM_* variables: none of
	// this machine's may leak in.
	cmd.Env = []string{"HOME=" + dir}
	cmd.Dir = dir
	v.IMDS, err = StartProc(imdsmock.BinaryName, cmd, filepath.Join(dir, "ec2-metadata-mock.log"))
	if err != nil {
		return err
	}

	client := v.Instance.HTTPClient(nil, "")
	return waitReady(ctx, v.IMDS, func(ctx context.Context) error {
		tok, err := call(ctx, client, http.MethodPut, "http://"+IMDSIP+"/latest/api/token",
			"X-aws-ec2-metadata-token-ttl-seconds", "60")
		if err != nil {
			return err
		}
		id, err := call(ctx, client, http.MethodGet, "http://"+IMDSIP+"/latest/meta-data/instance-id",
			"X-aws-ec2-metadata-token", tok)
		if err != nil {
			return err
		}
		if id != InstanceID {
			return fmt.Errorf("instance id %q, want %q", id, InstanceID)
		}
		return nil
	})
}

// startEC2 serves the EC2 API stand-in from this process over TLS on the
// interface endpoint's address in the router namespace.
func (v *VPC) startEC2() error {
	_, _, pair, err := v.CA.Issue(v.opts.Dir, "ec2", []string{EC2Name},
		[]netip.Addr{netip.MustParseAddr(EC2IP)})
	if err != nil {
		return err
	}
	ln, err := v.Router.Listen("tcp", net.JoinHostPort(EC2IP, strconv.Itoa(httpsPort)))
	if err != nil {
		return fmt.Errorf("start ec2 api: %w", err)
	}

	v.EC2 = ec2api.New(Scenario(v.path, v.opts.Buckets), aws.Credentials{
		AccessKeyID:     lab.AgentAccessKeyID,
		SecretAccessKey: lab.AgentSecretAccessKey,
	})
	// A client that refuses the certificate makes the server log a
	// handshake error; that belongs in the lab's logs, not the test's.
	v.ec2Log, err = os.Create(filepath.Join(v.opts.Dir, "ec2api.log"))
	if err != nil {
		ln.Close()
		return fmt.Errorf("create ec2 api log: %w", err)
	}
	v.ec2Srv = &http.Server{
		Handler:           v.EC2,
		ReadHeaderTimeout: labHTTPTimeout,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}},
		ErrorLog:          log.New(v.ec2Log, "", log.LstdFlags),
	}
	go v.ec2Srv.ServeTLS(ln, "", "")
	return nil
}

// SetPath sets the subnet's route table for p, in the EC2 API's answers
// and in the router namespace's routes and NAT at once.
func (v *VPC) SetPath(ctx context.Context, p Path) error {
	route, masq, err := routerRoute(p)
	if err != nil {
		return err
	}

	// Take out whatever the previous path installed.
	for _, dst := range []string{"default", S3CIDR} {
		for _, typ := range []string{"unicast", "blackhole", "prohibit"} {
			// Most of these are absent; ip says so, and that is fine.
			_ = v.Router.IP(ctx, "route", "del", typ, dst)
		}
	}
	if err := v.Router.IP(ctx, append([]string{"route", "add"}, route...)...); err != nil {
		return err
	}
	if err := v.setNAT(ctx, masq); err != nil {
		return err
	}

	v.EC2.SetScenario(Scenario(p, v.opts.Buckets))
	v.path = p
	return nil
}

// natTable is the router's nftables table for the internet gateway.
const natTable = "pathagent_igw"

// setNAT adds or removes the internet gateway's masquerade: connections
// from the VPC leaving for the AWS side appear to come from PublicIP, the
// address of the router's end of that link.
func (v *VPC) setNAT(ctx context.Context, on bool) error {
	// Adding the table first makes the delete succeed whether or not it
	// was there; nft runs the file as one transaction.
	var b strings.Builder
	fmt.Fprintf(&b, "add table ip %s\ndelete table ip %s\n", natTable, natTable)
	if on {
		fmt.Fprintf(&b, "table ip %s {\n", natTable)
		b.WriteString("  chain postrouting {\n")
		b.WriteString("    type nat hook postrouting priority srcnat; policy accept;\n")
		fmt.Fprintf(&b, "    oifname %q ip saddr %s masquerade\n", v.links[2], VPCCIDR)
		b.WriteString("  }\n}\n")
	}
	cmd := v.Router.CommandContext(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("set nat in %s: %w: %s", v.Router.Name, err, out)
	}
	return nil
}

// Path is the path the route table is set for.
func (v *VPC) Path() Path { return v.path }

// Namespaces lists the lab's namespaces.
func (v *VPC) Namespaces() []*NS {
	var out []*NS
	for _, n := range []*NS{v.Instance, v.Router, v.Service} {
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

// Links names the lab's veth ends.
func (v *VPC) Links() []string { return v.links }

// Procs lists the lab's child processes.
func (v *VPC) Procs() []*Proc {
	var out []*Proc
	if v.IMDS != nil {
		out = append(out, v.IMDS)
	}
	if v.S3 != nil && v.S3.proc != nil {
		out = append(out, v.S3.proc)
	}
	return out
}

// Contained checks that no namespace of the lab has a way out of it.
func (v *VPC) Contained(ctx context.Context) error {
	return Contained(ctx, v.Namespaces()...)
}

// AgentEnv returns the variables the agent needs on top of a clean
// environment: its credentials, and no shared AWS files. Trust in the lab
// CA is the caller's to add, as that is what it may want to vary.
func (v *VPC) AgentEnv() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + lab.AgentAccessKeyID,
		"AWS_SECRET_ACCESS_KEY=" + lab.AgentSecretAccessKey,
		"AWS_CONFIG_FILE=" + filepath.Join(v.opts.Dir, "no-aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(v.opts.Dir, "no-aws-credentials"),
	}
}

// Stop ends every server, then removes the namespaces, their links and
// their files under EtcDir. Sockets this process opened in a namespace
// would keep it alive, unnamed, after `ip netns delete`, so they are all
// closed first.
func (v *VPC) Stop(ctx context.Context) error {
	var errs []error
	if v.S3 != nil {
		errs = append(errs, v.S3.stop())
	}
	if v.IMDS != nil {
		errs = append(errs, v.IMDS.Stop())
	}
	if v.ec2Srv != nil {
		errs = append(errs, v.ec2Srv.Close())
		errs = append(errs, v.ec2Log.Close())
	}
	if v.DNS != nil {
		errs = append(errs, v.DNS.Close())
	}
	for _, n := range v.Namespaces() {
		errs = append(errs, n.Delete(ctx))
	}
	return errors.Join(errs...)
}

// HTTPClient returns a client that connects from inside the namespace,
// trusting pool (the system's roots when nil). With to set, it connects
// there whatever the URL's host, which then only names the server for TLS
// and Host. It keeps no idle connection, which would hold the namespace
// open after it is deleted.
func (n *NS) HTTPClient(pool *x509.CertPool, to string) *http.Client {
	return &http.Client{
		Timeout: labHTTPTimeout,
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if to != "" {
					addr = to
				}
				return n.DialContext(ctx, network, addr)
			},
		},
	}
}

// waitReady calls check until it succeeds, p exits, or readyTimeout
// passes.
func waitReady(ctx context.Context, p *Proc, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(readyPoll)
	defer tick.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.Exited():
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("wait for %s (log %s): %w (last: %v)", p.Name, p.LogPath, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// call makes one request with one header and returns the body of a 200.
func call(ctx context.Context, client *http.Client, method, url, header, value string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", fmt.Errorf("build %s %s: %w", method, url, err)
	}
	if header != "" {
		req.Header.Set(header, value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s %s: %w", method, url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}
