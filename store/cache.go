package store

import (
	"container/list"
	"sync"

	"github.com/walrus-archive/walrus/index"
)

// blockCache is an LRU of decompressed blocks bounded by total bytes
// (golang-lru bounds entry counts, and blocks differ in size), and the
// pool their buffers are recycled through.
//
// Recycling. A cold restore decodes 16 blocks of 1 MiB per segment and the
// cache evicts as many; allocating each afresh cost the server ~2 200 minor
// page faults and the zeroing of 16 MiB per segment (the runtime's memory
// limit makes the scavenger hand freed spans back to the kernel). So
// decodes take their output buffer from a pool (buffer), and the buffer of
// an evicted block goes back to it, but only when nobody can still be
// reading it:
//
//   - acquire/release pin an entry: Reader and the prefetcher take blocks
//     through Store.pinnedBlock, which loads a missing block once (the
//     entry is in the map, loading, while it is read; others wait for it)
//     and holds a pin while the caller copies out of it. An entry evicted
//     while pinned leaves the LRU (its bytes stop counting against max at
//     once) and its buffer returns to the pool at the last release.
//   - get/put, the unpinned path (Store.block), hand out the slice without
//     a pin: such an entry is marked handedOut and its buffer is never
//     recycled (it becomes garbage, as every buffer did before).
//
// Only buffers of exactly bufSize bytes capacity are pooled. A buffer is
// recycled only from an entry that owns it alone: every block loaded
// (Store.loadBlock) is a fresh or pooled buffer that nothing else refers to
// (zstd's DecodeAll drops its reference to dst before it returns).
//
// Locking: mu guards everything; a cached slice's content is immutable
// while it is in the map or pinned.
type blockCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List // front = most recent; values are *cacheEntry (ready ones only)
	m     map[index.Hash]*cacheEntry
	// hits and misses count look-ups (CacheStats).
	hits, misses uint64

	bufSize int
	pool    sync.Pool // of *[]byte with cap bufSize
}

type cacheEntry struct {
	h    index.Hash
	b    []byte
	elem *list.Element // in order (and counted in used); nil while loading or once evicted
	refs int           // pins (acquire without release yet)
	// handedOut: get or put gave b to a caller without a pin, so b is
	// never recycled.
	handedOut bool
	// loading is non-nil while the block is being loaded by the first
	// acquirer, and closed when b or err is set.
	loading chan struct{}
	err     error
}

func newBlockCache(max int64, bufSize int) *blockCache {
	return &blockCache{max: max, order: list.New(), m: map[index.Hash]*cacheEntry{}, bufSize: bufSize}
}

// buffer returns an empty slice with room for n bytes, from the pool when n
// fits a pooled buffer.
func (c *blockCache) buffer(n int) []byte {
	if n <= c.bufSize {
		if b, ok := c.pool.Get().(*[]byte); ok {
			return (*b)[:0]
		}
		return make([]byte, 0, c.bufSize)
	}
	return make([]byte, 0, n)
}

// recycle returns b to the pool; the caller guarantees nothing refers to it.
func (c *blockCache) recycle(b []byte) {
	if cap(b) != c.bufSize {
		return
	}
	b = b[:0]
	c.pool.Put(&b)
}

// free recycles an entry's buffer if it is out of the map and the LRU,
// unpinned and never handed out. Called with mu held.
func (c *blockCache) free(e *cacheEntry) {
	if e.refs == 0 && e.elem == nil && !e.handedOut && e.b != nil && c.m[e.h] != e {
		c.recycle(e.b)
		e.b = nil
	}
}

func (c *blockCache) get(h index.Hash) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok || e.elem == nil {
		c.misses++
		return nil
	}
	c.hits++
	c.order.MoveToFront(e.elem)
	e.handedOut = true
	return e.b
}

func (c *blockCache) put(h index.Hash, b []byte) {
	if int64(len(b)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[h]; ok {
		if e.elem != nil {
			c.order.MoveToFront(e.elem)
		}
		return // loading or cached: b stays the caller's
	}
	e := &cacheEntry{h: h, b: b, handedOut: true}
	c.m[h] = e
	c.insert(e)
}

// insert puts a loaded entry at the front of the LRU and evicts from the
// back down to max. Called with mu held; e is in the map.
func (c *blockCache) insert(e *cacheEntry) {
	e.elem = c.order.PushFront(e)
	c.used += int64(len(e.b))
	for c.used > c.max {
		last := c.order.Back()
		old := last.Value.(*cacheEntry)
		c.order.Remove(last)
		old.elem = nil
		delete(c.m, old.h)
		c.used -= int64(len(old.b))
		c.free(old)
	}
}

// acquire pins block h, loading it with load if it is not cached (one load
// per block at a time: concurrent acquirers wait for it). The caller must
// release the entry when done with e.b, also after an error.
func (c *blockCache) acquire(h index.Hash, load func() ([]byte, error)) (*cacheEntry, error) {
	c.mu.Lock()
	if e, ok := c.m[h]; ok {
		e.refs++
		if e.loading == nil {
			c.hits++
			c.order.MoveToFront(e.elem)
			c.mu.Unlock()
			return e, nil
		}
		c.misses++
		loading := e.loading
		c.mu.Unlock()
		<-loading // e.b and e.err are set before it closes
		return e, e.err
	}
	c.misses++
	e := &cacheEntry{h: h, refs: 1, loading: make(chan struct{})}
	c.m[h] = e
	c.mu.Unlock()

	b, err := load()

	c.mu.Lock()
	e.b, e.err = b, err
	done := e.loading
	e.loading = nil
	if err != nil || int64(len(b)) > c.max {
		delete(c.m, h) // not cached: recycled at the last release
	} else {
		c.insert(e)
	}
	c.mu.Unlock()
	close(done)
	return e, err
}

// release drops a pin taken by acquire.
func (c *blockCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	c.free(e)
	c.mu.Unlock()
}

// contains reports whether h is cached or being loaded (prefetch skips
// those blocks).
func (c *blockCache) contains(h index.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[h]
	return ok
}

// pinnedBlock returns the decompressed, verified content of block h,
// pinned in the cache: b stays valid and unchanged until release is
// called, which the caller must do exactly once (also after an error,
// when b is nil).
func (s *Store) pinnedBlock(h index.Hash, hint *index.Block) (b []byte, release func(), err error) {
	e, err := s.cache.acquire(h, func() ([]byte, error) { return s.loadBlock(h, hint) })
	release = func() { s.cache.release(e) }
	if err != nil {
		return nil, release, err
	}
	return e.b, release, nil
}
