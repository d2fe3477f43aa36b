package fs

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

func TestReadsAtAnyOffset(t *testing.T) {
	e := mountTest(t)
	g := seg(20)
	data := g.Bytes()
	e.put("db/"+g.Name(), data)

	out := filepath.Join(e.src, "restored")
	e.mustRun("cp", e.m("db", g.Name()), out) // restore_command
	got, _ := os.ReadFile(out)
	checkBytes(t, "cp out", got, data)
	checkBytes(t, "cat", []byte(e.mustRun("cat", e.m("db", g.Name()))), data)

	for _, c := range []struct{ bs, skip, count int }{
		{1, 0, 1}, {4097, 3, 5}, {8192, 127, 2}, {65536, 15, 1}, {1 << 20, 0, 1},
		{300000, 3, 10}, // runs past the end
		{512, 2047, 10}, // last sector and beyond
	} {
		got := e.mustRun("dd", "if="+e.m("db", g.Name()), fmt.Sprintf("bs=%d", c.bs),
			fmt.Sprintf("skip=%d", c.skip), fmt.Sprintf("count=%d", c.count), "status=none")
		from := min(c.bs*c.skip, len(data))
		to := min(from+c.bs*c.count, len(data))
		checkBytes(t, fmt.Sprintf("dd bs=%d skip=%d count=%d", c.bs, c.skip, c.count), []byte(got), data[from:to])
	}
}

func TestStatShowsOptionsOwnerAndArchivedMTime(t *testing.T) {
	e := mountTest(t, envOption{fs: func(o *Options) { o.FileMode = 0o640 }})
	g := seg(21)
	e.put(g.Name(), g.Bytes()) // mode 0600, mtime 1700000000
	out := strings.Fields(e.mustRun("stat", "-c", "%s %a %u %g %Y %F", e.m(g.Name())))
	want := []string{fmt.Sprint(1 << 20), "600", "1234", "2345", "1700000000", "regular"}
	if strings.Join(out[:len(want)], " ") != strings.Join(want, " ") {
		t.Errorf("stat: %v, want %v", out, want)
	}
	// chmod and touch -d take effect (rsync -a re-pushing sets them);
	// chown to anyone but the mount's owner fails; the content never changes.
	e.mustRun("chmod", "640", e.m(g.Name()))
	e.mustRun("touch", "-m", "-d", "@1600000000", e.m(g.Name()))
	if info, _ := e.st.Stat(g.Name()); info.Mode != 0o640 || info.MTime.Unix() != 1600000000 {
		t.Errorf("after chmod and touch: mode %v mtime %v", info.Mode, info.MTime)
	}
	out = strings.Fields(e.mustRun("stat", "-c", "%a %Y", e.m(g.Name())))
	if strings.Join(out, " ") != "640 1600000000" {
		t.Errorf("stat after chmod and touch: %v", out)
	}
	if out, err := e.run("chown", "7:7", e.m(g.Name())); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("chown of an archived file: %v %s", err, out)
	}
	if out, err := e.run("truncate", "-s", "0", e.m(g.Name())); err == nil {
		t.Errorf("truncate of an archived file succeeded: %s", out)
	}
	checkBytes(t, "content after setattr", e.stored(g.Name()), g.Bytes())
	// du shows the stored (compressed) bytes, not the logical size.
	blocks := strings.TrimSpace(e.mustRun("stat", "-c", "%b", e.m(g.Name())))
	if info, _ := e.st.Stat(g.Name()); blocks == "0" || blocks != fmt.Sprint((info.Stored+511)/512) || info.Stored >= info.Size {
		t.Errorf("st_blocks %s, stored %d of %d bytes", blocks, info.Stored, info.Size)
	}
	e.mustRun("mkdir", e.m("ns"))
	out = strings.Fields(e.mustRun("stat", "-c", "%a %u %g %F", e.m("ns")))
	if strings.Join(out, " ") != "700 1234 2345 directory" {
		t.Errorf("stat dir: %v", out)
	}
	// cp without -p: mtime is the time of the copy.
	before := time.Now().Add(-time.Second)
	g2 := seg(22)
	e.mustRun("cp", e.source("a", g2.Bytes()), e.m(g2.Name()))
	info, _ := e.st.Stat(g2.Name())
	if info.MTime.Before(before) {
		t.Errorf("mtime %v, copied after %v", info.MTime, before)
	}
}

