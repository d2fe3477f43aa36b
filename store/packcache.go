package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// The local pack cache (issue 14, read path).
//
// With a bucket (Config.Remote) DATA/packs is a cache of the bucket for
// every pack that is in it: Config.PackCacheBytes bounds the committed
// bytes of the packs that have a local file. A pack may lose its local
// file (be evicted) only when it is sealed, not the active pack, not
// retired and marked Uploaded (its Committed bytes are the object
// packs/NNNNNNNN.pack, size confirmed: remote.go), no upload in progress
// wrote to it, and (with the background settler on) it holds no block the
// settler has still to re-encode (localPacks). A pack that is not in the
// bucket is never evicted, so the bound is soft: an upload or settle
// backlog may hold the local bytes above it (Status.Bucket shows both).
//
// Eviction, least recently read first (reads since Open; packs not read
// since, oldest id first), runs in the uploader goroutine after each
// pass, holding gcMu (no GC, no verify meanwhile; it skips its turn when
// either runs):
//
//  1. evictOp marks the pack Evicted in the index, in a committer
//     transaction that refuses unless the pack is still uploaded, not
//     retired and of the size that was uploaded;
//  2. only then the file is unlinked (a reader holding it open reads on:
//     packFiles.remove), and the directory fsynced after the round.
//
// A crash after 1 leaves the file of an evicted pack: Open deletes it
// (repairPacks), as it deletes a retired pack's. So a pack file is never
// missing while the index says it is local, and a missing file of a pack
// not marked evicted is still damage (verify reports it).
//
// Reads. A block whose pack has no local file is fetched by one range GET
// of its record (header and payload, [Offset, Offset+RecordLen)) from the
// pack's object and checked exactly as a local record: magic, lengths
// against the index, CRC-32C, decode, hash (readRecord, decodeRecord). A
// tampered object fails with ErrCorrupt (an Encrypted bucket fails
// earlier, ErrTampered, wrapped likewise); no byte of it is served. Those
// reads go through the block cache like local ones. The prefetcher fetches
// adjacent records of an evicted pack in one GET (prefetchRun). GC reads
// an evicted pack it collects through the bucket (one GET per MiB), the
// settler and verify through the same block reads, and verify's journal
// check scans an evicted pack through the bucket (GETs of 4 MiB).
//
// Refill. An evicted pack a reader fetched a quarter of since Open (a
// restore reading through it) is copied back whole when the bound has
// room for it without evicting another pack: the object is read into
// DATA/packs/NNNNNNNN.pack.refill in 8 MiB range GETs, fsynced, its header
// checked, renamed to NNNNNNNN.pack and the directory fsynced; only then
// refillOp clears Evicted in the index (refusing if the pack was retired
// or changed). A crash before the commit leaves the file of a pack the
// index says is evicted, which Open deletes; a leftover .refill file is
// removed by the next Open with a bucket. Its records are checked on
// every read as any local record is.
//
// Offline repair: Repair rebuilds the index from the local packs alone,
// so on a store with evicted packs it would build an index without them.
// Before its first eviction a store writes DATA/packs-evicted durably
// (temporary file, fsync, rename, fsync of DATA); Repair refuses a data
// directory holding it and names repair --from-bucket instead. The marker
// is never removed by walrus.
//
// Lost bucket: a bucket that no longer knows the store (claimBucket) would
// make the uploader send every pack again; an evicted pack cannot be sent,
// so then the uploader refuses and says which packs are lost.

// packCache is the bucket read path and the local bound; nil without a
// bucket. Locking: mu guards every field below it.
type packCache struct {
	s     *Store
	b     backend.Backend
	bound int64 // Config.PackCacheBytes; 0: unbounded (nothing is evicted)

	marked bool // DATA/packs-evicted exists (eviction goroutine only)

	mu        sync.Mutex
	fetched   map[uint32]int64 // bytes range-read per evicted pack by readers since Open
	want      map[uint32]bool  // evicted packs to copy back (refill)
	refills   int64
	tick      uint64
	lastRead  map[uint32]uint64 // pack id -> tick of its last local read
	evictions int64
	evBytes   int64
	gets      int64
	getBytes  int64
	getTime   time.Duration
	getFails  int64
}

