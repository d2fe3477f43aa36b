package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// cacheBucket is testBucket that also says where versitygw keeps the
// objects (to tamper with them): the pack object id is at objPath(id).
type cacheBucket struct {
	gw  *backendtest.VersityGW
	b   backend.Backend
	dir string // versitygw's directory of this store's objects
	enc bool
}

func newCacheBucket(t *testing.T, encrypted bool) *cacheBucket {
	t.Helper()
	gw, bucket, b := testBucketIn(t, encrypted)
	return &cacheBucket{gw: gw, b: b, dir: filepath.Join(gw.Root, bucket, "walrus"), enc: encrypted}
}

func (cb *cacheBucket) objPath(id uint32) string { return filepath.Join(cb.dir, packObjectName(id)) }

// storedOffset maps a plaintext offset of an object to the offset of the
// byte that carries it in versitygw's file (encrypted: backend/doc.go's
// format, a 32-byte header and 64 KiB chunks with a 16-byte tag each).
func (cb *cacheBucket) storedOffset(off int64) int64 {
	if !cb.enc {
		return off
	}
	return 32 + off/(64<<10)*(64<<10+16) + off%(64<<10)
}

func cacheConfig(b backend.Backend, bound int64) func(*Config) {
	return func(c *Config) {
		c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 512<<10, 1<<20
		c.Remote, c.RollAge, c.PackCacheBytes = b, 100*time.Millisecond, bound
	}
}

// putRealWAL archives real segments first..last as c1/NAME and returns
// them by path.
func putRealWAL(t *testing.T, s *Store, first, last uint64) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for name, b := range realWAL(t, first, last) {
		mustPut(t, s, "c1/"+name, b)
		want["c1/"+name] = b
	}
	return want
}

// localPackBytes sums the sizes of the pack files in DATA/packs.
func localPackBytes(t *testing.T, s *Store) (int64, map[uint32]bool) {
	t.Helper()
	ids, total, err := listPacks(s.packs.dir)
	if err != nil {
		t.Fatal(err)
	}
	present := map[uint32]bool{}
	for _, id := range ids {
		present[id] = true
	}
	return total, present
}

