package rsyncgw

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// requireRsync: see internal/testenv.
func requireRsync(t testing.TB) { t.Helper(); testenv.RequireCommand(t, "rsync") }

// rsyncTimeout only catches a hung client: generous, since a loaded
// 2-core machine running rows in parallel (zstd level 19) is slow.
var rsyncTimeout = 2 * time.Minute

const baseConf = `
# test modules
[wal_store]
	path = /db/pg_archived
	read only = false
	comment = push here
[wal_fetch]
	path = /db/pg_archived
	read only = true
	comment = pull from here
`

type testEnv struct {
	t    testing.TB
	st   *store.Store
	srv  *Server
	addr string
	tmp  string
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func startServer(t testing.TB, conf string, mod ...func(*Options)) *testEnv {
	t.Helper()
	return startServerWith(t, conf, func(s *store.Store) Store { return s }, mod...)
}

// startServerWith serves the store through wrap (fault injection).
func startServerWith(t testing.TB, conf string, wrap func(*store.Store) Store, mod ...func(*Options)) *testEnv {
	t.Helper()
	return startServerAt(t, store.Config{Dir: t.TempDir()}, conf, wrap, mod...)
}

// startServerAt serves a store opened with sc (its Logger is the test's).
func startServerAt(t testing.TB, sc store.Config, conf string, wrap func(*store.Store) Store, mod ...func(*Options)) *testEnv {
	t.Helper()
	requireRsync(t)
	sc.Logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := store.Open(sc)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(strings.NewReader(conf), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Logger: testLogger(t)}
	for _, m := range mod {
		m(&opts)
	}
	srv, err := NewServer(cfg, wrap(st), opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	return &testEnv{t: t, st: st, srv: srv, addr: ln.Addr().String(), tmp: t.TempDir()}
}

// in returns the environment for a subtest: failures of its helpers go to
// t, not to the test that started the server (FailNow on a parent from a
// subtest panics).
func (e *testEnv) in(t testing.TB) *testEnv {
	c := *e
	c.t = t
	return &c
}

// rsync runs the real client; "HOST" in an argument becomes our address.
func (e *testEnv) rsync(args ...string) (string, int) {
	e.t.Helper()
	return e.rsyncEnv(nil, args...)
}

// rsyncEnv is rsync with extra environment variables (RSYNC_PASSWORD).
func (e *testEnv) rsyncEnv(env []string, args ...string) (string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rsyncTimeout)
	defer cancel()
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "HOST", e.addr)
	}
	cmd := exec.CommandContext(ctx, "rsync", args...)
	cmd.Env = append(append(os.Environ(), "RSYNC_PASSWORD="), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 2 * time.Second // a killed client's children may hold the pipes
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("rsync %v: %v", args, err)
	}
	if ctx.Err() != nil {
		e.t.Fatalf("rsync %v hung: %s", args, out.String())
	}
	return out.String(), code
}

