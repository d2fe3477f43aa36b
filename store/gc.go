package store

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/walrus-archive/walrus/index"
)

// DefaultGCThreshold is the live fraction below which GC rewrites a pack.
const DefaultGCThreshold = 0.5

// gcBatch bounds the block moves committed in one index transaction.
const gcBatch = 1024

// GCOptions tune a garbage collection run.
type GCOptions struct {
	// Threshold: a pack whose live bytes are less than this fraction of its
	// committed length is rewritten. 0 means DefaultGCThreshold; packs with
	// no live bytes at all are always deleted.
	Threshold float64
	// Progress, if set, is called after each pack with the totals so far.
	Progress func(GCReport)
}

// GCReport says what a GC run did.
type GCReport struct {
	PacksScanned   int     `json:"packs_scanned"`
	PacksRewritten int     `json:"packs_rewritten"` // live records copied, old pack deleted
	PacksDeleted   int     `json:"packs_deleted"`   // packs that had no live bytes, deleted
	PacksBusy      int     `json:"packs_busy"`      // left alone: gained references while GC ran
	PacksNoSpace   int     `json:"packs_no_space"`  // left alone: too little free space to copy their live bytes
	Candidates     int     `json:"candidates"`      // packs below the threshold when GC started
	BytesCopied    int64   `json:"bytes_copied"`    // record bytes rewritten into the active pack
	BytesRead      int64   `json:"bytes_read"`      // pack bytes scanned
	DiskBefore     int64   `json:"disk_bytes_before"`
	DiskAfter      int64   `json:"disk_bytes_after"`
	Seconds        float64 `json:"seconds"`

	// PacksNotUploaded: left alone because the store has a bucket and they
	// are not in it yet (remote.go, remotegc.go).
	PacksNotUploaded int `json:"packs_not_uploaded"`
}

// GC reclaims the space of removed files. A pack with no live bytes is
// retired in the index and deleted; a pack whose live fraction is below the
// threshold, and every small pack when there are several, has its live
// records copied into the active pack, the blocks repointed and the pack
// retired in one index transaction, and only then is the old file deleted.
// When the active pack itself is below the threshold it is sealed first, so
// that its dead bytes can be reclaimed too. Packs that uploads in progress
// wrote to, and packs newer than the active one, are never touched. Cheapest
// first (fewest live bytes): on a full disk, packs with nothing live free
// space for the copies of the next; a pack whose live bytes do not fit in
// the free space is left alone (PacksNoSpace). See "Garbage collection" in
// doc.go for the crash-safety argument. One GC runs at a time; concurrent
// calls wait.
func (s *Store) GC(ctx context.Context, opts GCOptions) (GCReport, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	start := time.Now()
	var rep GCReport
	threshold := opts.Threshold
	if threshold <= 0 {
		threshold = DefaultGCThreshold
	}
	var err error
	if s.gcGuard, err = s.hasBucket(); err != nil {
		return rep, err
	}
	if rep.DiskBefore, err = s.packDiskBytes(); err != nil {
		return rep, err
	}
	if err := s.sealCollectable(threshold); err != nil {
		return rep, err
	}
	cands, err := s.gcCandidates(threshold, &rep)
	if err == nil {
		cands, err = s.unpinForGC(ctx, cands) // the journal's packs (checkpoint.go)
	}
	if err != nil {
		return rep, err
	}
	rep.Candidates = len(cands)
	for _, p := range cands {
		if err := s.gcContinue(ctx); err != nil {
			return s.gcDone(rep, start), err
		}
		if !s.roomToCollect(p) {
			rep.PacksNoSpace++
			continue
		}
		retired, err := s.collectPack(ctx, p, &rep)
		if errors.Is(err, ErrNoSpace) {
			// The space went while the copies were written (another writer):
			// the batches committed so far stand, the rest are dead bytes.
			s.log.Warn("gc: ran out of space while rewriting a pack; left for later", "pack", p.ID, "err", err)
			rep.PacksNoSpace++
			continue
		}
		if err != nil {
			return s.gcDone(rep, start), err
		}
		switch {
		case !retired:
			rep.PacksBusy++
		case p.Live == 0:
			rep.PacksDeleted++
		default:
			rep.PacksRewritten++
		}
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
	if rep.PacksDeleted+rep.PacksRewritten > 0 {
		// Not needed for safety (a retired pack that reappears after a crash
		// is deleted by Open), but it makes the reclaimed space durable.
		if err := syncDir(s.packs.dir); err != nil {
			return s.gcDone(rep, start), err
		}
	}
	return s.gcDone(rep, start), nil
}

func (s *Store) gcDone(rep GCReport, start time.Time) GCReport {
	rep.DiskAfter, _ = s.packDiskBytes()
	rep.Seconds = time.Since(start).Seconds()
	return rep
}

func (s *Store) gcContinue(ctx context.Context) error {
	select {
	case <-s.closing:
		return ErrClosed
	default:
		return ctx.Err()
	}
}

// packDiskBytes sums the sizes of the pack files on disk.
func (s *Store) packDiskBytes() (int64, error) {
	entries, err := os.ReadDir(s.packs.dir)
	if err != nil {
		return 0, fmt.Errorf("store: read %s: %w", s.packs.dir, err)
	}
	var n int64
	for _, e := range entries {
		if _, ok := parsePackName(e.Name()); !ok {
			continue
		}
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n, nil
}

// smallPackDivisor: a sealed pack shorter than PackSize/smallPackDivisor is
// small; when there are two or more, GC merges them into the active pack
// (stores written by a `walrus put` per file before packs were resumed
// hold thousands of them).
const smallPackDivisor = 8

// gcCandidates returns the sealed packs worth collecting, fewest live bytes
// first.
func (s *Store) gcCandidates(threshold float64, rep *GCReport) ([]*index.Pack, error) {
	bound := s.pw.sealedBelow()
	busy := s.pendingPacks()
	var out, small []*index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if p.Retired {
				return nil
			}
			rep.PacksScanned++
			switch {
			case p.ID >= bound || busy[p.ID]:
			case s.gcGuard && !p.Uploaded:
				// Not in the bucket yet: stays until it is (remote.go).
				rep.PacksNotUploaded++
			case collectable(p, threshold):
				out = append(out, p)
			case p.Committed < s.cfg.PackSize/smallPackDivisor:
				small = append(small, p)
			}
			return nil
		})
	})
	if len(small) >= 2 {
		out = append(out, small...)
	}
	s.warnNotUploaded(rep)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Live != out[j].Live {
			return out[i].Live < out[j].Live
		}
		return out[i].ID < out[j].ID
	})
	return out, err
}

