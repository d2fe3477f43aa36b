package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// Packs in a bucket, local-ack mode (Config.Remote; issue 14).
//
// Acknowledgements do not change: Commit returns nil once the bytes are
// fsynced and the index committed locally (see "Write path" in doc.go).
// The bucket is a copy made afterwards, in the background, by one
// uploader goroutine, of sealed packs only:
//
//  1. a pack is sealed when the writer rolls it (full), GC seals it, or
//     the uploader seals the active pack by age (Config.RollAge, default
//     60 s, once it holds a record that old), so the bucket lags the local
//     store by about RollAge plus an upload. A sealed pack is never
//     appended to again: Open does not resume a pack marked uploaded;
//  2. the uploader takes every pack that is sealed, not retired and not
//     marked uploaded, oldest first. If the writer appended to it past
//     its committed length since the last commit batch (a batch's own
//     journal records are committed by it) it first submits an empty op (flushOp), so
//     that a batch fsyncs the pack and commits its final length
//     (Pack.Committed);
//  3. Put of the pack's [0, Committed) as object packs/NNNNNNNN.pack
//     (the bytes the index names; anything past Committed is a torn or
//     poisoned tail Open truncates), then Stat, which must report
//     Committed bytes;
//  4. only then uploadedOp marks the pack Uploaded in the index, in a
//     committer transaction that refuses if Committed changed meanwhile
//     (then the pack is uploaded again) or the pack was retired.
//
// Crash or failure at any point leaves the pack unmarked; Open queues it
// again, and Put replaces an identical object (idempotent). A bucket that
// is down costs nothing but the backlog: the Stack decorator retries each
// call, the uploader retries the pack with a backoff (1 s doubling, at
// most max(RollAge, 1 s) capped at 60 s), pushes go on, and the backlog
// (Status.Bucket) grows and drains when the bucket is back. One WARN per
// failure streak.
//
// Before the first upload the uploader claims the bucket prefix for this
// store (bucketid.go): one prefix, one store.
//
// GC: with a Remote, GC neither rewrites nor retires a pack that is not
// uploaded, so no local pack leaves before its copy is in the bucket. The
// object of a retired pack is deleted once the bucket holds what replaced
// it (remotegc.go: the order and its crash points); until then Repair
// accepts it (a retired pack's blocks are dead bytes there, superseded by
// their later copies).
//
// Rebuild: FetchPacks downloads every packs/ object into an empty
// DATA/packs (temporary file, fsync, size and header check, rename, fsync
// of the directory), after which Repair rebuilds the index from the packs'
// journal, and MarkUploaded records what came from the bucket so that it
// is not sent back.

// remotePackPrefix is the object name prefix of packs in the bucket.
const remotePackPrefix = "packs/"

func packObjectName(id uint32) string { return fmt.Sprintf("%s%08d.pack", remotePackPrefix, id) }

