package store

import (
	"errors"
	"sync/atomic"
	"time"
)

// Observer receives the store's events; package metrics implements it.
type Observer interface {
	// Committed is called when Upload.Commit returns.
	Committed(CommitEvent)
	// Restored is called when a Reader that returned bytes is closed.
	Restored(ReadEvent)
}

// CommitEvent describes one Upload.Commit.
type CommitEvent struct {
	Origin       Origin
	Dir, Name    string
	Size, Stored int64 // bytes received; the file's stored footprint
	Existed      bool  // an identical copy was archived already
	Err          error // nil: committed; else RefusalReason says why not
	Duration     time.Duration
}

// ReadEvent describes the reads of one Reader, from open to close.
type ReadEvent struct {
	Origin    Origin
	Dir, Name string
	Bytes     int64
	Duration  time.Duration
}

// RefusalReason classifies a commit error for metrics and logs:
// exists_different, invalid_wal, other_cluster, no_space, too_large,
// invalid_name, retry (a transient conflict) or error.
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, ErrExists):
		return "exists_different"
	case errors.Is(err, ErrInvalidWAL):
		return "invalid_wal"
	case errors.Is(err, ErrClusterMismatch):
		return "other_cluster"
	case errors.Is(err, ErrNoSpace):
		return "no_space"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrInvalidName):
		return "invalid_name"
	case errors.Is(err, ErrRetry):
		return "retry"
	}
	return "error"
}

// OpenFrom is Open for a reader at origin o: the reader reports what it
// returned to Config.Observer when it is closed.
func (s *Store) OpenFrom(path string, o Origin) (*Reader, error) {
	r, err := s.Open(path)
	if err == nil {
		r.origin, r.opened = o, time.Now()
	}
	return r, err
}

// readStats are a Reader's counters for its ReadEvent.
type readStats struct {
	origin Origin
	opened time.Time
	bytes  atomic.Int64
	closed atomic.Bool
}

func (r *Reader) report() {
	o := r.s.cfg.Observer
	if o == nil || r.closed.Swap(true) {
		return
	}
	if n := r.bytes.Load(); n > 0 && !r.internal { // walrus's own reads are no restores
		o.Restored(ReadEvent{Origin: r.origin, Dir: r.f.Dir, Name: r.f.Name, Bytes: n, Duration: time.Since(r.opened)})
	}
}

// Changes returns a number that grows with every committed change to the
// index (commits, removals, metadata, GC moves), so that a reader of
// derived state (metrics, the status page) can tell whether it is stale.
func (s *Store) Changes() uint64 { return s.changes.Load() }

// CacheStats returns how many block look-ups the cache answered and how
// many it did not, since Open.
func (s *Store) CacheStats() (hits, misses uint64) {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.hits, s.cache.misses
}

// Space returns the free bytes of the data directory's filesystem and the
// free space below which uploads are refused (the index's need, the
// reserve file's shortfall and Config.MinFree); ok is false when the
// filesystem cannot say.
func (s *Store) Space() (free, floor int64, ok bool) {
	free, ok = s.space.free()
	return free, s.space.uploadFloor(), ok
}
