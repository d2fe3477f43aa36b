package fs

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

const testSysID = 7300000000000000001

// requireFUSE: see internal/testenv.
func requireFUSE(t testing.TB) { t.Helper(); testenv.RequireFUSE(t) }

// syncBuffer collects log output from server goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	t    testing.TB
	st   *store.Store
	srv  *Server
	mnt  string
	data string
	src  string // a plain directory for source files
	logs *syncBuffer
}

type envOption struct {
	store func(*store.Config)
	fs    func(*Options)
}

// mountTest opens a store in a temp dir and mounts it; the cleanup
// unmounts, then closes the store.
func mountTest(t testing.TB, opt ...envOption) *testEnv {
	t.Helper()
	requireFUSE(t)
	base := t.TempDir()
	e := &testEnv{t: t, mnt: filepath.Join(base, "mnt"), data: filepath.Join(base, "data"),
		src: filepath.Join(base, "src"), logs: &syncBuffer{}}
	for _, d := range []string{e.mnt, e.src} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := store.Config{Dir: e.data, BlockSize: 256 << 10, CacheBytes: 64 << 20}
	for _, o := range opt {
		if o.store != nil {
			o.store(&cfg)
		}
	}
	st, err := store.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	t.Cleanup(func() {
		st.StopPrefetch()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	opts := Options{Mount: e.mnt, UID: 1234, GID: 2345,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opt {
		if o.fs != nil {
			o.fs(&opts)
		}
	}
	srv, err := Mount(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		srv.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", e.logs.String())
		}
	})
	return e
}

// run runs a command (never in the mount as working directory: see the
// deadlock notes in doc.go) and returns its combined output and error.
func (e *testEnv) run(name string, args ...string) (string, error) {
	e.t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *testEnv) mustRun(name string, args ...string) string {
	e.t.Helper()
	out, err := e.run(name, args...)
	if err != nil {
		e.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// m returns a path in the mount.
func (e *testEnv) m(p ...string) string { return filepath.Join(append([]string{e.mnt}, p...)...) }

// source writes data to a plain file and returns its path.
func (e *testEnv) source(name string, data []byte) string {
	e.t.Helper()
	p := filepath.Join(e.src, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// stored reads a file back through the store API.
func (e *testEnv) stored(path string) []byte {
	e.t.Helper()
	r, err := e.st.Open(path)
	if err != nil {
		e.t.Fatalf("store open %s: %v", path, err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		e.t.Fatal(err)
	}
	return buf.Bytes()
}

// put stores a file directly, bypassing the mount.
func (e *testEnv) put(path string, data []byte) {
	e.t.Helper()
	u, err := e.st.Create(path, store.FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)})
	if err == nil {
		_, err = u.Write(data)
		if err == nil {
			_, err = u.Commit()
		} else {
			u.Abort()
		}
	}
	if err != nil {
		e.t.Fatalf("put %s: %v", path, err)
	}
}

func (e *testEnv) notStored(path string) {
	e.t.Helper()
	if _, err := e.st.Stat(path); !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("%s: want not found in store, got %v", path, err)
	}
}

// seg makes a 1 MiB synthetic segment.
func seg(segno uint64, mod ...func(*walgen.Segment)) walgen.Segment {
	g := walgen.Segment{TLI: 1, SegNo: segno, SysID: testSysID, SegSize: 1 << 20, Seed: 42}
	for _, m := range mod {
		m(&g)
	}
	return g
}

func (e *testEnv) logHas(what string) bool { return strings.Contains(e.logs.String(), what) }

func checkBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes, want %d (content differs: %v)", what, len(got), len(want), len(got) == len(want))
	}
}

var storeMeta = store.FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)}
