package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// bucketPackIDs lists the pack objects in the bucket.
func bucketPackIDs(t *testing.T, b backend.Backend) (ids []uint32, bytes int64) {
	t.Helper()
	if err := b.List(context.Background(), remotePackPrefix, func(in backend.Info) error {
		id, ok := parsePackName(strings.TrimPrefix(in.Name, remotePackPrefix))
		if !ok {
			return fmt.Errorf("unexpected object %s", in.Name)
		}
		ids = append(ids, id)
		bytes += in.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	return ids, bytes
}

// checkBucketIsLivePacks asserts that the bucket holds exactly the packs
// the index has and marks uploaded (none retired), and that every retired
// pack's record says its object is gone. It returns how many retired
// records there are.
func checkBucketIsLivePacks(t *testing.T, s *Store, b backend.Backend) int {
	t.Helper()
	var want []uint32
	retired := 0
	for _, p := range packRecords(t, s) {
		switch {
		case p.Retired && p.Uploaded:
			t.Fatalf("retired pack %d is still a pending deletion", p.ID)
		case p.Retired:
			retired++
		case p.Uploaded:
			want = append(want, p.ID)
		}
	}
	got, _ := bucketPackIDs(t, b)
	if !slices.Equal(got, want) {
		t.Fatalf("the bucket holds packs %v, the index's uploaded live packs are %v", got, want)
	}
	checkBucketHoldsPacks(t, s, b)
	return retired
}

func noPendingDeletes(b *BucketStatus) bool { return drained(b) && b.PendingDeletePacks == 0 }

// GC retires packs after rm, retention and settling; their objects leave
// the bucket once what replaced them is there, so the bucket holds exactly
// the live packs; and the bucket alone still rebuilds every live file
// byte for byte (FetchPacks + Repair), with none of the removed ones.
func TestBucketGCDeletesRetiredObjects(t *testing.T) {
	_, b := testBucket(t, true)
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	cfg := func(c *Config) {
		repairConfig(c)
		c.PackSize = 1 << 20
		c.Remote, c.RollAge = b, 100*time.Millisecond
	}
	s := openTest(t, dir, cfg)
	w := repairWorkload(t, s, 40, 200)
	if _, err := s.Settle(context.Background(), SettleOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBucket(t, s, "the workload is in the bucket", drained)
	_, sealed := bucketPackIDs(t, b)
	gcRep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if gcRep.PacksRewritten+gcRep.PacksDeleted == 0 {
		t.Fatalf("GC collected nothing once everything was uploaded: %+v", gcRep)
	}
	bs := waitBucket(t, s, "the retired packs' objects are deleted", noPendingDeletes)
	retired := checkBucketIsLivePacks(t, s, b)
	if bs.Deletes == 0 || retired == 0 || bs.DeletedBytes == 0 {
		t.Fatalf("nothing deleted: %+v, %d retired", bs, retired)
	}
	_, left := bucketPackIDs(t, b)
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bucket: %d bytes before GC, %d after (%d objects deleted, %d bytes); stored %d bytes, disk %d; gc %+v then %+v",
		sealed, left, bs.Deletes, bs.DeletedBytes, st.StoredBytes, st.DiskBytes, w.gcRep, gcRep)
	want := stateOf(t, s)
	want.Status.Bucket = nil
	s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	dir2 := filepath.Join(base, "rebuilt")
	fr, err := FetchPacks(context.Background(), b, dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(context.Background(), Config{Dir: dir2}, RepairOptions{})
	if err != nil || len(rep.Problems) > 0 || rep.Verify == nil || len(rep.Verify.Problems) > 0 {
		t.Fatalf("repair of the fetched packs: %v %+v", err, rep)
	}
	s2 := openTest(t, dir2, func(c *Config) { repairConfig(c); c.PackSize = 1 << 20 })
	compareStates(t, want, stateOf(t, s2))
	checkRemovedGone(t, s2, w.removed)
	t.Logf("rebuilt from %d packs (%d bytes)", fr.Packs, fr.Bytes)
}

// faultyDelete fails Delete calls while mode is set: faultSkip returns an
// error and deletes nothing (a crash after the index recorded the intent,
// before the Delete), faultAfter deletes and then returns an error (a
// crash after the Delete, before its record).
type faultyDelete struct {
	backend.Backend
	mode  atomic.Int32
	calls atomic.Int64
}

const (
	faultNone = iota
	faultSkip
	faultAfter
)

var errInjected = errors.New("injected delete failure")

func (f *faultyDelete) Delete(ctx context.Context, name string) error {
	f.calls.Add(1)
	switch f.mode.Load() {
	case faultSkip:
		return errInjected
	case faultAfter:
		if err := f.Backend.Delete(ctx, name); err != nil {
			return err
		}
		return errInjected
	}
	return f.Backend.Delete(ctx, name)
}

// pendingObjects returns the retired packs whose deletion is pending and
// whether each object still exists.
func pendingObjects(t *testing.T, s *Store, b backend.Backend) map[uint32]bool {
	t.Helper()
	out := map[uint32]bool{}
	for _, p := range packRecords(t, s) {
		if p.Retired && p.Uploaded {
			_, err := b.Stat(context.Background(), packObjectName(p.ID))
			if err != nil && !backend.IsNotExist(err) {
				t.Fatal(err)
			}
			out[p.ID] = err == nil
		}
	}
	return out
}

// A deletion interrupted at either point, after the index recorded it and
// before the Delete, or after the Delete and before its record, is
// completed by the next Open's pass; no object is left behind.
func TestBucketGCDeleteResumesAfterCrash(t *testing.T) {
	_, b := testBucket(t, false)
	fb := &faultyDelete{Backend: b}
	fb.mode.Store(faultSkip)
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(fb, 100*time.Millisecond))
	for i := range 9 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(150<<10, uint64(i)))
	}
	waitBucket(t, s, "the files are in the bucket", drained)
	for i := range 8 {
		if err := s.Remove(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9}); err != nil || rep.PacksDeleted+rep.PacksRewritten == 0 {
		t.Fatalf("gc: %+v %v", rep, err)
	}
	bs := waitBucket(t, s, "a delete failed", func(b *BucketStatus) bool { return b.Failing && b.PendingDeletePacks > 0 })
	if !strings.Contains(bs.LastError, errInjected.Error()) {
		t.Fatalf("status after the failed delete: %+v", bs)
	}
	s.Close()
	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 }) // no bucket: nothing changes
	pend := pendingObjects(t, s, b)
	s.Close()
	if len(pend) == 0 {
		t.Fatal("no deletion pending after the failed deletes")
	}
	for id, there := range pend {
		if !there {
			t.Fatalf("pack %d: object gone though its Delete failed", id)
		}
	}

	// Second crash point: the Delete happens, its record does not.
	fb.mode.Store(faultAfter)
	before := fb.calls.Load()
	s = openTest(t, dir, remoteConfig(fb, 100*time.Millisecond))
	waitBucket(t, s, "a delete failed after deleting", func(b *BucketStatus) bool { return b.Failing && b.Deletes == 0 })
	s.Close()
	if fb.calls.Load() == before {
		t.Fatal("no delete after reopening")
	}
	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 })
	pend2 := pendingObjects(t, s, b)
	s.Close()
	gone := 0
	for id, there := range pend2 {
		if !there {
			gone++
		}
		if !pend[id] {
			t.Fatalf("pack %d pending now, was not before", id)
		}
	}
	if gone == 0 {
		t.Fatalf("no object deleted while its record stayed pending: %v", pend2)
	}

	fb.mode.Store(faultNone)
	s = openTest(t, dir, remoteConfig(fb, 100*time.Millisecond))
	bs = waitBucket(t, s, "the pending deletions complete", noPendingDeletes)
	if bs.Deletes != int64(len(pend)) {
		t.Fatalf("%d deletes after recovery, %d were pending: %+v", bs.Deletes, len(pend), bs)
	}
	checkBucketIsLivePacks(t, s, b)
	if !bytes.Equal(readAll(t, s, "f8"), randomBytes(150<<10, 8)) {
		t.Fatal("f8 differs")
	}
}

