package store

import (
	"context"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// BenchmarkBucketGCFootprint measures what the bucket holds against the
// local store's live bytes under retention, on real WAL: rounds of
// pushing 16 distinct real segments, removing the oldest 16 (so 16 stay
// live), settling and GC, with the deletion of retired packs' objects
// ("delete") and without ("keep": every Delete fails, which is what main
// did: it never deleted), interleaved round by round in one run.
//
//	go test ./store/ -run '^$' -bench BucketGCFootprint -benchtime 1x
func BenchmarkBucketGCFootprint(b *testing.B) {
	segs := corpusSegments(b, 16)
	gw := backendtest.StartVersityGW(b)
	type variant struct {
		name string
		fb   *faultyDelete
		raw  backend.Backend
		s    *Store
	}
	var vs []*variant
	for _, name := range []string{"keep", "delete"} {
		s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: gw.NewBucket(b), Prefix: "walrus/",
			AccessKey: gw.AccessKey, SecretKey: gw.Secret})
		if err != nil {
			b.Fatal(err)
		}
		raw := backend.Stack(s3, backend.StackOptions{})
		v := &variant{name: name, fb: &faultyDelete{Backend: raw}, raw: raw}
		if name == "keep" {
			v.fb.mode.Store(faultSkip)
		}
		v.s = openTest(b, b.TempDir(), func(c *Config) { c.Remote, c.RollAge, c.CacheBytes = v.fb, 200*time.Millisecond, 64<<20 })
		vs = append(vs, v)
	}
	const rounds, per = 4, 16
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		for r := range rounds {
			for _, v := range vs {
				s := v.s
				for i := range per {
					segno := uint64(r*per + i + 1)
					pushSegment(b, s, wal.SegmentFileName(1, segno, 16<<20), asSegment(segs[i], segno))
				}
				if r > 0 {
					for i := range per {
						if err := s.Remove(wal.SegmentFileName(1, uint64((r-1)*per+i+1), 16<<20)); err != nil {
							b.Fatal(err)
						}
					}
				}
				if _, err := s.Settle(ctx, SettleOptions{NoCold: true}); err != nil {
					b.Fatal(err)
				}
				// keep: every Delete fails, so the status says failing.
				settled := func(bs *BucketStatus) bool { return !bs.Lagging() && (v.name == "keep" || !bs.Failing) }
				if err := s.WaitBucket(ctx, settled); err != nil {
					b.Fatal(err)
				}
				gc, err := s.GC(ctx, GCOptions{})
				if err != nil {
					b.Fatal(err)
				}
				cond := settled
				if v.name == "delete" {
					cond = noPendingDeletes
				}
				if err := s.WaitBucket(ctx, func(bs *BucketStatus) bool {
					if id, ok := s.pw.active(); ok && bs.ActiveBytes > 0 {
						s.pw.sealActive(id) // GC's copies and checkpoint: do not wait for the age roll
						s.kickUpload()
					}
					return cond(bs)
				}); err != nil {
					b.Fatal(err)
				}
				st, err := s.Status()
				if err != nil {
					b.Fatal(err)
				}
				var objs int
				var bytes int64
				if err := v.raw.List(ctx, remotePackPrefix, func(in backend.Info) error {
					objs++
					bytes += in.Size
					return nil
				}); err != nil {
					b.Fatal(err)
				}
				b.Logf("round %d %-6s: bucket %3d objects %7.1f MiB, local live (stored) %6.1f MiB, disk %6.1f MiB, logical %6.1f MiB; bucket/live %.2f; uploaded %.1f MiB, deleted %d objects %.1f MiB, pending %d; gc rewrote %d deleted %d",
					r, v.name, objs, toMiB(bytes), toMiB(st.StoredBytes), toMiB(st.DiskBytes), toMiB(st.LogicalBytes),
					float64(bytes)/float64(st.StoredBytes), toMiB(st.Bucket.UploadedBytes), st.Bucket.Deletes, toMiB(st.Bucket.DeletedBytes),
					st.Bucket.PendingDeletePacks, gc.PacksRewritten, gc.PacksDeleted)
				if r == rounds-1 {
					b.ReportMetric(float64(bytes)/float64(st.StoredBytes), v.name+"_bucket/live")
					b.ReportMetric(float64(objs), v.name+"_objects")
				}
			}
		}
	}
	b.StopTimer()
	for _, v := range vs {
		v.s.Close()
	}
}

func toMiB(n int64) float64 { return float64(n) / (1 << 20) }