// packRecords returns the index's pack records.
func packRecords(t *testing.T, s *Store) []*index.Pack {
	t.Helper()
	var out []*index.Pack
	if err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error { out = append(out, p); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkEvictionInvariants: a pack without a local file is evicted (and so
// uploaded); a pack that is not uploaded has its file.
func checkEvictionInvariants(t *testing.T, s *Store) (evicted int) {
	t.Helper()
	_, present := localPackBytes(t, s)
	for _, p := range packRecords(t, s) {
		switch {
		case p.Retired:
		case !present[p.ID] && !p.Evicted:
			t.Fatalf("pack %d has no local file and is not marked evicted: %+v", p.ID, p)
		case p.Evicted && !p.Uploaded:
			t.Fatalf("pack %d is evicted but not uploaded: %+v", p.ID, p)
		case p.Evicted && present[p.ID]:
			t.Fatalf("pack %d is evicted but its file is still there", p.ID)
		case p.Evicted:
			evicted++
		}
	}
	return evicted
}

func checkFiles(t *testing.T, s *Store, want map[string][]byte) {
	t.Helper()
	for path, b := range want {
		if got := readAll(t, s, path); !bytes.Equal(got, b) {
			t.Fatalf("%s: %d bytes read back differ from the %d archived", path, len(got), len(b))
		}
	}
}

func cacheStatus(t *testing.T, s *Store) *PackCacheStatus {
	t.Helper()
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Bucket.Cache
}

func evictedWithin(bound int64) func(*BucketStatus) bool {
	return func(b *BucketStatus) bool {
		return drained(b) && b.Cache != nil && b.Cache.EvictedPacks > 0 && b.Cache.LocalBytes <= bound
	}
}

// The main test: real WAL pushed, packs uploaded, the local pack cache
// bounded so that most packs are evicted; after a restart every file reads
// back byte-identical through range GETs, verify passes, the settler and
// GC work on evicted packs. On the old code nothing is ever evicted (the
// local pack bytes stay far above the bound).
func TestPackCacheEvictsAndReadsFromBucket(t *testing.T) {
	cb := newCacheBucket(t, false)
	dir := t.TempDir()
	const bound = 1 << 20
	s := openTest(t, dir, cacheConfig(cb.b, bound))
	want := putRealWAL(t, s, 1, 8)
	bs := waitBucket(t, s, "packs are uploaded and evicted down to the bound", evictedWithin(bound))
	onDisk, _ := localPackBytes(t, s)
	t.Logf("%d packs uploaded, %d evicted (%d bytes); local %d bytes (on disk %d), bound %d",
		bs.UploadedPacks, bs.Cache.EvictedPacks, bs.Cache.EvictedBytes, bs.Cache.LocalBytes, onDisk, bound)
	if onDisk > bound+packHeaderLen || bs.Cache.EvictedPacks < bs.UploadedPacks/2 {
		t.Fatalf("local pack files hold %d bytes, bound %d: %+v", onDisk, bound, bs.Cache)
	}
	checkEvictionInvariants(t, s)
	s.Close()

	// Restart: the evicted files are not damage; every file reads back.
	s = openTest(t, dir, cacheConfig(cb.b, bound))
	before := cacheStatus(t, s)
	checkFiles(t, s, want)
	after := cacheStatus(t, s)
	if after.RangeGets == before.RangeGets || after.RangeBytes == 0 || after.RangeFailures != 0 {
		t.Fatalf("reading evicted packs made no range GETs: %+v", after)
	}
	t.Logf("read back %d files: %d range GETs, %d bytes", len(want), after.RangeGets, after.RangeBytes)
	rep, err := s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify of a store with evicted packs: %v %+v", err, rep.Problems)
	}

	// The settler re-encodes blocks of evicted packs (read by range).
	srep, err := s.Settle(context.Background(), SettleOptions{NoCold: true})
	if err != nil {
		t.Fatal(err)
	}
	if srep.Settled == 0 {
		t.Fatalf("settle moved nothing: %+v", srep)
	}
	checkFiles(t, s, want)

	// GC collects evicted packs: it reads their live records from the
	// bucket.
	names := sortedPaths(want)
	for _, p := range names[:3] {
		if err := s.Remove(p); err != nil {
			t.Fatal(err)
		}
		delete(want, p)
	}
	grep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if grep.PacksDeleted+grep.PacksRewritten == 0 {
		t.Fatalf("GC collected nothing: %+v", grep)
	}
	t.Logf("settle %+v; gc %+v", srep, grep)
	waitBucket(t, s, "GC's copies are uploaded and evicted", evictedWithin(bound))
	checkEvictionInvariants(t, s)
	s.Close()
	s = openTest(t, dir, cacheConfig(cb.b, bound))
	checkFiles(t, s, want)
	rep, err = s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.DataProblems()) > 0 {
		t.Fatalf("verify after settle and GC: %v %+v", err, rep.Problems)
	}
	s.Close()

	// Without its bucket, verify says which packs it cannot check.
	s = openTest(t, dir, func(c *Config) { c.BlockSize, c.PackSize = 64<<10, 512<<10 })
	rep, err = s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.Problems) == 0 || !slices.ContainsFunc(rep.Problems, func(p Problem) bool {
		return p.Kind == ProblemPack && bytes.Contains([]byte(p.Err), []byte("bucket only"))
	}) {
		t.Fatalf("verify without the bucket: %v %+v", err, rep.Problems)
	}
}

// A tampered object is detected, never served: one byte of an evicted
// pack's record overwritten in versitygw's directory makes that file's
// read fail with ErrCorrupt, and every byte returned before the error is
// the archived byte. Plain and encrypted buckets.
func TestPackCacheTamperedObjectNotServed(t *testing.T) {
	for _, enc := range []bool{false, true} {
		t.Run(fmt.Sprintf("encrypted=%v", enc), func(t *testing.T) {
			cb := newCacheBucket(t, enc)
			dir := t.TempDir()
			s := openTest(t, dir, cacheConfig(cb.b, 2<<20))
			want := putRealWAL(t, s, 1, 3)
			waitBucket(t, s, "packs are evicted", evictedWithin(2<<20))
			// A block of an evicted pack, and a file using it.
			var victim string
			var loc *index.Block
			for _, p := range sortedPaths(want) {
				f, err := s.lookup(p)
				if err != nil {
					t.Fatal(err)
				}
				for i := len(f.Blocks) - 1; i >= 0; i-- { // a late block: good bytes come first
					h := f.Blocks[i]
					if h.IsZero() {
						continue
					}
					l, err := s.locate(h)
					if err != nil {
						t.Fatal(err)
					}
					if pk := packOf(t, s, l.Pack); pk.Evicted {
						victim, loc = p, l
						break
					}
				}
				if loc != nil {
					break
				}
			}
			if loc == nil {
				t.Fatal("no block in an evicted pack")
			}
			s.Close()
			// Overwrite one byte in the middle of the record's payload.
			obj, err := os.OpenFile(cb.objPath(loc.Pack), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			at := cb.storedOffset(loc.Offset + recordHeaderLen + int64(loc.StoredLen)/2)
			b := make([]byte, 1)
			if _, err := obj.ReadAt(b, at); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0x5a
			if _, err := obj.WriteAt(b, at); err != nil {
				t.Fatal(err)
			}
			obj.Close()

			s = openTest(t, dir, cacheConfig(cb.b, 2<<20))
			r, err := s.Open(victim)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
			r.Close()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("read of %s with a tampered object: err %v, want ErrCorrupt", victim, err)
			}
			if enc && !errors.Is(err, backend.ErrTampered) {
				t.Fatalf("encrypted: err %v, want ErrTampered", err)
			}
			if !bytes.Equal(got, want[victim][:len(got)]) {
				t.Fatalf("%d bytes served before the error differ from the archived ones", len(got))
			}
			t.Logf("%s: %d good bytes, then: %v", victim, len(got), err)
			rep, err := s.Verify(context.Background(), "", nil)
			if err != nil || len(rep.DataProblems()) == 0 {
				t.Fatalf("verify does not report the tampered object: %v %+v", err, rep.Problems)
			}
		})
	}
}

