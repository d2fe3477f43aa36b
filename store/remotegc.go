package store

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// Deleting the bucket objects of retired packs (issue 14).
//
// GC retires a pack (gc.go) once no block record points into it; with a
// bucket, only a pack that is uploaded. Its object is then no longer needed
// by the index, but a rebuild from the bucket alone (FetchPacks + Repair)
// still needs it until the bucket holds what replaced it: the copies GC
// made of its blocks, and a journal that names the files without it. The
// order:
//
//  1. the retiring transaction (gcMoveOp) keeps Uploaded set on the
//     retired record and writes MovedBelow, the packs allocated by then:
//     every copy of its blocks, and every journal batch committed before
//     it (the removals that made its blocks dead, too), lies in a pack
//     below it. Retired with Uploaded is the recorded intent, a pending
//     deletion (Status.Bucket.PendingDeletePacks);
//  2. the uploader, after each pass that found nothing more to upload,
//     deletes (bucketDeletesPerPass at a time, uploads passing between)
//     the object of every pending pack R for which, in one index
//     snapshot: every pack below R.MovedBelow is retired or uploaded, and
//     every pack of the index's checkpoint (Journal.CkptPacks) is
//     uploaded. A retired pack's batches are covered by that checkpoint
//     (GC retires no pack the journal pins), so the bucket then holds a
//     complete checkpoint, the batches after it up to R's retirement, and
//     a copy of each of R's live blocks: in a pack below MovedBelow that
//     is uploaded, or, if that pack was retired since, in its object
//     (uploaded before it was retired: GC of a store with a bucket
//     retires no other), which by the same rule stays until its own
//     copies are in the bucket;
//     2a. with other front-ends (peers.go), also only once each live one
//     has followed R: a front-end whose registry record is younger than
//     PeerExpiry publishes there its marker for us (Followed; 0 when it
//     has none), and R is deleted only if R <= marker - peerLookBack
//     (lookBack may read that many packs below the one it follows) for
//     every one of them; before the follower's first listing since Open,
//     nothing is deleted. Held packs stay pending, not failed
//     (Status.Bucket.HeldForPeers, HeldBy); the follower asks for a pass
//     again whenever the bound moves. A front-end whose record is older
//     than PeerExpiry holds nothing (a WARN names it once): if it comes
//     back, it may be stuck at a pack of ours that is gone. Without a
//     follower (no claims prefix) there is nothing to wait for;
//  3. Delete of packs/NNNNNNNN.pack (idempotent: a missing object is
//     success);
//  4. only then bucketDeletedOp clears Uploaded on the retired record, in a
//     committer transaction. The record stays a tombstone, as before.
//
// A crash before 3 leaves the record pending: the next pass (Open queues
// one) deletes it. A crash between 3 and 4 leaves a pending record whose
// object is gone: Delete succeeds again and 4 follows. Nothing else clears
// the mark (forgetUploadsOp does, when the bucket no longer holds the
// store at all). A failing Delete is retried on the uploader's backoff
// and shows in Status.Bucket like a failed upload (Failures, LastError).
//
// Records retired before MovedBelow existed (by a walrus that never
// deleted objects) read MovedBelow 0, unknown: the first pass stamps them
// with the packs allocated now (bucketBoundOp), which bounds every copy
// made before; from then on they are pending like any other.
//
// A store with a bucket that is opened without one (walrus gc while serve
// is not running) still knows it has one: DATA/bucket.id (bucketid.go).
// Its GC then retires no pack that is not uploaded, as with a bucket, and
// says so; pending deletions wait for a store opened with the bucket.
//
// What this does not cover: a repair that rebuilds the index from the
// local packs alone forgets the tombstones of retired packs whose local
// file is gone; their objects, if still pending, stay in the bucket (dead
// bytes, which a rebuild from the bucket accepts: Repair takes the newest
// copy of each block). repair --from-bucket fetches them back, and GC then
// retires them and deletes their objects again.

// bucketGC is the uploader's state for deleting objects.
type bucketGC struct {
	want atomic.Bool // something may have become deletable
	// openBelow: the packs allocated before Open; sameStore: the claim
	// found the bucket already this store's (alreadyInBucket). Uploader only.
	openBelow uint32
	sameStore bool
	found     bool // the last upload found its pack there and put nothing

	mu           sync.Mutex
	deletes      int64
	deletedBytes int64
}

