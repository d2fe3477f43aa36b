package rsyncgw

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/store"
)

func TestAuth(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	os.WriteFile(secrets, []byte("# users\nalice:wonderland\nbob:builder\ncarol:singer\n"), 0o600)
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, []byte("alice:wonderland\n"), 0o644)
	e := startServer(t, fmt.Sprintf(`
secrets file = %s
[secure]
	path = /db/pg_archived
	read only = false
	auth users = alice, bob:ro, carol:deny
[loose]
	path = /db/pg_archived
	auth users = alice
	secrets file = %s
`, secrets, loose))
	seg := segment(1)
	src := e.writeFile(seg.Name(), seg.Bytes())
	dest := "rsync://%s@HOST/secure/" + seg.Name()
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := e.in(t)
			out, code := e.rsyncEnv([]string{"RSYNC_PASSWORD=wonderland"}, with(p.args, "-aq", src, fmt.Sprintf(dest, "alice"))...)
			expectExit(t, out, code, 0)
			out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=wrong"}, with(p.args, "-aq", src, fmt.Sprintf(dest, "alice"))...)
			expectExit(t, out, code, exitStartClient, "@ERROR: auth failed on module secure")
			out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=singer"}, with(p.args, "-aq", src, fmt.Sprintf(dest, "carol"))...)
			expectExit(t, out, code, exitStartClient, "@ERROR: auth failed on module secure")
			out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=builder"}, with(p.args, "-aq", src, fmt.Sprintf(dest, "bob"))...)
			expectExit(t, out, code, map[bool]int{true: exitSyntax, false: exitStreamIO}[p.args == nil], "ERROR: module is read only")
			out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=builder"}, with(p.args, "-a", fmt.Sprintf(dest, "bob"), filepath.Join(e.tmp, "b"+p.name))...)
			expectExit(t, out, code, 0)
			out, code = e.rsyncEnv([]string{"RSYNC_PASSWORD=wonderland"}, with(p.args, "rsync://alice@HOST/loose/")...)
			expectExit(t, out, code, exitStartClient, "@ERROR: auth failed on module loose")
		})
	}
}

// dial speaks the daemon protocol by hand up to the module line.
func dial(t testing.TB, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// waitClosed polls until the server closes c, or fails after d.
func waitClosed(t testing.TB, c net.Conn, r *bufio.Reader, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("server did not close the connection within %v: %v", d, err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.HandshakeTimeout = 300 * time.Millisecond })
	c, r := dial(t, e.addr)
	start := time.Now()
	waitClosed(t, c, r, 5*time.Second) // we never send a greeting
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the handshake timeout", d)
	}
}

func TestIdleTimeoutAfterHandshake(t *testing.T) {
	e := startServer(t, baseConf+"\n[slow]\npath = /db/pg_archived\ntimeout = 1\n")
	c, r := dial(t, e.addr)
	fmt.Fprintf(c, "@RSYNCD: 31.0 md5\nslow\n--server\x00--sender\x00-logDtpre.iLsfxCIvu\x00.\x00slow/x\x00\x00\x03md5")
	start := time.Now()
	waitClosed(t, c, r, 10*time.Second) // we stop before the filter list
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("closed after %v, before the module timeout", d)
	}
}

func TestMaxConnections(t *testing.T) {
	e := startServer(t, baseConf+"\n[one]\npath = /db/pg_archived\nmax connections = 1\n")
	c, r := dial(t, e.addr)
	fmt.Fprintf(c, "@RSYNCD: 31.0\none\n")
	for { // wait until the first session holds the slot
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "@RSYNCD: OK\n" {
			break
		}
	}
	out, code := e.rsync("rsync://HOST/one/")
	expectExit(t, out, code, exitStartClient, "@ERROR: max connections (1) reached -- try again later")
	c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for { // the slot is released when the first session ends
		out, code = e.rsync("rsync://HOST/one/")
		if code == 0 || time.Now().After(deadline) {
			break
		}
	}
	expectExit(t, out, code, 0)
}

// panicStore panics where the pull looks files up.
type panicStore struct{ Store }

func (panicStore) Stat(string) (store.FileInfo, error) { panic("injected") }

func TestPanicEndsOnlyItsSession(t *testing.T) {
	e := startServerWith(t, baseConf, func(s *store.Store) Store { return panicStore{s} })
	out, code := e.rsync("-a", "rsync://HOST/wal_fetch/000000010000000000000001", filepath.Join(e.tmp, "x"))
	if code == 0 {
		t.Fatalf("pull through a panicking store succeeded: %s", out)
	}
	out, code = e.rsync("rsync://HOST/wal_fetch/")
	expectExit(t, out, code, 0)
}