func TestMissingFilesFailFast(t *testing.T) {
	e := mountTest(t)
	// restore_command asks for files that do not exist, then they appear
	// by another path (the rsync gateway): no negative caching.
	g := seg(30)
	out := filepath.Join(e.src, "x")
	if o, err := e.run("cp", e.m(g.Name()), out); err == nil || !strings.Contains(o, "No such file") {
		t.Fatalf("cp of a missing file: %v %s", err, o)
	}
	if _, err := os.Stat(out); err == nil {
		t.Fatal("failed restore produced a file")
	}
	e.put(g.Name(), g.Bytes())
	e.mustRun("cp", e.m(g.Name()), out)
	if o, err := e.run("cat", e.m("00000002.history")); err == nil {
		t.Fatalf("cat of missing history: %s", o)
	}
	e.put("00000002.history", []byte("1\t0/3000000\tno recovery target specified\n"))
	e.mustRun("cat", e.m("00000002.history"))
}

func TestCpPreserveAllAndXattrs(t *testing.T) {
	e := mountTest(t)
	g := seg(23, func(s *walgen.Segment) { s.UsedPages = 3 })
	src := e.source(g.Name(), g.Bytes())
	when := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(src, when, when)
	e.mustRun("cp", "--preserve=all", src, e.m(g.Name()))
	e.mustRun("mkdir", e.m("a"), e.m("r"))
	e.mustRun("cp", "-a", src, e.m("a", g.Name()))
	e.mustRun("rsync", "-aX", src, e.m("r", g.Name()))
	for _, name := range []string{g.Name(), "a/" + g.Name(), "r/" + g.Name()} {
		// cp sets the times on the open descriptor before close, while
		// the bytes stream into the store; rsync on its temp file.
		if info, _ := e.st.Stat(name); !info.MTime.Equal(when) {
			t.Errorf("%s: archived mtime %v, want %v", name, info.MTime, when)
		}
	}
	if out, err := e.run("setfattr", "-n", "user.x", "-v", "1", e.m(g.Name())); err == nil {
		t.Errorf("setxattr succeeded: %s", out)
	}
}

// Prefetch starts at a read handle's first READ, not at open: opening a
// segment without reading it, or reading one the kernel still caches,
// loads nothing ahead.
func TestPrefetchStartsAtFirstRead(t *testing.T) {
	e := mountTest(t)
	a, b := seg(40), seg(41)
	e.put("db/"+a.Name(), a.Bytes())
	e.put("db/"+b.Name(), b.Bytes())
	e.mustRun("sh", "-c", `exec 3< "$1"`, "sh", e.m("db", a.Name())) // open, close, no read
	if n := e.st.PrefetchRequests(); n != 0 {
		t.Fatalf("open without a read asked for %d prefetches, want 0", n)
	}
	checkBytes(t, "cat", []byte(e.mustRun("cat", e.m("db", a.Name()))), a.Bytes())
	if n := e.st.PrefetchRequests(); n != 1 {
		t.Fatalf("first read asked for %d prefetches, want 1", n)
	}
	checkBytes(t, "cat again", []byte(e.mustRun("cat", e.m("db", a.Name()))), a.Bytes())
	if n := e.st.PrefetchRequests(); n != 1 {
		t.Errorf("a read from the kernel's page cache asked for %d prefetches in all, want 1", n)
	}
	// A page at the start, a page and a readahead window in the middle
	// (what the kernel re-reads of a cached file whose pages it dropped)
	// are no restore streaming the file.
	for _, r := range []struct{ bs, skip string }{{"8k", "0"}, {"8k", "40"}, {"128k", "20"}} {
		e.mustRun("dd", "if="+e.m("db", b.Name()), "of=/dev/null", "bs="+r.bs, "skip="+r.skip, "count=1", "iflag=direct", "status=none")
		if n := e.st.PrefetchRequests(); n != 1 {
			t.Errorf("one %s READ at block %s of a segment asked for %d prefetches in all, want 1", r.bs, r.skip, n)
		}
	}
	checkBytes(t, "cat of the next segment", []byte(e.mustRun("cat", e.m("db", b.Name()))), b.Bytes())
	if n := e.st.PrefetchRequests(); n != 2 {
		t.Errorf("streaming the next segment asked for %d prefetches in all, want 2", n)
	}
}

