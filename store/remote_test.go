package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"

	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// testBucket starts a versitygw with a new bucket and returns the gateway
// and a backend on it under the Stack decorators, tuned to fail fast when
// the gateway is stopped (an outage), optionally encrypted.
func testBucket(t *testing.T, encrypted bool) (*backendtest.VersityGW, backend.Backend) {
	t.Helper()
	gw, _, b := testBucketIn(t, encrypted)
	return gw, b
}

// testBucketIn is testBucket, with the new bucket's name (its objects
// are under gw.Root/BUCKET/walrus/).
func testBucketIn(t *testing.T, encrypted bool) (*backendtest.VersityGW, string, backend.Backend) {
	t.Helper()
	gw := backendtest.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "walrus/",
		AccessKey: gw.AccessKey, SecretKey: gw.Secret})
	if err != nil {
		t.Fatal(err)
	}
	var b backend.Backend = backend.Stack(s3, backend.StackOptions{Attempts: 2, BackoffBase: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, Timeout: 5 * time.Second})
	if encrypted {
		var k backend.Key
		if _, err := rand.Read(k[:]); err != nil {
			t.Fatal(err)
		}
		b = backend.NewEncrypted(b, k)
	}
	return gw, bucket, b
}

func remoteConfig(b backend.Backend, rollAge time.Duration) func(*Config) {
	return func(c *Config) {
		c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 512<<10, 1<<20
		c.Remote, c.RollAge = b, rollAge
	}
}

func waitBucket(t *testing.T, s *Store, what string, cond func(*BucketStatus) bool) *BucketStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.WaitBucket(ctx, cond); err != nil {
		t.Fatalf("waiting until %s: %v", what, err)
	}
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Bucket
}

func drained(b *BucketStatus) bool { return !b.Lagging() && !b.Failing }

// checkBucketHoldsPacks compares every pack the index marks uploaded with
// its object: the committed bytes, exactly. It returns how many.
func checkBucketHoldsPacks(t *testing.T, s *Store, b backend.Backend) int {
	t.Helper()
	var packs []*index.Pack
	if err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Uploaded && !p.Retired {
				packs = append(packs, p)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range packs {
		local, err := os.ReadFile(packFileName(s.packs.dir, p.ID))
		if err != nil {
			t.Fatal(err)
		}
		got, err := backendtest.ReadAll(context.Background(), b, packObjectName(p.ID))
		if err != nil {
			t.Fatalf("pack %d marked uploaded: %v", p.ID, err)
		}
		if !bytes.Equal(got, local[:p.Committed]) {
			t.Fatalf("pack %d: the bucket holds %d bytes that differ from the %d committed", p.ID, len(got), p.Committed)
		}
	}
	return len(packs)
}

// Sealed packs are uploaded and marked; the active pack is sealed by age
// and uploaded too; nothing is uploaded twice needlessly; a reopen
// without a bucket keeps the marks and does not resume an uploaded pack.
func TestBucketUploadsSealedPacks(t *testing.T) {
	_, b := testBucket(t, false)
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(b, 200*time.Millisecond))
	for i := range 12 {
		mustPut(t, s, fmt.Sprintf("f%02d", i), randomBytes(150<<10, uint64(i)))
	}
	bs := waitBucket(t, s, "every pack is uploaded", drained)
	if bs.UploadedPacks < 4 || bs.Failures != 0 || bs.WaitingBytes != 0 {
		t.Fatalf("backlog after draining: %+v", bs)
	}
	if n := checkBucketHoldsPacks(t, s, b); n != bs.UploadedPacks {
		t.Fatalf("%d packs checked, %d uploaded", n, bs.UploadedPacks)
	}
	if bs.Uploads != int64(bs.UploadedPacks) {
		t.Errorf("%d uploads for %d packs: some were sent twice", bs.Uploads, bs.UploadedPacks)
	}
	uploaded := bs.UploadedPacks
	s.Close()

	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 })
	if st, _ := s.Status(); st.Bucket != nil {
		t.Fatalf("status without a bucket shows one: %+v", st.Bucket)
	}
	if id, ok := s.pw.active(); ok {
		t.Fatalf("reopen resumed pack %d, which is in the bucket", id)
	}
	n := 0
	s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Uploaded {
				n++
			}
			return nil
		})
	})
	if n != uploaded {
		t.Fatalf("%d packs marked uploaded after reopen, want %d", n, uploaded)
	}
	for i := range 12 {
		if got := readAll(t, s, fmt.Sprintf("f%02d", i)); !bytes.Equal(got, randomBytes(150<<10, uint64(i))) {
			t.Fatalf("f%02d differs", i)
		}
	}
}