func newPackCache(s *Store) *packCache {
	c := &packCache{s: s, b: s.cfg.Remote, bound: s.cfg.PackCacheBytes, lastRead: map[uint32]uint64{},
		fetched: map[uint32]int64{}, want: map[uint32]bool{}}
	if left, _ := filepath.Glob(filepath.Join(s.packs.dir, "*.pack.refill")); len(left) > 0 {
		for _, f := range left {
			os.Remove(f) // an interrupted refill: the pack is still evicted
		}
	}
	return c
}

// touch records a local read of pack id (eviction order).
func (c *packCache) touch(id uint32) {
	if c == nil || c.bound <= 0 {
		return
	}
	c.mu.Lock()
	c.tick++
	c.lastRead[id] = c.tick
	c.mu.Unlock()
}

// objectReader reads one pack object by range: an io.ReaderAt that fills
// p exactly or fails (backend.ReadAt), counted in the status.
type objectReader struct {
	c    *packCache
	name string
}

func (o objectReader) ReadAt(p []byte, off int64) (int, error) {
	began := time.Now()
	err := o.c.b.ReadAt(context.Background(), o.name, p, off)
	o.c.mu.Lock()
	o.c.gets++
	o.c.getTime += time.Since(began)
	if err == nil {
		o.c.getBytes += int64(len(p))
	} else {
		o.c.getFails++
	}
	o.c.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("%w %s: %w", errBucketRead, o.name, err)
	}
	return len(p), nil
}

func (c *packCache) object(id uint32) objectReader {
	return objectReader{c: c, name: packObjectName(id)}
}