// BucketStatus is the upload backlog (Status.Bucket; nil without a bucket).
type BucketStatus struct {
	Location string `json:"location"`
	// WaitingPacks and WaitingBytes: sealed packs not yet in the bucket.
	WaitingPacks int   `json:"waiting_packs"`
	WaitingBytes int64 `json:"waiting_bytes"`
	// OldestWaitingSeconds: age (since its last write) of the oldest
	// waiting pack; 0 when none waits.
	OldestWaitingSeconds float64 `json:"oldest_waiting_seconds"`
	// ActiveBytes and ActiveAgeSeconds: the pack still being appended to,
	// sealed at most RollAge after its first record.
	ActiveBytes      int64   `json:"active_bytes"`
	ActiveAgeSeconds float64 `json:"active_age_seconds"`
	UploadedPacks    int     `json:"uploaded_packs"` // marked uploaded in the index
	// Uploads and UploadedBytes since this process opened the store;
	// Failures counts failed pack uploads (each after the Stack's retries).
	Uploads       int64 `json:"uploads"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	// UploadSeconds is the time spent in those uploads' Put and Stat
	// (UploadedBytes / UploadSeconds is the upload throughput).
	UploadSeconds float64 `json:"upload_seconds"`
	Failures      int64   `json:"failures"`
	Failing       bool    `json:"failing"` // the last upload failed
	// Verified: the bucket prefix was found to be this store's
	// (bucketid.go); nothing is uploaded before.
	Verified  bool   `json:"verified"`
	LastError string `json:"last_error,omitempty"`
	// Cache: the local pack cache and range reads (packcache.go).
	Cache *PackCacheStatus `json:"cache,omitempty"`
	// Snapshot: the newest index snapshot (snapshot.go).
	Snapshot *SnapshotStatus `json:"snapshot,omitempty"`
	// PendingDeletePacks and PendingDeleteBytes: objects of packs GC
	// retired, deleted once the bucket holds what replaced them
	// (remotegc.go); Deletes and DeletedBytes: deleted since Open.
	PendingDeletePacks int   `json:"pending_delete_packs"`
	PendingDeleteBytes int64 `json:"pending_delete_bytes"`
	Deletes            int64 `json:"deletes"`
	DeletedBytes       int64 `json:"deleted_bytes"`
	// HeldForPeers: of the pending, those deletable but for other
	// front-ends of the group (peers.go) that have not followed them
	// yet: HeldBy, their ids, or HeldUnlisted, the registry not read yet
	// since Open (remotegc.go, step 2).
	HeldForPeers int      `json:"held_for_peers"`
	HeldBy       []string `json:"held_by,omitempty"`
	HeldUnlisted bool     `json:"held_unlisted,omitempty"`
}

// Lagging reports whether anything committed may not be in the bucket
// yet (including: the bucket prefix has not been verified yet).
func (b *BucketStatus) Lagging() bool { return b.WaitingPacks > 0 || b.ActiveBytes > 0 || !b.Verified }

type uploader struct {
	s      *Store
	b      backend.Backend
	kick   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// idleBelow: the last pass found nothing to upload below this bound
	// (sealedBelow); until a pack is sealed there is nothing new, so the
	// kick after every commit batch costs no index scan. Uploader only.
	idleBelow uint32
	idle      bool
	// idleSealed: Store.sealedCommits when the idle pass began. A pack
	// sealed (by age) between an append and the batch that commits it has
	// no pack record yet, so that pass does not list it; the batch then
	// gives it one without moving the bound. It bumps sealedCommits, which
	// ends the shortcut (before: the pack waited until the next seal, for
	// ever if no push came; CI saw it in TestBucketCacheServesEvictedPacks).
	idleSealed uint64
	// idleAt: the shortcut also expires after idleRecheck, a backstop.
	idleAt time.Time

	mu            sync.Mutex
	uploads       int64
	uploadedBytes int64
	uploadTime    time.Duration
	failures      int64
	failing       bool
	claimed       bool // claimBucket succeeded
	lastErr       string
	changed       chan struct{} // closed and replaced at every change
	ack           ackState      // remote-ack (remoteack.go)

	gc bucketGC // deleting retired packs' objects (remotegc.go)

	snap *snapshotter // index snapshots (snapshot.go)
}

func newUploader(s *Store) *uploader {
	ctx, cancel := context.WithCancel(context.Background())
	u := &uploader{s: s, b: s.cfg.Remote, kick: make(chan struct{}, 1), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), changed: make(chan struct{})}
	u.gc.want.Store(true) // deletions left pending by the last run
	u.gc.openBelow = s.pw.allocatedBelow()
	u.snap = newSnapshotter(s)
	return u
}

// kickUpload wakes the uploader (after every commit batch: a pack may have
// been sealed, or its final length committed).
func (s *Store) kickUpload() {
	if s.up == nil {
		return
	}
	select {
	case s.up.kick <- struct{}{}:
	default:
	}
}

func (u *uploader) stop() {
	u.cancel()
	<-u.done
	<-u.snap.done
}

// uploaded returns the bytes uploaded since Open.
func (u *uploader) uploaded() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.uploadedBytes
}

func (u *uploader) notify() {
	u.mu.Lock()
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
}

func (u *uploader) maxBackoff() time.Duration {
	d := min(max(u.s.cfg.RollAge, time.Second), time.Minute)
	if u.s.cfg.AckRemote {
		d = min(d, ackMaxBackoff(u.s.cfg.AckTimeout)) // pushes wait for the retry
	}
	return d
}

func (u *uploader) run() {
	defer close(u.done)
	go u.snap.run(u.ctx, u.uploaded)
	backoff := time.Duration(0)
	for {
		again, err := u.pass()
		if err == nil && !again {
			if eerr := u.s.rc.evict(); eerr != nil && u.ctx.Err() == nil {
				u.s.log.Warn("pack cache: eviction failed; retried after the next upload pass", "err", eerr)
			}
			if rerr := u.s.rc.refill(); rerr != nil && u.ctx.Err() == nil {
				u.s.log.Warn("pack cache: refill failed; the pack is read from the bucket", "err", rerr)
			}
			again, err = u.deletePass() // remotegc.go: a bounded batch, again if more wait
			if err == nil && !again {
				u.snap.poke(u.uploaded()) // snapshot.go: on its own goroutine
			}
		}
		u.notify()
		if u.ctx.Err() != nil {
			return
		}
		var wait time.Duration
		switch {
		case err != nil:
			backoff = min(max(2*backoff, time.Second), u.maxBackoff())
			wait = backoff
		case again:
			backoff = 0
			continue
		default:
			backoff = 0
			wait = max(u.s.cfg.RollAge/4, 10*time.Millisecond) // the age check
		}
		t := time.NewTimer(wait)
		select {
		case <-u.ctx.Done():
			t.Stop()
			return
		case <-u.kick:
			if err != nil {
				// A failing bucket is retried on the backoff, not on
				// every commit; the kick is remembered.
				select {
				case <-t.C:
				case <-u.ctx.Done():
					t.Stop()
					return
				}
				select {
				case u.kick <- struct{}{}:
				default:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// waitingPacks returns the packs to upload, oldest first: below bound
// (sealed), not retired,
// not uploaded.
func (s *Store) waitingPacks(bound uint32) ([]*index.Pack, error) {
	var out []*index.Pack
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if !p.Retired && !p.Uploaded && p.ID < bound {
				out = append(out, p)
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b *index.Pack) int { return int(a.ID) - int(b.ID) })
	return out, err
}

// pass seals the active pack if it is old enough and uploads what waits.
// again: something changed under it (a pack's length), pass once more.
func (u *uploader) pass() (again bool, err error) {
	s := u.s
	s.pw.sealIfOlder(s.cfg.RollAge, time.Now())
	u.mu.Lock()
	claimed := u.claimed
	u.mu.Unlock()
	if !claimed {
		if err := u.claimBucket(u.ctx); err != nil {
			u.failed("claiming the bucket prefix", err)
			return false, err
		}
		u.mu.Lock()
		u.claimed = true
		was := u.failing
		u.failing, u.lastErr = false, ""
		u.mu.Unlock()
		if was {
			s.log.Info("bucket reachable again", "bucket", u.b.Location())
		}
	}
	bound := s.pw.sealedBelow()
	if u.sealForAck(bound) { // remote-ack: seal what waiting pushes need
		bound = s.pw.sealedBelow()
	}
	sealed := s.sealedCommits.Load() // before the index is read
	if u.idle && bound == u.idleBelow && sealed == u.idleSealed && time.Since(u.idleAt) < idleRecheck {
		return false, nil
	}
	u.idle = false
	packs, err := s.waitingPacks(bound)
	if err != nil {
		return false, err
	}
	if len(packs) == 0 {
		u.uploadedUpTo(bound)
		if u.sealForAck(bound) {
			return true, nil
		}
		u.idle, u.idleBelow, u.idleSealed, u.idleAt = true, bound, sealed, time.Now()
		return false, nil
	}
	u.uploadedUpTo(packs[0].ID)
	if slices.ContainsFunc(packs, func(p *index.Pack) bool { return s.pw.dirtyPast(p.ID, p.Committed) }) {
		// Commit the final lengths first (step 2 in the comment above).
		if err := s.submit(flushOp{}); err != nil {
			return false, err
		}
		return true, nil
	}
	for i, p := range packs {
		if u.ctx.Err() != nil {
			return false, nil
		}
		stale, err := u.upload(p)
		if err != nil {
			u.failed(fmt.Sprintf("pack %d", p.ID), err)
			return false, err
		}
		if stale {
			// Not past it: packs reach the bucket in id order, so that
			// only the newest object there can still be replaced by a
			// longer one (the follower of another front-end relies on
			// it, peers.go). The next pass uploads it again first.
			again = true
			break
		}
		u.succeeded(p)
		s.pw.uploadedPack(p.ID)
		if !again { // every pack below the next one is uploaded
			next := bound
			if i+1 < len(packs) {
				next = packs[i+1].ID
			}
			u.uploadedUpTo(next)
		}
		u.notify()
	}
	if !again && u.sealForAck(bound) {
		again = true
	}
	return again, nil
}

// idleRecheck bounds how long the uploader trusts an idle pass
// (uploader.idleAt): a backstop behind sealedCommits. A variable for
// the test that shows sealedCommits alone suffices.
var idleRecheck = 5 * time.Second

var errStaleUpload = errors.New("store: pack changed while it was uploaded")

// upload copies pack p's committed bytes to the bucket and marks it
// uploaded (steps 3 and 4). stale: the pack's length changed meanwhile or
// it was retired; nothing is marked.
func (u *uploader) upload(p *index.Pack) (stale bool, err error) {
	s := u.s
	pf, err := s.packs.get(p.ID)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil // retired by GC meanwhile
	}
	if err != nil {
		return false, err
	}
	defer s.packs.release(pf)
	name := packObjectName(p.ID)
	began := time.Now()
	defer func() {
		if err == nil && !stale {
			u.mu.Lock()
			u.uploadTime += time.Since(began)
			u.mu.Unlock()
		}
	}()
	there, err := u.alreadyInBucket(p) // remotegc.go
	if err != nil {
		return false, err
	}
	u.gc.found = there
	if !there {
		if err := u.b.Put(u.ctx, name, io.NewSectionReader(pf.f, 0, p.Committed), p.Committed); err != nil {
			return false, fmt.Errorf("put %s: %w", name, err)
		}
	}
	info, err := u.b.Stat(u.ctx, name)
	if err != nil {
		return false, fmt.Errorf("stat %s after put: %w", name, err)
	}
	if info.Size != p.Committed {
		return false, fmt.Errorf("%s is %d bytes in the bucket after a put of %d", name, info.Size, p.Committed)
	}
	err = s.submit(&uploadedOp{id: p.ID, size: p.Committed})
	if errors.Is(err, errStaleUpload) {
		return true, nil
	}
	return false, err
}

func (u *uploader) failed(what string, err error) {
	if u.ctx.Err() != nil {
		return // Close cancelled it: the pack is queued again at Open
	}
	u.mu.Lock()
	u.failures++
	first := !u.failing
	u.failing, u.lastErr = true, err.Error()
	u.mu.Unlock()
	if first {
		u.s.log.Warn("bucket upload failed; retrying with backoff, pushes go on, the backlog is in walrus status",
			"upload", what, "bucket", u.b.Location(), "err", err)
	}
}

func (u *uploader) succeeded(p *index.Pack) {
	u.mu.Lock()
	if !u.gc.found { // not put: it was there (alreadyInBucket)
		u.uploads++
		u.uploadedBytes += p.Committed
	}
	u.gc.want.Store(true) // a pending deletion may wait for this pack
	was, failures := u.failing, u.failures
	u.failing, u.lastErr = false, ""
	u.mu.Unlock()
	if was {
		u.s.log.Info("bucket uploads resumed", "pack", p.ID, "bucket", u.b.Location(), "failures_total", failures)
	}
}

// flushOp changes nothing: its batch commits the lengths of the packs
// written since the last batch (recordPackEnds), after fsyncing them.
type flushOp struct{}

func (flushOp) apply(*index.Txn, time.Time) error { return nil }

// uploadedOp marks pack id uploaded if its committed length is still the
// size that was put.
type uploadedOp struct {
	id   uint32
	size int64
}

func (o *uploadedOp) apply(x *index.Txn, _ time.Time) error {
	p, err := x.Pack(o.id)
	if errors.Is(err, index.ErrNotFound) {
		return refuse(errStaleUpload)
	}
	if err != nil {
		return err
	}
	if p.Retired || p.Committed != o.size {
		return refuse(errStaleUpload)
	}
	if p.Uploaded {
		return nil
	}
	p.Uploaded = true
	return x.PutPack(p)
}

// bucketStatus fills the backlog from the index and the uploader.
func (s *Store) bucketStatus() (*BucketStatus, error) {
	if s.up == nil {
		return nil, nil
	}
	bs := &BucketStatus{Location: s.cfg.Remote.Location()}
	now := time.Now()
	bound, size, first := s.pw.activeSince()
	if size > 0 {
		bs.ActiveBytes = size
		bs.ActiveAgeSeconds = now.Sub(first).Seconds()
	}
	packs, err := s.waitingPacks(bound)
	if err != nil {
		return nil, err
	}
	for _, p := range packs {
		bs.WaitingPacks++
		bs.WaitingBytes += p.Committed
	}
	if len(packs) > 0 {
		if fi, err := os.Stat(packFileName(s.packs.dir, packs[0].ID)); err == nil {
			bs.OldestWaitingSeconds = max(0, now.Sub(fi.ModTime()).Seconds())
		}
	}
	err = s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if !p.Retired && p.Uploaded {
				bs.UploadedPacks++
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	u := s.up
	u.mu.Lock()
	bs.Uploads, bs.UploadedBytes, bs.Failures, bs.Failing, bs.LastError = u.uploads, u.uploadedBytes, u.failures, u.failing, u.lastErr
	bs.UploadSeconds, bs.Verified = u.uploadTime.Seconds(), u.claimed
	u.mu.Unlock()
	bs.Snapshot = s.up.snap.status()
	if bs.Cache, err = s.rc.status(); err != nil {
		return nil, err
	}
	if err := s.bucketGCStatus(bs); err != nil {
		return nil, err
	}
	return bs, nil
}

// WaitBucket waits until cond holds for the upload backlog, re-checking
// after every change the uploader makes. Without a bucket it returns an
// error at once.
func (s *Store) WaitBucket(ctx context.Context, cond func(*BucketStatus) bool) error {
	if s.up == nil {
		return errors.New("store: no bucket configured")
	}
	for {
		s.up.mu.Lock()
		ch := s.up.changed
		s.up.mu.Unlock()
		bs, err := s.bucketStatus()
		if err != nil {
			return err
		}
		if cond(bs) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("store: waiting for the bucket: %w (backlog %d packs, %d bytes active, last error %q)",
				ctx.Err(), bs.WaitingPacks, bs.ActiveBytes, bs.LastError)
		case <-s.closing:
			return ErrClosed
		}
	}
}

// MarkUploaded marks every pack whose committed length equals sizes[id]
// as uploaded: the bytes came from the bucket (FetchPacks), so the
// uploader need not send them back. A pack whose length differs (Repair
// appended a checkpoint to it) is left to the uploader. It returns how
// many were marked.
func (s *Store) MarkUploaded(sizes map[uint32]int64) (int, error) {
	n := 0
	for _, id := range sortedKeys(sizes) {
		if s.pw.isActive(id) {
			continue // it may still grow; the uploader takes it once sealed
		}
		err := s.submit(&uploadedOp{id: id, size: sizes[id]})
		if errors.Is(err, errStaleUpload) {
			continue
		}
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// isActive reports whether id is the pack being appended to.
func (w *packWriter) isActive(id uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pf != nil && w.id == id
}