// A rewritten pack's object stays while the pack its live blocks moved to
// is not in the bucket; it goes once that pack is uploaded.
func TestBucketGCKeepsObjectUntilCopiesUploaded(t *testing.T) {
	_, b := testBucket(t, false)
	s := openTest(t, t.TempDir(), remoteConfig(b, time.Hour))
	for i := range 9 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(150<<10, uint64(i)))
	}
	if id, ok := s.pw.active(); ok {
		s.pw.sealActive(id)
	}
	s.kickUpload()
	waitBucket(t, s, "the files are in the bucket", drained)
	for i := range 9 {
		if i%3 != 0 {
			if err := s.Remove(fmt.Sprintf("f%d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.5})
	if err != nil || rep.PacksRewritten == 0 {
		t.Fatalf("gc rewrote nothing: %+v %v", rep, err)
	}
	active, ok := s.pw.active()
	if !ok {
		t.Fatal("no active pack holds the copies")
	}
	var rewritten []uint32
	for _, p := range packRecords(t, s) {
		if p.Retired && p.Uploaded {
			rewritten = append(rewritten, p.ID)
			if p.MovedBelow <= active {
				t.Fatalf("pack %d retired with MovedBelow %d, the copies are in pack %d", p.ID, p.MovedBelow, active)
			}
		}
	}
	if len(rewritten) == 0 {
		t.Fatal("no retired pack pending deletion")
	}
	// An uploader pass (the kick) with the copies not in the bucket.
	s.wantBucketDeletes()
	waitBucket(t, s, "a deletion pass ran", func(*BucketStatus) bool { return !s.up.gc.want.Load() })
	pl, err := s.bucketPlan()
	if err != nil || len(pl.deletable) != 0 {
		t.Fatalf("deletable while the copies are not uploaded: %+v %v", pl.deletable, err)
	}
	for id, there := range pendingObjects(t, s, b) {
		if !there {
			t.Fatalf("pack %d's object deleted before its copies were uploaded", id)
		}
	}
	s.pw.sealActive(active)
	s.kickUpload()
	waitBucket(t, s, "the copies are uploaded and the objects deleted", noPendingDeletes)
	checkBucketIsLivePacks(t, s, b)
	for i := 0; i < 9; i += 3 {
		if !bytes.Equal(readAll(t, s, fmt.Sprintf("f%d", i)), randomBytes(150<<10, uint64(i))) {
			t.Fatalf("f%d differs", i)
		}
	}
}

// A store with a bucket opened without one (walrus gc while serve is not
// running) keeps the packs that are not in the bucket yet; GC says so.
func TestBucketGCWithoutBucketFlagsKeepsNotUploaded(t *testing.T) {
	gw, b := testBucket(t, false)
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	mustPut(t, s, "first", randomBytes(300<<10, 1))
	waitBucket(t, s, "the first file is in the bucket", drained)
	gw.Stop()
	for i := range 6 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(200<<10, uint64(10+i)))
	}
	s.Close()
	gw.Restart(t)

	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 })
	var notUp []uint32
	for _, p := range packRecords(t, s) {
		if !p.Uploaded && !p.Retired {
			notUp = append(notUp, p.ID)
		}
	}
	if len(notUp) < 2 {
		t.Fatalf("only %v not uploaded", notUp)
	}
	for i := range 6 {
		if err := s.Remove(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksNotUploaded == 0 {
		t.Fatalf("gc without the bucket did not keep the packs not uploaded: %+v", rep)
	}
	for _, p := range packRecords(t, s) {
		if p.Retired && slices.Contains(notUp, p.ID) {
			t.Fatalf("pack %d retired before it was uploaded: %+v", p.ID, rep)
		}
	}
	s.Close()
	// With the bucket: uploaded, then collected, objects deleted.
	s = openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	waitBucket(t, s, "the backlog is uploaded", drained)
	if rep, err = s.GC(context.Background(), GCOptions{Threshold: 0.9}); err != nil || rep.PacksDeleted == 0 {
		t.Fatalf("gc with the bucket: %+v %v", rep, err)
	}
	waitBucket(t, s, "the retired objects are deleted", noPendingDeletes)
	checkBucketIsLivePacks(t, s, b)
	if !bytes.Equal(readAll(t, s, "first"), randomBytes(300<<10, 1)) {
		t.Fatal("first differs")
	}
}

// A repair from the local packs keeps no Uploaded marks; the next Open
// with the bucket finds the packs already there (HEAD, same size) and
// does not upload them again.
func TestBucketLocalRepairDoesNotReupload(t *testing.T) {
	_, b := testBucket(t, true)
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	for i := range 12 {
		mustPut(t, s, fmt.Sprintf("f%02d", i), randomBytes(150<<10, uint64(i)))
	}
	bs := waitBucket(t, s, "every pack is uploaded", drained)
	packs := bs.UploadedPacks
	s.Close()
	rep, err := Repair(context.Background(), Config{Dir: dir, BlockSize: 64 << 10, PackSize: 512 << 10}, RepairOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("repair: %v %+v", err, rep)
	}
	s = openTest(t, dir, remoteConfig(b, 100*time.Millisecond))
	bs = waitBucket(t, s, "the repaired store is in the bucket", drained)
	// Repair's checkpoint went into a pack of its own or one it resumed:
	// that one is new. The others are marked without an upload.
	if bs.Uploads > 2 || bs.UploadedPacks < packs {
		t.Fatalf("after a local repair %d of %d packs were uploaded again: %+v", bs.Uploads, packs, bs)
	}
	checkBucketHoldsPacks(t, s, b)
	for i := range 12 {
		if !bytes.Equal(readAll(t, s, fmt.Sprintf("f%02d", i)), randomBytes(150<<10, uint64(i))) {
			t.Fatalf("f%02d differs", i)
		}
	}
}

// Packs retired by a walrus that never deleted objects (Uploaded kept,
// no MovedBelow) are stamped with the packs allocated now and deleted
// like any other once those are in the bucket.
func TestBucketGCOldRetiredRecords(t *testing.T) {
	_, b := testBucket(t, false)
	fb := &faultyDelete{Backend: b}
	fb.mode.Store(faultSkip) // keep the objects while the records are made old
	dir := t.TempDir()
	s := openTest(t, dir, remoteConfig(fb, 100*time.Millisecond))
	for i := range 9 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(150<<10, uint64(i)))
	}
	waitBucket(t, s, "the files are in the bucket", drained)
	for i := range 8 {
		if err := s.Remove(fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GC(context.Background(), GCOptions{Threshold: 0.9}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 })
	var old []uint32
	if err := s.idx.Update(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Retired && p.Uploaded {
				old = append(old, p.ID)
				p.MovedBelow = 0 // as main wrote it
				return x.PutPack(p)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(old) == 0 {
		t.Fatal("no retired pack with an object")
	}
	fb.mode.Store(faultNone)
	s = openTest(t, dir, remoteConfig(fb, 100*time.Millisecond))
	bs := waitBucket(t, s, "the old retired packs' objects are deleted", noPendingDeletes)
	if bs.Deletes != int64(len(old)) {
		t.Fatalf("%d deletes, %d old retired packs: %+v", bs.Deletes, len(old), bs)
	}
	for _, p := range packRecords(t, s) {
		if slices.Contains(old, p.ID) && p.MovedBelow == 0 {
			t.Fatalf("old retired pack %d never stamped", p.ID)
		}
	}
	checkBucketIsLivePacks(t, s, b)
	if !bytes.Equal(readAll(t, s, "f8"), randomBytes(150<<10, 8)) {
		t.Fatal("f8 differs")
	}
}