func (e *testEnv) writeFile(name string, data []byte) string {
	p := filepath.Join(e.tmp, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// segment is a synthetic 1 MiB WAL segment (a valid wal_segment_size);
// tests that need the 16 MiB default set SegSize themselves.
func segment(segno uint64) walgen.Segment {
	return walgen.Segment{TLI: 1, SegNo: segno, SysID: 7000000000000000001, SegSize: 1 << 20, Seed: 42}
}

// put stores data under path directly, bypassing rsync.
func (e *testEnv) put(path string, data []byte) {
	e.t.Helper()
	u, err := e.st.Create(path, store.FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := u.Write(data); err != nil {
		e.t.Fatal(err)
	}
	if _, err := u.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) stored(path string) []byte {
	e.t.Helper()
	r, err := e.st.Open(path)
	if err != nil {
		e.t.Fatalf("open %s: %v", path, err)
	}
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		e.t.Fatal(err)
	}
	return b.Bytes()
}

func expectExit(t testing.TB, out string, code, want int, contains ...string) {
	t.Helper()
	if code != want {
		t.Errorf("exit %d, want %d; output:\n%s", code, want, out)
	}
	for _, c := range contains {
		if !strings.Contains(out, c) {
			t.Errorf("output lacks %q:\n%s", c, out)
		}
	}
}

// protocols are the client settings every transfer test runs with: the
// client's default (negotiates 31) and protocol 30.
var protocols = []struct {
	name string
	args []string
}{{"default", nil}, {"protocol30", []string{"--protocol=30"}}}

func with(pre []string, args ...string) []string { return append(append([]string{}, pre...), args...) }

func TestPushPullRoundTrip(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf)
			seg := segment(1)
			seg.SegSize = 4 << 20 // many frames, several store blocks
			data := seg.Bytes()
			src := e.writeFile(seg.Name(), data)
			mtime := time.Unix(1700000123, 456000000)
			os.Chtimes(src, mtime, mtime)
			if p.args != nil {
				mtime = mtime.Truncate(time.Second) // nanoseconds need protocol 31
			}
			out, code := e.rsync(with(p.args, "-aq", src, "rsync://HOST/wal_store/"+seg.Name())...)
			expectExit(t, out, code, 0)
			if !bytes.Equal(e.stored(seg.Name()), data) {
				t.Fatal("stored bytes differ")
			}
			fi, _ := e.st.Stat(seg.Name())
			if !fi.MTime.Equal(mtime) || fi.Mode.Perm() != 0o600 {
				t.Errorf("stored mtime %v mode %v, want %v 0600", fi.MTime, fi.Mode, mtime)
			}
			dst := filepath.Join(e.tmp, "RECOVERYXLOG")
			out, code = e.rsync(with(p.args, "-a", "rsync://HOST/wal_fetch/"+seg.Name(), dst)...)
			expectExit(t, out, code, 0)
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("pulled %d bytes (%v), want %d", len(got), err, len(data))
			}
			if st, _ := os.Stat(dst); !st.ModTime().Equal(mtime) {
				t.Errorf("pulled mtime %v, want %v", st.ModTime(), mtime)
			}
			// Over a stale local copy the client sends block sums; the
			// sender ignores them and sends literals.
			stale := append([]byte(nil), data...)
			copy(stale[1<<20:], "stale")
			os.WriteFile(dst, stale, 0o600)
			out, code = e.rsync(with(p.args, "-a", "--ignore-times", "rsync://HOST/wal_fetch/"+seg.Name(), dst)...)
			expectExit(t, out, code, 0)
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Fatal("pull over a stale copy did not restore the data")
			}
		})
	}
}

func TestListingAndWildcards(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf)
			for i := uint64(1); i <= 3; i++ {
				e.put(segment(i).Name(), segment(i).Bytes())
			}
			e.put("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
			out, code := e.rsync(with(p.args, "rsync://HOST/wal_fetch/")...)
			expectExit(t, out, code, 0, "drwxr-xr-x", " .\n", "1,048,576 2023/11/14", segment(3).Name(), "00000002.history")
			dst := filepath.Join(e.tmp, "w") + "/"
			out, code = e.rsync(with(p.args, "-a", "rsync://HOST/wal_fetch/00000001000000000000000*", dst)...)
			expectExit(t, out, code, 0)
			names, _ := filepath.Glob(dst + "*")
			if len(names) != 3 {
				t.Errorf("wildcard pull fetched %v, want 3 segments", names)
			}
		})
	}
}

func TestModuleList(t *testing.T) {
	e := startServer(t, baseConf+`
[hidden]
	path = /db/pg_archived
	list = no
[denied]
	path = /db/pg_archived
	hosts deny = 127.0.0.1
`)
	// As stock rsyncd (clientserver.c send_listing): a listable module is
	// listed to hosts it refuses too; only `list = no` hides one.
	out, code := e.rsync("rsync://HOST/")
	expectExit(t, out, code, 0, "wal_store      \tpush here\n", "wal_fetch      \tpull from here\n", "denied         \t\n")
	if strings.Contains(out, "hidden") {
		t.Errorf("listing shows an unlisted module:\n%s", out)
	}
	out, code = e.rsync("rsync://HOST/denied/")
	expectExit(t, out, code, exitStartClient, "@ERROR: access denied to denied from ")
	out, code = e.rsync("rsync://HOST/hidden/")
	expectExit(t, out, code, 0)
}

func TestMissingFilePullFailsFast(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf)
			dst := filepath.Join(e.tmp, "RECOVERYXLOG")
			start := time.Now()
			out, code := e.rsync(with(p.args, "-a", "rsync://HOST/wal_fetch/00000002.history", dst)...)
			expectExit(t, out, code, exitPartial, `rsync: [sender] link_stat "00000002.history" (in wal_fetch) failed: No such file or directory (2)`)
			// Speed is reported, not asserted (the machine is shared).
			t.Logf("missing-file pull answered in %v", time.Since(start))
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("a missing file produced %s (%v)", dst, err)
			}
		})
	}
}