// remotePack returns pack id's record if its bytes may be read from the
// bucket: uploaded and not retired.
func (c *packCache) remotePack(id uint32) (*index.Pack, error) {
	var p *index.Pack
	err := c.s.idx.View(func(x *index.Txn) error {
		var err error
		p, err = x.Pack(id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.Retired {
		return nil, fmt.Errorf("pack %d was retired", id)
	}
	if !p.Uploaded {
		return nil, fmt.Errorf("pack %d has no local file and is not in the bucket", id)
	}
	return p, nil
}

// readBlock reads block h from its pack's object (the local file is
// missing: evicted, or lost while the bucket holds a copy).
func (c *packCache) readBlock(h index.Hash, loc *index.Block, localErr error) ([]byte, error) {
	if _, err := c.remotePack(loc.Pack); err != nil {
		return nil, fmt.Errorf("%w: block %s: %w (%v)", ErrCorrupt, h, err, localErr)
	}
	rec, payload, err := readRecord(c.object(loc.Pack), loc.Offset, loc)
	if err != nil {
		return nil, c.readErr(h, loc, err)
	}
	raw, err := c.s.decodeRecord(h, loc, rec, payload, true)
	if err == nil {
		c.noteFetch(loc.Pack, loc.RecordLen())
	}
	return raw, err
}

// noteFetch counts n bytes a reader fetched from evicted pack id and
// queues the pack for a refill once it reaches a quarter of the pack.
func (c *packCache) noteFetch(id uint32, n int64) {
	if c.bound <= 0 {
		return
	}
	c.mu.Lock()
	c.fetched[id] += n
	got, wanted := c.fetched[id], c.want[id]
	c.mu.Unlock()
	if wanted {
		return
	}
	var p *index.Pack
	c.s.idx.View(func(x *index.Txn) error {
		p, _ = x.Pack(id)
		return nil
	})
	if p == nil || !p.Evicted || got*4 < p.Committed {
		return
	}
	c.mu.Lock()
	ask := !c.want[id]
	c.want[id] = true
	c.mu.Unlock()
	if ask {
		c.s.kickUpload()
	}
}

// refill copies back the evicted packs readers asked for, as far as the
// bound has room (see the top). It runs in the uploader goroutine.
func (c *packCache) refill() error {
	if c == nil || c.bound <= 0 {
		return nil
	}
	c.mu.Lock()
	ids := sortedKeys(c.want)
	c.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	s := c.s
	if !s.gcMu.TryLock() {
		return nil
	}
	defer s.gcMu.Unlock()
	for _, id := range ids {
		c.mu.Lock()
		delete(c.want, id)
		delete(c.fetched, id)
		c.mu.Unlock()
		local, _, err := c.localPacks()
		if err != nil {
			return err
		}
		p, err := c.remotePack(id)
		if err != nil || !p.Evicted || local+p.Committed > c.bound {
			continue // retired, or no room: it stays in the bucket
		}
		if err := c.copyBack(p); err != nil {
			return fmt.Errorf("pack cache: copying pack %d back: %w", id, err)
		}
		c.touch(id)
		c.mu.Lock()
		c.refills++
		c.mu.Unlock()
	}
	return nil
}

// copyBack writes evicted pack p's object as its local file, durably,
// then clears Evicted.
func (c *packCache) copyBack(p *index.Pack) error {
	s := c.s
	final := packFileName(s.packs.dir, p.ID)
	tmp := final + ".refill"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	obj := c.object(p.ID)
	buf := make([]byte, min(p.Committed, 8<<20))
	for off := int64(0); off < p.Committed && err == nil; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), p.Committed-off)]
		if _, err = obj.ReadAt(chunk, off); err == nil {
			_, err = f.WriteAt(chunk, off)
		}
	}
	if err == nil {
		if _, msg := checkPackHeader(f, p.ID, p.Committed); msg != "" {
			err = fmt.Errorf("%w: bucket object %s: %s", ErrCorrupt, packObjectName(p.ID), msg)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := syncDir(s.packs.dir); err != nil {
		return err // Open deletes the file of the pack still marked evicted
	}
	err = s.submit(&refillOp{id: p.ID, size: p.Committed})
	if err != nil {
		// Still evicted in the index: the file goes (Open would delete it).
		s.packs.remove(p.ID)
		if errors.Is(err, errNotEvictable) {
			return nil
		}
	}
	return err
}

// refillOp clears Evicted on pack id, whose file was just written back,
// if it is still of that size and not retired.
type refillOp struct {
	id   uint32
	size int64
}

func (o *refillOp) apply(x *index.Txn, _ time.Time) error {
	p, err := x.Pack(o.id)
	if errors.Is(err, index.ErrNotFound) {
		return refuse(errNotEvictable)
	}
	if err != nil {
		return err
	}
	if p.Retired || !p.Evicted || p.Committed != o.size {
		return refuse(errNotEvictable)
	}
	p.Evicted = false
	return x.PutPack(p)
}

// readErr classifies a failed range read: bytes that do not check out
// are ErrCorrupt; a bucket that cannot be reached is not.
func (c *packCache) readErr(h index.Hash, loc *index.Block, err error) error {
	if !errors.Is(err, errBucketRead) || errors.Is(err, backend.ErrTampered) || errors.Is(err, backend.ErrShort) ||
		errors.Is(err, backend.ErrNotExist) {
		return fmt.Errorf("%w: block %s in pack %d (in the bucket only): %w", ErrCorrupt, h, loc.Pack, err)
	}
	return fmt.Errorf("store: block %s in pack %d (in the bucket only): %w", h, loc.Pack, err)
}

// errBucketRead marks a range read that failed below the record check (the
// bucket's answer, not the bytes).
var errBucketRead = errors.New("reading the bucket")

// decodeRecord decompresses a checked record and verifies it is block h
// (the end of every block read, local or from the bucket). remote: take a
// decompression slot here (a local read holds one already).
func (s *Store) decodeRecord(h index.Hash, loc *index.Block, rec recordHeader, payload []byte, remote bool) ([]byte, error) {
	if remote {
		s.sem <- struct{}{}
		defer func() { <-s.sem }()
	}
	raw := payload
	var err error
	if rec.Codec != index.CodecRaw {
		raw, err = s.decodePayload(rec.Codec, payload, rec.RawLen)
		if err != nil {
			return nil, fmt.Errorf("%w: block %s in pack %d: decompress: %w", ErrCorrupt, h, loc.Pack, err)
		}
	}
	if uint32(len(raw)) != rec.RawLen || rec.Hash != h || !decodedChecked(rec.Codec, payload) && sha256.Sum256(raw) != h {
		return nil, fmt.Errorf("%w: block %s in pack %d at offset %d: content does not match its hash", ErrCorrupt, h, loc.Pack, loc.Offset)
	}
	return raw, nil
}

// packSource returns a reader of pack p's committed bytes for a
// sequential pass (GC): its local file, or its object when it has none.
func (s *Store) packSource(p *index.Pack) (io.ReaderAt, func(), error) {
	pf, err := s.packs.get(p.ID)
	if err == nil {
		return pf.f, func() { s.packs.release(pf) }, nil
	}
	if s.rc == nil || !errors.Is(err, os.ErrNotExist) || !p.Uploaded {
		return nil, nil, err
	}
	return s.rc.object(p.ID), func() {}, nil
}

// windowReader serves small sequential ReadAt calls (a pack scan's record
// headers) from windows of windowSize bytes read from r in one call each.
// Not safe for concurrent use.
type windowReader struct {
	r    io.ReaderAt
	size int64
	win  []byte
	off  int64
}

const windowSize = 4 << 20

func (w *windowReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= w.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= w.size {
			return n, io.EOF
		}
		if pos < w.off || pos >= w.off+int64(len(w.win)) {
			end := min(w.size, pos+max(int64(windowSize), int64(len(p)-n)))
			if cap(w.win) < int(end-pos) {
				w.win = make([]byte, end-pos)
			}
			w.win = w.win[:end-pos]
			if _, err := w.r.ReadAt(w.win, pos); err != nil {
				w.win = w.win[:0]
				return n, err
			}
			w.off = pos
		}
		n += copy(p[n:], w.win[pos-w.off:])
	}
	return n, nil
}

