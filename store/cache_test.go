package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/walgen"
)

func hashOf(i int) index.Hash {
	var h index.Hash
	h[0], h[1] = byte(i), byte(i>>8)
	return h
}

// fill returns a loader that decodes (fills) a pooled buffer with byte v.
func fill(c *blockCache, v byte, n int) func() ([]byte, error) {
	return func() ([]byte, error) {
		b := c.buffer(n)[:n]
		for i := range b {
			b[i] = v
		}
		return b, nil
	}
}

// An evicted block's buffer is reused by a later decode, unless someone
// still holds it: a pinned block keeps its bytes until released, and a
// block handed out without a pin (get) is never reused.
func TestCacheRecyclesOnlyUnpinnedBuffers(t *testing.T) {
	const n = 4096
	c := newBlockCache(2*n, n) // holds two blocks
	loads := 0
	load := func(v byte) func() ([]byte, error) {
		return func() ([]byte, error) { loads++; return fill(c, v, n)() }
	}

	pinned, err := c.acquire(hashOf(1), load(1))
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ { // evicts block 1 while it is pinned
		e, _ := c.acquire(hashOf(i), load(byte(i)))
		c.release(e)
	}
	if c.contains(hashOf(1)) {
		t.Fatal("block 1 still cached after two newer blocks")
	}
	if c.used != 2*n {
		t.Fatalf("cache counts %d bytes, want %d (a pinned, evicted block does not count)", c.used, 2*n)
	}
	// Decodes while block 1 is pinned must not get its buffer.
	for i := 4; i <= 8; i++ {
		e, _ := c.acquire(hashOf(i), load(byte(i)))
		c.release(e)
	}
	if !bytes.Equal(pinned.b, bytes.Repeat([]byte{1}, n)) {
		t.Fatal("a pinned block's bytes changed after it was evicted")
	}
	c.release(pinned) // now its buffer may be reused

	// A block given out by get (Store.block's unpinned path) keeps its
	// bytes whatever happens later.
	e, _ := c.acquire(hashOf(9), load(9))
	c.release(e)
	held := c.get(hashOf(9))
	for i := 10; i <= 40; i++ {
		e, _ := c.acquire(hashOf(i), load(byte(i)))
		c.release(e)
	}
	if !bytes.Equal(held, bytes.Repeat([]byte{9}, n)) {
		t.Fatal("a block handed out by get was recycled")
	}

	// Buffers do get reused: with two blocks cached and nothing pinned, a
	// stream of decodes mostly gets evicted buffers back (they still hold
	// an old block's bytes; a fresh one is zero). sync.Pool may drop
	// buffers (at a GC; under -race a quarter of them at random), hence
	// the margin.
	fresh := 0
	for i := 41; i <= 200; i++ {
		e, _ := c.acquire(hashOf(i), func() ([]byte, error) {
			b := c.buffer(n)[:n]
			if b[0] == 0 {
				fresh++
			}
			for j := range b {
				b[j] = byte(i)
			}
			return b, nil
		})
		c.release(e)
	}
	if fresh > 100 {
		t.Errorf("%d of 160 decodes got a fresh buffer; evicted buffers are not reused", fresh)
	}
	if loads == 0 {
		t.Fatal("no loads")
	}
}

// Concurrent acquirers of one missing block share one load; a failed load
// is not cached and every waiter sees its error.
func TestCacheAcquireLoadsOnce(t *testing.T) {
	const n = 1024
	c := newBlockCache(64*n, n)
	started, finish := make(chan struct{}), make(chan struct{})
	var loads int
	var mu sync.Mutex
	loader := func(fail bool) func() ([]byte, error) {
		return func() ([]byte, error) {
			mu.Lock()
			loads++
			mu.Unlock()
			close(started)
			<-finish
			if fail {
				return nil, errors.New("bad block")
			}
			return fill(c, 7, n)()
		}
	}
	for _, fail := range []bool{true, false} {
		loads = 0
		started, finish = make(chan struct{}), make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 8)
		first := make(chan struct{})
		go func() {
			defer close(first)
			e, err := c.acquire(hashOf(1), loader(fail))
			errs[0] = err
			c.release(e)
		}()
		<-started // the first acquirer is loading: the others must wait for it
		for i := 1; i < len(errs); i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e, err := c.acquire(hashOf(1), func() ([]byte, error) {
					return nil, fmt.Errorf("second load of block 1")
				})
				if err == nil && !bytes.Equal(e.b, bytes.Repeat([]byte{7}, n)) {
					err = fmt.Errorf("got %d other bytes", len(e.b))
				}
				errs[i] = err
				c.release(e)
			}()
		}
		close(finish)
		wg.Wait()
		<-first
		// Waiters that arrived after the failed load retried it (their
		// loader errors): both are fine, only never a hidden success.
		for i, err := range errs {
			if fail && err == nil {
				t.Errorf("acquirer %d: a failed load reported success", i)
			}
			if !fail && err != nil && i == 0 {
				t.Errorf("first acquirer: %v", err)
			}
		}
		if fail && c.contains(hashOf(1)) {
			t.Error("a failed load stayed cached")
		}
		if loads != 1 {
			t.Errorf("fail=%v: %d loads, want 1", fail, loads)
		}
	}
}

// Readers and the prefetcher share the recycled buffers of a small cache:
// every byte read back is right while segments are read concurrently,
// round after round (run with -race).
func TestReadsCorrectWhileCacheRecycles(t *testing.T) {
	dir := t.TempDir()
	mod := func(c *Config) { c.BlockSize = 64 << 10; c.CacheBytes = 4 * 64 << 10 }
	s := openTest(t, dir, mod)
	small := func(g *walgen.Segment) { g.SegSize = 1 << 20 }
	var names []string
	var want [][]byte
	for i := uint64(30); i < 36; i++ {
		sg := segment(i, small)
		mustPut(t, s, "db/"+sg.Name(), sg.Bytes())
		names, want = append(names, "db/"+sg.Name()), append(want, sg.Bytes())
	}
	s.Close()
	s = openTest(t, dir, mod)
	defer s.StopPrefetch()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 3 {
				for k := range names {
					i := (k + w) % len(names)
					s.Prefetch(names[i], 2)
					r, err := s.Open(names[i])
					if err != nil {
						t.Error(err)
						return
					}
					var got bytes.Buffer
					buf := make([]byte, 100_000) // not block aligned
					for off := int64(0); ; {
						n, err := r.ReadAt(buf, off)
						got.Write(buf[:n])
						off += int64(n)
						if err != nil {
							break
						}
					}
					r.Close()
					if !bytes.Equal(got.Bytes(), want[i]) {
						t.Errorf("worker %d round %d: %s read back different bytes", w, round, names[i])
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}
