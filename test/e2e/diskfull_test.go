package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// fullDiskCycles: WALRUS_SOAK_FULLDISK_CYCLES, else 10 under WALRUS_SOAK,
// else 3.
func fullDiskCycles() int {
	if n, err := strconv.Atoi(os.Getenv("WALRUS_SOAK_FULLDISK_CYCLES")); err == nil && n > 0 {
		return n
	}
	if os.Getenv("WALRUS_SOAK") != "" {
		return 10
	}
	return 3
}

// walGenerator switches WAL every interval until stop is called, as a busy
// primary does, so the archiver always has something to archive.
func walGenerator(pg *pgcluster.Cluster, interval time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			pg.TryQuery("select pg_switch_wal() from (select pg_logical_emit_message(false, 'walrus-e2e', 'tick')) m")
			select {
			case <-ctx.Done():
			case <-time.After(interval): // the generator's pace, not synchronisation
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// TestFullDiskArchiving: walrus serve's data directory is a small
// filesystem; PostgreSQL archives through the mount while WAL keeps coming.
// Each cycle another writer fills the filesystem to its last block:
// archiving fails (cp gets ENOSPC) but the server stays up, and walrus rm,
// retain, gc and status work on the full disk; then the space is freed and
// the archiver must catch up, without a restart of anything, within
// seconds. At the end every segment still listed reads back byte-identical
// to pg_wal's copy, and the server exits cleanly on SIGTERM.
func TestFullDiskArchiving(t *testing.T) {
	t.Parallel()
	pgcluster.Require(t)
	home := pgcluster.TempDir(t)
	data := filepath.Join(home, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.MountSmallFS(t, data, 192<<20)
	w := walrusproc.Start(t, home, "--min-free", strconv.Itoa(8<<20))
	pg := pgcluster.Init(t, "primary", pgcluster.Options{Conf: []string{"archive_mode = on", cpArchive(w, "")}})
	pg.Start()
	pg.Pgbench("-i", "-q", "-s", "2")
	pg.BaseBackup("b1")
	pg.Pgbench("-n", "-c", "2", "-j", "2", "-T", "2")
	pg.BaseBackup("b2")
	stopWAL := walGenerator(pg, 250*time.Millisecond)
	defer stopWAL()

	filler := filepath.Join(data, "filler")
	cycles := fullDiskCycles()
	var catchUp []time.Duration
	for c := 0; c < cycles; c++ {
		last, _ := pg.SwitchWAL()
		pg.WaitArchived(time.Minute, last)
		failed := pg.Archiver().Failed
		testenv.Fill(t, filler, 0)
		// An outage, not a blip: archiving fails and segments pile up.
		pgcluster.Eventually(t, time.Minute, "archive_command to fail and 5 segments to wait on the full disk", func() (bool, string) {
			a := pg.Archiver()
			return a.Failed > failed && len(pg.ArchiveStatus(".ready")) >= 5, fmt.Sprintf("%+v", a)
		})
		// The server is alive and its admin commands work on the full disk.
		done := pg.ArchiveStatus(".done")
		if out, code, err := w.CLI("rm", done[0]); err != nil && code != 3 {
			t.Fatalf("cycle %d: walrus rm on a full disk: exit %d: %v\n%s", c, code, err, out)
		}
		w.MustCLI("retain", "--keep-backups", "1")
		w.MustCLI("gc")
		w.MustCLI("status")
		if !walrusproc.Mounted(w.Mount) {
			t.Fatalf("cycle %d: the mount is gone", c)
		}
		waiting := pg.ArchiveStatus(".ready")
		if len(waiting) == 0 {
			t.Fatalf("cycle %d: nothing waits to be archived while the disk is full", c)
		}
		os.Remove(filler)
		start := time.Now()
		pg.WaitArchived(2*time.Minute, waiting...)
		catchUp = append(catchUp, time.Since(start))
		t.Logf("cycle %d: %d segments waited on the full disk; archived %v after space returned (pg_stat_archiver %+v)",
			c, len(waiting), catchUp[c].Round(10*time.Millisecond), pg.Archiver())
	}
	stopWAL()
	last, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, last)
	listed := names(t, w.Mount)
	compared := 0
	for _, name := range pg.ArchiveStatus(".done") {
		if !segmentName.MatchString(name) || !slices.Contains(listed, name) {
			continue // removed by rm or retain above
		}
		got, err := os.ReadFile(filepath.Join(w.Mount, name))
		if err != nil || !bytes.Equal(got, pg.WALFile(name)) {
			t.Fatalf("%s: archived copy differs from pg_wal's (err %v)", name, err)
		}
		compared++
	}
	if compared == 0 {
		t.Fatal("no archived segment left to compare")
	}
	slices.Sort(catchUp)
	t.Logf("%d full-disk cycles; catch-up after space returned: median %v, max %v; %d segments compared",
		cycles, catchUp[len(catchUp)/2].Round(10*time.Millisecond), catchUp[len(catchUp)-1].Round(10*time.Millisecond), compared)
	if max := catchUp[len(catchUp)-1]; max > 30*time.Second {
		t.Errorf("archiving took %v to catch up after space returned", max)
	}
	pg.Stop("fast")
	w.Verify()
}

// servePID finds the walrus serve process running on home.
func servePID(t *testing.T, home string) int {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if slices.Contains(args, "serve") && slices.Contains(args, home) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	t.Fatalf("no walrus serve process for %s", home)
	return 0
}

// packFDs counts the descriptors pid holds on pack files.
func packFDs(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if strings.HasSuffix(target, ".pack") {
			n++
		}
	}
	return n
}

// TestPutPerCallBoundsPacksAndDescriptors: with the documented
// `archive_command = 'walrus ... put %f %p'` and no server, every call
// opens the store; the packs must not grow with the calls. Then walrus serve
// reads every file back through the mount, and the descriptors it keeps on
// packs stay bounded.
func TestPutPerCallBoundsPacksAndDescriptors(t *testing.T) {
	t.Parallel()
	pgcluster.Require(t)
	n := 200
	if os.Getenv("WALRUS_SOAK") != "" {
		n = 1000
	}
	home := pgcluster.TempDir(t)
	data := filepath.Join(home, "data")
	bin := walrusproc.Binary(t)
	if out, err := exec.Command(bin, "--data", data, "init").CombinedOutput(); err != nil {
		t.Fatalf("walrus init: %v\n%s", err, out)
	}
	src := filepath.Join(t.TempDir(), "file")
	start := time.Now()
	for i := range n {
		if err := os.WriteFile(src, []byte(strings.Repeat(fmt.Sprintf("file %d\n", i), 2000)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(bin, "--data", data, "put", fmt.Sprintf("f%04d", i), src).CombinedOutput(); err != nil {
			t.Fatalf("walrus put %d: %v\n%s", i, err, out)
		}
	}
	perCall := time.Since(start) / time.Duration(n)
	packs, _ := filepath.Glob(filepath.Join(data, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d calls of walrus put left %d packs, want 1", n, len(packs))
	}
	w := walrusproc.Start(t, home)
	pid := servePID(t, home)
	for i := range n {
		if _, err := os.ReadFile(filepath.Join(w.Mount, fmt.Sprintf("f%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	fds := packFDs(t, pid)
	if fds > 33 {
		t.Fatalf("walrus serve holds %d descriptors on packs", fds)
	}
	t.Logf("%d calls of walrus put (%v each): %d pack; walrus serve after reading them all: %d pack descriptors",
		n, perCall.Round(time.Millisecond), len(packs), fds)
}