// A bucket that is down: pushes go on, the backlog grows and shows the
// failure; it drains when the bucket is back. Packs sealed while it was
// down and not uploaded before Close are queued again at Open.
func TestBucketOutageBacklogAndRequeue(t *testing.T) {
	gw, b := testBucket(t, true)
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	mustPut(t, s, "before", randomBytes(600<<10, 1))
	waitBucket(t, s, "the first packs are uploaded", drained)

	gw.Stop()
	for i := range 8 {
		mustPut(t, s, fmt.Sprintf("down%d", i), randomBytes(200<<10, uint64(10+i))) // acknowledged while the bucket is down
	}
	bs := waitBucket(t, s, "the backlog shows the outage", func(b *BucketStatus) bool { return b.Failing && b.WaitingPacks >= 3 })
	if bs.WaitingBytes < 3*packHeaderLen || bs.Failures == 0 || bs.LastError == "" {
		t.Fatalf("backlog during the outage: %+v", bs)
	}
	gw.Restart(t)
	bs = waitBucket(t, s, "the backlog drains after the outage", drained)
	if bs.WaitingPacks != 0 || bs.Failing {
		t.Fatalf("after draining: %+v", bs)
	}
	checkBucketHoldsPacks(t, s, b)

	// Down again, and closed with a backlog: reopened with the bucket
	// back, every sealed pack not marked is uploaded.
	gw.Stop()
	for i := range 6 {
		mustPut(t, s, fmt.Sprintf("down-again%d", i), randomBytes(200<<10, uint64(30+i)))
	}
	bs = waitBucket(t, s, "a backlog before Close", func(b *BucketStatus) bool { return b.Failing && b.WaitingPacks >= 2 })
	waiting := bs.WaitingPacks
	s.Close()
	gw.Restart(t)
	s = openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	bs = waitBucket(t, s, "the backlog left by Close drains after Open", drained)
	if bs.Uploads < int64(waiting) {
		t.Fatalf("%d uploads after reopen, %d packs were waiting", bs.Uploads, waiting)
	}
	checkBucketHoldsPacks(t, s, b)
}

