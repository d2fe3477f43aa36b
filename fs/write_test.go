package fs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

func TestCpIntoMountCommits(t *testing.T) {
	e := mountTest(t)
	g := seg(1)
	src := e.source(g.Name(), g.Bytes())
	e.mustRun("cp", src, e.m(g.Name()))
	checkBytes(t, "stored", e.stored(g.Name()), g.Bytes())

	e.mustRun("mkdir", e.m("db1"))
	e.mustRun("cp", src, e.m("db1", g.Name()))
	checkBytes(t, "stored in namespace", e.stored("db1/"+g.Name()), g.Bytes())
	out := e.mustRun("cat", e.m("db1", g.Name()))
	checkBytes(t, "cat", []byte(out), g.Bytes())

	// A shell redirection opens, dup2s and closes the descriptor before
	// cat writes: that first close must not commit an empty file.
	g2, g3 := seg(2), seg(3)
	e.mustRun("bash", "-c", `cat "$1" > "$2"`, "sh", e.source("3", g3.Bytes()), e.m("db1", g3.Name()))
	checkBytes(t, "cat >", e.stored("db1/"+g3.Name()), g3.Bytes())
	e.mustRun("dd", "if="+e.source("2", g2.Bytes()), "of="+e.m("db1", g2.Name()), "bs=64k", "status=none")
	checkBytes(t, "dd", e.stored("db1/"+g2.Name()), g2.Bytes())
	// An archive name created and closed empty is refused (not a WAL
	// segment) and never shows up.
	if out, err := e.run("touch", e.m("db1", seg(4).Name())); err == nil {
		t.Logf("touch of a segment name: %s", out) // the refusal comes at release, after touch exits
	}
	e.notStored("db1/" + seg(4).Name())
	// Other names are work files: there at once, empty, not in the store.
	e.mustRun("touch", e.m("db1", "empty"))
	e.mustRun("bash", "-c", `: > "$1"`, "sh", e.m("db1", "empty2"))
	for _, name := range []string{"empty", "empty2"} {
		if out := e.mustRun("stat", "-c", "%s", e.m("db1", name)); strings.TrimSpace(out) != "0" {
			t.Errorf("%s: size %s", name, out)
		}
		e.notStored("db1/" + name)
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, what, 10*time.Second, cond)
}

func TestRsyncIntoMount(t *testing.T) {
	e := mountTest(t)
	g := seg(2)
	src := e.source(g.Name(), g.Bytes())
	e.mustRun("rsync", "-a", src, e.mnt+"/")
	checkBytes(t, "stored", e.stored(g.Name()), g.Bytes())
	fi, _ := os.Stat(src)
	info, err := e.st.Stat(g.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !info.MTime.Equal(fi.ModTime().Truncate(1e9)) && !info.MTime.Equal(fi.ModTime()) {
		t.Errorf("mtime %v, source %v: rsync -a should preserve it", info.MTime, fi.ModTime())
	}
	if ls := e.mustRun("ls", "-a", e.mnt); strings.Contains(ls, "."+g.Name()) {
		t.Errorf("temp file left behind:\n%s", ls)
	}
	// Again: identical, rsync sees nothing to do but the owner, which it
	// cannot change (it runs as root here; the mount shows its own owner).
	e.mustRun("rsync", "-a", "--no-owner", "--no-group", src, e.mnt+"/")
	if out, err := e.run("rsync", "-a", src, e.mnt+"/"); err == nil || !strings.Contains(out, "chown") {
		t.Errorf("rsync -a as root onto an archived file: %v %s", err, out)
	}
	// A different mode is taken: an archiver's rsync -a re-push succeeds.
	os.Chmod(src, 0o640)
	e.mustRun("rsync", "-a", "--no-owner", "--no-group", src, e.mnt+"/")
	if info, _ := e.st.Stat(g.Name()); info.Mode != 0o640 {
		t.Errorf("mode after rsync -a: %v", info.Mode)
	}
	// Different content under the same name: refused, original intact.
	other := seg(2, func(s *walgen.Segment) { s.Seed = 9 })
	e.source(g.Name(), other.Bytes())
	if out, err := e.run("rsync", "-a", "--checksum", src, e.mnt+"/"); err == nil {
		t.Fatalf("rsync of different content succeeded:\n%s", out)
	}
	checkBytes(t, "original after refused rsync", e.stored(g.Name()), g.Bytes())
	if !e.logHas("file exists with different content") {
		t.Errorf("no log line naming the reason")
	}
}

func TestRecopyIdenticalSucceedsDifferentFails(t *testing.T) {
	e := mountTest(t)
	g := seg(3)
	src := e.source("a", g.Bytes())
	e.mustRun("cp", src, e.m(g.Name()))
	e.mustRun("cp", src, e.m(g.Name())) // PostgreSQL re-archives after a crash
	e.mustRun("cp", "--preserve=all", src, e.m(g.Name()))

	other := e.source("b", seg(3, func(s *walgen.Segment) { s.Seed = 5 }).Bytes())
	out, err := e.run("cp", other, e.m(g.Name()))
	if err == nil || !strings.Contains(out, "File exists") {
		t.Fatalf("cp of different content: %v\n%s", err, out)
	}
	checkBytes(t, "original in store", e.stored(g.Name()), g.Bytes())
	checkBytes(t, "original through the mount", []byte(e.mustRun("cat", e.m(g.Name()))), g.Bytes())
	if !e.logHas("file exists with different content") {
		t.Errorf("refusal not logged with its reason")
	}
}

func TestInvalidWALRefused(t *testing.T) {
	e := mountTest(t)
	g := seg(4)
	bad := g.Bytes()
	bad[0] ^= 0xff // magic
	out, err := e.run("cp", e.source("bad", bad), e.m(g.Name()))
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Fatalf("cp of invalid WAL: %v\n%s", err, out)
	}
	e.notStored(g.Name())
	if !e.logHas("invalid WAL") {
		t.Errorf("no log line naming the reason:\n%s", e.logs.String())
	}
	if ls := e.mustRun("ls", "-a", e.mnt); strings.Contains(ls, g.Name()) {
		t.Errorf("refused file listed:\n%s", ls)
	}
	// Short file under a segment name: refused at close.
	out, err = e.run("cp", e.source("short", []byte("hello")), e.m(g.Name()))
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Fatalf("cp of short segment: %v\n%s", err, out)
	}
}