// A restore's cp of an archived file costs the server no FLUSH (read
// handles open with FOPEN_NOFLUSH) and at most one LSEEK per mount (its
// ENOSYS makes the kernel answer SEEK_DATA/SEEK_HOLE itself; cp asks three
// times per file because st_blocks shows the compressed size), cold or
// warm, and the bytes restored are right. Counted from go-fuse's request
// log.
func TestRestoreCpSkipsFlushAndLseek(t *testing.T) {
	fuseLog := &syncBuffer{}
	log.SetOutput(fuseLog) // go-fuse's debug output goes to the standard logger
	t.Cleanup(func() { log.SetOutput(os.Stderr) })
	e := mountTest(t, envOption{fs: func(o *Options) { o.Debug = true }})
	var segs []walgen.Segment
	for i := uint64(40); i < 43; i++ {
		g := seg(i)
		e.put("db/"+g.Name(), g.Bytes())
		segs = append(segs, g)
	}
	out := filepath.Join(e.src, "restored")
	for round := range 2 { // cold, then from the page cache
		for _, g := range segs {
			e.mustRun("cp", e.m("db", g.Name()), out)
			got, _ := os.ReadFile(out)
			checkBytes(t, fmt.Sprintf("round %d: cp of %s", round, g.Name()), got, g.Bytes())
			os.Remove(out)
		}
	}
	count := func(op string) int {
		n := 0
		for _, l := range strings.Split(fuseLog.String(), "\n") {
			// n18446744073709551615 is go-fuse's probe at mount time
			if strings.Contains(l, ": "+op+" n") && !strings.Contains(l, "n18446744073709551615") {
				n++
			}
		}
		return n
	}
	if count("OPEN") < len(segs) {
		t.Fatalf("%d OPEN requests logged for %d files: the request log is not what this test reads", count("OPEN"), len(segs))
	}
	if n := count("FLUSH"); n != 0 {
		t.Errorf("%d FLUSH requests for %d restores, want 0", n, 2*len(segs))
	}
	if n := count("LSEEK"); n > 1 {
		t.Errorf("%d LSEEK requests for %d restores, want at most 1", n, 2*len(segs))
	}
}

// READ replies are written from the cached blocks themselves, pinned until
// the reply is sent, while a small cache evicts and recycles block buffers
// for other reads: concurrent restores through the mount (prefetch on;
// O_DIRECT, so every read reaches the server, in block-sized and odd-sized
// requests) still get every byte right, round after round.
func TestConcurrentRestoresWhileCacheRecycles(t *testing.T) {
	e := mountTest(t, envOption{store: func(c *store.Config) { c.CacheBytes = 2 * 256 << 10 }})
	var segs []walgen.Segment
	for i := uint64(50); i < 56; i++ {
		g := seg(i, func(g *walgen.Segment) { g.Seed = i })
		e.put("db/"+g.Name(), g.Bytes())
		e.source(g.Name(), g.Bytes())
		segs = append(segs, g)
	}
	const workers = 6
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var sh strings.Builder
			out := filepath.Join(e.src, fmt.Sprintf("out-%d", w))
			for round := range 4 {
				bs := []string{"1M", "100000", "256K"}[(round+w)%3]
				for k := range segs {
					name := segs[(k+w)%len(segs)].Name()
					fmt.Fprintf(&sh, "dd if=%q of=%q iflag=direct bs=%s status=none && cmp %q %q || exit 1\n",
						e.m("db", name), out, bs, out, filepath.Join(e.src, name))
				}
			}
			o, err := exec.Command("sh", "-c", sh.String()).CombinedOutput()
			if err != nil {
				err = fmt.Errorf("restorer %d: %v\n%s", w, err, o)
			}
			errs <- err
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if hits, misses := e.st.CacheStats(); misses < uint64(len(segs)*4) || hits == 0 {
		t.Errorf("cache hits %d, misses %d: the reads did not go through the evicting cache", hits, misses)
	} else {
		t.Logf("cache hits %d, misses %d", hits, misses)
	}
}