func packOf(t *testing.T, s *Store, id uint32) *index.Pack {
	t.Helper()
	var p *index.Pack
	if err := s.idx.View(func(x *index.Txn) error {
		var err error
		p, err = x.Pack(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// A pack not in the bucket is never evicted, however small the bound:
// with the bucket down every pack keeps its file; once it is back they
// are uploaded, then evicted.
func TestPackCacheKeepsPacksNotUploaded(t *testing.T) {
	cb := newCacheBucket(t, true)
	dir := t.TempDir()
	s := openTest(t, dir, cacheConfig(cb.b, 1))
	mustPut(t, s, "first", randomBytes(300<<10, 1))
	waitBucket(t, s, "the first packs are uploaded and evicted", func(b *BucketStatus) bool {
		return drained(b) && b.Cache.EvictedPacks > 0
	})
	cb.gw.Stop()
	want := map[string][]byte{"first": randomBytes(300<<10, 1)}
	for i := range 6 {
		p := fmt.Sprintf("down%d", i)
		want[p] = randomBytes(400<<10, uint64(10+i))
		mustPut(t, s, p, want[p])
	}
	bs := waitBucket(t, s, "the backlog shows the outage", func(b *BucketStatus) bool { return b.Failing && b.WaitingPacks >= 2 })
	evicted := checkEvictionInvariants(t, s)
	for _, p := range packRecords(t, s) {
		if !p.Uploaded && p.Evicted {
			t.Fatalf("pack %d evicted before it was uploaded", p.ID)
		}
	}
	if bs.Cache.LocalBytes < bs.WaitingBytes {
		t.Fatalf("local bytes %d below the %d waiting: %+v", bs.Cache.LocalBytes, bs.WaitingBytes, bs.Cache)
	}
	// Reads of what is local still work with the bucket down.
	for _, p := range []string{"down0", "down5"} {
		if got := readAll(t, s, p); !bytes.Equal(got, want[p]) {
			t.Fatalf("%s differs", p)
		}
	}
	cb.gw.Restart(t)
	bs = waitBucket(t, s, "the backlog is uploaded and evicted", func(b *BucketStatus) bool {
		return drained(b) && b.Cache.LocalBytes <= 1
	})
	if n := checkEvictionInvariants(t, s); n <= evicted {
		t.Fatalf("%d packs evicted after the outage, %d before", n, evicted)
	}
	checkFiles(t, s, want)
}

// Open deletes the file of a pack the index marks evicted (a crash
// between the eviction's commit and the unlink, or between a refill's
// rename and its commit) and an interrupted refill's temporary file, and
// does not take the
// missing file of an evicted pack for damage; a missing file of a pack
// not marked evicted is still reported by verify.
func TestPackCacheOpenCompletesEviction(t *testing.T) {
	cb := newCacheBucket(t, false)
	dir := t.TempDir()
	s := openTest(t, dir, cacheConfig(cb.b, 0)) // unbounded: nothing evicted
	want := map[string][]byte{}
	for i := range 8 {
		p := fmt.Sprintf("f%d", i)
		want[p] = randomBytes(300<<10, uint64(i))
		mustPut(t, s, p, want[p])
	}
	waitBucket(t, s, "uploaded", drained)
	if n := checkEvictionInvariants(t, s); n != 0 {
		t.Fatalf("%d packs evicted without a bound", n)
	}
	// Mark two packs evicted, as step 1 of an eviction does, and stop
	// there (the crash).
	var ids []uint32
	for _, p := range packRecords(t, s) {
		if p.Uploaded && !p.Retired && len(ids) < 2 {
			ids = append(ids, p.ID)
		}
	}
	if err := writeEvictedMarker(dir); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := s.submit(&evictOp{id: id, size: packOf(t, s, id).Committed}); err != nil {
			t.Fatal(err)
		}
	}
	// And an interrupted refill's temporary file.
	leftover := packFileName(filepath.Join(dir, "packs"), ids[0]) + ".refill"
	if err := os.WriteFile(leftover, []byte("partial"), 0o640); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openTest(t, dir, cacheConfig(cb.b, 0))
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an interrupted refill's file is still there after Open: %v", err)
	}
	_, present := localPackBytes(t, s)
	for _, id := range ids {
		if present[id] {
			t.Fatalf("pack %d marked evicted still has its file after Open", id)
		}
	}
	checkEvictionInvariants(t, s)
	checkFiles(t, s, want)
	rep, err := s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
	// A pack file lost without an eviction is damage.
	var lost uint32
	for _, p := range packRecords(t, s) {
		if !p.Evicted && !p.Retired && p.Live > 0 {
			lost = p.ID
			break
		}
	}
	s.Close()
	if err := os.Remove(packFileName(filepath.Join(dir, "packs"), lost)); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, cacheConfig(cb.b, 0))
	rep, err = s.Verify(context.Background(), "", nil)
	if err != nil || !slices.ContainsFunc(rep.Problems, func(p Problem) bool {
		return p.Kind == ProblemPack && p.Path == packFileName(s.packs.dir, lost)
	}) {
		t.Fatalf("verify does not report pack %d, lost without an eviction: %v %+v", lost, err, rep.Problems)
	}
}

// A bucket that lost the store's objects while packs lived only there:
// the uploader refuses to start over and says so. An offline repair of a
// store with evicted packs is refused.
func TestPackCacheLostBucketRefused(t *testing.T) {
	cb := newCacheBucket(t, false)
	dir := t.TempDir()
	s := openTest(t, dir, cacheConfig(cb.b, 1))
	for i := range 4 {
		mustPut(t, s, fmt.Sprintf("f%d", i), randomBytes(300<<10, uint64(i)))
	}
	waitBucket(t, s, "evicted", func(b *BucketStatus) bool { return drained(b) && b.Cache.EvictedPacks > 0 })
	s.Close()
	if err := cb.b.List(context.Background(), "", func(in backend.Info) error { return cb.b.Delete(context.Background(), in.Name) }); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, cacheConfig(cb.b, 1))
	bs := waitBucket(t, s, "the uploader refuses", func(b *BucketStatus) bool { return b.Failing })
	if !bytes.Contains([]byte(bs.LastError), []byte("lived only in it")) {
		t.Fatalf("last error %q", bs.LastError)
	}
	if n := checkEvictionInvariants(t, s); n == 0 {
		t.Fatal("the evicted marks were dropped")
	}
	s.Close()
	// An offline repair reads only local packs: it refuses, and changes
	// nothing.
	_, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{})
	if !errors.Is(err, ErrEvictedPacks) {
		t.Fatalf("repair of a store with evicted packs: %v, want ErrEvictedPacks", err)
	}
	t.Logf("repair: %v", err)
	s = openTest(t, dir, cacheConfig(cb.b, 1))
	if n := checkEvictionInvariants(t, s); n == 0 {
		t.Fatal("the refused repair changed the index")
	}
}