// GC does not rewrite or retire a pack that is not in the bucket yet.
func TestBucketGCKeepsPacksNotUploaded(t *testing.T) {
	gw, b := testBucket(t, false)
	s := openTest(t, t.TempDir(), remoteConfig(b, time.Hour))
	gw.Stop()
	for i := range 8 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(200<<10, uint64(i)))
	}
	for i := range 8 {
		if err := s.Remove(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted+rep.PacksRewritten != 0 {
		t.Fatalf("GC collected packs that are not in the bucket: %+v", rep)
	}
	gw.Restart(t)
	waitBucket(t, s, "the packs are uploaded", func(b *BucketStatus) bool { return b.WaitingPacks == 0 && !b.Failing })
	rep, err = s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted == 0 {
		t.Fatalf("GC collected nothing once the packs were uploaded: %+v", rep)
	}
	// The retired packs' objects go once nothing needs them (remotegc.go):
	// once the checkpoint GC wrote is in the bucket (RollAge is an hour).
	if id, ok := s.pw.active(); ok {
		s.pw.sealActive(id)
	}
	s.kickUpload()
	waitBucket(t, s, "the retired packs' objects are deleted", noPendingDeletes)
	if retired := checkBucketIsLivePacks(t, s, b); retired < rep.PacksDeleted {
		t.Fatalf("%d retired records after GC retired %d packs", retired, rep.PacksDeleted)
	}
}

// The whole archive comes back from the bucket alone: a store lived
// through (two clusters, retention, rm, rename, metadata changes, GC) with
// an encrypted bucket; once the backlog is empty its data directory is
// deleted, FetchPacks and Repair build a new one, which holds the same
// files, byte for byte, and none of the removed ones.
func TestBucketRebuildFromBucket(t *testing.T) {
	_, b := testBucket(t, true)
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	s := openTest(t, dir, func(c *Config) {
		repairConfig(c)
		c.PackSize = 1 << 20
		c.Remote, c.RollAge = b, 100*time.Millisecond
	})
	w := repairWorkload(t, s, 40, 200)
	// The workload's GC could collect only what was uploaded by then; once
	// everything is, GC collects (retires packs whose objects stay in the
	// bucket, which repair must cope with). Threshold 1: any pack holding
	// dead bytes (retention's removals left some in sealed, uploaded
	// packs); at 0.9 whether a pack qualified depended on how the roll age
	// and the settler had cut the packs (under load: none did).
	waitBucket(t, s, "the workload is in the bucket", drained)
	gcRep, err := s.GC(context.Background(), GCOptions{Threshold: 1})
	if err != nil {
		t.Fatal(err)
	}
	if gcRep.PacksRewritten+gcRep.PacksDeleted+w.gcRep.PacksRewritten+w.gcRep.PacksDeleted == 0 {
		t.Fatalf("GC collected nothing, even once everything was uploaded: %+v, %+v", w.gcRep, gcRep)
	}
	want := stateOf(t, s)
	bs := waitBucket(t, s, "the archive is in the bucket", drained)
	t.Logf("%d files, %d packs uploaded (%d bytes), gc %+v then %+v", len(want.Files), bs.UploadedPacks, bs.UploadedBytes, w.gcRep, gcRep)
	want.Status.Bucket = nil // the rebuilt store is opened without one
	s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	dir2 := filepath.Join(base, "rebuilt")
	start := time.Now()
	fr, err := FetchPacks(context.Background(), b, dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(context.Background(), Config{Dir: dir2}, RepairOptions{})
	if err != nil || len(rep.Problems) > 0 || rep.Verify == nil || len(rep.Verify.Problems) > 0 {
		t.Fatalf("repair of the fetched packs: %v %+v", err, rep)
	}
	t.Logf("fetched %d packs (%d bytes) and repaired %d files in %.2fs", fr.Packs, fr.Bytes, rep.Files, time.Since(start).Seconds())
	s2 := openTest(t, dir2, func(c *Config) { repairConfig(c); c.PackSize = 1 << 20 })
	compareStates(t, want, stateOf(t, s2))
	checkRemovedGone(t, s2, w.removed)
	marked, err := s2.MarkUploaded(fr.Sizes)
	if err != nil || marked == 0 {
		t.Fatalf("MarkUploaded: %d, %v", marked, err)
	}
	s2.Close()

	// Fetching again into the rebuilt directory is refused: it has an index.
	if _, err := FetchPacks(context.Background(), b, dir2, nil); err == nil {
		t.Fatal("FetchPacks into a data directory with an index succeeded")
	}
	// A served rebuilt store does not send the fetched packs back.
	s3 := openTest(t, dir2, func(c *Config) {
		repairConfig(c)
		c.PackSize, c.Remote, c.RollAge = 1<<20, b, 100*time.Millisecond
	})
	bs = waitBucket(t, s3, "the rebuilt store is in the bucket", drained)
	if bs.Uploads > int64(len(fr.Sizes)-marked)+1 {
		t.Fatalf("the rebuilt store uploaded %d packs; %d of %d came from the bucket marked", bs.Uploads, marked, len(fr.Sizes))
	}
}

// One prefix, one store: a second store on the same prefix uploads
// nothing and says why; the first one's objects stay as they were. A
// bucket emptied under a store gets every pack again after a reopen.
func TestBucketPrefixBelongsToOneStore(t *testing.T) {
	_, b := testBucket(t, false)
	dir1 := t.TempDir()
	s1 := openTest(t, dir1, remoteConfig(b, 100*time.Millisecond))
	mustPut(t, s1, "one", randomBytes(300<<10, 1))
	waitBucket(t, s1, "the first store is in the bucket", drained)
	before := bucketListing(t, b)

	s2 := openTest(t, t.TempDir(), remoteConfig(b, 100*time.Millisecond))
	mustPut(t, s2, "two", randomBytes(300<<10, 2))
	bs := waitBucket(t, s2, "the second store is refused", func(b *BucketStatus) bool { return b.Failing })
	if !strings.Contains(bs.LastError, "another store") || bs.Uploads != 0 {
		t.Fatalf("second store on the prefix: %+v", bs)
	}
	s2.Close()
	if got := bucketListing(t, b); got != before {
		t.Fatalf("the second store changed the bucket:\n%s\nwas\n%s", got, before)
	}
	checkBucketHoldsPacks(t, s1, b)

	// Empty the bucket: the marks say nothing about it any more.
	s1.Close()
	if err := b.List(context.Background(), "", func(in backend.Info) error { return b.Delete(context.Background(), in.Name) }); err != nil {
		t.Fatal(err)
	}
	s1 = openTest(t, dir1, remoteConfig(b, 100*time.Millisecond))
	bs = waitBucket(t, s1, "an emptied bucket is filled again", drained)
	if bs.Uploads == 0 || checkBucketHoldsPacks(t, s1, b) != bs.UploadedPacks {
		t.Fatalf("after emptying the bucket: %+v", bs)
	}
	if got := bucketListing(t, b); got != before {
		t.Fatalf("refilled bucket:\n%s\nwas\n%s", got, before)
	}
}

// bucketListing lists the bucket's objects but the index snapshots (a
// store writes them on its own schedule, snapshot.go).
func bucketListing(t *testing.T, b backend.Backend) string {
	t.Helper()
	var names []string
	if err := b.List(context.Background(), "", func(in backend.Info) error {
		if strings.HasPrefix(in.Name, remoteSnapPrefix) {
			return nil
		}
		names = append(names, fmt.Sprintf("%s %d", in.Name, in.Size))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return strings.Join(names, "\n")
}

// passes waits until the uploader has finished n passes that began after
// the call (each pass ends with a notify).
func passes(t *testing.T, s *Store, n int) {
	t.Helper()
	for i := 0; i <= n; i++ { // the first may have begun before the call
		s.up.mu.Lock()
		ch := s.up.changed
		s.up.mu.Unlock()
		s.kickUpload()
		select {
		case <-ch:
		case <-time.After(time.Minute):
			t.Fatal("the uploader made no pass in a minute")
		}
	}
}

// A pack sealed (by age) after an upload appended blocks to it and before
// the batch that commits them has no pack record when the uploader looks,
// so it goes idle; the commit then gives the pack its record without
// moving the bound. The uploader must still upload it (before: it waited
// behind the idle shortcut until the next seal, for ever without pushes).
// The shortcut's time backstop is off here, so only the fix can pass.
func TestUploaderFindsPackSealedBeforeItsCommit(t *testing.T) {
	_, b := testBucket(t, false)
	was := idleRecheck
	idleRecheck = time.Hour
	t.Cleanup(func() { idleRecheck = was })
	s := openTest(t, t.TempDir(), remoteConfig(b, time.Hour), func(c *Config) { c.SnapshotBytes = -1 })
	mustPut(t, s, "first", randomBytes(100<<10, 1))
	if id, ok := s.pw.active(); ok {
		s.pw.sealActive(id)
	}
	s.kickUpload() // the roll age is an hour: no timer pass comes
	waitBucket(t, s, "the first pack is uploaded", drained)

	u, err := s.Create("second", FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(randomBytes(300<<10, 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the upload's blocks are written", func() bool {
		s.pendingMu.Lock()
		defer s.pendingMu.Unlock()
		return len(s.pending) >= 4
	})
	id, ok := s.pw.active()
	if !ok {
		t.Fatal("no active pack holds the upload's blocks")
	}
	s.pw.sealActive(id) // what the uploader's age seal does
	passes(t, s, 2)     // it looks, finds nothing listed, goes idle
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	bs := waitBucket(t, s, "the pack sealed before its commit is uploaded", func(b *BucketStatus) bool {
		return b.WaitingPacks == 0 && !b.Failing && b.UploadedPacks >= 2 // the commit's journal went to a new active pack
	})
	t.Logf("uploaded %d packs", bs.UploadedPacks)
}