// scanSource is storeScan.remote for a store with a bucket: the object of
// an uploaded pack without a local file, sized as committed.
func (s *Store) scanSource(id uint32) (io.ReaderAt, int64, bool) {
	if s.rc == nil {
		return nil, 0, false
	}
	p, err := s.rc.remotePack(id)
	if err != nil {
		return nil, 0, false
	}
	return &windowReader{r: s.rc.object(id), size: p.Committed}, p.Committed, true
}

// evictOp marks pack id evicted if it is still uploaded, of the size that
// was uploaded, and not retired.
type evictOp struct {
	id   uint32
	size int64
}

var errNotEvictable = errors.New("store: pack is no longer evictable")

func (o *evictOp) apply(x *index.Txn, _ time.Time) error {
	p, err := x.Pack(o.id)
	if errors.Is(err, index.ErrNotFound) {
		return refuse(errNotEvictable)
	}
	if err != nil {
		return err
	}
	if p.Retired || !p.Uploaded || p.Committed != o.size {
		return refuse(errNotEvictable)
	}
	if p.Evicted {
		return nil
	}
	p.Evicted = true
	return x.PutPack(p)
}

// localPacks returns the committed bytes of packs with a local file and
// the eviction candidates, least recently read first.
func (c *packCache) localPacks() (int64, []*index.Pack, error) {
	s := c.s
	bound, activeSize, _ := s.pw.activeSince()
	activeID, active := s.pw.active()
	// The background settler re-encodes unsettled blocks soon after they
	// are uploaded (it waits only for pushes and restores to pause);
	// evicting their pack first made it read every one of them back with
	// a range GET and upload the new pack again (make compare-bucket: ~15
	// GETs per segment archived, against 2 for its restore). Such packs
	// stay until settled, so the bound is soft by the settler's backlog
	// too. Without a background settler nothing would ever settle them.
	// So do packs an upload in progress has written to: its blocks (and
	// their unsettled bytes) are counted when it commits, after the pack
	// may have been sealed and uploaded.
	settling := s.cfg.Settle && s.st != nil && s.st.enc != nil
	busy := s.pendingPacks()
	var local int64
	var cands []*index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Retired || p.Evicted {
				return nil
			}
			if active && p.ID == activeID {
				local += max(p.Committed, activeSize)
				return nil
			}
			local += p.Committed
			if p.Uploaded && p.ID < bound && !busy[p.ID] && !(settling && p.Unsettled > 0) {
				cands = append(cands, p)
			}
			return nil
		})
	})
	c.mu.Lock()
	slices.SortFunc(cands, func(a, b *index.Pack) int {
		if ta, tb := c.lastRead[a.ID], c.lastRead[b.ID]; ta != tb {
			if ta < tb {
				return -1
			}
			return 1
		}
		return int(a.ID) - int(b.ID)
	})
	c.mu.Unlock()
	return local, cands, err
}

