package store

import (
	"sync"

	"github.com/walrus-archive/walrus/internal/wal"
)

// Sequential prefetch.
//
// Recovery asks restore_command for segment N, then N+1, N+2, ... of the
// same timeline. Prefetch(N, k) warms the block cache with N+1…N+k in the
// background so those reads are served at memory speed. It starts with the
// rest of N itself: a reader loads one block at a time, so loading N's later
// blocks alongside it halves a cold read on two cores.
//
// Bounds: each store has at most one prefetcher, created on first use. It
// owns one dispatcher goroutine and Concurrency/2 (at least one) block
// loaders, so a reader always finds a free decompression slot. Requests
// wait in a queue of prefetchQueue entries; a request that finds the queue
// full is dropped (prefetch is a hint: the reader loads what it needs
// itself). Cached blocks are skipped, concurrent loads of one block are
// shared with readers (the cache's loading entries, Store.pinnedBlock), and
// decompression takes a slot of Store.sem like every other block load, so
// prefetch never adds to the store's CPU bound.
//
// Lifetime: Open starts the prefetcher; Close stops it (and waits for its
// goroutines) before it closes packs, so no late block load reopens a pack.
const prefetchQueue = 4

type prefetchReq struct {
	dir   string
	name  wal.Name
	ahead int
}

type prefetcher struct {
	s      *Store
	reqs   chan prefetchReq
	blocks chan prefetchJob
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup // dispatcher and workers
}

// Prefetch warms the block cache with the segment path names and the k
// segments after it, on the same timeline and in the same directory. It
// returns at once; the work happens in the background and is skipped when
// the prefetcher is busy. Paths that are not WAL segments, and directories whose segment size
// is not known yet, are ignored.
func (s *Store) Prefetch(path string, k int) {
	if k <= 0 {
		return
	}
	dir, name, err := SplitPath(path)
	if err != nil {
		return
	}
	n := wal.ParseName(name)
	if n.Kind != wal.KindSegment && n.Kind != wal.KindPartial {
		return
	}
	s.prefetchAsked.Add(1)
	p := s.pf
	select {
	case p.reqs <- prefetchReq{dir: dir, name: n, ahead: k}:
	default: // busy: drop the hint
	}
}

// PrefetchRequests returns how many times Prefetch was asked to warm the
// cache for a segment since Open (dropped hints included).
func (s *Store) PrefetchRequests() uint64 { return s.prefetchAsked.Load() }

// StopPrefetch stops the store's prefetcher and waits for its goroutines;
// Close calls it. Later Prefetch calls are dropped.
func (s *Store) StopPrefetch() { s.pf.shutdown() }

// newPrefetcher starts the store's prefetcher.
func newPrefetcher(s *Store) *prefetcher {
	p := &prefetcher{
		s:      s,
		reqs:   make(chan prefetchReq, prefetchQueue),
		blocks: make(chan prefetchJob),
		stop:   make(chan struct{}),
	}
	workers := max(1, s.cfg.Concurrency/2)
	p.wg.Add(1 + workers)
	go p.dispatch()
	for range workers {
		go p.load()
	}
	return p
}

func (p *prefetcher) shutdown() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
	})
}

// stopped reports whether the prefetcher should stop.
func (p *prefetcher) stopped() bool {
	select {
	case <-p.stop:
		return true
	case <-p.s.closing:
		return true
	default:
		return false
	}
}

// dispatch turns requests into block loads, in segment order so that N+1 is
// warm before N+2. Closing p.blocks ends the workers.
func (p *prefetcher) dispatch() {
	defer p.wg.Done()
	defer close(p.blocks)
	for {
		select {
		case <-p.stop:
			return
		case <-p.s.closing:
			return
		case req := <-p.reqs:
			if !p.segments(req) {
				return
			}
		}
	}
}

// segments queues the blocks of the segments req asks for; false means stop.
func (p *prefetcher) segments(req prefetchReq) bool {
	meta, err := p.s.DirMeta(req.dir)
	if err != nil || !wal.ValidSegmentSize(meta.SegSize) {
		return true
	}
	segno, err := req.name.SegNo(meta.SegSize)
	if err != nil {
		return true
	}
	for i := 0; i <= req.ahead; i++ {
		if p.stopped() {
			return false
		}
		name := wal.SegmentFileName(req.name.TLI, segno+uint64(i), meta.SegSize)
		f, err := p.s.lookup(joinPath(req.dir, name))
		if err != nil {
			return true // not archived (yet): nothing further is likely to be
		}
		// Blocks of evicted packs come in runs, one range GET each
		// (packcache.go).
		for _, job := range p.s.prefetchPlan(f.Blocks) {
			select {
			case p.blocks <- job:
			case <-p.stop:
				return false
			case <-p.s.closing:
				return false
			}
		}
	}
	return true
}

func (p *prefetcher) load() {
	defer p.wg.Done()
	for job := range p.blocks {
		if p.stopped() {
			continue // dispatch is returning and closes p.blocks
		}
		if job.run != nil {
			p.s.prefetchRun(job.run)
			continue
		}
		h := job.h
		_, release, err := p.s.pinnedBlock(h, nil)
		release()
		if err != nil {
			p.s.log.Debug("prefetch: block not loaded", "block", h, "err", err)
		}
	}
}
