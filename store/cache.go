package store

import (
	"container/list"
	"sync"

	"github.com/walrus-archive/walrus/index"
)

// blockCache is an LRU of decompressed blocks bounded by total bytes
// (golang-lru bounds entry counts, and blocks differ in size). Locking: mu
// guards everything; cached slices are immutable once inserted.
type blockCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	order *list.List // front = most recent; values are *cacheEntry
	m     map[index.Hash]*list.Element
	// hits and misses count get calls (CacheStats).
	hits, misses uint64
}

type cacheEntry struct {
	h index.Hash
	b []byte
}

func newBlockCache(max int64) *blockCache {
	return &blockCache{max: max, order: list.New(), m: map[index.Hash]*list.Element{}}
}

func (c *blockCache) get(h index.Hash) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[h]
	if !ok {
		c.misses++
		return nil
	}
	c.hits++
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).b
}

func (c *blockCache) put(h index.Hash, b []byte) {
	if int64(len(b)) > c.max {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[h]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.m[h] = c.order.PushFront(&cacheEntry{h: h, b: b})
	c.used += int64(len(b))
	for c.used > c.max {
		last := c.order.Back()
		ent := last.Value.(*cacheEntry)
		c.order.Remove(last)
		delete(c.m, ent.h)
		c.used -= int64(len(ent.b))
	}
}

// contains reports whether h is cached (prefetch skips cached blocks).
func (c *blockCache) contains(h index.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[h]
	return ok
}