// collectable reports whether p's live fraction is below threshold.
func collectable(p *index.Pack, threshold float64) bool {
	body := max(1, p.Committed-packHeaderLen)
	return p.Live <= 0 || float64(p.Live)/float64(body) < threshold
}

// sealCollectable seals the active pack when it is itself worth collecting
// and no upload in progress wrote to it: otherwise up to PackSize of removed
// data could never be reclaimed, however full the disk. The next append
// starts a new pack (GC's own copies, if nothing else).
func (s *Store) sealCollectable(threshold float64) error {
	id, ok := s.pw.active()
	if !ok || s.hasPending(id) {
		return nil
	}
	var p *index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		var err error
		p, err = x.Pack(id)
		return err
	})
	if errors.Is(err, index.ErrNotFound) {
		return nil // nothing committed in it yet
	}
	if err != nil {
		return err
	}
	if collectable(p, threshold) {
		s.pw.sealActive(id)
	}
	return nil
}

// roomToCollect reports whether p's live bytes fit in the free space while
// leaving the index what it needs: GC never starts a rewrite it cannot
// finish. A new pack for the copies may cost one more block.
func (s *Store) roomToCollect(p *index.Pack) bool {
	if p.Live <= 0 {
		return true
	}
	if err := s.space.forIndex(p.Live + int64(s.cfg.BlockSize)); err != nil {
		s.log.Warn("gc: not enough free space to rewrite a pack; left for later", "pack", p.ID, "live", p.Live, "err", err)
		return false
	}
	return true
}

// pendingPacks returns the packs holding blocks of uploads not yet
// committed: their records are not in the index, so GC must not judge them.
func (s *Store) pendingPacks() map[uint32]bool {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	out := map[uint32]bool{}
	for _, b := range s.pending {
		out[b.Pack] = true
	}
	return out
}

func (s *Store) hasPending(pack uint32) bool {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	for _, b := range s.pending {
		if b.Pack == pack {
			return true
		}
	}
	return false
}

// collectPack copies p's live records into the active pack and commits the
// moves; the last commit retires p if nothing references it any more, and
// then the file is deleted. It reports whether p was retired.
func (s *Store) collectPack(ctx context.Context, p *index.Pack, rep *GCReport) (bool, error) {
	var moves []gcMove
	if p.Live > 0 {
		var err error
		moves, err = s.copyLive(ctx, p, rep)
		if err != nil {
			return false, err
		}
	}
	op := &gcMoveOp{s: s, pack: p.ID, moves: moves, retire: true, guard: s.gcGuard}
	if err := s.submit(op); err != nil {
		return false, err
	}
	if !op.retired {
		s.log.Info("gc: pack gained references while it was collected; left for the next run", "pack", p.ID)
		return false, nil
	}
	if err := s.packs.remove(p.ID); err != nil {
		// The record is retired: Open deletes the file if we cannot now.
		s.log.Error("gc: delete retired pack", "pack", p.ID, "err", err)
	}
	s.wantBucketDeletes() // its object, if any (remotegc.go)
	return true, nil
}

