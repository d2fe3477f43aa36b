package store

import (
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// ArchiveHistory counts the WAL segments of dir archived in each of n
// buckets of width bucket ending at now (counts[n-1] is the newest). It
// reads the directory's records newest name first and stops once
// historyPatience segments in a row were archived before the first
// bucket: segments arrive in name order, give or take a few retried or
// re-pushed ones, so only recent history is read.
func (s *Store) ArchiveHistory(dir string, now time.Time, n int, bucket time.Duration) ([]int, error) {
	counts := make([]int, n)
	start := now.Add(-time.Duration(n) * bucket)
	older := 0
	err := s.idx.View(func(x *index.Txn) error {
		return x.FilesNewestNameFirst(dir, func(f *index.File) bool {
			if wal.ParseName(f.Name).Kind != wal.KindSegment {
				return true
			}
			at := time.Unix(0, f.Archived)
			if at.Before(start) {
				older++
				return older < historyPatience
			}
			older = 0
			if i := int(at.Sub(start) / bucket); i >= 0 && i < n {
				counts[i]++
			}
			return true
		})
	})
	return counts, err
}

const historyPatience = 256