func TestRepush(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf)
			seg := segment(5)
			src := e.writeFile("a/"+seg.Name(), seg.Bytes())
			dest := "rsync://HOST/wal_store/" + seg.Name()
			for range 2 { // first push, then the identical re-push after a "crash"
				out, code := e.rsync(with(p.args, "-aq", src, dest)...)
				expectExit(t, out, code, 0)
			}
			other := seg
			other.Seed = 99
			src2 := e.writeFile("b/"+seg.Name(), other.Bytes())
			out, code := e.rsync(with(p.args, "-aq", src2, dest)...)
			expectExit(t, out, code, exitPartial, `refused "`+seg.Name()+`"`, "exists in the archive with different content")
			if !bytes.Equal(e.stored(seg.Name()), seg.Bytes()) {
				t.Fatal("the archived copy changed")
			}
		})
	}
}

func TestInvalidPushesRefused(t *testing.T) {
	e := startServer(t, baseConf)
	seg := segment(1)
	src := e.writeFile("a/"+seg.Name(), seg.Bytes())
	// The right bytes under the wrong name: the page address disagrees.
	out, code := e.rsync("-aq", src, "rsync://HOST/wal_store/000000010000000000000009")
	expectExit(t, out, code, exitPartial, `refused "`, "not a valid WAL file")
	// Garbage under a segment name.
	junk := e.writeFile("junk", bytes.Repeat([]byte("x"), 20000))
	out, code = e.rsync("-aq", junk, "rsync://HOST/wal_store/000000010000000000000002")
	expectExit(t, out, code, exitPartial, "not a valid WAL file")
	// A segment of another cluster in the same namespace.
	e.put(seg.Name(), seg.Bytes())
	alien := segment(2)
	alien.SysID = 1234
	src3 := e.writeFile("c/"+alien.Name(), alien.Bytes())
	out, code = e.rsync("-aq", src3, "rsync://HOST/wal_store/"+alien.Name())
	expectExit(t, out, code, exitPartial, "another cluster")
	for _, name := range []string{"000000010000000000000009", "000000010000000000000002"} {
		if _, err := e.st.Stat(name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("refused push left %s behind (%v)", name, err)
		}
	}
}

// TestFullDiskPush: a push into a full archive names the cause and the
// way out, and the next push after space returns succeeds (PostgreSQL's
// archiver retries the same segment; nothing to restart).
func TestFullDiskPush(t *testing.T) {
	root := testenv.SmallFS(t, 256<<20)
	e := startServerAt(t, store.Config{Dir: filepath.Join(root, "data")}, baseConf, func(s *store.Store) Store { return s })
	e.put(segment(1).Name(), segment(1).Bytes())
	filler := filepath.Join(root, "filler")
	testenv.Fill(t, filler, 0)
	seg := segment(2)
	src := e.writeFile(seg.Name(), seg.Bytes())
	out, code := e.rsync("-aq", src, "rsync://HOST/wal_store/"+seg.Name())
	expectExit(t, out, code, exitPartial, `refused "`, "out of disk space", "walrus retain")
	if _, err := e.st.Stat(seg.Name()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused push left %s behind (%v)", seg.Name(), err)
	}
	os.Remove(filler)
	out, code = e.rsync("-aq", src, "rsync://HOST/wal_store/"+seg.Name())
	if code != 0 {
		t.Fatalf("push after space returned: exit %d\n%s", code, out)
	}
	if !bytes.Equal(e.stored(seg.Name()), seg.Bytes()) {
		t.Fatal("the segment pushed after space returned reads back different")
	}
}

