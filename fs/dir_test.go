package fs

import (
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"

	"github.com/walrus-archive/walrus/internal/walgen"
)

func TestLsMkdirRmRmdir(t *testing.T) {
	e := mountTest(t)
	e.mustRun("mkdir", e.m("db1"))
	if out, err := e.run("mkdir", e.m("db1", "sub")); err == nil {
		t.Errorf("nested mkdir succeeded: %s", out)
	}
	if out, err := e.run("mkdir", e.m("db1")); err == nil {
		t.Errorf("mkdir of an existing namespace succeeded: %s", out)
	}
	g := seg(1)
	e.mustRun("cp", e.source("a", g.Bytes()), e.m("db1", g.Name()))
	e.put("root-file", []byte("x"))
	if got := strings.Fields(e.mustRun("ls", e.mnt)); strings.Join(got, " ") != "db1 root-file" {
		t.Errorf("ls /: %v", got)
	}
	if got := strings.Fields(e.mustRun("ls", e.m("db1"))); strings.Join(got, " ") != g.Name() {
		t.Errorf("ls /db1: %v", got)
	}
	if out, err := e.run("rmdir", e.m("db1")); err == nil || !strings.Contains(out, "not empty") {
		t.Errorf("rmdir of a non-empty namespace: %v %s", err, out)
	}
	e.mustRun("rm", e.m("db1", g.Name()))
	e.notStored("db1/" + g.Name())
	if out, err := e.run("rm", e.m("db1", g.Name())); err == nil {
		t.Errorf("second rm succeeded: %s", out)
	}
	e.mustRun("rmdir", e.m("db1"))
	if ok, _ := e.st.IsDir("db1"); ok {
		t.Error("namespace still there after rmdir")
	}
	e.mustRun("mkdir", e.m("db1"))                  // again, now empty
	e.mustRun("mv", e.m("root-file"), e.m("moved")) // an archived file moves within the store
	checkBytes(t, "moved", e.stored("moved"), []byte("x"))
	e.notStored("root-file")
}

func TestPgArchiveCleanup(t *testing.T) {
	bin := "/usr/lib/postgresql/15/bin/pg_archivecleanup"
	if _, err := exec.LookPath(bin); err != nil {
		testenv.Require(t, bin)
	}
	e := mountTest(t)
	var names []string
	for i := uint64(1); i <= 10; i++ {
		g := seg(i, func(s *walgen.Segment) { s.UsedPages = 1 })
		e.put(g.Name(), g.Bytes())
		names = append(names, g.Name())
	}
	e.put("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	e.mustRun(bin, e.mnt, names[4])
	got := strings.Fields(e.mustRun("ls", e.mnt))
	want := append([]string{"00000002.history"}, names[4:]...)
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("after cleanup: %v, want %v", got, want)
	}
}

func TestReadOnly(t *testing.T) {
	e := mountTest(t, envOption{fs: func(o *Options) { o.ReadOnly = true }})
	g := seg(1)
	e.put(g.Name(), g.Bytes())
	for _, args := range [][]string{
		{"rm", e.m(g.Name())},
		{"cp", e.source("a", g.Bytes()), e.m("new")},
		{"mkdir", e.m("ns")},
		{"touch", e.m(g.Name())},
	} {
		out, err := e.run(args[0], args[1:]...)
		if err == nil || !strings.Contains(out, "Read-only file system") {
			t.Errorf("%v: %v %s", args, err, out)
		}
	}
	checkBytes(t, "still readable", []byte(e.mustRun("cat", e.m(g.Name()))), g.Bytes())
}

func TestStatfsReportsDataDirectory(t *testing.T) {
	e := mountTest(t)
	var want syscall.Statfs_t
	if err := syscall.Statfs(e.data, &want); err != nil {
		t.Fatal(err)
	}
	out := strings.Fields(e.mustRun("stat", "-f", "-c", "%b %S", e.mnt))
	if out[0] != fmt.Sprint(want.Blocks) || out[1] != fmt.Sprint(want.Frsize) {
		t.Errorf("statfs: %v, data dir has %d blocks of %d", out, want.Blocks, want.Frsize)
	}
	e.mustRun("df", e.mnt)
}

// ls lists 100 000 names completely. Its speed (target: under 1 s) is
// measured by TestCompareLs under make bench, not asserted here.
func TestLsHundredThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a store with 100 000 files")
	}
	e := mountTest(t)
	const n = 100_000
	start := time.Now()
	fill(t, e, "big", n)
	t.Logf("stored %d files in %v", n, time.Since(start))

	start = time.Now()
	out := e.mustRun("ls", e.m("big"))
	took := time.Since(start)
	if got := strings.Count(out, "\n"); got != n {
		t.Fatalf("ls listed %d names, want %d", got, n)
	}
	t.Logf("ls of %d names: %v", n, took)
}

// fill stores n empty opaque files in dir, many at once so the store
// group-commits them.
func fill(t testing.TB, e *testEnv, dir string, n int) {
	if err := e.st.Mkdir(dir); err != nil {
		t.Fatal(err)
	}
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				u, err := e.st.Create(fmt.Sprintf("%s/f%06d", dir, i), storeMeta)
				if err == nil {
					_, err = u.Commit()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