// evict deletes local files of uploaded packs, least recently read first,
// until the local pack bytes are within the bound (see the top).
func (c *packCache) evict() error {
	if c == nil || c.bound <= 0 {
		return nil
	}
	s := c.s
	if !s.gcMu.TryLock() {
		return nil // GC or verify is running: next pass
	}
	defer s.gcMu.Unlock()
	local, cands, err := c.localPacks()
	if err != nil || local <= c.bound {
		return err
	}
	n, bytes := 0, int64(0)
	for _, p := range cands {
		if local <= c.bound {
			break
		}
		if !c.marked {
			if err := writeEvictedMarker(s.cfg.Dir); err != nil {
				return err
			}
			c.marked = true
		}
		if s.pw.isActive(p.ID) {
			continue
		}
		err := s.submit(&evictOp{id: p.ID, size: p.Committed})
		if errors.Is(err, errNotEvictable) {
			continue
		}
		if err != nil {
			return err
		}
		// The index says evicted: the file may go (Open deletes it if
		// this does not happen).
		if err := s.packs.remove(p.ID); err != nil {
			s.log.Error("pack cache: delete evicted pack (Open deletes it)", "pack", p.ID, "err", err)
		}
		local -= p.Committed
		n++
		bytes += p.Committed
	}
	if n == 0 {
		return nil
	}
	c.mu.Lock()
	c.evictions += int64(n)
	c.evBytes += bytes
	c.mu.Unlock()
	s.log.Debug("pack cache: evicted packs; they are read from the bucket", "packs", n, "bytes", bytes, "local_bytes", local, "bound", c.bound)
	return syncDir(s.packs.dir)
}

// PackCacheStatus is the local pack cache and the bucket reads
// (BucketStatus.Cache).
type PackCacheStatus struct {
	// BoundBytes is Config.PackCacheBytes (0: unbounded).
	BoundBytes int64 `json:"bound_bytes"`
	// LocalBytes: committed bytes of the packs with a local file.
	LocalBytes int64 `json:"local_bytes"`
	// EvictedPacks and EvictedBytes: packs that live in the bucket only.
	EvictedPacks int   `json:"evicted_packs"`
	EvictedBytes int64 `json:"evicted_bytes"`
	// Evictions since Open; RangeGets, RangeBytes, RangeSeconds and
	// RangeFailures: range reads of pack objects since Open.
	Evictions     int64   `json:"evictions"`
	Refills       int64   `json:"refills"` // evicted packs copied back since Open
	RangeGets     int64   `json:"range_gets"`
	RangeBytes    int64   `json:"range_bytes"`
	RangeSeconds  float64 `json:"range_seconds"`
	RangeFailures int64   `json:"range_failures"`
}

func (c *packCache) status() (*PackCacheStatus, error) {
	cs := &PackCacheStatus{BoundBytes: c.bound}
	local, _, err := c.localPacks()
	if err != nil {
		return nil, err
	}
	cs.LocalBytes = local
	err = c.s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if !p.Retired && p.Evicted {
				cs.EvictedPacks++
				cs.EvictedBytes += p.Committed
			}
			return nil
		})
	})
	c.mu.Lock()
	cs.Refills = c.refills
	cs.Evictions, cs.RangeGets, cs.RangeBytes, cs.RangeFailures = c.evictions, c.gets, c.getBytes, c.getFails
	cs.RangeSeconds = c.getTime.Seconds()
	c.mu.Unlock()
	return cs, err
}