func TestRefusedOptions(t *testing.T) {
	e := startServer(t, baseConf+`
[norecurse]
	path = /db/pg_archived
	refuse options = r checksum
[nocompress]
	path = /db/pg_archived
	refuse options = compress
`)
	e.put(segment(1).Name(), segment(1).Bytes())
	src := "rsync://HOST/wal_fetch/" + segment(1).Name()
	dst := filepath.Join(e.tmp, "x")
	// As stock rsync 3.5.0: the text, then exit 4 (MSG_ERROR_EXIT); a
	// protocol-30 client has no MSG_ERROR_EXIT and sees the stream end.
	for _, c := range []struct {
		args []string
		code int
		text string
	}{
		{[]string{"-aH"}, exitUnsupported, "rsync: The server is configured to refuse --hard-links (-H)"},
		{[]string{"--protocol=30", "-aH"}, exitStreamIO, "rsync: The server is configured to refuse --hard-links (-H)"},
		{[]string{"-aA"}, exitUnsupported, "refuse --acls (-A)"},
		{[]string{"-aX"}, exitUnsupported, "refuse --xattrs (-X)"},
		{[]string{"-aR"}, exitUnsupported, "refuse --relative (-R)"},
	} {
		out, code := e.rsync(with(c.args, src, dst)...)
		expectExit(t, out, code, c.code, c.text)
	}
	out, code := e.rsync("-a", "rsync://HOST/norecurse/"+segment(1).Name(), dst)
	expectExit(t, out, code, exitUnsupported, "refuse --recursive (-r)")
	for _, z := range []string{"-az", "--compress-choice=zstd", "--zc=lz4", "--compress-level=5"} {
		out, code = e.rsync(z, "-a", "rsync://HOST/nocompress/"+segment(1).Name(), dst)
		expectExit(t, out, code, exitUnsupported, "rsync: The server is configured to refuse --compress (-z)")
	}
	out, code = e.rsync("--protocol=29", "-a", src, dst)
	expectExit(t, out, code, exitStartClient, "@ERROR: protocol version mismatch")
}

func TestReadOnlyAndWriteOnly(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf+`
[drop]
	path = /db/pg_archived
	read only = no
	write only = yes
`)
			e.put(segment(1).Name(), segment(1).Bytes())
			src := e.writeFile("s", segment(2).Bytes())
			out, code := e.rsync(with(p.args, "-aq", src, "rsync://HOST/wal_fetch/"+segment(2).Name())...)
			want := exitSyntax
			if p.args != nil {
				want = exitStreamIO // protocol 30 has no MSG_ERROR_EXIT
			}
			expectExit(t, out, code, want, "ERROR: module is read only")
			out, code = e.rsync(with(p.args, "-a", "rsync://HOST/drop/"+segment(1).Name(), filepath.Join(e.tmp, "x"))...)
			expectExit(t, out, code, want, "ERROR: module is write only")
			out, code = e.rsync(with(p.args, "-aq", src, "rsync://HOST/drop/"+segment(2).Name())...)
			expectExit(t, out, code, 0)
		})
	}
}

func TestHostsAllowDeny(t *testing.T) {
	e := startServer(t, `
[deny_lo]
	path = /db/pg_archived
	hosts deny = 127.0.0.1
[allow_other]
	path = /db/pg_archived
	hosts allow = 10.0.0.5
	hosts deny = *
[allow_lo]
	path = /db/pg_archived
	hosts allow = 10.0.0.5, 127.0.0.0/255.0.0.0
	hosts deny = *
[secret_deny]
	path = /db/pg_archived
	list = false
	hosts deny = 127.0.0.0/8
[only_one]
	path = /db/pg_archived
	hosts allow = 127.0.0.1
	hosts deny = *
`)
	out, code := e.rsync("rsync://HOST/deny_lo/")
	expectExit(t, out, code, exitStartClient, "@ERROR: access denied to deny_lo from ")
	out, code = e.rsync("rsync://HOST/allow_other/")
	expectExit(t, out, code, exitStartClient, "@ERROR: access denied to allow_other")
	out, code = e.rsync("rsync://HOST/allow_lo/")
	expectExit(t, out, code, 0)
	out, code = e.rsync("rsync://HOST/secret_deny/")
	expectExit(t, out, code, exitStartClient, "@ERROR: Unknown module 'secret_deny'")
	// 127.0.0.2 is a second loopback peer: bind the client to it.
	out, code = e.rsync("--address=127.0.0.2", "rsync://HOST/only_one/")
	expectExit(t, out, code, exitStartClient, "@ERROR: access denied to only_one from ", "(127.0.0.2)")
	out, code = e.rsync("rsync://HOST/only_one/")
	expectExit(t, out, code, 0)
}

