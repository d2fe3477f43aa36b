package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/store/backend"
)

// cutBackend shows objects named in cuts as their first cuts[name] bytes
// (a pack object the uploader will replace by a longer one: an upload
// made stale by a commit to the pack while it was sent).
type cutBackend struct {
	backend.Backend
	mu   *sync.Mutex
	cuts map[string]int64
}

func (c cutBackend) cut(name string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.cuts[name]
	return n, ok
}

func (c cutBackend) info(in backend.Info) backend.Info {
	if n, ok := c.cut(in.Name); ok {
		in.Size = n
	}
	return in
}

func (c cutBackend) Stat(ctx context.Context, name string) (backend.Info, error) {
	in, err := c.Backend.Stat(ctx, name)
	return c.info(in), err
}

func (c cutBackend) List(ctx context.Context, prefix string, fn func(backend.Info) error) error {
	return c.Backend.List(ctx, prefix, func(in backend.Info) error { return fn(c.info(in)) })
}

func (c cutBackend) ListAfter(ctx context.Context, prefix, after string, fn func(backend.Info) error) error {
	return c.Backend.ListAfter(ctx, prefix, after, func(in backend.Info) error { return fn(c.info(in)) })
}

func (c cutBackend) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if n, ok := c.cut(name); ok && off+int64(len(p)) > n {
		return fmt.Errorf("%w: %s is %d bytes", backend.ErrShort, name, n)
	}
	return c.Backend.ReadAt(ctx, name, p, off)
}

// A peer's pack object that is replaced by a longer one after the
// follower took it (a stale upload: the pack got a commit while it was
// sent, and the next pass puts it again whole) is followed again: the
// files of its tail arrive. Without that the marker had passed the pack
// and they never did (waited for: 20 s).
func TestPeersFollowAPackThatGrew(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/", func(c *Config) { c.RollAge = time.Hour })
	f1, f2 := peerFile(11), peerFile(12)
	mustPut(t, a, "f1", f1)
	mustPut(t, a, "f2", f2) // the same pack, a later batch
	a.pw.sealIfOlder(0, time.Now().Add(time.Hour))
	a.kickUpload()
	var id uint32
	testenv.WaitFor(t, "A's pack in the bucket", 30*time.Second, func() bool {
		st, err := a.Status()
		if err != nil || st.Bucket == nil || st.Bucket.WaitingPacks != 0 || st.Bucket.UploadedPacks == 0 {
			return false
		}
		ps := 0
		a.idx.View(func(x *index.Txn) error {
			return x.Packs(func(p *index.Pack) error {
				if p.Uploaded && !p.Retired {
					id, ps = p.ID, ps+1
				}
				return nil
			})
		})
		return ps == 1
	})
	// The cut: the pack up to the end of f1's batch, the first journal record.
	file, err := os.Open(packFileName(a.pw.dir, id))
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := file.Stat()
	var cut int64
	seenJournal := false
	if _, err := scanPack(file, id, fi.Size(), false, func(off int64, h recordHeader, _ []byte) error {
		if seenJournal && cut == 0 {
			cut = off
		}
		seenJournal = seenJournal || h.Codec == codecJournal
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	file.Close()
	if cut == 0 {
		t.Fatal("f1's and f2's batches are not both in the pack")
	}
	mu := &sync.Mutex{}
	cuts := map[string]int64{packObjectName(id): cut}
	b := e.open(t, t.TempDir(), "fe2/", func(c *Config) {
		open := c.OpenPrefix
		c.OpenPrefix = func(p string) (backend.Backend, error) {
			bk, err := open(p)
			return cutBackend{Backend: bk, mu: mu, cuts: cuts}, err
		}
	})
	testenv.WaitFor(t, "B follows the shorter pack", 30*time.Second, func() bool {
		ps := peerStatus(t, b)
		return len(ps) == 1 && ps[0].Marker == id && holdsAll(t, b, map[string][]byte{"f1": f1})
	})
	if _, err := b.StatHere("f2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B holds f2 from a pack cut before it: %v", err)
	}
	mu.Lock()
	delete(cuts, packObjectName(id)) // the uploader's next pass put it whole
	mu.Unlock()
	testenv.WaitFor(t, "B adopts f2 from the pack that grew", 20*time.Second, func() bool {
		return holdsAll(t, b, map[string][]byte{"f2": f2})
	})
}