// evictedMarker is the file that tells Repair some packs may live in the
// bucket only.
const evictedMarker = "packs-evicted"

func writeEvictedMarker(dir string) error {
	name := filepath.Join(dir, evictedMarker)
	if _, err := os.Stat(name); err == nil {
		return nil
	}
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_, err = f.WriteString("packs of this store live only in its bucket (--bucket-cache-size): walrus repair needs --from-bucket\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", name, err)
	}
	return syncDir(dir)
}

// checkNoEvicted refuses an offline repair of a store whose packs may
// live in the bucket only.
func checkNoEvicted(dir string) error {
	name := filepath.Join(dir, evictedMarker)
	if _, err := os.Stat(name); err != nil {
		return nil
	}
	return fmt.Errorf("%w: %s says packs of this store were evicted to its bucket (--bucket-cache-size), and repair reads only local packs: "+
		"rebuild with walrus repair --from-bucket into an empty data directory (or, if the bucket is lost and those packs with it, delete %s and repair again)",
		ErrEvictedPacks, name, name)
}

// ErrEvictedPacks: an offline repair of a store with packs in the bucket
// only.
var ErrEvictedPacks = errors.New("store: some packs live only in the bucket")

// errBucketLost: the bucket no longer holds this store, and some packs
// lived only there.
var errBucketLost = errors.New("store: the bucket holds no copy of this store")

// evictedPacks lists the packs that live in the bucket only.
func evictedPacks(x *index.Txn) ([]uint32, error) {
	var ids []uint32
	err := x.Packs(func(p *index.Pack) error {
		if !p.Retired && p.Evicted {
			ids = append(ids, p.ID)
		}
		return nil
	})
	return ids, err
}

// verifyEvicted checks that each evicted pack's object is in the bucket,
// as long as the index committed (its records are read and checked by
// verify's file and journal passes).
func (s *Store) verifyEvicted(packs []*index.Pack) []Problem {
	var out []Problem
	for _, p := range packs {
		name := packFileName(s.packs.dir, p.ID)
		if s.rc == nil {
			out = append(out, Problem{Kind: ProblemPack, Path: name,
				Err: "the pack lives in the bucket only (evicted from the local pack cache): verify with the store's --bucket options"})
			continue
		}
		info, err := s.rc.b.Stat(context.Background(), packObjectName(p.ID))
		switch {
		case err != nil:
			out = append(out, Problem{Kind: ProblemPack, Path: name, Err: fmt.Sprintf("evicted pack: bucket object: %v", err)})
		case info.Size != p.Committed:
			out = append(out, Problem{Kind: ProblemPack, Path: name,
				Err: fmt.Sprintf("evicted pack: bucket object %s is %d bytes, index committed %d", packObjectName(p.ID), info.Size, p.Committed)})
		}
	}
	return out
}

// Prefetch across the network. A segment's blocks are appended to a pack
// one after the other, so the records of a segment in an evicted pack are
// mostly adjacent: the prefetcher fetches each run of adjacent records
// (up to prefetchRunMax bytes) in one range GET and checks and caches
// every block of it as a single read would. A run that cannot be fetched
// leaves its blocks to the readers.

// prefetchRunMax bounds the bytes of one prefetch range GET.
const prefetchRunMax = 8 << 20

// prefetchJob is one block to load (h), or a run of records of an evicted
// pack.
type prefetchJob struct {
	h   index.Hash
	run *prefetchRun
}

type prefetchRun struct {
	pack     uint32
	off, end int64 // [off, end) of the object
	hs       []index.Hash
	locs     []index.Block
}