// allocatedBelow returns the next pack id: every pack allocated so far is
// below it.
func (w *packWriter) allocatedBelow() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nextID
}

// hasBucket reports whether the store has a bucket: configured, or
// claimed earlier (DATA/bucket.id) and not configured now.
func (s *Store) hasBucket() (bool, error) {
	if s.cfg.Remote != nil {
		return true, nil
	}
	id, err := readLocalBucketID(s.cfg.Dir)
	return id != "", err
}

// warnNotUploaded says why GC, opened without the store's bucket, left
// packs alone.
func (s *Store) warnNotUploaded(rep *GCReport) {
	if s.cfg.Remote == nil && rep.PacksNotUploaded > 0 {
		s.log.Warn("gc: this store uploads to a bucket (DATA/"+bucketIDFile+") and is opened without it: packs not in the bucket yet are kept; "+
			"walrus serve with the bucket flags uploads them, and its gc (or walrus gc while it runs) collects them; remove DATA/"+bucketIDFile+" to stop using the bucket",
			"packs", rep.PacksNotUploaded)
	}
}

// wantBucketDeletes asks the uploader to look for deletable objects.
func (s *Store) wantBucketDeletes() {
	if s.up == nil {
		return
	}
	s.up.gc.want.Store(true)
	s.kickUpload()
}

// bucketPlan is what one snapshot of the index allows (step 2).
type bucketPlan struct {
	deletable []*index.Pack
	unknown   []uint32 // retired before MovedBelow existed
	pending   int
	pendingB  int64
	// held: deletable but for the other front-ends (step 2a): heldBy
	// the live ones that have not followed them, or unlisted when the
	// follower has not listed them yet.
	held     int
	heldBy   []string
	unlisted bool
}

func (s *Store) bucketPlan() (bucketPlan, error) {
	var pl bucketPlan
	var pending []*index.Pack
	lowest := uint32(math.MaxUint32) // lowest pack neither retired nor uploaded
	uploaded := map[uint32]bool{}
	var ckpt []uint32
	err := s.idx.View(func(x *index.Txn) error {
		if err := x.Packs(func(p *index.Pack) error {
			switch {
			case p.Retired && p.Uploaded:
				pending = append(pending, p)
			case p.Retired:
			case p.Uploaded:
				uploaded[p.ID] = true
			default:
				lowest = min(lowest, p.ID)
			}
			return nil
		}); err != nil {
			return err
		}
		j, _, err := x.Journal()
		if err != nil {
			return err
		}
		ckpt = j.CkptPacks
		return nil
	})
	if err != nil {
		return pl, err
	}
	ckptIn := true
	for _, id := range ckpt {
		ckptIn = ckptIn && uploaded[id]
	}
	for _, p := range pending {
		pl.pending++
		pl.pendingB += p.Committed
		switch {
		case p.MovedBelow == 0:
			pl.unknown = append(pl.unknown, p.ID)
		case ckptIn && p.MovedBelow <= lowest:
			pl.deletable = append(pl.deletable, p)
		}
	}
	if s.fl != nil && len(pl.deletable) > 0 {
		limits, known := s.fl.deleteLimits()
		by := map[string]bool{}
		free := pl.deletable[:0]
		for _, p := range pl.deletable {
			ok := known
			for id, lim := range limits {
				if int64(p.ID) > lim {
					ok, by[id] = false, true
				}
			}
			if ok {
				free = append(free, p)
			} else {
				pl.held++
			}
		}
		pl.deletable, pl.heldBy, pl.unlisted = free, slices.Sorted(mapKeys(by)), !known
	}
	return pl, nil
}

// bucketDeletesPerPass bounds the Deletes between two upload passes, so
// that a large GC does not hold back uploads (and remote-ack pushes).
const bucketDeletesPerPass = 32

