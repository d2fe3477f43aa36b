package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// coldStartConfig is the configuration of the stores in these tests: small
// packs (so a workload spans many), a bucket, no automatic snapshots.
func coldStartConfig(b backend.Backend) func(*Config) {
	return func(c *Config) {
		repairConfig(c)
		c.PackSize = 1 << 20
		c.Remote, c.RollAge, c.SnapshotBytes = b, 100*time.Millisecond, -1
	}
}

// snapshotWorkload fills a store with a bucket: the repair workload, settled
// and collected, then a snapshot, then more files, a removal and a rename
// after it (in packs the cold start must read). It returns the state a
// rebuild must reproduce, the paths that must stay gone, and the snapshot.
func snapshotWorkload(t *testing.T, dir string, b backend.Backend, after int) (storeState, []string, SnapshotInfo) {
	t.Helper()
	s := openTest(t, dir, coldStartConfig(b))
	w := repairWorkload(t, s, 40, 200)
	if _, err := s.Settle(context.Background(), SettleOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBucket(t, s, "the workload is in the bucket", drained)
	if _, err := s.GC(context.Background(), GCOptions{Threshold: 0.9}); err != nil {
		t.Fatal(err)
	}
	waitBucket(t, s, "GC's deletions are done", noPendingDeletes)
	info, skipped, err := s.WriteSnapshot(context.Background())
	if err != nil || skipped {
		t.Fatalf("snapshot: %v (skipped %v)", err, skipped)
	}
	if info.Files == 0 || info.Blocks == 0 || info.Bytes == 0 {
		t.Fatalf("snapshot holds nothing: %+v", info)
	}
	for i := range after {
		mustPut(t, s, fmt.Sprintf("later/file-%03d.dat", i), randomBytes(200<<10, uint64(9000+i)))
	}
	c3 := names(t, s, "c3")
	gone := []string{"c3/" + c3[0], "c3/" + c3[1]}
	if err := s.Remove(gone[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rename(gone[1], "c3/renamed.dat"); err != nil {
		t.Fatal(err)
	}
	waitBucket(t, s, "the files written after the snapshot are in the bucket", drained)
	want := stateOf(t, s)
	want.Status.Bucket = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return want, append(w.removed, gone...), info
}

// checkColdStarted opens the rebuilt store on the bucket and compares it
// with want, byte for byte (blocks of packs left in the bucket are read
// by range), then verifies it.
func checkColdStarted(t *testing.T, dir string, b backend.Backend, want storeState, removed []string) {
	t.Helper()
	s := openTest(t, dir, coldStartConfig(b))
	got := stateOf(t, s)
	got.Status.Bucket = nil
	compareStates(t, want, got)
	checkRemovedGone(t, s, removed)
	vr, err := s.Verify(context.Background(), "*", nil)
	if err != nil || len(vr.Problems) > 0 {
		t.Fatalf("verify of the cold-started store: %v %+v", err, vr.Problems)
	}
	// It writes to the bucket as the store it replaced.
	mustPut(t, s, "later/after-cold-start.dat", randomBytes(70<<10, 77))
	waitBucket(t, s, "a push after the cold start is uploaded", drained)
}

func journalSeq(t *testing.T, s *Store) uint64 {
	var seq uint64
	if err := s.idx.View(func(x *index.Txn) error {
		j, _, err := x.Journal()
		seq = j.LastSeq
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// A new front-end on an empty data directory rebuilds from the newest
// snapshot and the packs written after it: it downloads only those, the
// rest stays in the bucket, and every file (those committed, removed and
// renamed after the snapshot included) is as before, byte for byte.
func TestColdStartFromSnapshot(t *testing.T) {
	_, b := testBucket(t, true)
	base := t.TempDir()
	want, removed, info := snapshotWorkload(t, filepath.Join(base, "data"), b, 12)

	dir := filepath.Join(base, "cold")
	rep, err := RebuildFromBucket(context.Background(), Config{Dir: dir}, b, RepairOptions{})
	if err != nil {
		t.Fatalf("cold start: %v %+v", err, rep)
	}
	t.Logf("cold start: snapshot %s (%d bytes, %d files), %d of %d packs fetched (%d bytes), %d evicted (%d bytes), %d batches after it, %.2f s",
		rep.Snapshot.Name, rep.Snapshot.Bytes, rep.Snapshot.Files, rep.FetchedPacks, rep.BucketPacks, rep.FetchedBytes,
		rep.EvictedPacks, rep.EvictedBytes, rep.Batches, rep.Seconds)
	switch {
	case rep.Snapshot.Name != info.Name || rep.Base != "snapshot":
		t.Fatalf("rebuilt from %s (%s), want snapshot %s", rep.Snapshot.Name, rep.Base, info.Name)
	case len(rep.Problems) > 0 || rep.Corrections > 0:
		t.Fatalf("problems %v, %d corrections", rep.Problems, rep.Corrections)
	case rep.Batches == 0:
		t.Fatal("no journal batch replayed after the snapshot")
	case rep.EvictedPacks == 0 || rep.FetchedPacks == 0 || rep.FetchedPacks+rep.EvictedPacks > rep.BucketPacks:
		t.Fatalf("fetched %d and left %d of %d packs: a cold start must download only the packs after the snapshot", rep.FetchedPacks, rep.EvictedPacks, rep.BucketPacks)
	}
	if _, err := os.Stat(filepath.Join(dir, evictedMarker)); err != nil {
		t.Fatalf("no %s: an offline repair would rebuild without the packs left in the bucket: %v", evictedMarker, err)
	}
	if _, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{}); !errors.Is(err, ErrEvictedPacks) {
		t.Fatalf("offline repair of a cold-started store: %v, want ErrEvictedPacks", err)
	}
	checkColdStarted(t, dir, b, want, removed)
}

// A block appended just before a snapshot read ScanFrom, and entered in
// the pending map just after (simulated: the snapshot ignores pending
// blocks), lies below ScanFrom in a pack the snapshot knows complete; the
// file naming it commits after the snapshot. The cold start finds the
// file's block in no pack it read, scans further down, and rebuilds it.
func TestColdStartScansFurtherWhenSnapshotFallsShort(t *testing.T) {
	_, b := testBucket(t, false)
	base := t.TempDir()
	s := openTest(t, filepath.Join(base, "data"), coldStartConfig(b))
	for i := range 8 {
		mustPut(t, s, fmt.Sprintf("f/a-%02d.dat", i), randomBytes(150<<10, uint64(i)))
	}
	u, err := s.Create("f/late.dat", FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(300<<10, 99)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upload's blocks are written", func() bool {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		return len(s.pending) >= 4
	})
	if id, ok := s.pw.active(); ok {
		s.pw.sealActive(id)
	}
	s.kickUpload()
	waitBucket(t, s, "the pack holding the pending blocks is uploaded", drained)
	testSnapIgnorePending = true
	info, _, err := s.WriteSnapshot(context.Background())
	testSnapIgnorePending = false
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	waitBucket(t, s, "the late commit is in the bucket", drained)
	want := stateOf(t, s)
	want.Status.Bucket = nil
	s.Close()

	dir := filepath.Join(base, "cold")
	rep, err := RebuildFromBucket(context.Background(), Config{Dir: dir}, b, RepairOptions{})
	if err != nil {
		t.Fatalf("cold start: %v %+v", err, rep)
	}
	if rep.Snapshot.Name != info.Name || rep.Corrections == 0 || rep.ScanFrom >= info.ScanFrom || len(rep.Problems) > 0 {
		t.Fatalf("snapshot %s (want %s), %d corrections, scanned from %d (snapshot: %d), problems %v: the shortfall was not detected",
			rep.Snapshot.Name, info.Name, rep.Corrections, rep.ScanFrom, info.ScanFrom, rep.Problems)
	}
	checkColdStarted(t, dir, b, want, nil)
}

// A damaged newest snapshot (a flipped byte, and with encryption a
// tampered object) is reported and skipped: the next older one serves,
// with more packs replayed. With none usable, ErrNoSnapshot, and the full
// rebuild (FetchPacks + Repair) is the way.
func TestColdStartSkipsDamagedSnapshot(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
			gw, bucket, b := testBucketIn(t, encrypted)
			base := t.TempDir()
			data := filepath.Join(base, "data")
			s := openTest(t, data, coldStartConfig(b))
			for i := range 6 {
				mustPut(t, s, fmt.Sprintf("f/a-%02d.dat", i), randomBytes(90<<10, uint64(i)))
			}
			waitBucket(t, s, "uploaded", drained)
			older, _, err := s.WriteSnapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for i := range 6 {
				mustPut(t, s, fmt.Sprintf("f/b-%02d.dat", i), randomBytes(90<<10, uint64(100+i)))
			}
			waitBucket(t, s, "uploaded", drained)
			newest, _, err := s.WriteSnapshot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := stateOf(t, s)
			want.Status.Bucket = nil
			s.Close()

			flip := func(name string) {
				p := filepath.Join(gw.Root, bucket, "walrus", name)
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				raw[len(raw)/2] ^= 0x10
				if err := os.WriteFile(p, raw, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			flip(newest.Name)
			dir := filepath.Join(base, "cold")
			rep, err := RebuildFromBucket(context.Background(), Config{Dir: dir}, b, RepairOptions{})
			if err != nil {
				t.Fatalf("cold start: %v", err)
			}
			if rep.Snapshot.Name != older.Name || len(rep.SkippedSnapshots) != 1 || !strings.Contains(rep.SkippedSnapshots[0], newest.Name) {
				t.Fatalf("rebuilt from %s, skipped %q; want %s, skipping %s", rep.Snapshot.Name, rep.SkippedSnapshots, older.Name, newest.Name)
			}
			if encrypted && !strings.Contains(rep.SkippedSnapshots[0], "authentication") {
				t.Errorf("a tampered encrypted snapshot was skipped for %q, want its authentication failure", rep.SkippedSnapshots[0])
			}
			t.Logf("skipped: %s", rep.SkippedSnapshots[0])
			checkColdStarted(t, dir, b, want, nil)

			flip(older.Name)
			_, err = RebuildFromBucket(context.Background(), Config{Dir: filepath.Join(base, "none")}, b, RepairOptions{})
			if !errors.Is(err, ErrNoSnapshot) || !strings.Contains(err.Error(), older.Name) {
				t.Fatalf("every snapshot damaged: %v, want ErrNoSnapshot naming them", err)
			}
		})
	}
}

// The uploader writes snapshots by itself: after the first upload pass,
// then once enough bytes were uploaded since (here: any), and the bucket
// keeps only the newest two.
func TestSnapshotPolicy(t *testing.T) {
	_, b := testBucket(t, false)
	s := openTest(t, t.TempDir(), coldStartConfig(b), func(c *Config) { c.SnapshotBytes, c.SnapshotInterval = 1, time.Millisecond })
	var last uint64
	for round := range 4 {
		mustPut(t, s, fmt.Sprintf("p/%02d.dat", round), randomBytes(80<<10, uint64(round)))
		bs := waitBucket(t, s, "a snapshot includes the last push", func(bs *BucketStatus) bool {
			return drained(bs) && bs.Snapshot != nil && bs.Snapshot.Seq > last && bs.Snapshot.Seq >= journalSeq(t, s)
		})
		last = bs.Snapshot.Seq
		if bs.Snapshot.Failures > 0 {
			t.Fatalf("snapshot failures: %+v", bs.Snapshot)
		}
	}
	snaps, err := listSnapshots(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != snapKeep || snaps[0].Name != snapObjectName(last) {
		t.Fatalf("the bucket holds snapshots %v, want the newest %d ending with %s", snaps, snapKeep, snapObjectName(last))
	}
}