func TestServeStopsOnCancel(t *testing.T) {
	requireRsync(t)
	st, err := store.Open(store.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg, _ := ReadConfig(strings.NewReader(baseConf), "t")
	srv, err := NewServer(cfg, st, Options{ShutdownGrace: 200 * time.Millisecond, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	c, r := dial(t, ln.Addr().String())
	fmt.Fprintf(c, "@RSYNCD: 31.0\n")
	r.ReadString('\n') // greeting: the session is running and now idles
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel and the grace period")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

func TestConcurrentClients(t *testing.T) {
	e := startServer(t, baseConf)
	const n = 64
	small := func(i uint64) []byte { return segment(i).Bytes() }
	name := func(i uint64) string { return segment(i).Name() }
	for i := uint64(0); i < n/2; i++ {
		e.put(name(i), small(i))
	}
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := uint64(0); i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out string
			var code int
			if i%2 == 0 { // pull one of the preloaded segments
				out, code = e.rsync("-a", "rsync://HOST/wal_fetch/"+name(i/2), filepath.Join(e.tmp, fmt.Sprintf("pull%d", i)))
			} else { // push a new one
				src := filepath.Join(e.tmp, fmt.Sprintf("src%d", i))
				os.WriteFile(src, small(n+i), 0o600)
				out, code = e.rsync("-aq", src, "rsync://HOST/wal_store/"+name(n+i))
			}
			if code != 0 {
				errs <- fmt.Sprintf("client %d: exit %d: %s", i, code, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	files, _ := e.st.List("")
	if len(files) != n {
		t.Errorf("store holds %d files, want %d", len(files), n)
	}
}

func TestMotdAndTextCommands(t *testing.T) {
	motd := filepath.Join(t.TempDir(), "motd")
	os.WriteFile(motd, []byte("Welcome to the WAL archive\nno shell here\n"), 0o644)
	e := startServer(t, "motd file = "+motd+"\n"+baseConf)
	out, code := e.rsync("rsync://HOST/")
	expectExit(t, out, code, 0, "Welcome to the WAL archive\nno shell here\n", "wal_fetch")
	c, r := dial(t, e.addr)
	fmt.Fprintf(c, "@RSYNCD: 31.0\n#stats\n")
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		lines = append(lines, line)
	}
	if got := lines[len(lines)-1]; got != "@ERROR: Unknown command '#stats'\n" {
		t.Errorf("answer to #stats: %q", lines)
	}
	c2, r2 := dial(t, e.addr)
	fmt.Fprintf(c2, "@RSYNCD: 31\nwal_fetch\n")
	r2.ReadString('\n') // greeting
	if line, _ := r2.ReadString('\n'); !strings.HasPrefix(line, "@ERROR: your client omitted the subprotocol value") {
		t.Errorf("a greeting without .sub was answered %q", line)
	}
}

func TestListenAddr(t *testing.T) {
	cfg, _ := ReadConfig(strings.NewReader("port = 8873\naddress = 127.0.0.1\n"), "c")
	s, err := NewServer(cfg, nil, Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ListenAddr(); got != "127.0.0.1:8873" {
		t.Errorf("ListenAddr %q", got)
	}
	s, _ = NewServer(&Config{}, nil, Options{Listen: "[::1]:1873", Logger: testLogger(t)})
	if got := s.ListenAddr(); got != "[::1]:1873" {
		t.Errorf("ListenAddr with override %q", got)
	}
	s, _ = NewServer(&Config{}, nil, Options{Logger: testLogger(t)})
	if got := s.ListenAddr(); got != ":873" {
		t.Errorf("default ListenAddr %q", got)
	}
}

func TestIPv6Client(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testenv.Require(t, "an IPv6 loopback address: "+err.Error())
	}
	ln.Close()
	e := startServer(t, "[v6]\n\tpath = /db/pg_archived\n\thosts allow = ::1/128\n")
	// startServer listens on IPv4; serve a second listener on ::1.
	ln6, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testenv.Require(t, "an IPv6 loopback address: "+err.Error())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln6) }()
	defer func() { cancel(); <-done }()
	e6 := *e
	e6.addr = ln6.Addr().String()
	out, code := e6.rsync("rsync://HOST/v6/")
	expectExit(t, out, code, 0, " .\n")
	out, code = e.rsync("rsync://HOST/v6/") // IPv4 peer: not in the allow list
	expectExit(t, out, code, exitStartClient, "@ERROR: access denied to v6")
}

// TestPushPathsConfined feeds hostile names to the placement of pushed
// entries: nothing may land outside the module's namespace.
func TestPushPathsConfined(t *testing.T) {
	e := startServer(t, baseConf+"\n[ns]\npath = /db/pg_archived/ns\nread only = no\n")
	for _, modName := range []string{"wal_store", "ns"} {
		var sink strings.Builder
		s := &session{srv: e.srv, mod: e.srv.modules[modName], out: newMuxWriter(&sink), log: testLogger(t),
			args: &serverArgs{paths: []string{modName + "/"}}}
		var entries []*fileEntry
		for _, n := range []string{"../x", "../../etc/passwd", "a/../../b", "ok", "/abs", "ns2/../../x", "d/e/f"} {
			entries = append(entries, &fileEntry{name: n, mode: sIFREG | 0o600})
		}
		for _, tg := range s.placeEntries(sortEntries(entries)) {
			dir, _, err := store.SplitPath(tg.path)
			if err != nil || strings.Contains(tg.path, "..") || (s.mod.ns != "" && dir != s.mod.ns) {
				t.Errorf("%s: entry %q placed at %q", modName, tg.entry.name, tg.path)
			}
		}
	}
}

// TestRefusedSessionReleasesSlot: a session refused after it took the
// module's only slot (failed auth) must give the slot back.
func TestRefusedSessionReleasesSlot(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	os.WriteFile(secrets, []byte("alice:pw\n"), 0o600)
	e := startServer(t, fmt.Sprintf("[one]\npath = /db/pg_archived\nmax connections = 1\nauth users = alice\nsecrets file = %s\n", secrets))
	for range 3 {
		out, code := e.rsyncEnv([]string{"RSYNC_PASSWORD=wrong"}, "rsync://alice@HOST/one/")
		expectExit(t, out, code, exitStartClient, "@ERROR: auth failed on module one")
	}
	out, code := e.rsyncEnv([]string{"RSYNC_PASSWORD=pw"}, "rsync://alice@HOST/one/")
	expectExit(t, out, code, 0)
}