func sortedPaths(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Prefetch across the network: the blocks of a segment in evicted packs
// are fetched in runs of adjacent records, one range GET each, checked and
// cached, so that reading the segment afterwards makes no GET at all.
func TestPackCachePrefetchRuns(t *testing.T) {
	cb := newCacheBucket(t, true)
	dir := t.TempDir()
	s := openTest(t, dir, cacheConfig(cb.b, 1))
	want := putRealWAL(t, s, 1, 4)
	waitBucket(t, s, "every pack is evicted", func(b *BucketStatus) bool { return drained(b) && b.Cache.LocalBytes <= 1 })
	s.Close()
	s = openTest(t, dir, func(c *Config) { cacheConfig(cb.b, 1)(c); c.CacheBytes = 64 << 20 })
	for _, p := range sortedPaths(want) {
		f, err := s.lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		jobs := s.prefetchPlan(f.Blocks)
		runs, blocks := 0, 0
		for _, j := range jobs {
			if j.run == nil {
				t.Fatalf("%s: block %s of an evicted pack planned alone", p, j.h)
			}
			runs++
			blocks += len(j.run.hs)
		}
		before := cacheStatus(t, s)
		for _, j := range jobs {
			s.prefetchRun(j.run)
		}
		mid := cacheStatus(t, s)
		if got := readAll(t, s, p); !bytes.Equal(got, want[p]) {
			t.Fatalf("%s differs after prefetch", p)
		}
		after := cacheStatus(t, s)
		t.Logf("%s: %d blocks in %d runs: %d GETs (%d bytes) for the prefetch, %d for the read",
			p, blocks, runs, mid.RangeGets-before.RangeGets, mid.RangeBytes-before.RangeBytes, after.RangeGets-mid.RangeGets)
		// Encrypted: a GET of the header first for an object not read yet.
		if mid.RangeGets-before.RangeGets > int64(runs)+int64(runs) || after.RangeGets != mid.RangeGets {
			t.Fatalf("%s: %d GETs for %d runs, then %d for the read", p, mid.RangeGets-before.RangeGets, runs, after.RangeGets-mid.RangeGets)
		}
		if blocks >= 8 && runs*4 > blocks {
			t.Fatalf("%s: %d blocks in %d runs: records are not grouped", p, blocks, runs)
		}
	}
}

// Refill: evicted packs a restore reads through are copied back whole
// while the bound has room, durably, and then read locally: a second
// read of the same files makes no range GET; verify passes.
func TestPackCacheRefill(t *testing.T) {
	cb := newCacheBucket(t, true)
	dir := t.TempDir()
	s := openTest(t, dir, cacheConfig(cb.b, 1))
	want := putRealWAL(t, s, 1, 3)
	bs := waitBucket(t, s, "every pack is evicted", func(b *BucketStatus) bool { return drained(b) && b.Cache.LocalBytes <= 1 })
	evicted := bs.Cache.EvictedPacks
	s.Close()
	// Room for everything now: nothing is evicted, reads bring packs back.
	s = openTest(t, dir, cacheConfig(cb.b, 64<<20))
	checkFiles(t, s, want)
	bs = waitBucket(t, s, "the packs read are copied back", func(b *BucketStatus) bool {
		return drained(b) && b.Cache.Refills > 0 && b.Cache.EvictedPacks < evicted
	})
	t.Logf("%d of %d evicted packs copied back: %+v", evicted-bs.Cache.EvictedPacks, evicted, bs.Cache)
	checkEvictionInvariants(t, s)
	s.Close()
	s = openTest(t, dir, func(c *Config) { cacheConfig(cb.b, 64<<20)(c); c.CacheBytes = 64 << 20 })
	_, present := localPackBytes(t, s)
	onlyLocal := map[string][]byte{}
	for path, b := range want {
		f, err := s.lookup(path)
		if err != nil {
			t.Fatal(err)
		}
		local := true
		for _, h := range f.Blocks {
			if l, err := s.locate(h); err == nil && !present[l.Pack] {
				local = false
			}
		}
		if local {
			onlyLocal[path] = b
		}
	}
	if len(onlyLocal) == 0 {
		t.Fatal("no file lies wholly in copied-back packs")
	}
	before := cacheStatus(t, s)
	checkFiles(t, s, onlyLocal)
	if after := cacheStatus(t, s); after.RangeGets != before.RangeGets {
		t.Fatalf("reading %d files of copied-back packs made %d range GETs", len(onlyLocal), after.RangeGets-before.RangeGets)
	}
	checkFiles(t, s, want)
	rep, err := s.Verify(context.Background(), "", nil)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify after refill: %v %+v", err, rep.Problems)
	}
}

// With the background settler on, a pack holding blocks it has still to
// re-encode is not evicted before it has: the settler reads local packs
// only (no range GET) and the packs are evicted once settled. On the old
// code the ingest packs went as soon as they were uploaded and the
// settler read them back block by block.
func TestPackCacheKeepsUnsettledPacksForTheSettler(t *testing.T) {
	cb := newCacheBucket(t, false)
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { cacheConfig(cb.b, 1)(c); c.Settle = true })
	want := putRealWAL(t, s, 1, 4)
	bs := waitBucket(t, s, "everything is settled, uploaded and evicted", func(b *BucketStatus) bool {
		st, err := s.Status()
		return err == nil && st.UnsettledBytes == 0 && drained(b) && b.Cache != nil && b.Cache.EvictedPacks > 0 && b.Cache.LocalBytes <= 1
	})
	if bs.Cache.RangeGets != 0 {
		t.Errorf("the settler read %d ranges (%d bytes) from the bucket: it re-encoded blocks of evicted packs", bs.Cache.RangeGets, bs.Cache.RangeBytes)
	}
	checkEvictionInvariants(t, s)
	checkFiles(t, s, want)
}
