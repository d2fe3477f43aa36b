package fs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// landingEnv mounts a store and requires that segments land (FUSE
// passthrough taken by the kernel).
func landingEnv(t *testing.T, opt ...envOption) *testEnv {
	t.Helper()
	e := mountTest(t, opt...)
	if !e.srv.fsys.passthrough.Load() {
		testenv.Require(t, "FUSE passthrough (kernel refused it: "+e.logs.String()+")")
	}
	return e
}

// realSegments returns up to n real PostgreSQL 15 segments of the corpus.
func realSegments(t *testing.T, n int) []string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join("..", "test", "testdata", "walcache", "[0-9A-F]*"))
	sort.Strings(names)
	var out []string
	for _, p := range names {
		if len(filepath.Base(p)) == 24 {
			if out = append(out, p); len(out) == n {
				break
			}
		}
	}
	if len(out) == 0 {
		testenv.Require(t, "the WAL corpus in test/testdata/walcache")
	}
	return out
}

// cpLands copies real segments into a namespace through the mount: the
// files land, reads through the mount and the store return their bytes
// while landed and after ingest, and status shows no gap.
func TestLandingCpRealSegments(t *testing.T) {
	e := landingEnv(t)
	segs := realSegments(t, 6)
	e.mustRun("mkdir", e.m("ns"))
	resume := e.st.PauseIngest()
	defer resume()
	for _, p := range segs {
		e.mustRun("cp", p, e.m("ns", filepath.Base(p)))
	}
	// The first segment of a namespace is ingested at once (it sets the
	// cluster); the others are landed.
	if n := e.st.Landed(); n != len(segs)-1 {
		t.Fatalf("landed %d files, want %d", n, len(segs)-1)
	}
	check := func(when string) {
		t.Helper()
		ls := strings.Fields(e.mustRun("ls", e.m("ns")))
		if len(ls) != len(segs) {
			t.Fatalf("%s: ls shows %v, want %d segments", when, ls, len(segs))
		}
		for _, p := range segs {
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(p)
			e.mustRun("cmp", p, e.m("ns", name))
			checkBytes(t, when+": store "+name, e.stored("ns/"+name), want)
			fi, err := e.st.Stat("ns/" + name)
			if err != nil || fi.Size != int64(len(want)) {
				t.Fatalf("%s: stat %s: %+v, %v", when, name, fi, err)
			}
			out := e.mustRun("stat", "-c", "%s %a", e.m("ns", name))
			if got, want := strings.TrimSpace(out), strings.TrimSpace(e.mustRun("stat", "-c", "%s %a", p)); got != want {
				t.Fatalf("%s: stat through the mount: %q", when, got)
			}
		}
		ds, err := e.st.DirStatus("ns", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if ds.Segments != len(segs) || len(ds.Problems) != 0 {
			t.Fatalf("%s: status: %d segments, problems %v", when, ds.Segments, ds.Problems)
		}
		for _, tl := range ds.Timelines {
			if len(tl.Gaps) != 0 {
				t.Fatalf("%s: status shows gaps %v", when, tl.Gaps)
			}
		}
	}
	check("landed")
	resume()
	e.st.WaitIngested()
	if n := e.st.Landed(); n != 0 {
		t.Fatalf("after ingest %d files still landed", n)
	}
	check("ingested")
	for _, p := range segs {
		if fi, _ := e.st.Stat("ns/" + filepath.Base(p)); fi.Hash == (store.FileInfo{}).Hash {
			t.Fatalf("%s: no hash after ingest: not a store file", p)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(e.data, "landing", "dirs", "ns")); len(ents) != 0 {
		t.Fatalf("landing directory not empty after ingest: %v", ents)
	}
}

// TestLandingImmutable: a second cp of identical content succeeds, of
// different content fails with EEXIST and keeps the original, both while
// the first is landed and once it is ingested; another cluster's segment
// is refused.
func TestLandingImmutable(t *testing.T) {
	e := landingEnv(t)
	first := e.source("first", seg(1).Bytes())
	e.mustRun("cp", first, e.m(seg(1).Name())) // sets the cluster
	a := seg(2).Bytes()
	b := seg(2, func(g *walgen.Segment) { g.Seed = 7 }).Bytes()
	pa, pb := e.source("a", a), e.source("b", b)
	name := seg(2).Name()
	for _, phase := range []string{"landed", "ingested"} {
		resume := e.st.PauseIngest()
		if phase == "landed" {
			e.mustRun("cp", pa, e.m(name))
			if e.st.Landed() != 1 {
				t.Fatalf("want the segment landed")
			}
		} else {
			resume()
			e.st.WaitIngested()
		}
		e.mustRun("cp", pa, e.m(name)) // identical: succeeds
		out, err := e.run("cp", pb, e.m(name))
		if err == nil || !strings.Contains(out, "File exists") {
			t.Fatalf("%s: cp of different content: %v %s", phase, err, out)
		}
		e.mustRun("cmp", pa, e.m(name))
		checkBytes(t, phase, e.stored(name), a)
		resume()
	}
	other := seg(3, func(g *walgen.Segment) { g.SysID = testSysID + 1 })
	out, err := e.run("cp", e.source("other", other.Bytes()), e.m(other.Name()))
	if err == nil || !strings.Contains(out, "not permitted") {
		t.Fatalf("cp of another cluster's segment: %v %s", err, out)
	}
	e.notStored(other.Name())
	bad := seg(4).Bytes()
	copy(bad[0:2], []byte{0, 0}) // no page magic
	out, err = e.run("cp", e.source("bad", bad), e.m(seg(4).Name()))
	if err == nil || !strings.Contains(out, "Invalid argument") {
		t.Fatalf("cp of an invalid segment: %v %s", err, out)
	}
	e.notStored(seg(4).Name())
}

// TestLandingRemove: rm of a landed file removes it and cancels its ingest.
func TestLandingRemove(t *testing.T) {
	e := landingEnv(t)
	e.mustRun("cp", e.source("s1", seg(1).Bytes()), e.m(seg(1).Name()))
	resume := e.st.PauseIngest()
	e.mustRun("cp", e.source("s2", seg(2).Bytes()), e.m(seg(2).Name()))
	if e.st.Landed() != 1 {
		t.Fatal("want the segment landed")
	}
	e.mustRun("rm", e.m(seg(2).Name()))
	resume()
	e.st.WaitIngested()
	e.notStored(seg(2).Name())
	if out, err := e.run("stat", e.m(seg(2).Name())); err == nil {
		t.Fatalf("removed landed file still visible: %s", out)
	}
	// The name is free again: new content may land under it.
	b := seg(2, func(g *walgen.Segment) { g.Seed = 9 }).Bytes()
	e.mustRun("cp", e.source("s2b", b), e.m(seg(2).Name()))
	e.st.WaitIngested()
	checkBytes(t, "re-archived", e.stored(seg(2).Name()), b)
}

// TestLandingConcurrentCp: concurrent cps of different content to one
// name: exactly one wins, the others get EEXIST, the winner's bytes are
// archived.
func TestLandingConcurrentCp(t *testing.T) { concurrentCps(t, landingEnv(t)) }

// TestConcurrentCpStreaming: the same on the streaming path (each loser's
// O_TRUNC of the archived file must reach its own rewrite: EEXIST at
// close, never EPERM at open).
func TestConcurrentCpStreaming(t *testing.T) {
	concurrentCps(t, mountTest(t, envOption{fs: func(o *Options) { o.NoLanding = true }}))
}

func concurrentCps(t *testing.T, e *testEnv) {
	e.mustRun("cp", e.source("s1", seg(1).Bytes()), e.m(seg(1).Name()))
	const n = 4
	for round := range 5 {
		segno := uint64(2 + round)
		name := seg(segno).Name()
		var srcs [n]string
		var datas [n][]byte
		for i := range n {
			datas[i] = seg(segno, func(g *walgen.Segment) { g.Seed = uint64(100 + i) }).Bytes()
			srcs[i] = e.source(fmt.Sprintf("c%d-%d", round, i), datas[i])
		}
		var wg sync.WaitGroup
		var errs [n]error
		var outs [n][]byte
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = exec.Command("cp", srcs[i], e.m(name)).CombinedOutput()
			}()
		}
		wg.Wait()
		winner := -1
		for i := range n {
			if errs[i] == nil {
				if winner >= 0 {
					t.Fatalf("round %d: two cps succeeded (%d and %d)", round, winner, i)
				}
				winner = i
			} else if !bytes.Contains(outs[i], []byte("File exists")) {
				t.Fatalf("round %d: cp %d: %v %s", round, i, errs[i], outs[i])
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no cp succeeded", round)
		}
		checkBytes(t, "winner", e.stored(name), datas[winner])
		e.mustRun("cmp", srcs[winner], e.m(name))
	}
	e.st.WaitIngested()
}

// TestLandingRandomWrites: a landing segment is a plain file: writes in
// any order, a rewrite behind the end and reading back by its writer work;
// what is there at close is archived.
func TestLandingRandomWrites(t *testing.T) {
	e := landingEnv(t)
	e.mustRun("cp", e.source("s1", seg(1).Bytes()), e.m(seg(1).Name()))
	g := seg(2)
	py := `import os,sys
data = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDWR|os.O_CREAT|os.O_TRUNC, 0o600)
os.pwrite(fd, data[8192:], 8192)
os.pwrite(fd, b"x" * 100, 0)
os.pwrite(fd, data[:8192], 0)
assert os.pread(fd, 8192, 0) == data[:8192]
os.close(fd)`
	e.mustRun("python3", "-c", py, e.m(g.Name()), e.source("a", g.Bytes()))
	e.st.WaitIngested()
	checkBytes(t, "written out of order", e.stored(g.Name()), g.Bytes())
}
