package rsyncgw

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fieldConf is the configuration of the issue, as it runs in the field.
const fieldConf = `# rsyncd.conf of the archive host
port = 8873
address = 127.0.0.1
motd file = /etc/motd
use chroot = no
Read Only = yes

[global]
	timeout = 600

[wal_store]
	path = /db/pg_archived
	uid = postgres
	gid = postgres
	read only = false
	hosts allow = 10.0.0.5
	hosts deny = *
	comment = WAL from the primary

[wal_fetch]
	path = /db/pg_archived
	read only = true
	hosts allow = host1, host2, \
	              host3
	; restore_command on replicas
	MAX_CONNECTIONS = 8
	refuse options = delete* !delete-after z
	weird parameter = 1
`

func TestParseFieldConfig(t *testing.T) {
	cfg, err := ReadConfig(strings.NewReader(fieldConf), "rsyncd.conf")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8873 || cfg.Address != "127.0.0.1" || cfg.MotdFile != "/etc/motd" || len(cfg.Modules) != 2 {
		t.Fatalf("globals: %+v", cfg)
	}
	st, fe := cfg.Modules[0], cfg.Modules[1]
	if st.Name != "wal_store" || st.ReadOnly || st.UID != "postgres" || st.Timeout != 600*time.Second ||
		strings.Join(st.HostsAllow, "|") != "10.0.0.5" || strings.Join(st.HostsDeny, "|") != "*" {
		t.Errorf("wal_store: %+v", st)
	}
	if !fe.ReadOnly || fe.MaxConnections != 8 || strings.Join(fe.HostsAllow, "|") != "host1|host2|host3" || !fe.List {
		t.Errorf("wal_fetch: %+v", fe)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], `rsyncd.conf:28: unknown or unsupported parameter "weirdparameter"`) {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

func TestConfigErrorsNameFileAndLine(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"[m]\npath = /x\nread only = maybe\n", "c.conf:3: readonly:"},
		{"[m]\npath = /x\njust words\n", "c.conf:3: expected `name = value`"},
		{"[m\npath = /x\n", "c.conf:1: section header"},
		{"[m]\ncomment = no path\n", "c.conf:1: module [m] has no path"},
		{"[m]\npath=/x\n[m]\npath=/y\n", "c.conf:3: module [m] already defined at line 1"},
		{"port = 99999\n", "c.conf:1: port"},
		{"[m]\npath = /x\nhosts allow = 10.0.0.0/33\n", "c.conf:3: hostsallow"},
		{"[m]\npath = /x\nauth users = alice:sometimes\n", "c.conf:3: authusers"},
		{"[m]\npath = /x\nsyslog facility = local9\n", "c.conf:3: syslogfacility"},
		{"[m]\npath = /x\ntransfer logging = sometimes\n", "c.conf:3: transferlogging"},
	} {
		_, err := ReadConfig(strings.NewReader(c.conf), "c.conf")
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.conf, err, c.want)
		}
	}
}

func TestLoggingAndCompressionParams(t *testing.T) {
	cfg, err := ReadConfig(strings.NewReader(`log file = /var/log/rsyncd.log
syslog facility = LOCAL5
reverse lookup = no
[a]
	path = /x
	transfer logging = yes
	log format = %t %o %f
	dont compress = *.gz *.ZST
	syslog tag = wal
	reverse lookup = yes
[b]
	path = /y
	log file =
`), "c.conf")
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Modules[0], cfg.Modules[1]
	if cfg.Log != (LogTarget{File: "/var/log/rsyncd.log", SyslogFacility: "local5", SyslogTag: "rsyncd"}) || cfg.ReverseLookup {
		t.Errorf("globals: %+v", cfg.Log)
	}
	if !a.TransferLogging || a.LogFormat != "%t %o %f" || strings.Join(a.DontCompress, " ") != "*.gz *.ZST" ||
		a.Log != (LogTarget{"/var/log/rsyncd.log", "local5", "wal"}) || !a.ReverseLookup {
		t.Errorf("[a]: %+v", a)
	}
	if b.TransferLogging || b.LogFormat != DefaultLogFormat || len(b.DontCompress) != len(DefaultDontCompress) ||
		b.Log.File != "" || b.ReverseLookup {
		t.Errorf("[b]: %+v", b)
	}
	f := newCompressFilter(a.DontCompress, "wal/[lz]4")
	for name, want := range map[string]bool{"x.GZ": true, "d/y.zst": true, "000000010000000000000001": false,
		"a.wal": true, "a.z4": true, "a.l4": true, "a.x4": false, "gz": false} {
		if f.matches(name) != want {
			t.Errorf("dont compress %q: %v", name, !want)
		}
	}
	if !newCompressFilter(DefaultDontCompress, "").matches("000000010000000000000001.lz4") {
		t.Error("the default list does not name .lz4")
	}
}

