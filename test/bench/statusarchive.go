//go:build bench

package bench

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// Targets of issue 12 for `walrus status` on 1 000 000 segments.
const (
	StatusTargetSeconds = 2.0
	StatusTargetRSS     = 256 << 20
)

// StatusArchive is what BuildStatusArchive made, for checking the report.
type StatusArchive struct {
	segments     int    // full segments
	branch       uint64 // timeline 2 begins in this segment; timeline 1's is its .partial
	gap          uint64 // timeline 1 lacks gap, gap+1, gap+2
	last         uint64 // the newest segment, on timeline 2
	firstBackup  string // on timeline 1, before the gap
	secondBackup string // on timeline 2
}

const scaleSegSize = 16 << 20

// BuildStatusArchive makes the directory "c" of n full segments: timeline
// 1 from segment 1 to branch-1 (without the three segments of the gap) and
// the .partial of branch; timeline 2 from branch to n+3.
func BuildStatusArchive(t testing.TB, dir string, n int) StatusArchive {
	a := StatusArchive{segments: n, branch: uint64(n) * 3 / 4, gap: uint64(n) / 2}
	a.last = uint64(n) + 3
	s, err := store.Open(store.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	seg := func(tli uint32, segno uint64) []byte {
		return walgen.Segment{TLI: tli, SegNo: segno, SysID: 7, SegSize: scaleSegSize, UsedPages: 1}.Bytes()
	}
	put := func(name string, b []byte) {
		t.Helper()
		u, err := s.Create("c/"+name, store.FileMeta{Mode: 0o600, MTime: time.Now()})
		if err == nil {
			_, err = u.Write(b)
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
	put(segFile(1, 1), seg(1, 1))
	put(segFile(1, a.branch)+".partial", seg(1, a.branch))
	switchLSN := wal.SegmentStart(a.branch, scaleSegSize) + 0x1a0
	put(wal.HistoryFileName(2), fmt.Appendf(nil, "1\t%s\tno recovery target specified\n", switchLSN))
	a.firstBackup = putBackup(t, put, 1, a.gap/2)
	a.secondBackup = putBackup(t, put, 2, a.last-10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	loadSegmentRecords(t, dir, a)
	// A first open does whatever one-time work the store wants on an index
	// it has not seen (a checkpoint of records no pack journals) and stays
	// open until badger's compactions of the bulk load are done, so the
	// measured runs see an archive as a long-running walrus serve leaves it.
	if s, err = store.Open(store.Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	waitTablesSettle(t, filepath.Join(dir, "index"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return a
}

// waitTablesSettle waits until the set of index tables has not changed for
// 5 s (compaction is idle), for at most 3 minutes.
func waitTablesSettle(t testing.TB, dir string) {
	t.Helper()
	tables := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		return strings.Join(m, " ")
	}
	last, since := tables(), time.Now()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if now := tables(); now != last {
			last, since = now, time.Now()
		} else if time.Since(since) >= 5*time.Second {
			return
		}
	}
	t.Logf("index tables in %s still changing after 3 minutes", dir)
}

func segFile(tli uint32, segno uint64) string { return wal.SegmentFileName(tli, segno, scaleSegSize) }

// putBackup archives the .backup file of a backup on timeline tli that
// starts and stops in segment segno, and returns its name.
func putBackup(t testing.TB, put func(string, []byte), tli uint32, segno uint64) string {
	start := wal.SegmentStart(segno, scaleSegSize) + 0x28
	stop := start + 0x1000
	when := time.Now().UTC().Format("2006-01-02 15:04:05")
	body := fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: %s UTC\nLABEL: scale %d\nSTART TIMELINE: %d\nSTOP TIME: %s UTC\nSTOP TIMELINE: %d\n",
		start, segFile(tli, segno), stop, segFile(tli, segno), start+0x60, when, tli, tli, when, tli)
	name := fmt.Sprintf("%s.%08X.backup", segFile(tli, segno), uint32(start)%scaleSegSize)
	put(name, []byte(body))
	return name
}

// loadSegmentRecords writes the file records of the synthetic segments
// into the index of the closed store in dir, and counts them in the
// directory's and the archive's totals.
func loadSegmentRecords(t testing.TB, dir string, a StatusArchive) {
	db, err := index.Open(filepath.Join(dir, "index"), index.Options{MemTableSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var batch []uint64
	var tlis []uint32
	added := 0
	flush := func() {
		err := db.Update(func(x *index.Txn) error {
			for i, segno := range batch {
				if err := x.PutFile(syntheticSegment(tlis[i], segno)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		added += len(batch)
		batch, tlis = batch[:0], tlis[:0]
	}
	for segno := uint64(2); segno <= a.last; segno++ {
		tli := uint32(1)
		if segno >= a.branch {
			tli = 2
		}
		if segno >= a.gap && segno < a.gap+3 {
			continue
		}
		batch, tlis = append(batch, segno), append(tlis, tli)
		if len(batch) == 8000 {
			flush()
		}
	}
	flush()
	err = db.Update(func(x *index.Txn) error {
		d, err := x.Dir("c")
		if err != nil {
			return err
		}
		st, err := x.Stats()
		if err != nil {
			return err
		}
		d.Files, d.Segments, d.LogicalBytes = d.Files+int64(added), d.Segments+int64(added), d.LogicalBytes+int64(added)*scaleSegSize
		st.Files, st.LogicalBytes = st.Files+int64(added), st.LogicalBytes+int64(added)*scaleSegSize
		if err := x.PutDir(d); err != nil {
			return err
		}
		return x.PutStats(st)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// syntheticSegment is the record of a busy segment: 16 distinct 1 MiB
// blocks.
func syntheticSegment(tli uint32, segno uint64) *index.File {
	now := time.Now().UnixNano()
	f := &index.File{Dir: "c", Name: segFile(tli, segno), Size: scaleSegSize, Mode: 0o600, MTime: now, Archived: now,
		BlockSize: 1 << 20, Blocks: make([]index.Hash, scaleSegSize>>20), Stored: scaleSegSize / 15}
	binary.BigEndian.PutUint64(f.Hash[:], segno)
	for i := range f.Blocks {
		binary.BigEndian.PutUint64(f.Blocks[i][:], segno)
		f.Blocks[i][8], f.Blocks[i][31] = byte(i), 1
	}
	return f
}

// Check compares `walrus status --json` with what was built.
func (a StatusArchive) Check(t testing.TB, out []byte) {
	t.Helper()
	var rep store.StatusReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if len(rep.Dirs) != 1 {
		t.Fatalf("status: %d dirs, want 1", len(rep.Dirs))
	}
	d := rep.Dirs[0]
	want := []store.TimelineStatus{
		{TLI: 1, First: segFile(1, 1), Last: segFile(1, a.branch-1), Segments: int(a.branch - 1 - 3),
			Partial: []string{segFile(1, a.branch) + ".partial"}, Gaps: []store.Gap{{From: segFile(1, a.gap), To: segFile(1, a.gap+2), Count: 3}}},
		{TLI: 2, Parent: 1, History: true, First: segFile(2, a.branch), Last: segFile(2, a.last), Segments: int(a.last - a.branch + 1)},
	}
	ok := d.Segments == a.segments && d.LastSegment == segFile(2, a.last) && len(d.Timelines) == 2 &&
		len(d.Backups) == 2 && d.Backups[0].Name == a.firstBackup && d.Backups[0].Restorable &&
		d.Backups[1].Name == a.secondBackup && d.Backups[1].Restorable && d.LastArchived != nil
	for i := 0; ok && i < 2; i++ {
		g, w := d.Timelines[i], want[i]
		ok = g.TLI == w.TLI && g.Parent == w.Parent && g.History == w.History && g.First == w.First && g.Last == w.Last &&
			g.Segments == w.Segments && len(g.Partial) == len(w.Partial) && len(g.Gaps) == len(w.Gaps) &&
			(len(w.Gaps) == 0 || g.Gaps[0] == w.Gaps[0])
	}
	if !ok {
		t.Errorf("status of %d segments: got %s", a.segments, out)
	}
}
