package fs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/walrus-archive/walrus/store"
)

// TestHelperServe is not a test: run with WALRUS_FS_HELPER=DIR it mounts a
// store at DIR/mnt, prints "ready" and serves until killed. It lets
// TestRecoverStaleMount make a mount whose server died.
func TestHelperServe(t *testing.T) {
	dir := os.Getenv("WALRUS_FS_HELPER")
	if dir == "" {
		return
	}
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := Mount(st, Options{Mount: filepath.Join(dir, "mnt")})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	srv.Wait()
}

func TestRecoverStaleMount(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RecoverStaleMount(mnt); err != nil {
		t.Fatalf("plain directory: %v", err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServe$")
	cmd.Env = append(os.Environ(), "WALRUS_FS_HELPER="+dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("helper: %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	var fsst syscall.Statfs_t
	if err := syscall.Statfs(mnt, &fsst); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after the server died: statfs %v, want ENOTCONN", err)
	}
	if err := RecoverStaleMount(mnt); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mnt); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// And it can be mounted again.
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := Mount(st, Options{Mount: mnt})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Unmount(); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
}

// Unmount of a busy mount detaches it lazily; Wait returns when the last
// user is gone.
func TestUnmountBusyDetaches(t *testing.T) {
	e := mountTest(t)
	g := seg(1)
	e.put(g.Name(), g.Bytes())
	cmd := exec.Command("bash", "-c", `exec 3<"$1"; echo ready; read x`, "holder", e.m(g.Name()))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("holder: %q", line)
	}
	if err := e.srv.Unmount(); err != nil {
		t.Fatalf("unmount of a busy mount: %v", err)
	}
	if out, _ := e.run("ls", e.mnt); strings.Contains(out, g.Name()) {
		t.Errorf("still mounted after unmount: %s", out)
	}
	io.WriteString(stdin, "bye\n")
	cmd.Wait()
	e.srv.Wait()
}
