// Package walrusproc runs the walrus binary as a black box for end-to-end
// tests and benchmarks: it builds the binary once (or takes $WALRUS_BIN),
// starts `walrus serve --home` with a FUSE mount and the rsync gateway on a
// free loopback port, waits for the ready line, runs the CLI against the
// running server, and stops it with SIGTERM, checking that it exits 0 and
// leaves no mount behind.
package walrusproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

// Binary returns the walrus binary under test: $WALRUS_BIN, or one built
// from this repository (once per process) with `go build ./cmd/walrus`.
func Binary(t testing.TB) string {
	t.Helper()
	if b := os.Getenv("WALRUS_BIN"); b != "" {
		os.Stat(b) // recorded by go test: a new binary invalidates cached results
		return b
	}
	buildOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			buildErr = err
			return
		}
		statSources(root)
		if buildDir, err = os.MkdirTemp("", "walrus-e2e-bin-"); err != nil {
			buildErr = err
			return
		}
		os.Chmod(buildDir, 0o755)
		out := filepath.Join(buildDir, "walrus")
		cmd := exec.Command("go", "build", "-o", out, "./cmd/walrus")
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/walrus: %v\n%s", err, o)
			return
		}
		builtBin = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// RemoveBinary deletes the binary Binary built; call it from TestMain.
func RemoveBinary() {
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// statSources stats every file the binary is built from. go test records
// the files a test stats or opens and keys its result cache on them, so a
// change anywhere in walrus re-runs these tests instead of replaying a
// cached PASS for a binary that no longer exists.
func statSources(root string) {
	skip := map[string]bool{".git": true, "testdata": true, "bin": true, "run": true, "bench-results": true, "walrus-data": true}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return nil
		case d.IsDir() && skip[d.Name()]:
			return filepath.SkipDir
		case d.IsDir():
			return nil
		case strings.HasSuffix(p, ".go") || strings.HasSuffix(p, ".conf") || d.Name() == "go.mod" || d.Name() == "go.sum":
			os.Stat(p)
		}
		return nil
	})
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the walrus module")
	}
	return filepath.Dir(mod), nil
}

// Server is a running `walrus serve --home HOME`.
type Server struct {
	Home, Data, Mount string
	Rsync             string // host:port of the rsync gateway

	t      testing.TB
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
	err    error // cmd.Wait's result, set before exited closes
	killed bool  // Kill ended it: Stop expects neither a clean exit nor an unmount
}

