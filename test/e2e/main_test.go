package e2e

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The scenarios mostly wait on PostgreSQL and on each other's I/O, not on
	// the CPU: run more of them at once than GOMAXPROCS (2 here) unless the
	// caller chose -parallel.
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "4")
	}
	code := m.Run()
	walrusproc.RemoveBinary()
	os.Exit(code)
}

// startWalrus skips (or, under CI, fails) without the capabilities, then
// starts a walrus of this test's own on a home the postgres user can reach.
func startWalrus(t *testing.T) *walrusproc.Server {
	t.Helper()
	pgcluster.Require(t)
	return walrusproc.Start(t, pgcluster.TempDir(t))
}

// The commands a stock set-up uses; dir is "" (the archive's root) or a
// namespace with a trailing slash.
func rsyncArchive(w *walrusproc.Server, dir string) string {
	return fmt.Sprintf("archive_command = 'rsync -aq %%p %s'", w.StoreURL(dir+"%f"))
}

func cpArchive(w *walrusproc.Server, dir string) string {
	return fmt.Sprintf("archive_command = 'cp %%p %s'", filepath.Join(w.Mount, dir)+"/%f")
}

func rsyncRestore(w *walrusproc.Server, dir string) string {
	return fmt.Sprintf("restore_command = 'rsync -a %s %%p'", w.FetchURL(dir+"%f"))
}

func cpRestore(w *walrusproc.Server, dir string) string {
	return fmt.Sprintf("restore_command = 'cp %s %%p'", filepath.Join(w.Mount, dir)+"/%f")
}

var segmentName = regexp.MustCompile(`^[0-9A-F]{24}$`)

// assertArchivedIdentical checks that every WAL segment PostgreSQL marked
// archived (archive_status/*.done) is in the archive with exactly the bytes
// of pg_wal's copy (wal_keep_size keeps them from being recycled), and that
// pg_stat_archiver agrees: no failures and one archival per .done file. It
// returns the names of the segments compared.
func assertArchivedIdentical(t *testing.T, pg *pgcluster.Cluster, archived func(name string) ([]byte, error)) []string {
	t.Helper()
	if ready := pg.ArchiveStatus(".ready"); len(ready) > 0 {
		t.Fatalf("files still waiting to be archived: %v", ready)
	}
	done := pg.ArchiveStatus(".done")
	if a := pg.Archiver(); a.Failed != 0 || a.Archived != len(done) {
		t.Fatalf("pg_stat_archiver %+v, want no failures and %d archived (archive_status/*.done)", a, len(done))
	}
	var segs []string
	for _, name := range done {
		if !segmentName.MatchString(name) {
			continue
		}
		got, err := archived(name)
		if err != nil {
			t.Fatalf("%s: PostgreSQL archived it, but reading it back: %v", name, err)
		}
		if want := pg.WALFile(name); !bytes.Equal(got, want) {
			t.Fatalf("%s: archived copy (%d bytes) differs from pg_wal's (%d bytes)", name, len(got), len(want))
		}
		segs = append(segs, name)
	}
	if len(segs) == 0 {
		t.Fatal("PostgreSQL archived no segment")
	}
	return segs
}

// pullAll fetches directory dir of the archive (""=root) through the
// gateway's read-only module with the rsync client, into a new directory.
func pullAll(t *testing.T, w *walrusproc.Server, dir string) string {
	t.Helper()
	out := t.TempDir()
	if o, err := exec.Command("rsync", "-a", w.FetchURL(dir), out+"/").CombinedOutput(); err != nil {
		t.Fatalf("rsync pull of wal_fetch/%s: %v\n%s", dir, err, o)
	}
	return out
}

// names lists the plain files in dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}
