package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Contained checks that the namespaces form a closed world: every link is
// the loopback or a veth whose peer is in one of them, and every route is
// a local one, a blackhole, prohibit or unreachable route, or goes through
// a gateway that is an address of one of them on a subnet the route's
// namespace is connected to. Then no packet sent in them can leave the
// machine, whatever the default routes say. It returns every breach found.
func Contained(ctx context.Context, nss ...*NS) error {
	names := make([]string, len(nss))
	for i, n := range nss {
		names[i] = n.Name
	}

	// First every address in the world, so a gateway can be checked
	// against the namespace that owns it.
	owned := map[netip.Addr]string{}
	connected := map[string][]netip.Prefix{}
	for _, n := range nss {
		addrs, err := n.addrs(ctx)
		if err != nil {
			return err
		}
		for _, p := range addrs {
			owned[p.Addr()] = n.Name
			connected[n.Name] = append(connected[n.Name], p.Masked())
		}
	}

	var errs []error
	for _, n := range nss {
		errs = append(errs, n.checkLinks(ctx, names))
		errs = append(errs, n.checkRoutes(ctx, owned, connected[n.Name]))
	}
	return errors.Join(errs...)
}

// addrs returns the namespace's IPv4 addresses with their prefixes.
func (n *NS) addrs(ctx context.Context) ([]netip.Prefix, error) {
	out, err := n.IPOutput(ctx, "-j", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("parse addresses of %s: %w", n.Name, err)
	}
	var ps []netip.Prefix
	for _, l := range links {
		for _, a := range l.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("parse address %q of %s: %w", a.Local, n.Name, err)
			}
			ps = append(ps, netip.PrefixFrom(addr, a.PrefixLen))
		}
	}
	return ps, nil
}

// checkLinks insists on loopback and veths paired inside world.
func (n *NS) checkLinks(ctx context.Context, world []string) error {
	out, err := n.IPOutput(ctx, "-j", "netns", "list-id")
	if err != nil {
		return err
	}
	var ids []struct {
		NSID int    `json:"nsid"`
		Name string `json:"name"`
	}
	// An empty list prints nothing rather than [].
	if len(out) > 0 {
		if err := json.Unmarshal(out, &ids); err != nil {
			return fmt.Errorf("parse namespace ids of %s: %w", n.Name, err)
		}
	}
	peerName := map[int]string{}
	for _, id := range ids {
		peerName[id.NSID] = id.Name
	}

	out, err = n.IPOutput(ctx, "-j", "-d", "link", "show")
	if err != nil {
		return err
	}
	var links []struct {
		Name     string `json:"ifname"`
		NetnsID  *int   `json:"link_netnsid"`
		LinkType string `json:"link_type"`
		Info     struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return fmt.Errorf("parse links of %s: %w", n.Name, err)
	}

	var errs []error
	for _, l := range links {
		switch {
		case l.LinkType == "loopback":
		case l.Info.Kind != "veth":
			errs = append(errs, fmt.Errorf("namespace %s: link %s is a %q, not a veth",
				n.Name, l.Name, l.Info.Kind))
		case l.NetnsID == nil:
			errs = append(errs, fmt.Errorf("namespace %s: veth %s has its peer in the same namespace",
				n.Name, l.Name))
		case !slices.Contains(world, peerName[*l.NetnsID]):
			errs = append(errs, fmt.Errorf("namespace %s: veth %s has its peer outside the lab (nsid %d %q)",
				n.Name, l.Name, *l.NetnsID, peerName[*l.NetnsID]))
		}
	}
	return errors.Join(errs...)
}

// checkRoutes insists that every gateway is a lab address on a connected
// subnet.
func (n *NS) checkRoutes(ctx context.Context, owned map[netip.Addr]string, connected []netip.Prefix) error {
	out, err := n.IPOutput(ctx, "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return err
	}
	var routes []struct {
		Type    string `json:"type"`
		Dst     string `json:"dst"`
		Gateway string `json:"gateway"`
		Dev     string `json:"dev"`
		Table   string `json:"table"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return fmt.Errorf("parse routes of %s: %w", n.Name, err)
	}

	var errs []error
	for _, r := range routes {
		switch r.Type {
		case "blackhole", "prohibit", "unreachable", "local", "broadcast":
			continue
		}
		if r.Gateway == "" {
			// On-link: its device was checked by checkLinks.
			continue
		}
		gw, err := netip.ParseAddr(r.Gateway)
		if err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: route %s: gateway %q: %w",
				n.Name, r.Dst, r.Gateway, err))
			continue
		}
		owner, ok := owned[gw]
		onLink := slices.ContainsFunc(connected, func(p netip.Prefix) bool { return p.Contains(gw) })
		if !ok || !onLink || owner == n.Name {
			errs = append(errs, fmt.Errorf(
				"namespace %s: route %s via %s leaves the lab (owner %q, on a connected subnet: %t)",
				n.Name, r.Dst, gw, owner, onLink))
		}
	}
	return errors.Join(errs...)
}
