package rsyncgw

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"sync"
	"time"
)

// hostPattern is one token of `hosts allow` / `hosts deny`
// (rsync: access.c access_match).
type hostPattern struct {
	any    bool         // "*"
	prefix netip.Prefix // an address, addr/bits or addr/mask
	name   string       // hostname or hostname wildcard, lower case
	group  string       // @netgroup: never matches (no NIS here)
}

func parseHostPattern(tok string) (hostPattern, error) {
	switch {
	case tok == "*":
		return hostPattern{any: true}, nil
	case strings.HasPrefix(tok, "@"):
		return hostPattern{group: tok[1:]}, nil
	}
	if a, bits, ok := strings.Cut(tok, "/"); ok {
		p, err := parseMasked(a, bits)
		if err != nil {
			return hostPattern{}, fmt.Errorf("host pattern %q: %v", tok, err)
		}
		return hostPattern{prefix: p}, nil
	}
	if addr, err := netip.ParseAddr(tok); err == nil {
		addr = addr.Unmap()
		return hostPattern{prefix: netip.PrefixFrom(addr, addr.BitLen())}, nil
	}
	if _, err := path.Match(strings.ToLower(tok), ""); err != nil {
		return hostPattern{}, fmt.Errorf("host pattern %q: %v", tok, err)
	}
	return hostPattern{name: strings.ToLower(tok)}, nil
}

// parseMasked accepts addr/bits and IPv4 addr/dotted-mask.
func parseMasked(a, mask string) (netip.Prefix, error) {
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return netip.Prefix{}, err
	}
	addr = addr.Unmap()
	bits := -1
	if m, err := netip.ParseAddr(mask); err == nil {
		bits = maskBits(m.AsSlice())
	} else if _, err := fmt.Sscanf(mask, "%d", &bits); err != nil || fmt.Sprint(bits) != mask {
		return netip.Prefix{}, fmt.Errorf("bad mask %q", mask)
	}
	if bits < 0 || bits > addr.BitLen() {
		return netip.Prefix{}, fmt.Errorf("bad mask %q", mask)
	}
	return addr.Prefix(bits)
}

// maskBits returns the length of a contiguous netmask, or -1.
func maskBits(b []byte) int {
	n := 0
	for i, x := range b {
		for bit := 7; bit >= 0; bit-- {
			if x&(1<<bit) == 0 {
				if !zeroFrom(b, i, bit) {
					return -1
				}
				return n
			}
			n++
		}
	}
	return n
}

func zeroFrom(b []byte, i, bit int) bool {
	if b[i]&(1<<(bit+1)-1) != 0 {
		return false
	}
	for _, x := range b[i+1:] {
		if x != 0 {
			return false
		}
	}
	return true
}

// peer is the client as access checks see it. Its host name is looked up
// on first use only (rsync: clientname.c client_name), and confirmed by a
// forward lookup so a forged PTR record cannot claim a name.
type peer struct {
	addr     netip.Addr
	resolver *net.Resolver
	timeout  time.Duration
	names    *nameCache // may be nil
	looked   bool
	name     string
}

// Host is the confirmed host name, or "UNKNOWN" as rsync says.
func (p *peer) Host() string {
	if !p.looked {
		p.looked = true
		if name, ok := p.names.get(p.addr); ok {
			p.name = name
		} else {
			p.name = p.lookup()
			p.names.put(p.addr, p.name)
		}
	}
	return p.name
}

// nameCache keeps confirmed host names for a minute. Stock rsyncd looks
// the name up for every connection (the log names the host); an archive
// host sees the same few clients connect once per WAL segment, so the
// answers are reused rather than asked of DNS twice per segment.
type nameCache struct {
	mu      sync.Mutex // guards entries
	entries map[netip.Addr]cachedName
}

type cachedName struct {
	name    string
	expires time.Time
}

const (
	nameCacheTTL  = time.Minute
	nameCacheSize = 4096
)

func (c *nameCache) get(a netip.Addr) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[a]
	if !ok || time.Now().After(e.expires) {
		return "", false
	}
	return e.name, true
}

func (c *nameCache) put(a netip.Addr, name string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= nameCacheSize {
		c.entries = map[netip.Addr]cachedName{} // a flood of addresses starts it over
	}
	c.entries[a] = cachedName{name, time.Now().Add(nameCacheTTL)}
}

func (p *peer) lookup() string {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	names, err := p.resolver.LookupAddr(ctx, p.addr.String())
	if err != nil || len(names) == 0 {
		return "UNKNOWN"
	}
	name := strings.TrimSuffix(names[0], ".")
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return "UNKNOWN"
	}
	for _, a := range addrs {
		if a.Unmap() == p.addr {
			return strings.ToLower(name)
		}
	}
	return "UNKNOWN"
}

func (h hostPattern) matches(p *peer) bool {
	switch {
	case h.any:
		return true
	case h.group != "":
		return false
	case h.prefix.IsValid():
		return h.prefix.Contains(p.addr)
	case strings.ContainsAny(h.name, "*?["):
		return wildMatch(h.name, p.addr.String()) || wildMatch(h.name, p.Host())
	}
	return h.name == p.Host() || p.forwardMatch(h.name)
}

// forwardMatch resolves a plain host name and compares its addresses with
// the peer's (rsync: access.c match_hostname with forward lookup).
func (p *peer) forwardMatch(name string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	addrs, err := p.resolver.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.Unmap() == p.addr {
			return true
		}
	}
	return false
}

func wildMatch(pattern, s string) bool {
	ok, _ := path.Match(pattern, strings.ToLower(s))
	return ok
}

func matchAny(list []string, p *peer) bool {
	for _, tok := range list {
		if h, err := parseHostPattern(tok); err == nil && h.matches(p) {
			return true
		}
	}
	return false
}

// allows applies rsync's precedence (rsync: access.c allow_access): an
// allow match admits; with only an allow list, anything else is refused; a
// deny match refuses; everything else is admitted.
func (m *Module) allows(p *peer) bool {
	if len(m.HostsAllow) > 0 {
		if matchAny(m.HostsAllow, p) {
			return true
		}
		if len(m.HostsDeny) == 0 {
			return false
		}
	}
	return !matchAny(m.HostsDeny, p)
}
