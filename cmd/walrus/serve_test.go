package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
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
)

// requireServeCapabilities: root, /dev/fuse and rsync (see internal/testenv).
func requireServeCapabilities(t *testing.T) {
	t.Helper()
	testenv.RequireFUSE(t)
	testenv.RequireCommand(t, "rsync")
}

var builtBinary string

// binary builds walrus once per test run: these tests treat it as a black box.
func binary(t *testing.T) string {
	t.Helper()
	if builtBinary != "" {
		return builtBinary
	}
	out := filepath.Join(os.TempDir(), fmt.Sprintf("walrus-test-%d", os.Getpid()))
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	builtBinary = out
	return out
}

type serveProc struct {
	cmd     *exec.Cmd
	stderr  *bytes.Buffer // complete once scanned is closed
	scanned chan struct{}
	ready   string
	exited  chan error
}

// output returns everything the server wrote to stderr; call it after
// stop (it waits for the last line).
func (p *serveProc) output() string {
	<-p.scanned
	return p.stderr.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startServe runs `walrus serve` and waits for its ready line.
func startServe(t *testing.T, args ...string) *serveProc {
	t.Helper()
	return startServeEnv(t, nil, args...)
}

// startServeEnv is startServe with env added to the environment.
func startServeEnv(t *testing.T, env []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, stderr: &bytes.Buffer{}, scanned: make(chan struct{}), exited: make(chan error, 1)}
	readyc := make(chan string, 1)
	go func() {
		defer close(p.scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.stderr.WriteString(line + "\n")
			if strings.HasPrefix(line, "walrus ready:") {
				readyc <- line
			}
		}
	}()
	go func() { p.exited <- cmd.Wait(); pw.Close() }()
	select {
	case p.ready = <-readyc:
	case err := <-p.exited:
		t.Fatalf("walrus serve exited before ready: %v\n%s", err, p.stderr)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("walrus serve not ready after 30 s:\n%s", p.stderr)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		// A failed test must not leave a dead mount behind either.
		for i, a := range args {
			if a == "--home" && i+1 < len(args) {
				if mnt := filepath.Join(args[i+1], "pg_archived"); mounted(mnt) {
					exec.Command("umount", "-l", mnt).Run()
				}
			}
		}
	})
	return p
}

func (p *serveProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(60 * time.Second):
		t.Fatalf("walrus serve did not exit after %v", sig)
		return nil
	}
}

func mounted(path string) bool {
	b, _ := os.ReadFile("/proc/mounts")
	return strings.Contains(string(b), " "+path+" ")
}

func TestServeBlackBox(t *testing.T) {
	requireServeCapabilities(t)
	home := t.TempDir()
	port := freePort(t)
	mnt := filepath.Join(home, "pg_archived")
	p := startServe(t, "--home", home, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", port))
	if !mounted(mnt) || !strings.Contains(p.ready, "rsync=127.0.0.1") {
		t.Fatalf("ready line %q but mount live=%v", p.ready, mounted(mnt))
	}
	work := t.TempDir()
	seg := func(n uint64) (string, []byte) {
		sg := walgen.Segment{TLI: 1, SegNo: n, SysID: 4242, SegSize: 16 << 20, Seed: n}
		path := filepath.Join(work, sg.Name())
		b := sg.Bytes()
		os.WriteFile(path, b, 0o600)
		return path, b
	}
	// archive_command through the mount and through the gateway.
	p1, b1 := seg(1)
	if out, err := exec.Command("cp", p1, mnt+"/").CombinedOutput(); err != nil {
		t.Fatalf("cp into mount: %v %s", err, out)
	}
	p2, _ := seg(2)
	if out, err := exec.Command("rsync", "-aq", p2, fmt.Sprintf("rsync://127.0.0.1:%d/wal_store/%s", port, filepath.Base(p2))).CombinedOutput(); err != nil {
		t.Fatalf("rsync push: %v %s", err, out)
	}
	// The CLI works while the server owns the store (control socket).
	data := filepath.Join(home, "data")
	r := walrus(t, data, nil, "status", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"files": 2`) {
		t.Fatalf("status through the socket: %+v", r)
	}
	if r := walrus(t, data, nil, "get", filepath.Base(p1), "-"); r.code != 0 || r.stdout != string(b1) {
		t.Fatalf("get through the socket: code %d, %d bytes", r.code, len(r.stdout))
	}
	if r := walrus(t, data, []byte("x"), "put", filepath.Base(p1)); r.code != exitExists {
		t.Fatalf("different put through the socket: %+v", r)
	}
	if r := walrus(t, data, nil, "get", "000000010000000000000077", "-"); r.code != exitNotFound {
		t.Fatalf("missing get through the socket: %+v", r)
	}
	// restore_command through the mount.
	got, err := os.ReadFile(filepath.Join(mnt, filepath.Base(p1)))
	if err != nil || !bytes.Equal(got, b1) {
		t.Fatalf("read back through the mount: %v", err)
	}
	// SIGTERM: unmount, drain, exit 0.
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exit after SIGTERM: %v\n%s", err, p.stderr)
	}
	if mounted(mnt) {
		t.Fatal("mount left behind after SIGTERM")
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 {
		t.Fatalf("verify after shutdown: %+v", r)
	}
}

func TestServeRecoversStaleMount(t *testing.T) {
	requireServeCapabilities(t)
	home := t.TempDir()
	mnt := filepath.Join(home, "pg_archived")
	for i := range 3 {
		p := startServe(t, "--home", home, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
		// Used before the kill, as archive_command uses it.
		g := walgen.Segment{TLI: 1, SegNo: uint64(1 + i), SegSize: 1 << 20, SysID: 7, UsedPages: 2}
		src := filepath.Join(t.TempDir(), g.Name())
		os.WriteFile(src, g.Bytes(), 0o600)
		if out, err := exec.Command("cp", src, filepath.Join(mnt, g.Name())).CombinedOutput(); err != nil {
			t.Fatalf("cp into the mount: %v %s", err, out)
		}
		p.stop(t, syscall.SIGKILL)
		var fsst syscall.Statfs_t
		if err := syscall.Statfs(mnt, &fsst); !errors.Is(err, syscall.ENOTCONN) {
			t.Fatalf("expected a dead mount after SIGKILL: statfs %v", err)
		}
	}
	p := startServe(t, "--home", home, "--rsync-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	if names, err := os.ReadDir(mnt); err != nil || len(names) != 3 {
		t.Fatalf("mount after restart: %v, %d names", err, len(names))
	}
	if err := p.stop(t, syscall.SIGTERM); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
}

func TestServeRefusesNothingToServe(t *testing.T) {
	r := walrus(t, t.TempDir(), nil, "serve")
	if r.code != exitError || !strings.Contains(r.stderr, "nothing to serve") {
		t.Fatalf("%+v", r)
	}
}
