package report

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for people: the instance, its route table,
// then each bucket with its path and probes, then the findings.
func (r *Report) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }

	if id := r.Identity; id != nil {
		p("instance\t%s in %s (%s)\n", id.InstanceID, id.AvailabilityZone, id.Region)
		p("network\t%s %s, subnet %s %s\n", id.VPCID, strings.Join(id.VPCCIDRs, ","), id.SubnetID, id.SubnetCIDR)
		p("addresses\tprivate %s, public %s\n", orNone(id.PrivateIPs), orNone(id.PublicIPs))
	}
	if n := r.Network; n != nil {
		if rt := n.RouteTable; rt != nil {
			how := "explicitly associated"
			if rt.Implicit {
				how = "the VPC's main table, no explicit association"
			}
			p("route table\t%s (%s)\n", rt.ID, how)
			for _, rr := range rt.Routes {
				state := ""
				if rr.State == "blackhole" {
					state = "  BLACKHOLE"
				}
				p("\t  %s -> %s%s\n", rr.Destination, rr.Target, state)
			}
		}
		for _, ep := range n.Endpoints {
			p("s3 endpoint\t%s %s %s", ep.ID, ep.Type, ep.State)
			switch {
			case len(ep.RouteTables) > 0:
				p(", route tables %s", strings.Join(ep.RouteTables, ","))
			case ep.Type == "Gateway":
				p(", associated with no route table")
			}
			if len(ep.Addresses) > 0 {
				p(", addresses %s", strings.Join(ep.Addresses, ","))
			}
			p("\n")
		}
		for _, pr := range n.Problems {
			p("ec2 problem\t%s: %s %s\n", pr.Call, pr.Code, pr.Message)
		}
	}
	if r.Resolver != "" {
		p("resolver\t%s\n", r.Resolver)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	for _, b := range r.Buckets {
		writeBucket(w, b)
	}

	if len(r.Findings) > 0 {
		fmt.Fprintf(w, "\nfindings\n")
		for _, f := range r.Findings {
			subject := ""
			if f.Bucket != "" {
				subject = f.Bucket + ": "
			}
			fmt.Fprintf(w, "  [%s] %s%s\n", f.Severity, subject, f.Summary)
			if f.Fix != "" {
				fmt.Fprintf(w, "      fix: %s\n", f.Fix)
			}
		}
	}

	fmt.Fprintf(w, "\nstatus: %s", r.Status)
	if r.Error != "" {
		fmt.Fprintf(w, ": %s", r.Error)
	}
	_, err := fmt.Fprintln(w)
	return err
}

func writeBucket(w io.Writer, b Bucket) {
	fmt.Fprintf(w, "\nbucket %s (%s)\n", b.Name, b.Region)
	if b.RedirectedFrom != "" {
		fmt.Fprintf(w, "  S3 redirected the request from %s to %s\n", b.RedirectedFrom, b.Region)
	}
	fmt.Fprintf(w, "  path  %s\n", describePath(b.Path))
	if d := b.DNS; d != nil {
		var addrs []string
		for _, a := range d.Answers {
			addrs = append(addrs, fmt.Sprintf("%s (ttl %d)", a.Address, a.TTL))
		}
		if d.Error != "" {
			addrs = append(addrs, d.Error)
		}
		fmt.Fprintf(w, "  dns   %s -> %s via %s\n", d.Name, strings.Join(addrs, ", "), d.Server)
	}

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, pr := range b.Probes {
		switch {
		case pr.Skipped:
			fmt.Fprintf(tw, "  %s\tskipped\t\t\n", pr.Op)
		case pr.Success:
			fmt.Fprintf(tw, "  %s\tok\t%.0f ms\t%s\n", pr.Op, pr.LatencyS*1000, pr.Remote)
		default:
			what := pr.ErrorCode
			if pr.HTTPStatus != 0 {
				what = fmt.Sprintf("%s (%d)", pr.ErrorCode, pr.HTTPStatus)
			}
			if what == "" {
				what = pr.Error
			}
			fmt.Fprintf(tw, "  %s\tFAILED in %s\t%.0f ms\t%s %s\n",
				pr.Op, pr.FailedIn, pr.LatencyS*1000, pr.Remote, what)
		}
	}
	tw.Flush()
}

func describePath(p Path) string {
	s := p.Kind
	if p.Target != "" {
		s += " " + p.Target
	}
	if p.Route != "" {
		s += ", route " + p.Route
		if p.Matched != "" && p.Matched != p.Route {
			s += " (" + p.Matched + ")"
		}
	}
	if p.RouteTableID != "" {
		s += " in " + p.RouteTableID
	}
	if p.Note != "" {
		s += "; " + p.Note
	}
	return s
}

func orNone(v []string) string {
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, ",")
}
