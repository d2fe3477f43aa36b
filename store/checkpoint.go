package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/walrus-archive/walrus/index"
)

// A checkpoint is a snapshot of every namespace and file record, written
// into the packs as journal records (journal.go) while commits go on. Once
// its records are durable and the index says so (checkpointOp), the journal
// batches it includes are no longer needed, and GC may retire the packs that
// hold them; see "The journal" in doc.go.

// checkpointWriter appends one checkpoint's chunks.
type checkpointWriter struct {
	s       *Store
	id      uint64
	seq     uint64
	chunk   *jrecord
	size    int
	chunks  uint32
	entries uint64
	bytes   int64
	packs   map[uint32]bool
}

func (w *checkpointWriter) add(e jentry) error {
	if n := e.size(); w.size > 0 && w.size+n > journalChunk {
		if err := w.flush(); err != nil {
			return err
		}
	}
	w.chunk.entries = append(w.chunk.entries, e)
	w.size += e.size()
	w.entries++
	return nil
}

func (w *checkpointWriter) write(r *jrecord) error {
	payload := r.encode()
	id, _, err := w.s.pw.appendJournal(payload, true)
	if err != nil {
		return err
	}
	w.packs[id] = true
	w.bytes += int64(recordHeaderLen + len(payload))
	return nil
}

func (w *checkpointWriter) flush() error {
	if len(w.chunk.entries) == 0 {
		return nil
	}
	w.chunk.typ, w.chunk.seq, w.chunk.ckpt, w.chunk.part = jrCheckpoint, w.seq, w.id, w.chunks
	if err := w.write(w.chunk); err != nil {
		return err
	}
	w.chunks++
	w.chunk, w.size = &jrecord{}, 0
	return nil
}

// checkpoint writes a checkpoint of the index as it is now and waits until
// it is durable and recorded. Checkpoints are serialised by ckptMu.
func (s *Store) checkpoint(ctx context.Context) error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	w := &checkpointWriter{s: s, id: rand.Uint64() | 1, chunk: &jrecord{}, packs: map[uint32]bool{}}
	// One read snapshot: the records as of the last committed batch, seq.
	// Batches committed meanwhile have higher numbers and stay needed.
	err := s.idx.View(func(x *index.Txn) error {
		j, _, err := x.Journal()
		if err != nil {
			return err
		}
		w.seq = j.LastSeq
		if err := x.Dirs(func(d *index.Dir) error { return w.add(jentry{kind: jeDir, dir: dirIdentity(d)}) }); err != nil {
			return err
		}
		return x.Files(ctx, "*", func(f *index.File) error { return w.add(jentry{kind: jeFile, file: f}) })
	})
	if err == nil {
		err = w.flush()
	}
	if err == nil {
		err = w.write(&jrecord{typ: jrCheckpointEnd, seq: w.seq, ckpt: w.id, parts: w.chunks, count: w.entries, time: time.Now().UnixNano()})
	}
	if err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	packs := make([]uint32, 0, len(w.packs))
	for id := range w.packs {
		packs = append(packs, id)
	}
	slices.Sort(packs)
	s.log.Info("journal checkpoint written", "seq", w.seq, "entries", w.entries, "bytes", w.bytes, "packs", packs)
	return s.submit(&checkpointOp{seq: w.seq, id: w.id, packs: packs, bytes: w.bytes})
}

// checkpointOp records a checkpoint whose records the batch's fsync made
// durable. An older checkpoint than the one recorded changes nothing.
type checkpointOp struct {
	seq, id uint64
	packs   []uint32
	bytes   int64
}

func (o *checkpointOp) apply(x *index.Txn, _ time.Time) error {
	j, _, err := x.Journal()
	if err != nil {
		return err
	}
	if o.seq < j.CkptSeq {
		return nil
	}
	j.CkptSeq, j.CkptID, j.CkptPacks, j.CkptBytes, j.Covered = o.seq, o.id, o.packs, o.bytes, true
	return x.PutJournal(j)
}

// unpinForGC returns the candidates GC may collect. A candidate the journal
// pins (journalPinned) is left out, unless the pinned candidates are worth
// a new checkpoint, which then unpins them: together at least twice as
// long as the checkpoint will be (GC collects a candidate to free its dead
// bytes, or to merge small packs). A checkpoint that fails (no space, say)
// is logged; GC then collects what it may without one.
func (s *Store) unpinForGC(ctx context.Context, cands []*index.Pack) ([]*index.Pack, error) {
	j, cost, err := s.journalAndCheckpointCost()
	if err != nil {
		return nil, err
	}
	free, pinned := unpinned(j, cands)
	if pinned > 0 && pinned >= 2*cost {
		// Appends never take the reserve file (forData); GC may, to get
		// a full disk back, so it makes the room first.
		err := s.space.forIndex(cost)
		if err == nil {
			err = s.checkpoint(ctx)
		}
		if err != nil {
			s.log.Warn("gc: no checkpoint written; packs holding journal records newer than the last one are kept", "err", err)
			return free, nil
		}
		if j, _, err = s.journalAndCheckpointCost(); err != nil {
			return nil, err
		}
		free, _ = unpinned(j, cands)
	}
	return free, nil
}

// unpinned splits cands into those the journal lets GC retire and the
// length of the others.
func unpinned(j *index.Journal, cands []*index.Pack) (free []*index.Pack, pinned int64) {
	for _, p := range cands {
		if journalPinned(j, p) {
			pinned += max(0, p.Committed-packHeaderLen)
			continue
		}
		free = append(free, p)
	}
	return free, pinned
}

// journalAndCheckpointCost returns the journal state and an estimate of the
// bytes a checkpoint would take now.
func (s *Store) journalAndCheckpointCost() (*index.Journal, int64, error) {
	var j *index.Journal
	var cost int64
	err := s.idx.View(func(x *index.Txn) error {
		var err error
		if j, _, err = x.Journal(); err != nil {
			return err
		}
		st, err := x.Stats()
		if err != nil {
			return err
		}
		blocks := st.LogicalBytes/int64(s.cfg.BlockSize) + st.Files
		cost = st.Files*128 + blocks*33 + 64<<10
		return nil
	})
	return j, cost, err
}

// initJournal reads the journal state at Open. A store without one is new
// (its first commits are journaled from the start) or was written before
// packs carried a journal: then the index holds records no pack does, and
// Open writes a checkpoint of them (checkpointLegacy).
func (s *Store) initJournal() error {
	return s.idx.Update(func(x *index.Txn) error {
		j, ok, err := x.Journal()
		if err != nil {
			return err
		}
		s.seq = max(j.LastSeq, j.HighSeq) + 1
		if ok {
			s.legacy = !j.Covered
			return nil
		}
		empty := true
		if err := x.Dirs(func(*index.Dir) error { empty = false; return errStop }); err != nil && err != errStop {
			return err
		}
		if !empty {
			s.legacy = true
			return nil // Covered stays false until the checkpoint
		}
		return x.PutJournal(&index.Journal{Covered: true})
	})
}

// checkpointLegacy checkpoints a store whose index holds records that no
// pack journals (see initJournal). A failure is logged, not fatal: the
// store works, only walrus repair could not name those files yet; the next
// Open tries again.
func (s *Store) checkpointLegacy() {
	if !s.legacy {
		return
	}
	s.log.Info("journal: checkpointing a store written before packs carried file records")
	if err := s.checkpoint(context.Background()); err != nil {
		s.log.Error("journal: checkpoint failed; walrus repair cannot rebuild this index until one succeeds", "err", err)
		return
	}
	s.legacy = false
}
