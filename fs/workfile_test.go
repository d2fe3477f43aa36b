package fs

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// pg_receivewal's way with a .partial, in one process: pad the whole
// segment with zeros, seek back, write WAL, fsync, reopen by a second
// handle, truncate, lock, fsync the directory, rename onto the final name.
func TestWorkFileBehavesLikeALocalFile(t *testing.T) {
	e := mountTest(t)
	e.mustRun("mkdir", e.m("ns"))
	g := seg(30)
	src := e.source("a", g.Bytes())
	partial := e.m("ns", g.Name()+".partial")
	py := `import os, sys, fcntl, errno
path, src, dirpath = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, "rb").read()
fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, b"\0" * len(data))          # padding first, as pg_receivewal
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, data[:300000])
os.fsync(fd)
fd2 = os.open(path, os.O_RDWR)           # a second handle sees the bytes
assert os.pread(fd2, 10, 0) == data[:10], "reopen"
fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB)
fd3 = os.open(path, os.O_RDONLY)
try:
    fcntl.flock(fd3, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("second lock taken")
except OSError as e:
    assert e.errno == errno.EWOULDBLOCK, e
os.close(fd3)
os.pwrite(fd2, data[300000:], 300000)
os.ftruncate(fd2, len(data) + 5)
os.ftruncate(fd2, len(data))
assert os.fstat(fd).st_size == len(data), "size"
os.fsync(fd2)
os.close(fd2)
os.close(fd)
d = os.open(dirpath, os.O_RDONLY)
os.fsync(d)                              # directory fsync: no error
os.close(d)
print("ok")`
	if out := e.mustRun("python3", "-c", py, partial, src, e.m("ns")); strings.TrimSpace(out) != "ok" {
		t.Fatalf("writer: %s", out)
	}
	// Its last close checked it in: a valid .partial is archived (at the
	// release of its last handle, which the kernel sends after close).
	e.waitStored("ns/" + g.Name() + ".partial")
	checkBytes(t, ".partial checked in at its last close", e.stored("ns/"+g.Name()+".partial"), g.Bytes())
	checkBytes(t, ".partial through the mount", []byte(e.mustRun("cat", partial)), g.Bytes())
	if ls := e.mustRun("ls", e.m("ns")); !strings.Contains(ls, g.Name()+".partial") {
		t.Errorf("work file not listed:\n%s", ls)
	}
	// pg_receivewal restarted: it reopens the .partial without O_TRUNC and
	// goes on writing; it is a work file again until its last close.
	half := append(append([]byte{}, g.Bytes()[:500000]...), make([]byte, len(g.Bytes())-500000)...)
	if err := os.WriteFile(src, half, 0o600); err != nil {
		t.Fatal(err)
	}
	e.mustRun("rm", partial)
	e.mustRun("cp", src, partial)
	checkBytes(t, "first half archived", e.stored("ns/"+g.Name()+".partial"), half)
	py = `import os, sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY)
os.pwrite(fd, data[500000:], 500000)
os.fsync(fd)
print("written", flush=True)
sys.stdin.readline()
os.close(fd)`
	cmd := exec.Command("python3", "-c", py, partial, e.source("b", g.Bytes()))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "written" {
		t.Fatalf("continuing writer: %q", lines.Text())
	}
	e.notStored("ns/" + g.Name() + ".partial")
	checkBytes(t, "continued .partial while open", []byte(e.mustRun("cat", partial)), g.Bytes())
	if blocks := strings.TrimSpace(e.mustRun("stat", "-c", "%b", partial)); blocks == "0" {
		t.Errorf("work file shows no blocks")
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	e.waitStored("ns/" + g.Name() + ".partial")
	checkBytes(t, "continued .partial checked in", e.stored("ns/"+g.Name()+".partial"), g.Bytes())
	// cp over it with other content (O_TRUNC) is refused like any rewrite.
	if out, err := e.run("cp", e.source("c", half), partial); err == nil || !strings.Contains(out, "File exists") {
		t.Errorf("cp of different content over an archived .partial: %v %s", err, out)
	}
	e.mustRun("mv", partial, e.m("ns", g.Name()))
	checkBytes(t, "archived by rename", e.stored("ns/"+g.Name()), g.Bytes())
	if out, err := e.run("stat", partial); err == nil {
		t.Errorf(".partial after the rename:\n%s", out)
	}
	e.notStored("ns/" + g.Name() + ".partial")
	if entries, _ := os.ReadDir(filepath.Join(e.data, "work", "dirs", "ns")); len(entries) != 0 {
		t.Errorf("work area not empty after the rename: %v", entries)
	}
}

// basic_archive's temp names have no leading dot; a refused rename keeps
// the temp file and says why with the errno; an identical one succeeds.
func TestWorkFileRenameRefusals(t *testing.T) {
	e := mountTest(t)
	g := seg(31)
	e.put(g.Name(), g.Bytes())
	tmp := e.m("archtemp." + g.Name() + ".123.456")
	other := seg(31, func(s *walgen.Segment) { s.Seed = 4 })
	for _, c := range []struct {
		data []byte
		to   string
		want syscall.Errno
	}{
		{other.Bytes(), g.Name(), syscall.EEXIST},                                                 // different content archived
		{[]byte("not wal"), seg(32).Name(), syscall.EINVAL},                                       // invalid WAL
		{seg(33, func(s *walgen.Segment) { s.SysID = 9 }).Bytes(), seg(33).Name(), syscall.EPERM}, // another cluster
	} {
		if got := e.renameErrno(e.source("data", c.data), tmp, e.m(c.to)); got != c.want {
			t.Errorf("rename onto %s: errno %v, want %v", c.to, got, c.want)
		}
		checkBytes(t, "temp kept", []byte(e.mustRun("cat", tmp)), c.data)
	}
	checkBytes(t, "original", e.stored(g.Name()), g.Bytes())
	if got := e.renameErrno(e.source("same", g.Bytes()), tmp, e.m(g.Name())); got != 0 {
		t.Errorf("identical rename: errno %v", got)
	}
	if out, err := e.run("stat", tmp); err == nil {
		t.Errorf("temp after an identical rename:\n%s", out)
	}
	for _, bad := range []string{"new\nline", "esc\x1b[0m", seg(34).Name() + "\n"} {
		if out, err := e.run("touch", e.m(bad)); err == nil || !strings.Contains(out, "Invalid argument") {
			t.Errorf("create of %q: %v %s", bad, err, out)
		}
	}
	long := strings.Repeat("x", 256)
	for _, cmd := range []string{"touch", "stat"} {
		if out, err := e.run(cmd, e.m(long)); err == nil || !strings.Contains(out, "File name too long") {
			t.Errorf("%s of a 256-byte name: %v %s", cmd, err, out)
		}
	}
}

// renameErrno copies src to tmp and renames tmp onto dst in a child
// process (never touch the mount from the process serving it) and returns
// the rename's errno (0: it succeeded).
func (e *testEnv) renameErrno(src, tmp, dst string) syscall.Errno {
	e.t.Helper()
	py := `import os, sys, shutil
shutil.copyfile(sys.argv[1], sys.argv[2])
try:
    os.rename(sys.argv[2], sys.argv[3])
    print(0)
except OSError as err:
    print(err.errno)`
	out := strings.TrimSpace(e.mustRun("python3", "-c", py, src, tmp, dst))
	n, err := strconv.Atoi(out)
	if err != nil {
		e.t.Fatalf("rename helper: %q", out)
	}
	return syscall.Errno(n)
}

// What a writer fsynced in a work file (and its name, by fsyncing the
// directory) is there after walrus is SIGKILLed and started again.
func TestWorkFileSurvivesServerCrash(t *testing.T) {
	requireFUSE(t)
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperServe$")
	cmd.Env = append(os.Environ(), "WALRUS_FS_HELPER="+dir)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		cmd.Process.Kill()
		t.Fatalf("helper: %q", line)
	}
	g := seg(40)
	name := g.Name() + ".partial"
	py := `import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, open(sys.argv[2], "rb").read())
os.fsync(fd)
d = os.open(os.path.dirname(sys.argv[1]), os.O_RDONLY)
os.fsync(d)
print("synced", flush=True)
sys.stdin.readline()`
	srcPath := filepath.Join(dir, "src")
	if err := os.WriteFile(srcPath, g.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	writer := exec.Command("python3", "-c", py, filepath.Join(mnt, name), srcPath)
	wout, _ := writer.StdoutPipe()
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	defer writer.Wait()
	defer writer.Process.Kill()
	if line, _ := bufio.NewReader(wout).ReadString('\n'); strings.TrimSpace(line) != "synced" {
		t.Fatalf("writer: %q", line)
	}
	// walrus dies while the writer still holds the file open.
	cmd.Process.Kill()
	cmd.Wait()
	writer.Process.Kill()
	if err := RecoverStaleMount(mnt); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(store.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := Mount(st, Options{Mount: mnt})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer srv.Unmount()
	out, err := exec.Command("cat", filepath.Join(mnt, name)).Output()
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	checkBytes(t, fmt.Sprintf("%s after a crash of walrus", name), out, g.Bytes())
}

func (e *testEnv) waitStored(path string) {
	e.t.Helper()
	waitFor(e.t, path+" archived", func() bool {
		_, err := e.st.Stat(path)
		return err == nil
	})
}
