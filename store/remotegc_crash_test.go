package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// bucketGCCrashChild is run in a child process by
// TestBucketGCCrashConsistency: like gcCrashChild, with its packs in the
// bucket named by WALRUS_BGC_BUCKET (endpoint, bucket, access key, secret)
// and a short roll age, so that uploads and deletions of retired packs'
// objects are under way whenever it is killed.
func bucketGCCrashChild(dir string, start uint64) {
	var ep, bucket, ak, sk string
	fmt.Sscan(os.Getenv("WALRUS_BGC_BUCKET"), &ep, &bucket, &ak, &sk)
	s3, err := backend.NewS3(backend.S3Config{Endpoint: ep, Bucket: bucket, Prefix: "walrus/", AccessKey: ak, SecretKey: sk})
	if err != nil {
		fmt.Println("s3:", err)
		os.Exit(2)
	}
	s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 512 << 10, CacheBytes: 128 << 10,
		Remote: backend.Stack(s3, backend.StackOptions{}), RollAge: 20 * time.Millisecond})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mine []string
	for i := start; ; i += 2 {
		for _, segno := range []uint64{i, i + 1} {
			sg := gcSeg(segno)
			sg.UsedPages = 16
			data := sg.Bytes()
			u, err := s.Create(sg.Name(), FileMeta{Mode: 0o600, MTime: time.Now()})
			if err == nil {
				_, err = u.Write(data)
			}
			if err == nil {
				_, err = u.Commit()
			}
			if err != nil {
				fmt.Println("err", sg.Name(), err)
				continue
			}
			fmt.Printf("ok %s %x\n", sg.Name(), sha256.Sum256(data))
			mine = append(mine, sg.Name())
		}
		if len(mine) > 3 {
			victim := mine[len(mine)/2]
			mine = append(mine[:len(mine)/2], mine[len(mine)/2+1:]...)
			fmt.Println("rm", victim)
			if err := s.Remove(victim); err != nil {
				fmt.Println("err", victim, err)
			}
		}
		if _, err := s.GC(context.Background(), GCOptions{Threshold: 0.95}); err != nil {
			fmt.Println("err gc", err)
		}
	}
}

// checkNoBucketLeak asserts that every pack object in the bucket is a pack
// the index holds (live, or retired with its deletion pending), and that
// every live pack marked uploaded is in the bucket with its bytes.
func checkNoBucketLeak(t *testing.T, it int, s *Store, b backend.Backend) {
	t.Helper()
	recs := map[uint32]bool{} // id -> object may exist
	for _, p := range packRecords(t, s) {
		recs[p.ID] = !p.Retired || p.Uploaded
	}
	ids, _ := bucketPackIDs(t, b)
	for _, id := range ids {
		if !recs[id] {
			t.Fatalf("iteration %d: the bucket holds pack %d, which the index has no (pending) record of: a leak", it, id)
		}
	}
	checkBucketHoldsPacks(t, s, b)
}

// TestBucketGCCrashConsistency SIGKILLs a process that archives, removes,
// runs GC and uploads to and deletes from a real bucket, at random
// moments, many times over one data directory. After every crash each
// acknowledged file reads back, no object is in the bucket that the index
// does not account for, and every pack marked uploaded is there. At the
// end the pending deletions complete, the bucket holds exactly the live
// packs, and a store rebuilt from the bucket alone holds every file.
func TestBucketGCCrashConsistency(t *testing.T) {
	iterations, maxLines := 12, 40
	if testing.Short() || raceEnabled {
		iterations, maxLines = 4, 16
	}
	gw := backendtest.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "walrus/", AccessKey: gw.AccessKey, SecretKey: gw.Secret})
	if err != nil {
		t.Fatal(err)
	}
	b := backend.Stack(s3, backend.StackOptions{})
	t.Setenv("WALRUS_BGC_BUCKET", fmt.Sprintf("%s %s %s %s", gw.Endpoint, bucket, gw.AccessKey, gw.Secret)) // the child inherits it
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	acked := map[string]string{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 13))
	cfg := Config{Dir: dir, BlockSize: 64 << 10, PackSize: 512 << 10, CacheBytes: 128 << 10}
	for it := 0; it < iterations; it++ {
		var removed []string
		runKilledChild(t, "WALRUS_BGC_CHILD="+dir, uint64(it)*1000+1, rng.IntN(maxLines)+4, time.Duration(rng.IntN(40))*time.Millisecond,
			func(f []string) bool {
				switch {
				case len(f) == 3 && f[0] == "ok":
					acked[f[1]] = f[2]
				case len(f) == 2 && f[0] == "rm":
					removed = append(removed, f[1])
				default:
					return false
				}
				return true
			})
		for _, name := range removed {
			delete(acked, name)
		}
		s, err := Open(cfg) // without the bucket: look, change nothing there
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkAcked(t, it, s, acked)
		checkGCInvariants(t, s)
		checkNoBucketLeak(t, it, s, b)
		s.Close()
	}
	c := cfg
	c.Remote, c.RollAge = b, 20*time.Millisecond
	s, err := Open(c)
	if err != nil {
		t.Fatal(err)
	}
	sealed := func(cond func(*BucketStatus) bool) func(*BucketStatus) bool {
		return func(bs *BucketStatus) bool {
			if id, ok := s.pw.active(); ok && bs.ActiveBytes > 0 {
				s.pw.sealActive(id) // do not wait for the age roll
				s.kickUpload()
			}
			return cond(bs)
		}
	}
	// However early the children were killed, some packs retire here.
	waitBucket(t, s, "the backlog is uploaded", sealed(drained))
	n := 0
	for name := range acked {
		if n++; n%2 == 0 {
			if err := s.Remove(name); err != nil {
				t.Fatal(err)
			}
			delete(acked, name)
		}
	}
	if _, err := s.GC(context.Background(), GCOptions{Threshold: 0.95}); err != nil {
		t.Fatal(err)
	}
	bs := waitBucket(t, s, "the pending deletions complete", sealed(noPendingDeletes))
	retired := checkBucketIsLivePacks(t, s, b)
	checkAcked(t, iterations, s, acked)
	want := stateOf(t, s)
	want.Status.Bucket = nil
	s.Close()
	if len(acked) == 0 || retired == 0 {
		t.Fatalf("%d files acknowledged, %d packs retired: the test proved nothing", len(acked), retired)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dir2 := filepath.Join(base, "rebuilt")
	if _, err := FetchPacks(context.Background(), b, dir2, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(context.Background(), Config{Dir: dir2}, RepairOptions{})
	if err != nil || len(rep.Problems) > 0 || rep.Verify == nil {
		t.Fatalf("repair of the fetched packs: %v %+v", err, rep)
	}
	for _, p := range rep.Verify.Problems {
		if p.Kind != ProblemContinuity { // the removals leave gaps
			t.Fatalf("verify of the rebuilt store: %+v", p)
		}
	}
	s2, err := Open(Config{Dir: dir2, BlockSize: 64 << 10, PackSize: 512 << 10, CacheBytes: 128 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	checkAcked(t, iterations, s2, acked)
	compareStates(t, want, stateOf(t, s2))
	t.Logf("%d iterations, %d live files, %d packs retired, %d objects deleted after the last crash, rebuilt from %d packs",
		iterations, len(acked), retired, bs.Deletes, rep.Packs)
}