// copyLive appends every record of p that a block record still points at to
// the active pack. Moves are committed in batches of gcBatch as it goes (each
// batch is a consistent state on its own); the last batch is returned for
// the retiring commit.
func (s *Store) copyLive(ctx context.Context, p *index.Pack, rep *GCReport) ([]gcMove, error) {
	src, done, err := s.packSource(p) // an evicted pack: from the bucket
	if err != nil {
		return nil, err
	}
	defer done()
	r := bufio.NewReaderSize(io.NewSectionReader(src, packHeaderLen, p.Committed-packHeaderLen), 1<<20)
	hdr := make([]byte, recordHeaderLen)
	payload := make([]byte, 0, s.cfg.BlockSize)
	var moves []gcMove
	for off := int64(packHeaderLen); off < p.Committed; {
		if err := s.gcContinue(ctx); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(r, hdr); err != nil {
			return nil, fmt.Errorf("%w: gc: pack %d at %d: %w", ErrCorrupt, p.ID, off, err)
		}
		rh, err := decodeRecordHeader(hdr, maxStoredLen)
		if err != nil {
			return nil, fmt.Errorf("%w: gc: pack %d at %d: %w", ErrCorrupt, p.ID, off, err)
		}
		payload = payload[:0]
		payload = append(payload, make([]byte, rh.StoredLen)...)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, fmt.Errorf("%w: gc: pack %d at %d: %w", ErrCorrupt, p.ID, off, err)
		}
		recLen := int64(recordHeaderLen) + int64(rh.StoredLen)
		rep.BytesRead += recLen
		if s.isLiveAt(rh.Hash, p.ID, off) {
			if !rh.check(hdr, payload) {
				return nil, fmt.Errorf("%w: gc: pack %d: record at %d fails its CRC; run walrus verify", ErrCorrupt, p.ID, off)
			}
			id, noff, err := s.pw.append(rh.Hash, int(rh.RawLen), rh.Codec, payload)
			if err != nil {
				return nil, err
			}
			to := index.Block{Pack: id, Offset: noff, RawLen: rh.RawLen, StoredLen: rh.StoredLen, Codec: rh.Codec}
			moves = append(moves, gcMove{h: rh.Hash, from: off, to: to})
			rep.BytesCopied += recLen
			if len(moves) >= gcBatch {
				if err := s.submit(&gcMoveOp{s: s, pack: p.ID, moves: moves}); err != nil {
					return nil, err
				}
				moves = nil
			}
		}
		off += recLen
	}
	return moves, nil
}

// isLiveAt reports whether the index says block h lives at pack/off.
func (s *Store) isLiveAt(h index.Hash, pack uint32, off int64) bool {
	live := false
	err := s.idx.View(func(x *index.Txn) error {
		b, err := x.Block(h)
		if err == nil {
			live = b.Pack == pack && b.Offset == off
		}
		return err
	})
	if err != nil && !errors.Is(err, index.ErrNotFound) {
		s.log.Warn("gc: block look-up failed; copying it to be safe", "block", h, "err", err)
		return true
	}
	return live
}

// gcMove is one block record GC copied: from its offset in the old pack to
// its new location.
type gcMove struct {
	h    index.Hash
	from int64
	to   index.Block
}

// gcMoveOp repoints the block records that still point at the copied
// records and moves their live bytes to the new packs. With retire set it
// then retires the old pack if no block record points at it any more (its
// live count is zero) and no upload in progress wrote to it. A block that was
// released or re-stored meanwhile is skipped: its copy stays dead bytes.
type gcMoveOp struct {
	s       *Store
	pack    uint32
	moves   []gcMove
	retire  bool
	guard   bool // the store has a bucket: retire only an uploaded pack
	retired bool // out
}

func (o *gcMoveOp) apply(x *index.Txn, _ time.Time) error {
	o.retired = false
	old, err := x.Pack(o.pack)
	if err != nil {
		return err
	}
	if old.Retired {
		return nil
	}
	if err := o.checkCopies(x); err != nil {
		return err
	}
	for _, m := range o.moves {
		b, err := x.Block(m.h)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if b.Pack != o.pack || b.Offset != m.from {
			continue
		}
		nb := m.to
		nb.Refs = b.Refs
		if err := x.PutBlock(m.h, &nb); err != nil {
			return err
		}
		old.AddLive(b, -1)
		np, err := packRecord(x, nb.Pack)
		if err != nil {
			return err
		}
		np.AddLive(&nb, 1)
		if err := x.PutPack(np); err != nil {
			return err
		}
	}
	if o.retire && old.Live == 0 && !o.s.hasPending(o.pack) && (!o.guard || old.Uploaded) {
		ok, err := retirable(x, old) // the journal may still need it
		if err != nil {
			return err
		}
		old.Retired, o.retired = ok, ok
		if ok && old.Uploaded {
			// Its object is now a pending deletion (remotegc.go).
			old.MovedBelow = o.s.pw.allocatedBelow()
		}
	}
	return x.PutPack(old)
}

// checkCopies refuses the moves if a copy lies past its pack's committed
// length: that pack failed to fsync (see commitFileOp.checkLocated).
func (o *gcMoveOp) checkCopies(x *index.Txn) error {
	packs := map[uint32]*index.Pack{}
	for _, m := range o.moves {
		p := packs[m.to.Pack]
		if p == nil {
			var err error
			if p, err = packRecord(x, m.to.Pack); err != nil {
				return err
			}
			packs[m.to.Pack] = p
		}
		if err := checkDurable(p, &m.to, fmt.Sprintf("gc of pack %d", o.pack)); err != nil {
			return refuse(err)
		}
	}
	return nil
}