func TestOtherClusterRefused(t *testing.T) {
	e := mountTest(t)
	e.mustRun("cp", e.source("a", seg(5).Bytes()), e.m(seg(5).Name()))
	g := seg(6, func(s *walgen.Segment) { s.SysID = 42 })
	out, err := e.run("cp", e.source("b", g.Bytes()), e.m(g.Name()))
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Fatalf("cp of a segment of another cluster: %v\n%s", err, out)
	}
	e.notStored(g.Name())
	if !e.logHas("another cluster") {
		t.Errorf("no log line naming the reason")
	}
	// rsync: the rename fails the same way.
	out, err = e.run("rsync", "-a", e.src+"/b", e.m(g.Name()))
	if err == nil {
		t.Fatalf("rsync of another cluster's segment succeeded:\n%s", out)
	}
	e.notStored(g.Name())
}

// A file being written under its final name is not visible to others
// until close has committed it.
func TestPartialFileInvisible(t *testing.T) {
	e := mountTest(t)
	g := seg(7)
	src := e.source("a", g.Bytes())
	// One process writes part of the file, waits, writes the rest, closes.
	script := `import sys
f = open(sys.argv[1], "wb", buffering=0)
data = open(sys.argv[2], "rb").read()
f.write(data[:300000])
print("ready", flush=True)
sys.stdin.readline()
f.write(data[300000:])
f.close()
print("done", flush=True)`
	cmd := exec.Command("python3", "-c", script, e.m(g.Name()), src)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("writer: %q", lines.Text())
	}
	if out, err := e.run("stat", e.m(g.Name())); err == nil {
		t.Errorf("partial file visible:\n%s", out)
	}
	if out, err := e.run("cat", e.m(g.Name())); err == nil || len(out) > 200 {
		t.Errorf("partial file readable: %v, %d bytes", err, len(out))
	}
	if ls := e.mustRun("ls", e.mnt); strings.Contains(ls, g.Name()) {
		t.Errorf("partial file listed:\n%s", ls)
	}
	e.notStored(g.Name())
	io.WriteString(stdin, "go\n")
	if !lines.Scan() || lines.Text() != "done" {
		t.Fatalf("writer: %q", lines.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("stat", "-c", "%s", e.m(g.Name()))
	if strings.TrimSpace(out) != fmt.Sprint(len(g.Bytes())) {
		t.Errorf("size after commit: %s", out)
	}
	checkBytes(t, "after commit", []byte(e.mustRun("cat", e.m(g.Name()))), g.Bytes())
}

// rsync's temp-then-rename, driven step by step: the temp is a work file,
// never in the store under its own name; a failed rename keeps it.
func TestTempRenameCommitsAndFailureKeepsTemp(t *testing.T) {
	e := mountTest(t, envOption{fs: func(o *Options) { o.StageMemory = 64 << 10 }}) // spills
	g := seg(8)
	e.put(g.Name(), g.Bytes())
	other := seg(8, func(s *walgen.Segment) { s.Seed = 3 })
	tmp := "." + g.Name() + ".Ab12Cd"
	e.mustRun("cp", e.source("x", other.Bytes()), e.m(tmp))
	e.notStored(tmp)
	if out := e.mustRun("stat", "-c", "%s", e.m(tmp)); strings.TrimSpace(out) != fmt.Sprint(1<<20) {
		t.Errorf("temp size %s", out)
	}
	e.mustRun("touch", "-d", "2020-01-02 03:04:05", e.m(tmp))
	out, err := e.run("mv", e.m(tmp), e.m(g.Name()))
	if err == nil || !strings.Contains(out, "File exists") {
		t.Fatalf("rename onto different content: %v\n%s", err, out)
	}
	checkBytes(t, "temp kept", []byte(e.mustRun("cat", e.m(tmp))), other.Bytes())
	checkBytes(t, "original", e.stored(g.Name()), g.Bytes())

	// Rename to a free name commits, with the mtime set on the temp.
	g2 := seg(9, func(s *walgen.Segment) { s.Seed = 3 })
	e.mustRun("cp", e.source("y", g2.Bytes()), e.m(tmp))
	e.mustRun("touch", "-d", "2020-01-02 03:04:05", e.m(tmp))
	e.mustRun("mv", e.m(tmp), e.m(g2.Name()))
	checkBytes(t, "renamed", e.stored(g2.Name()), g2.Bytes())
	if info, _ := e.st.Stat(g2.Name()); info.MTime.Year() != 2020 {
		t.Errorf("mtime %v", info.MTime)
	}
	if out, err := e.run("stat", e.m(tmp)); err == nil {
		t.Errorf("temp still there after rename:\n%s", out)
	}
	// Unlink drops a temp.
	e.mustRun("cp", e.source("z", []byte("junk")), e.m(".junk"))
	e.mustRun("rm", e.m(".junk"))
	if ls := e.mustRun("ls", "-a", e.mnt); strings.Contains(ls, ".junk") {
		t.Errorf("unlinked temp listed:\n%s", ls)
	}
	for _, d := range []string{"staging", "work/files"} {
		if entries, _ := os.ReadDir(filepath.Join(e.data, d)); len(entries) != 0 {
			t.Errorf("%s directory not empty: %v", d, entries)
		}
	}
}

// A first write to an archive name that is not at offset 0 stages; the
// content is committed at close. A write behind the end of a streamed
// file is refused.
func TestOutOfOrderWritesStage(t *testing.T) {
	// The streaming path (a segment that lands is a plain file: any write
	// order works, see TestLandingRandomWrites).
	e := mountTest(t, envOption{fs: func(o *Options) { o.NoLanding = true }})
	g := seg(10)
	src := e.source("a", g.Bytes())
	py := `import os,sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT|os.O_TRUNC, 0o600)
os.pwrite(fd, data[8192:], 8192)
os.pwrite(fd, data[:8192], 0)
os.close(fd)`
	e.mustRun("python3", "-c", py, e.m(g.Name()), src)
	checkBytes(t, "first page written last", e.stored(g.Name()), g.Bytes())

	// A rewrite behind the end of a streamed file is refused (ESPIPE).
	g2 := seg(11)
	py = `import os,sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY|os.O_CREAT|os.O_TRUNC, 0o600)
os.write(fd, data[:100000])
try:
    os.pwrite(fd, b"b", 10)
except OSError as e:
    print("pwrite", e.errno)
os.write(fd, data[100000:])
os.close(fd)`
	out := e.mustRun("python3", "-c", py, e.m(g2.Name()), e.source("b", g2.Bytes()))
	if !strings.Contains(out, fmt.Sprintf("pwrite %d", syscall.ESPIPE)) {
		t.Errorf("backward write: %s", out)
	}
	checkBytes(t, "streamed file", e.stored(g2.Name()), g2.Bytes())

	// Any other name is a work file: dd with a seek works as on a disk.
	data := []byte(strings.Repeat("walrus!", 50000))
	e.mustRun("dd", "if="+e.source("c", data), "of="+e.m("opaque"), "bs=4096", "seek=3", "status=none")
	want := append(make([]byte, 3*4096), data...)
	checkBytes(t, "dd seek=3 of a work file", []byte(e.mustRun("cat", e.m("opaque"))), want)
	e.notStored("opaque")
}

func TestConcurrentCopies(t *testing.T) {
	e := mountTest(t)
	e.mustRun("mkdir", e.m("db"))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		g := seg(uint64(100+i), func(s *walgen.Segment) { s.Seed = uint64(i) })
		src := e.source(g.Name(), g.Bytes())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command("cp", src, e.m("db", g.Name())).CombinedOutput(); err != nil {
				errs <- fmt.Errorf("%v: %s", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range 16 {
		g := seg(uint64(100+i), func(s *walgen.Segment) { s.Seed = uint64(i) })
		checkBytes(t, g.Name(), e.stored("db/"+g.Name()), g.Bytes())
	}
}