func TestSecludedArgsAndChecksums(t *testing.T) {
	e := startServer(t, baseConf)
	seg := segment(3)
	src := e.writeFile(seg.Name(), seg.Bytes())
	out, code := e.rsync("-aqcs", src, "rsync://HOST/wal_store/"+seg.Name())
	expectExit(t, out, code, 0)
	for _, cc := range []string{"--checksum-choice=none", "--checksum-choice=xxh3", "--checksum-choice=md4"} {
		out, code = e.rsync(cc, "-aq", src, "rsync://HOST/wal_store/"+seg.Name()) // identical re-push
		expectExit(t, out, code, 0)
	}
	for _, cc := range []string{"", "--checksum-choice=md5", "--checksum-choice=xxh64", "--checksum-choice=md4",
		"--checksum-choice=xxh3,md5", "--checksum-choice=sha1", "--checksum-choice=none,md5"} {
		dst := filepath.Join(e.tmp, "out"+cc)
		args := []string{"-acs", "rsync://HOST/wal_fetch/" + seg.Name(), dst}
		if cc != "" {
			args = append([]string{cc}, args...)
		}
		out, code = e.rsync(args...)
		expectExit(t, out, code, 0)
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, seg.Bytes()) {
			t.Errorf("%s: pulled data differs", cc)
		}
	}
	out, code = e.rsync("--checksum-choice=none", "-a", "rsync://HOST/wal_fetch/"+seg.Name(), filepath.Join(e.tmp, "none"))
	expectExit(t, out, code, 0)
	out, code = e.rsync("--checksum-choice=none", "-ac", "rsync://HOST/wal_fetch/"+seg.Name(), filepath.Join(e.tmp, "none-c"))
	expectExit(t, out, code, exitUnsupported, "Invalid checksum-choice for --checksum: none")
}

func TestNamespaces(t *testing.T) {
	e := startServer(t, baseConf+`
[cluster_a]
	path = /db/pg_archived/cluster_a
	read only = false
`)
	seg := segment(1)
	src := e.writeFile(seg.Name(), seg.Bytes())
	out, code := e.rsync("-aq", src, "rsync://HOST/cluster_a/")
	expectExit(t, out, code, 0)
	out, code = e.rsync("-aq", src, "rsync://HOST/wal_store/cluster_b/"+seg.Name())
	expectExit(t, out, code, 0)
	for _, p := range []string{"cluster_a/" + seg.Name(), "cluster_b/" + seg.Name()} {
		if !bytes.Equal(e.stored(p), seg.Bytes()) {
			t.Fatalf("%s not stored", p)
		}
	}
	out, code = e.rsync("-aq", src, "rsync://HOST/cluster_a/deeper/"+seg.Name())
	expectExit(t, out, code, exitPartial, "the archive holds NAME or NAMESPACE/NAME only")
	dst := filepath.Join(e.tmp, "all") + "/"
	out, code = e.rsync("-a", "rsync://HOST/wal_fetch/", dst)
	expectExit(t, out, code, 0)
	for _, p := range []string{"cluster_a/" + seg.Name(), "cluster_b/" + seg.Name()} {
		if got, _ := os.ReadFile(dst + p); !bytes.Equal(got, seg.Bytes()) {
			t.Errorf("recursive pull lacks %s", p)
		}
	}
	out, code = e.rsync("rsync://HOST/cluster_a/")
	expectExit(t, out, code, 0, seg.Name())
}

func TestPushDirectoryTree(t *testing.T) {
	e := startServer(t, baseConf)
	dir := filepath.Join(e.tmp, "pg_wal")
	for i := uint64(1); i <= 3; i++ {
		s := segment(i)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, s.Name()), s.Bytes(), 0o600)
	}
	out, code := e.rsync("-a", dir+"/", "rsync://HOST/wal_store/")
	expectExit(t, out, code, 0)
	files, _ := e.st.List("")
	if len(files) != 3 {
		t.Errorf("stored %d files, want 3", len(files))
	}
}

func TestPulledOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Require(t, "root to see ownership applied by the client")
	}
	e := startServer(t, "[own]\n\tpath = /db/pg_archived\n\tuid = daemon\n\tgid = 4242\n")
	e.put(segment(1).Name(), segment(1).Bytes())
	dst := filepath.Join(e.tmp, "owned")
	out, code := e.rsync("-a", "rsync://HOST/own/"+segment(1).Name(), dst)
	expectExit(t, out, code, 0)
	fi, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Uid != 1 || st.Gid != 4242 {
		t.Errorf("pulled file owned by %d:%d, want daemon (1):4242", st.Uid, st.Gid)
	}
}