// prefetchPlan turns a file's blocks into prefetch jobs: blocks neither
// zero nor cached, those of local packs one by one in file order, those of
// evicted packs as runs: per pack in offset order (concurrent compression
// appends a file's blocks slightly out of order), a gap of at most
// prefetchGapMax bytes of other records fetched along, at most
// prefetchRunMax bytes per run; runs ordered by their first block in the
// file.
func (s *Store) prefetchPlan(blocks []index.Hash) []prefetchJob {
	var jobs []prefetchJob
	if s.rc == nil {
		for _, h := range blocks {
			if !h.IsZero() && !s.cache.contains(h) {
				jobs = append(jobs, prefetchJob{h: h})
			}
		}
		return jobs
	}
	type far struct {
		i   int // in the file
		h   index.Hash
		loc index.Block
	}
	byPack := map[uint32][]far{}
	evicted := map[uint32]bool{}
	seen := map[index.Hash]bool{}
	s.idx.View(func(x *index.Txn) error {
		for i, h := range blocks {
			if h.IsZero() || seen[h] || s.cache.contains(h) {
				continue
			}
			seen[h] = true
			b, err := x.Block(h)
			if err == nil {
				ev, ok := evicted[b.Pack]
				if !ok {
					p, err := x.Pack(b.Pack)
					ev = err == nil && p.Evicted && !p.Retired
					evicted[b.Pack] = ev
				}
				if ev {
					byPack[b.Pack] = append(byPack[b.Pack], far{i: i, h: h, loc: *b})
					continue
				}
			}
			jobs = append(jobs, prefetchJob{h: h})
		}
		return nil
	})
	type ordered struct {
		first int
		run   *prefetchRun
	}
	var runs []ordered
	for id, fs := range byPack {
		slices.SortFunc(fs, func(a, b far) int { return int(a.loc.Offset - b.loc.Offset) })
		var cur *ordered
		for _, f := range fs {
			end := f.loc.Offset + f.loc.RecordLen()
			if cur != nil && (f.loc.Offset-cur.run.end > prefetchGapMax || end-cur.run.off > prefetchRunMax) {
				runs = append(runs, *cur)
				cur = nil
			}
			if cur == nil {
				cur = &ordered{first: f.i, run: &prefetchRun{pack: id, off: f.loc.Offset}}
			}
			cur.first = min(cur.first, f.i)
			cur.run.end = max(cur.run.end, end)
			cur.run.hs, cur.run.locs = append(cur.run.hs, f.h), append(cur.run.locs, f.loc)
		}
		if cur != nil {
			runs = append(runs, *cur)
		}
	}
	slices.SortFunc(runs, func(a, b ordered) int { return a.first - b.first })
	for _, r := range runs {
		jobs = append(jobs, prefetchJob{run: r.run})
	}
	return jobs
}

// prefetchGapMax: bytes of other records a prefetch run fetches along
// rather than making two GETs.
const prefetchGapMax = 256 << 10

// shifted reads an object range held in memory at its object offsets.
type shifted struct {
	b    []byte
	base int64
}

func (r shifted) ReadAt(p []byte, off int64) (int, error) {
	if off < r.base || off-r.base+int64(len(p)) > int64(len(r.b)) {
		return 0, fmt.Errorf("offset %d outside the fetched range", off)
	}
	return copy(p, r.b[off-r.base:]), nil
}

// prefetchRun fetches a run in one range GET and caches its blocks.
func (s *Store) prefetchRun(run *prefetchRun) {
	buf := make([]byte, run.end-run.off)
	if _, err := s.rc.object(run.pack).ReadAt(buf, run.off); err != nil {
		s.log.Debug("prefetch: range not fetched", "pack", run.pack, "off", run.off, "bytes", len(buf), "err", err)
		return
	}
	src := shifted{b: buf, base: run.off}
	for i, h := range run.hs {
		loc := run.locs[i]
		e, err := s.cache.acquire(h, func() ([]byte, error) {
			rec, payload, err := readRecord(src, loc.Offset, &loc)
			if err != nil {
				return nil, fmt.Errorf("%w: block %s in pack %d (in the bucket only): %w", ErrCorrupt, h, loc.Pack, err)
			}
			return s.decodeRecord(h, &loc, rec, payload, true)
		})
		s.cache.release(e)
		if err == nil {
			s.rc.noteFetch(loc.Pack, loc.RecordLen())
		}
		if err != nil {
			s.log.Debug("prefetch: block not loaded", "block", h, "err", err)
		}
	}
}
