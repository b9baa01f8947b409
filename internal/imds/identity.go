package imds

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	awsimds "github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// Identity is what IMDS says about the instance and its primary network
// interface. Optional items IMDS does not report are left empty.
type Identity struct {
	// InstanceID is the instance, for example i-0a1b2c3d4e5f60718.
	InstanceID string

	// Region and AvailabilityZone place the instance, for example
	// us-east-1 and us-east-1a.
	Region           string
	AvailabilityZone string

	// AccountID is the twelve-digit account that owns the instance.
	AccountID string

	// MAC is the primary interface's MAC address, the key for the
	// per-interface items below.
	MAC string

	// VPCID and SubnetID are the primary interface's VPC and subnet.
	VPCID    string
	SubnetID string

	// VPCCIDRs are the VPC's IPv4 blocks, primary block first.
	VPCCIDRs []netip.Prefix

	// SubnetCIDR is the subnet's IPv4 block.
	SubnetCIDR netip.Prefix

	// PrivateIPs are the interface's private IPv4 addresses, primary
	// first.
	PrivateIPs []netip.Addr

	// PublicIPs are the public IPv4 addresses mapped to the interface;
	// empty when it has none.
	PublicIPs []netip.Addr

	// IPv6s are the interface's IPv6 addresses; empty when it has none.
	IPv6s []netip.Addr

	// TokenUsed reports whether every request carried an IMDSv2 token.
	// It is false only when IMDSv1 was allowed and used.
	TokenUsed bool
}

// Requests is how many HTTP requests one Load makes when nothing fails:
// the identity document, mac and seven per-interface items, plus the
// token PUT, which the client skips while its cached token (valid five
// minutes) lasts.
const Requests = 1 + 1 + 7 + 1

// Load reads the instance's identity with c, which should come from
// NewClient. The instance id, zone, region and account come from the
// instance identity document rather than their own paths, to keep the
// number of requests down. Errors wrap ErrUnreachable, ErrNoToken,
// ErrDisabled or ErrMissing where one of those is the cause; with a client
// not made by NewClient, a token PUT that cannot connect counts as
// ErrNoToken, because the SDK drops the cause from its error.
func Load(ctx context.Context, c *awsimds.Client) (Identity, error) {
	r := reader{c: c}

	var id Identity
	if err := r.document(ctx, &id); err != nil {
		return Identity{}, err
	}

	var err error
	if id.MAC, err = r.required(ctx, "mac"); err != nil {
		return Identity{}, err
	}

	// Every per-interface item lives under the MAC; paths are relative
	// to /latest/meta-data/.
	eni := "network/interfaces/macs/" + id.MAC + "/"
	if id.VPCID, err = r.required(ctx, eni+"vpc-id"); err != nil {
		return Identity{}, err
	}
	if id.SubnetID, err = r.required(ctx, eni+"subnet-id"); err != nil {
		return Identity{}, err
	}
	if id.VPCCIDRs, err = r.prefixes(ctx, eni+"vpc-ipv4-cidr-blocks", true); err != nil {
		return Identity{}, err
	}
	subnet, err := r.prefixes(ctx, eni+"subnet-ipv4-cidr-block", true)
	if err != nil {
		return Identity{}, err
	}
	id.SubnetCIDR = subnet[0]

	if id.PrivateIPs, err = r.addrs(ctx, eni+"local-ipv4s", true); err != nil {
		return Identity{}, err
	}
	if id.PublicIPs, err = r.addrs(ctx, eni+"public-ipv4s", false); err != nil {
		return Identity{}, err
	}
	if id.IPv6s, err = r.addrs(ctx, eni+"ipv6s", false); err != nil {
		return Identity{}, err
	}

	id.TokenUsed = !r.tokenless
	return id, nil
}

// reader makes the requests of one Load and remembers whether any went
// without a token.
type reader struct {
	c         *awsimds.Client
	tokenless bool
}

// document fills the fields the instance identity document provides.
func (r *reader) document(ctx context.Context, id *Identity) error {
	const path = "dynamic/instance-identity/document"

	var t trace
	out, err := r.c.GetInstanceIdentityDocument(ctx, nil, t.option)
	r.tokenless = r.tokenless || t.tokenless
	if err != nil {
		return t.classify(ctx, path, err)
	}

	doc := out.InstanceIdentityDocument
	musts := []struct{ name, value string }{
		{"instanceId", doc.InstanceID},
		{"region", doc.Region},
		{"accountId", doc.AccountID},
	}
	for _, m := range musts {
		if m.value == "" {
			return fmt.Errorf("imds: %s %s: %w", path, m.name, ErrMissing)
		}
	}

	id.InstanceID = doc.InstanceID
	id.Region = doc.Region
	id.AvailabilityZone = doc.AvailabilityZone
	id.AccountID = doc.AccountID
	return nil
}

// get reads one metadata item, trimmed. An item IMDS does not have is "":
// EC2 answers 404, amazon-ec2-metadata-mock an empty 200.
func (r *reader) get(ctx context.Context, path string) (string, error) {
	var t trace
	out, err := r.c.GetMetadata(ctx, &awsimds.GetMetadataInput{Path: path}, t.option)
	r.tokenless = r.tokenless || t.tokenless

	// A 404 counts as absent only once the request went out: on the
	// token PUT it means no token.
	if err != nil && t.sent && isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", t.classify(ctx, path, err)
	}
	defer out.Content.Close()

	body, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("imds: read %s: %w", path, err)
	}
	return strings.TrimSpace(string(body)), nil
}

// required is get for an item the identity cannot do without.
func (r *reader) required(ctx context.Context, path string) (string, error) {
	v, err := r.get(ctx, path)
	if err == nil && v == "" {
		err = fmt.Errorf("imds: %s: %w", path, ErrMissing)
	}
	return v, err
}

// prefixes reads a list of CIDR blocks, one a line.
func (r *reader) prefixes(
	ctx context.Context,
	path string,
	need bool,
) ([]netip.Prefix, error) {
	lines, err := r.lines(ctx, path, need)
	if err != nil {
		return nil, err
	}

	var out []netip.Prefix
	for _, l := range lines {
		p, err := netip.ParsePrefix(l)
		if err != nil {
			return nil, &ParseError{Path: path, Value: l, Err: err}
		}
		out = append(out, p)
	}
	return out, nil
}

// addrs reads a list of IP addresses, one a line.
func (r *reader) addrs(ctx context.Context, path string, need bool) ([]netip.Addr, error) {
	lines, err := r.lines(ctx, path, need)
	if err != nil {
		return nil, err
	}

	var out []netip.Addr
	for _, l := range lines {
		a, err := netip.ParseAddr(l)
		if err != nil {
			return nil, &ParseError{Path: path, Value: l, Err: err}
		}
		out = append(out, a)
	}
	return out, nil
}

// lines reads an item as one value a line; need makes an absent item an
// ErrMissing.
func (r *reader) lines(ctx context.Context, path string, need bool) ([]string, error) {
	get := r.get
	if need {
		get = r.required
	}
	v, err := get(ctx, path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(v), nil
}
