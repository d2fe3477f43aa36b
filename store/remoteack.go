package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Remote-ack mode (Config.AckRemote, walrus serve --ack remote; issue 14).
//
// A push succeeds only once everything needed to restore it from the
// bucket alone is there: the packs holding its blocks and its file record
// (the journal record Repair rebuilds it from), and, since Repair replays
// the journal as a chain back to a checkpoint, every pack before them. So
// the rule is a barrier: when a push's local commit has returned (Commit
// nil: fsynced, indexed; "Write path" in doc.go), let T be one past the
// active pack if it holds records, else the lowest pack not yet sealed;
// every record committed so far lies in a pack below T (pack ids only
// grow, and the batch that committed the push appended its journal
// record to the active pack). The push is acknowledged once every
// non-retired pack below T is marked Uploaded (Put, Stat-checked,
// uploadedOp committed: remote.go steps 3 and 4). A retired pack below T
// needs no copy: GC with a bucket retires only uploaded packs, and a
// retired pack's blocks live on in a later one.
//
// Order for one push:
//
//  1. the local commit, unchanged (what local-ack acknowledges);
//  2. T as above, raised into ackState.sealWant, and a kick;
//  3. the uploader, once every sealed pack is uploaded (uploadedBelow >=
//     sealedBelow), seals the active pack if sealWant asks for it, then
//     uploads oldest first as in local-ack, raising uploadedBelow past
//     each pack it marked;
//  4. the push returns once uploadedBelow >= T.
//
// Group commit: the uploader seals only when nothing sealed waits, so all
// pushes that commit while a pack is being uploaded share the next seal
// and the next Put (one PUT + one Stat per upload round, not per push).
// The sealed packs are small (what one round collected); GC merges small
// sealed packs as it does today.
//
// Failure: a push fails with ErrBucket, one line naming the bucket and its
// last error, after AckTimeout, or as soon as an upload attempt made after
// it began fails (after the Stack's retries): the bucket is unreachable
// now, and PostgreSQL's archiver retries anyway. The local commit stays
// (nothing is lost) and the uploader retries on a short backoff
// (ackMaxBackoff), so a retry of the push succeeds, as an identical
// re-push, once the bucket is back: the identical re-push waits at step 2
// like any push (Upload.Commit), so a push that failed on the bucket is
// never acknowledged before its bytes are there.
//
// Default timeout 30 s: PostgreSQL waits for archive_command without a
// timeout of its own and retries a failure forever, so the bound exists
// for the people and tools watching (rsync's --timeout, commonly 30-60 s,
// ends a client that hears nothing for that long); a single segment's
// pack uploads in well under a second to a reachable bucket, and a
// backlog left by a local-ack run drains across retries.
//
// Paths that answer a push: the rsync gateway and the control API (walrus
// put) commit through Upload.Commit; the FUSE mount's landing files
// (LandingFile.Commit) are not landed in remote-ack mode but uploaded at
// close through an ordinary upload, which waits (a landed file would be
// acknowledged before its ingest). Background ingest of files landed by an
// earlier local-ack run does not wait: nobody is answered by it.

// ErrBucket: a remote-ack push is committed locally but not (yet) in the
// bucket. The CLI, rsync and the control API report it; FUSE returns EIO.
var ErrBucket = errors.New("store: the bucket is unreachable")

// ackState is the remote-ack part of the uploader, guarded by uploader.mu.
type ackState struct {
	// sealWant: pushes wait for every pack below it; the uploader seals
	// the active pack when it is below it and nothing sealed waits.
	sealWant uint32
	// uploadedBelow: every non-retired pack below it is marked uploaded.
	// Never lowered (a sealed pack is never appended to again).
	uploadedBelow uint32
}

// ackMaxBackoff caps the uploader's retry backoff in remote-ack mode, so
// that a push retried after the bucket is back finds an attempt soon.
func ackMaxBackoff(timeout time.Duration) time.Duration {
	return max(timeout/10, time.Second)
}

// uploadedUpTo records that every non-retired pack below id is uploaded.
func (u *uploader) uploadedUpTo(id uint32) {
	u.mu.Lock()
	u.ack.uploadedBelow = max(u.ack.uploadedBelow, id)
	u.mu.Unlock()
}

// sealForAck seals the active pack if waiting pushes need it and every
// sealed pack is uploaded (step 3). It reports whether it sealed.
func (u *uploader) sealForAck(bound uint32) bool {
	u.mu.Lock()
	want, below := u.ack.sealWant, u.ack.uploadedBelow
	u.mu.Unlock()
	if want <= bound || below < bound {
		return false
	}
	return u.s.pw.sealBefore(want)
}

// ackTarget returns T (step 2): every record written so far lies in a
// pack below it.
func (w *packWriter) ackTarget() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.pf == nil:
		return w.nextID
	case w.size <= packHeaderLen:
		return w.id
	}
	return w.id + 1
}

// sealBefore seals the active pack if its id is below want.
func (w *packWriter) sealBefore(want uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pf == nil || w.id >= want {
		return false
	}
	w.seal()
	return true
}

// dirtyPast reports whether this process wrote pack id past committed
// (the length in the uploader's index snapshot): either a batch has yet to
// commit those bytes, or one committed them after the snapshot; either
// way the uploader submits a flushOp and looks again, instead of putting
// a prefix that uploadedOp would refuse as stale. A batch's own journal
// records end exactly at the length it committed, so they need no flushOp
// (one index sync less per remote-ack push). A poisoned pack's bytes past
// its committed length are never committed: not dirty.
func (w *packWriter) dirtyPast(id uint32, committed int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ends[id] > committed && !w.poisoned[id]
}

// uploadedPack forgets the end of pack id, uploaded (sealed: final).
func (w *packWriter) uploadedPack(id uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.ends, id)
}

// ackRemote waits, in remote-ack mode, until everything committed so far
// is in the bucket (steps 2 to 4); path names the push in the error. It
// returns nil at once in local-ack mode.
func (s *Store) ackRemote(path string) error {
	u := s.up
	if u == nil || !s.cfg.AckRemote {
		return nil
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.AckTimeout)
	defer cancel()
	target := s.pw.ackTarget()
	u.mu.Lock()
	u.ack.sealWant = max(u.ack.sealWant, target)
	failures := u.failures
	u.mu.Unlock()
	s.kickUpload()
	for {
		u.mu.Lock()
		ch, done, failed, lastErr := u.changed, u.ack.uploadedBelow >= target, u.failures > failures, u.lastErr
		u.mu.Unlock()
		if done {
			return nil
		}
		if failed {
			return s.bucketErr(path, fmt.Sprintf("an upload failed after %v", time.Since(began).Round(time.Millisecond)), lastErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s.bucketErr(path, fmt.Sprintf("not in the bucket after %v", s.cfg.AckTimeout), lastErr)
		case <-s.closing:
			return fmt.Errorf("%w: %s is committed locally, not yet in the bucket", ErrClosed, path)
		}
	}
}

// bucketErr is the one-line refusal of a push the bucket did not take.
func (s *Store) bucketErr(path, what, lastErr string) error {
	if lastErr == "" {
		lastErr = "none yet: the bucket is slow or does not answer"
	}
	lastErr = strings.Join(strings.Fields(lastErr), " ") // one line
	return fmt.Errorf("%w: %s (%s): %s (last error: %s); the push is kept on the archive server's disk and succeeds again once the bucket is back",
		ErrBucket, s.cfg.Remote.Location(), path, what, lastErr)
}