// deletePass deletes the objects the index no longer needs (steps 2-4),
// at most bucketDeletesPerPass of them; more: others wait, pass again.
func (u *uploader) deletePass() (more bool, err error) {
	if !u.gc.want.Swap(false) {
		return false, nil
	}
	s := u.s
	pl, err := s.bucketPlan()
	if err == nil && len(pl.unknown) > 0 {
		err = s.submit(&bucketBoundOp{ids: pl.unknown, bound: s.pw.allocatedBelow()})
	}
	if len(pl.deletable) > bucketDeletesPerPass {
		pl.deletable, more = pl.deletable[:bucketDeletesPerPass], true
	}
	var done []*index.Pack // deleted, not yet recorded
	record := func() error {
		if len(done) == 0 {
			return nil
		}
		op := &bucketDeletedOp{}
		for _, p := range done {
			op.ids = append(op.ids, p.ID)
		}
		if err := s.submit(op); err != nil {
			return err
		}
		u.gc.mu.Lock()
		for _, p := range done {
			u.gc.deletes++
			u.gc.deletedBytes += p.Committed
		}
		u.gc.mu.Unlock()
		done = done[:0]
		return nil
	}
	for _, p := range pl.deletable {
		if err != nil || u.ctx.Err() != nil {
			break
		}
		name := packObjectName(p.ID)
		if err = u.b.Delete(u.ctx, name); err != nil {
			err = fmt.Errorf("delete %s: %w", name, err)
			break
		}
		if done = append(done, p); len(done) >= bucketDeleteBatch {
			err = record()
		}
	}
	if rerr := record(); err == nil {
		err = rerr
	}
	if len(pl.deletable) > 0 {
		s.log.Debug("deleted the bucket objects of retired packs", "packs", len(pl.deletable), "err", err)
	}
	if err != nil {
		u.gc.want.Store(true) // again after the backoff
		if !errors.Is(err, ErrClosed) {
			u.failed("deleting retired packs", err)
		}
		return false, err
	}
	if more {
		u.gc.want.Store(true)
	}
	return more, nil
}

// bucketBoundOp sets MovedBelow on retired, pending records that lack it.
type bucketBoundOp struct {
	ids   []uint32
	bound uint32
}

func (o *bucketBoundOp) apply(x *index.Txn, _ time.Time) error {
	for _, id := range o.ids {
		p, err := x.Pack(id)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !p.Retired || p.MovedBelow != 0 {
			continue
		}
		p.MovedBelow = o.bound
		if err := x.PutPack(p); err != nil {
			return err
		}
	}
	return nil
}

// bucketDeleteBatch bounds the deletions recorded in one transaction.
const bucketDeleteBatch = 256

// bucketDeletedOp records that the objects of retired packs ids are gone.
type bucketDeletedOp struct{ ids []uint32 }

func (o *bucketDeletedOp) apply(x *index.Txn, _ time.Time) error {
	for _, id := range o.ids {
		p, err := x.Pack(id)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !p.Retired || !p.Uploaded {
			continue
		}
		p.Uploaded = false
		if err := x.PutPack(p); err != nil {
			return err
		}
	}
	return nil
}

// bucketGCStatus fills the deletion fields of the bucket status.
func (s *Store) bucketGCStatus(bs *BucketStatus) error {
	pl, err := s.bucketPlan()
	if err != nil {
		return err
	}
	bs.PendingDeletePacks, bs.PendingDeleteBytes = pl.pending, pl.pendingB
	bs.HeldForPeers, bs.HeldBy, bs.HeldUnlisted = pl.held, pl.heldBy, pl.unlisted && pl.held > 0
	s.up.gc.mu.Lock()
	bs.Deletes, bs.DeletedBytes = s.up.gc.deletes, s.up.gc.deletedBytes
	s.up.gc.mu.Unlock()
	return nil
}

// alreadyInBucket reports whether pack p, not marked uploaded, is in the
// bucket already: a pack that existed before Open whose object has exactly
// its committed length, in a prefix that held this store's id before this
// process claimed it. Committed bytes never change, so that object holds
// them: a crash between the Put and the mark, or a repair that rebuilt the
// index from the local packs (it keeps no marks), costs one HEAD per pack
// instead of its upload. Packs created since Open were never put.
func (u *uploader) alreadyInBucket(p *index.Pack) (bool, error) {
	if p.ID >= u.gc.openBelow || !u.gc.sameStore {
		return false, nil
	}
	name := packObjectName(p.ID)
	info, err := u.b.Stat(u.ctx, name)
	if backend.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", name, err)
	}
	return info.Size == p.Committed, nil
}