func TestModulePathMapsToNamespace(t *testing.T) {
	for _, c := range []struct{ path, root, want string }{
		{"/db/pg_archived", "/db/pg_archived", ""},
		{"/db/pg_archived/", "/db/pg_archived", ""},
		{"/db/pg_archived/main", "/db/pg_archived", "main"},
		{"/srv/wal", "/", "srv/wal!"},
		{"/wal", "/", "wal"},
	} {
		got, err := namespaceFor(c.path, c.root)
		if strings.HasSuffix(c.want, "!") {
			if err == nil {
				t.Errorf("%s under %s: accepted as %q", c.path, c.root, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s under %s: %q, %v; want %q", c.path, c.root, got, err, c.want)
		}
	}
	for _, bad := range []string{"/srv/other", "/db/pg_archived/a/b", "/db", "/db/pg_archived/.."} {
		if _, err := namespaceFor(bad, "/db/pg_archived"); err == nil || (bad != "/db/pg_archived/.." && !strings.Contains(err.Error(), "outside the archive")) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	cfg, _ := ReadConfig(strings.NewReader("[m]\n\tpath = /elsewhere\n"), "c.conf")
	if _, err := NewServer(cfg, nil, Options{Logger: testLogger(t)}); err == nil || !strings.Contains(err.Error(), "c.conf:2: module [m]: path \"/elsewhere\" is outside the archive") {
		t.Errorf("NewServer: %v", err)
	}
}

func TestHostPatterns(t *testing.T) {
	lo := &peer{addr: netip.MustParseAddr("127.0.0.1"), looked: true, name: "localhost"}
	v6 := &peer{addr: netip.MustParseAddr("2001:db8::5"), looked: true, name: "UNKNOWN"}
	mapped := &peer{addr: netip.MustParseAddr("::ffff:10.1.2.3").Unmap(), looked: true, name: "db1.example.com"}
	for _, c := range []struct {
		pattern string
		p       *peer
		want    bool
	}{
		{"127.0.0.1", lo, true}, {"127.0.0.2", lo, false}, {"127.0.0.0/8", lo, true},
		{"127.0.0.0/255.0.0.0", lo, true}, {"10.0.0.0/255.255.0.0", mapped, false},
		{"10.1.0.0/16", mapped, true}, {"::ffff:10.1.2.3", mapped, true},
		{"2001:db8::/32", v6, true}, {"2001:db9::/32", v6, false}, {"*", v6, true},
		{"*.example.com", mapped, true}, {"db?.example.com", mapped, true}, {"*.example.org", mapped, false},
		{"localhost", lo, true}, {"10.1.2.*", mapped, true}, {"@ops", lo, false},
	} {
		h, err := parseHostPattern(c.pattern)
		if err != nil {
			t.Errorf("%s: %v", c.pattern, err)
			continue
		}
		if got := h.matches(c.p); got != c.want {
			t.Errorf("%s vs %s: %v, want %v", c.pattern, c.p.addr, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "10.0.0.0/255.0.255.0", "1.2.3.4/x", "[a"} {
		if _, err := parseHostPattern(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestAllowDenyPrecedence(t *testing.T) {
	lo := &peer{addr: netip.MustParseAddr("127.0.0.1"), looked: true, name: "localhost"}
	for _, c := range []struct {
		allow, deny []string
		want        bool
	}{
		{nil, nil, true},
		{[]string{"127.0.0.1"}, nil, true},
		{[]string{"10.0.0.5"}, nil, false},
		{nil, []string{"127.0.0.1"}, false},
		{[]string{"127.0.0.1"}, []string{"*"}, true},
		{[]string{"10.0.0.5"}, []string{"*"}, false},
		{[]string{"10.0.0.5"}, []string{"10.9.9.9"}, true},
	} {
		m := &Module{HostsAllow: c.allow, HostsDeny: c.deny}
		if got := m.allows(lo); got != c.want {
			t.Errorf("allow %v deny %v: %v, want %v", c.allow, c.deny, got, c.want)
		}
	}
}

func TestFileListOrder(t *testing.T) {
	mk := func(name string, dir bool) *fileEntry {
		e := &fileEntry{name: name, mode: sIFREG}
		if dir {
			e.mode = sIFDIR
		}
		return e
	}
	list := sortEntries([]*fileEntry{
		mk("sub", true), mk("sub/B", false), mk("Z", false), mk(".", true), mk("A", false),
		mk("sub/A", false), mk("a", true), mk("A", false),
	})
	var got []string
	for _, e := range list {
		got = append(got, e.name)
	}
	if strings.Join(got, " ") != ". A Z a sub sub/A sub/B" {
		t.Errorf("order %v", got)
	}
}

func TestNameCache(t *testing.T) {
	var c nameCache
	a := netip.MustParseAddr("10.0.0.5")
	if _, ok := c.get(a); ok {
		t.Fatal("empty cache answered")
	}
	c.put(a, "db1")
	if n, ok := c.get(a); !ok || n != "db1" {
		t.Errorf("got %q %v", n, ok)
	}
	c.entries[a] = cachedName{"db1", time.Now().Add(-time.Second)}
	if _, ok := c.get(a); ok {
		t.Error("an expired name was used")
	}
	for i := range nameCacheSize + 1 {
		c.put(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), "x")
	}
	if len(c.entries) > nameCacheSize {
		t.Errorf("cache grew to %d", len(c.entries))
	}
	var nilCache *nameCache
	nilCache.put(a, "x")
	if _, ok := nilCache.get(a); ok {
		t.Error("a nil cache answered")
	}
}
