package resolve

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// dnsPort is where resolv.conf's nameservers listen: the file has no way
// to name another port.
const dnsPort = 53

// ErrNoNameserver means a resolv.conf names no usable nameserver.
var ErrNoNameserver = errors.New("no nameserver line with an IP address")

// FromResolvConf returns the first nameserver of the resolv.conf at path
// as host:53, with an IPv6 address in brackets. Like the C library, it
// skips nameserver lines whose address does not parse.
func FromResolvConf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read resolv.conf: %w", err)
	}

	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		addr, err := netip.ParseAddr(fields[1])
		if err != nil {
			continue
		}
		return netip.AddrPortFrom(addr, dnsPort).String(), nil
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read resolv.conf %s: %w", path, err)
	}
	return "", fmt.Errorf("resolv.conf %s: %w", path, ErrNoNameserver)
}