// Start runs `walrus serve --home home --allow-other` with the gateway on a
// free loopback port (the mount must be usable by the postgres user) plus
// extra flags, and waits for "walrus ready". home must be reachable by the
// postgres user (see pgcluster.TempDir). The server is stopped at cleanup.
func Start(t testing.TB, home string, extra ...string) *Server {
	t.Helper()
	s, err := TryStart(t, home, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TryStart is Start for a server that may rightly refuse to start (a
// damaged data directory): the error carries what it printed.
func TryStart(t testing.TB, home string, extra ...string) (*Server, error) {
	t.Helper()
	var lastErr error
	for range 3 { // a free port can be taken between probe and bind
		s, err := start(t, home, extra)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, lastErr
}

func start(t testing.TB, home string, extra []string) (*Server, error) {
	s := &Server{Home: home, Data: filepath.Join(home, "data"), Mount: filepath.Join(home, "pg_archived"),
		Rsync: freeAddr(t), t: t, log: &lockedBuffer{}, exited: make(chan struct{})}
	// Text logs: tests read lines of them (Output); JSON is what serve
	// writes to a pipe by default.
	args := append([]string{"--log-format", "text", "serve", "--home", home, "--rsync-listen", s.Rsync, "--allow-other"}, extra...)
	s.cmd = exec.Command(Binary(t), args...)
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			s.log.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "walrus ready:") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	go func() { s.err = s.cmd.Wait(); pw.Close(); close(s.exited) }()
	select {
	case <-ready:
	case <-s.exited:
		return nil, fmt.Errorf("walrus serve exited before ready: %v\n%s", s.err, s.log)
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		return nil, fmt.Errorf("walrus serve not ready after 30 s:\n%s", s.log)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("walrus serve: %v", err)
		}
		if t.Failed() {
			t.Logf("walrus serve output:\n%s", s.log)
		}
	})
	return s, nil
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Stop sends SIGTERM and waits for a clean exit (status 0, mount gone). It
// is idempotent; a server that does not exit within a minute is killed and
// its mount detached, and that is an error.
func (s *Server) Stop() error {
	select {
	case <-s.exited:
		return s.exitErr()
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
		exec.Command("umount", "-l", s.Mount).Run()
		return errors.New("did not exit within 60 s of SIGTERM")
	}
	return s.exitErr()
}

func (s *Server) exitErr() error {
	if s.killed {
		return nil
	}
	if Mounted(s.Mount) {
		exec.Command("umount", "-l", s.Mount).Run()
		return fmt.Errorf("mount %s left behind", s.Mount)
	}
	if s.err != nil {
		return fmt.Errorf("exit after SIGTERM: %v", s.err)
	}
	return nil
}

// Kill ends the server with SIGKILL, as a crash would: no unmount, no
// drain, no sync. The mount is left stale (ENOTCONN) until a new server
// (Start on the same home) recovers it; at cleanup a mount still stale is
// detached. Stop does nothing afterwards.
func (s *Server) Kill() {
	s.t.Helper()
	select {
	case <-s.exited:
		s.t.Fatalf("walrus serve had already exited: %v", s.err)
	default:
	}
	s.killed = true
	s.cmd.Process.Kill()
	<-s.exited
	s.t.Cleanup(func() {
		// Runs before the cleanup of this server and after that of any
		// server started later on the same mount point.
		if Mounted(s.Mount) {
			exec.Command("umount", "-l", s.Mount).Run()
		}
	})
}

// Mounted reports whether path is a mount point in /proc/mounts.
func Mounted(path string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return strings.Contains(string(b), " "+path+" ")
}

// Pid is the server's process id (for /proc/PID figures).
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Output is what the server wrote to standard error so far.
func (s *Server) Output() string { return s.log.String() }

// StoreURL is the rsync URL of name in the read-write module wal_store.
func (s *Server) StoreURL(name string) string { return "rsync://" + s.Rsync + "/wal_store/" + name }

// FetchURL is the rsync URL of name in the read-only module wal_fetch.
func (s *Server) FetchURL(name string) string { return "rsync://" + s.Rsync + "/wal_fetch/" + name }

// CLI runs `walrus --data DATA args...` (which talks to the running server
// through its control socket) and returns standard output and the exit code.
func (s *Server) CLI(args ...string) (string, int, error) {
	cmd := exec.Command(Binary(s.t), append([]string{"--data", s.Data}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode(), fmt.Errorf("walrus %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return string(out), 0, err
}

// MustCLI is CLI that fails the test unless the command exits 0.
func (s *Server) MustCLI(args ...string) string {
	s.t.Helper()
	out, _, err := s.CLI(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// Status holds the totals of `walrus status --json` (other fields ignored).
type Status struct {
	Files        int64 `json:"files"`
	LogicalBytes int64 `json:"logical_bytes"`
	StoredBytes  int64 `json:"stored_bytes"`
	DiskBytes    int64 `json:"disk_bytes"`
	Packs        int64 `json:"packs"`
	// Lease: the maintenance lease of a group of front-ends (nil alone).
	Lease *struct {
		Epoch  uint64 `json:"epoch"`
		Holder string `json:"holder"`
		Here   bool   `json:"here"`
	} `json:"lease"`
}

// Status asks the running server for its totals.
func (s *Server) Status() Status {
	s.t.Helper()
	var st Status
	if err := json.Unmarshal([]byte(s.MustCLI("status", "--json")), &st); err != nil {
		s.t.Fatalf("walrus status --json: %v", err)
	}
	return st
}

// Verify runs `walrus verify` and fails the test unless the store is sound.
func (s *Server) Verify() {
	s.t.Helper()
	if out, code, err := s.CLI("verify"); err != nil {
		s.t.Fatalf("walrus verify: exit %d: %v\n%s", code, err, out)
	}
}

// Ls lists a directory of the archive (`walrus ls DIR`), one name a line.
func (s *Server) Ls(dir string) []string {
	s.t.Helper()
	args := []string{"ls"}
	if dir != "" {
		args = append(args, dir)
	}
	return strings.Fields(s.MustCLI(args...))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) WriteString(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(s)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
