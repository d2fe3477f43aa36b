package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// Settling. Uploads compress at the ingest level (Config.Level, fastest by
// default: the ack comes sooner and costs less CPU) and mark the records
// CodecZstdIngest when that is below the settle level. The settler
// re-encodes them at Config.SettleLevel and, with the cold tier on, moves
// the blocks that only WAL older than its directory's newest restorable
// backup references to LZMA2 (CodecLZMA2; see codec.go). One block at a
// time:
//
//  1. the block is read and verified like any read (readBlock: CRC, decode,
//     SHA-256), re-encoded, and appended to the active pack
//     (packWriter.append), exactly like a GC copy;
//  2. the moves go to the committer as a settleOp, so the commit order of
//     doc.go applies: the pack the new records went to is fsynced before
//     the index transaction that repoints each block still at the location
//     it was read from (a block GC moved, or a file removed meanwhile, is
//     skipped: its new record stays dead bytes), moves its live bytes and
//     the codec counters (index.Pack.Unsettled, Cold) between packs and
//     adjusts the directory's stored bytes by what the block saved;
//  3. the old record is then dead bytes, reclaimed by ordinary GC.
//
// Crash points: during 1, or before 2 committed, the index still points at
// the old, intact record, and the new ones are past a pack's committed
// length (truncated by Open) or dead bytes a later commit covered; 2 is one
// badger transaction. A move whose new record lies past its pack's
// committed length (a failed fsync) is refused (checkDurable). Nothing is
// deleted by the settler.
//
// It never slows pushes down noticeably: the background worker runs on an
// OS thread at the lowest CPU priority (nice 19), waits while any upload is
// in progress and for settleQuiet after the last one ended, and for
// readQuiet after the last read of a file (restores: Reader.ReadAt and
// Slices), and sleeps as long as each block took, so it uses at most half
// of one core.
//
// Which blocks are cold: per directory, the segments and .partial files
// whose segment number is below the start of the newest restorable backup
// (what a restore of that backup no longer needs; PITR to before it does,
// rarely). A block qualifies when all its references are in one such file
// (Refs equals its count there), so a block another file shares stays
// zstd; WAL blocks are almost never shared. The background worker
// recomputes a directory's horizon at most every coldCheckEvery, and at
// its next pass after a .backup or .history file was committed there
// (horizonMoved). walrus's own reads of those files (status, metrics, the
// horizon) do not pause the settler; client reads do (readQuiet).

const (
	settleQuiet = 200 * time.Millisecond // after the last upload ended
	// readQuiet is the pause after the last read. A restore reads one
	// segment after another with work in between (replay, the other
	// restore_command processes, the network), typically 0.1–1 s apart;
	// resuming 200 ms after each read let recompression share the CPU
	// with the whole restore (make compare: ~150 ms of settler CPU per
	// segment restored right after a push).
	readQuiet   = 2 * time.Second
	settleIdle  = 30 * time.Second // between passes that found nothing
	settleBatch = 16               // moves per index transaction
	settleFiles = 32               // file records read per index view
)

// SettleReport says what a settle pass did.
type SettleReport struct {
	Settled      int     `json:"settled"`       // blocks re-encoded at the settle level
	SettledFrom  int64   `json:"settled_from"`  // their record bytes before
	SettledTo    int64   `json:"settled_to"`    // and after
	Cold         int     `json:"cold"`          // blocks moved to the cold tier
	ColdFrom     int64   `json:"cold_from"`     // their record bytes before
	ColdTo       int64   `json:"cold_to"`       // and after
	Skipped      int     `json:"skipped"`       // moved or released meanwhile, or did not shrink
	FilesScanned int     `json:"files_scanned"` // file records examined
	Seconds      float64 `json:"seconds"`
}

// SettleOptions tune a settle pass.
type SettleOptions struct {
	// NoCold leaves the cold tier alone for this pass.
	NoCold bool
	// MaxBlocks stops the pass after that many blocks were moved (0: all).
	MaxBlocks int
	// yield is called before each block (the background worker waits and
	// paces itself there).
	yield func() error
	// coldEvery: a directory's cold horizon (a scan of its names and backup
	// files) is recomputed at most this often (0: every pass). The
	// background worker sets coldCheckEvery, so that an archive of a
	// million segments is not rescanned after every push.
	coldEvery time.Duration
}

// coldCheckEvery is how often the background worker looks for a new cold
// horizon per directory.
const coldCheckEvery = 10 * time.Minute

// settler is the state of settling. mu lets one pass run at a time; the
// cursors (guarded by mu) let the background worker resume where it left
// off instead of rescanning every file record.
type settler struct {
	level   zstd.EncoderLevel
	enc     *zstd.Encoder // SettleLevel; nil when it is off
	cold    bool          // ColdTier on and this build can write it
	uploads atomic.Int64  // uploads in progress (Create to Commit/Abort)
	last    atomic.Int64  // when the last upload ended, unix nanoseconds
	read    atomic.Int64  // when a file was last read, unix nanoseconds
	kick    chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup

	mu       sync.Mutex
	cursor   map[string]string    // per directory: the last file examined for unsettled blocks
	coldDone map[string]uint64    // per directory: segments below this were examined for the cold tier
	coldSeen map[string]time.Time // per directory: when its cold horizon was last computed

	// stale: per directory, when a .backup or .history file was committed
	// there (horizonMoved): its horizon is recomputed at the next pass, not
	// coldCheckEvery later, and at every pass until that backup is
	// restorable (its stop segment often arrives after the .backup file),
	// for at most coldCheckEvery.
	staleMu sync.Mutex
	stale   map[string]time.Time
}

// ingestUnsettled reports whether blocks written by uploads are marked
// CodecZstdIngest, i.e. re-encoded at the settle level later.
func ingestUnsettled(cfg Config) bool {
	if cfg.SettleLevel == "off" {
		return false
	}
	ingest, _ := parseLevel(cfg.Level)
	settle, _ := parseLevel(cfg.SettleLevel)
	return ingest < settle
}

// initSettle sets the ingest codec and the settle encoder; Open calls it
// after init (startSettle starts the worker).
func (s *Store) initSettle() error {
	st := &settler{kick: make(chan struct{}, 1), stop: make(chan struct{}),
		cursor: map[string]string{}, coldDone: map[string]uint64{}, coldSeen: map[string]time.Time{},
		stale: map[string]time.Time{}}
	st.cold = s.cfg.ColdTier == "lzma2" && canEncodeCold
	s.st = st
	s.ingestCodec = index.CodecZstd
	if s.cfg.SettleLevel != "off" {
		st.level, _ = parseLevel(s.cfg.SettleLevel)
		if ingestUnsettled(s.cfg) {
			s.ingestCodec = index.CodecZstdIngest
		}
		var err error
		st.enc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(st.level),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true),
			zstd.WithWindowSize(windowFor(s.cfg.BlockSize)))
		if err != nil {
			return fmt.Errorf("store: zstd settle encoder: %w", err)
		}
	}
	return nil
}

// startSettle starts the background worker (Config.Settle); Open calls it
// last, once the committer runs and nothing can fail any more.
func (s *Store) startSettle() {
	if s.cfg.Settle && (s.st.enc != nil || s.st.cold) {
		s.st.wg.Add(1)
		go s.runSettler()
	}
}

// stopSettle stops the background worker and any running pass and waits
// for them; Close calls it before the committer stops, so their last
// commit completes.
func (s *Store) stopSettle() {
	if s.st == nil {
		return
	}
	close(s.st.stop)
	s.st.wg.Wait()
	// A pass someone called (Settle) sees stop at its next block and
	// commits what it queued while the committer still runs.
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if s.st.enc != nil {
		s.st.enc.Close()
	}
}

// readActivity tells the settler that a client is reading (a restore must
// run at memory speed, not share the CPU with recompression): it waits
// readQuiet after the last read.
func (s *Store) readActivity() {
	if s.st != nil {
		s.st.read.Store(time.Now().UnixNano())
	}
}

// horizonMoved tells the settler that dir's newest restorable backup may
// have changed: a .backup or .history file was committed there.
func (s *Store) horizonMoved(dir string) {
	if s.st == nil {
		return
	}
	s.st.staleMu.Lock()
	if _, ok := s.st.stale[dir]; !ok {
		s.st.stale[dir] = time.Now()
	}
	s.st.staleMu.Unlock()
}

// staleSince reports whether dir's horizon is stale, and since when.
func (st *settler) staleSince(dir string) (time.Time, bool) {
	st.staleMu.Lock()
	defer st.staleMu.Unlock()
	t, ok := st.stale[dir]
	return t, ok
}

func (st *settler) fresh(dir string) {
	st.staleMu.Lock()
	delete(st.stale, dir)
	st.staleMu.Unlock()
}

// uploadStarted and uploadEnded count uploads in progress for the settler.
func (s *Store) uploadStarted() { s.st.uploads.Add(1) }

func (s *Store) uploadEnded() {
	s.st.last.Store(time.Now().UnixNano())
	if s.st.uploads.Add(-1) == 0 {
		select {
		case s.st.kick <- struct{}{}:
		default:
		}
	}
}

// runSettler is the background worker.
func (s *Store) runSettler() {
	defer s.st.wg.Done()
	// The worker keeps this thread for itself at the lowest priority; the
	// thread ends with the goroutine (it is not unlocked).
	runtime.LockOSThread()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), 19); err != nil {
		s.log.Debug("settle: cannot lower the worker's priority", "err", err)
	}
	var paceUntil time.Time
	opts := SettleOptions{coldEvery: coldCheckEvery}
	for {
		var blockStart time.Time
		opts.yield = func() error {
			if !blockStart.IsZero() {
				paceUntil = time.Now().Add(time.Since(blockStart))
			}
			if err := s.settleWait(time.Until(paceUntil)); err != nil {
				return err
			}
			blockStart = time.Now()
			return nil
		}
		rep, err := s.Settle(context.Background(), opts)
		if errors.Is(err, ErrClosed) {
			return
		}
		switch {
		case errors.Is(err, ErrNoSpace):
			s.log.Info("settle: paused: not enough free space for re-encoded blocks", "err", err)
		case err != nil:
			s.log.Warn("settle: pass failed; retrying later", "err", err)
		case rep.Settled+rep.Cold > 0:
			s.log.Debug("settle: pass done", "settled", rep.Settled, "cold", rep.Cold, "saved", rep.SettledFrom-rep.SettledTo+rep.ColdFrom-rep.ColdTo)
			continue
		}
		select {
		case <-s.st.stop:
			return
		case <-s.st.kick:
		case <-time.After(settleIdle):
		}
	}
}

// settleWait returns once no upload is in progress, the last ended at
// least settleQuiet ago, the last read was at least readQuiet ago and at
// least pace has passed; ErrClosed when the store is closing.
func (s *Store) settleWait(pace time.Duration) error {
	for {
		wait := pace
		if n := s.st.uploads.Load(); n > 0 {
			wait = max(wait, settleQuiet)
		} else if q := settleQuiet - time.Since(time.Unix(0, s.st.last.Load())); q > wait {
			wait = q
		}
		if q := readQuiet - time.Since(time.Unix(0, s.st.read.Load())); q > wait {
			wait = q
		}
		if wait <= 0 {
			return nil
		}
		pace = 0
		select {
		case <-s.st.stop:
			return ErrClosed
		case <-time.After(wait):
		}
	}
}

// Settle re-encodes, once, every block written at the ingest level at the
// settle level and, unless opts.NoCold or the cold tier is off or cannot be
// written by this build, moves cold blocks to LZMA2. See the top of
// settle.go for the order of writes and why a crash loses nothing. One pass
// runs at a time; concurrent calls wait.
func (s *Store) Settle(ctx context.Context, opts SettleOptions) (SettleReport, error) {
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	start := time.Now()
	w := &settleWork{s: s, ctx: ctx, opts: opts, dst: make([]byte, 0, s.cfg.BlockSize)}
	err := w.pass()
	if ferr := w.flush(); err == nil {
		err = ferr
	}
	w.rep.Seconds = time.Since(start).Seconds()
	if errors.Is(err, errSettleLimit) {
		err = nil
	}
	return w.rep, err
}

var errSettleLimit = errors.New("settle: block limit reached")

// settleWork is one pass.
type settleWork struct {
	s     *Store
	ctx   context.Context
	opts  SettleOptions
	rep   SettleReport
	moves []settleMove
	dst   []byte
}

func (w *settleWork) pass() error {
	s, st := w.s, w.s.st
	dirs, err := s.statusDirs("*")
	if err != nil {
		return err
	}
	unsettled, err := s.unsettledBytes()
	if err != nil {
		return err
	}
	found := false
	for _, dir := range dirs {
		if unsettled > 0 && st.enc != nil {
			n, err := w.settleDir(dir)
			found = found || n > 0
			if err != nil {
				return err
			}
		}
		if st.cold && !w.opts.NoCold {
			if err := w.coldDir(dir); err != nil {
				return err
			}
		}
	}
	if unsettled > 0 && !found {
		// What is left lies before the cursors (files that sort before
		// newer ones, or blocks a pass skipped): start over next time.
		clear(st.cursor)
	}
	return nil
}

// unsettledBytes sums the packs' unsettled live bytes.
func (s *Store) unsettledBytes() (int64, error) {
	var n int64
	err := s.idx.View(func(x *index.Txn) error {
		return x.Packs(func(p *index.Pack) error {
			if !p.Retired {
				n += p.Unsettled
			}
			return nil
		})
	})
	return n, err
}

// settleDir settles the unsettled blocks of dir's files after the cursor
// and reports how many unsettled blocks it found.
func (w *settleWork) settleDir(dir string) (int, error) {
	st := w.s.st
	found := 0
	for {
		files, err := w.s.filesAfter(dir, st.cursor[dir])
		if err != nil || len(files) == 0 {
			return found, err
		}
		for _, f := range files {
			w.rep.FilesScanned++
			for _, h := range f.Blocks {
				if h.IsZero() {
					continue
				}
				loc, err := w.s.lookupBlock(h)
				if err != nil || !loc.Codec.Unsettled() {
					continue
				}
				found++
				if err := w.move(h, loc, f.Dir, false); err != nil {
					return found, err
				}
			}
			st.cursor[dir] = f.Name
		}
	}
}

// coldDir moves the cold blocks of dir's segments between what the last
// pass examined and the newest restorable backup's start.
func (w *settleWork) coldDir(dir string) error {
	s, st := w.s, w.s.st
	meta, err := s.DirMeta(dir)
	if err != nil || !wal.ValidSegmentSize(meta.SegSize) {
		return nil // no WAL here (yet), or removed meanwhile
	}
	since, stale := st.staleSince(dir)
	if seen, ok := st.coldSeen[dir]; ok && !stale && w.opts.coldEvery > 0 && time.Since(seen) < w.opts.coldEvery {
		return nil
	}
	horizon, pending, err := s.coldHorizon(dir, meta.SegSize)
	if err != nil {
		return err
	}
	if stale && (!pending || time.Since(since) > coldCheckEvery) {
		st.fresh(dir)
	}
	if horizon <= st.coldDone[dir] {
		st.coldSeen[dir] = time.Now()
		return nil
	}
	var names []string
	err = s.Names(dir, func(name string) error {
		n := wal.ParseName(name)
		if n.Kind != wal.KindSegment && n.Kind != wal.KindPartial {
			return nil
		}
		if segno, err := n.SegNo(meta.SegSize); err == nil && segno >= st.coldDone[dir] && segno < horizon {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range names {
		f, err := s.lookup(joinPath(dir, name))
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile (retention)
		}
		if err != nil {
			return err
		}
		w.rep.FilesScanned++
		count := map[index.Hash]uint32{}
		for _, h := range f.Blocks {
			if !h.IsZero() {
				count[h]++
			}
		}
		for h, n := range count {
			loc, err := s.lookupBlock(h)
			if err != nil || loc.Codec == index.CodecLZMA2 || loc.Codec == index.CodecRaw || loc.Refs != n {
				continue
			}
			if err := w.move(h, loc, dir, true); err != nil {
				return err
			}
		}
	}
	st.coldDone[dir], st.coldSeen[dir] = horizon, time.Now()
	return nil
}

// coldHorizon is the first segment of dir's newest restorable backup (0:
// none): the WAL below it is cold. pending: a newer backup is not
// restorable (yet).
func (s *Store) coldHorizon(dir string, segSize uint32) (h uint64, pending bool, err error) {
	a, err := s.scanWAL(dir, segSize)
	if err != nil {
		return 0, false, err
	}
	backups := a.Status().Backups
	for _, b := range backups {
		if b.Restorable {
			h = max(h, b.StartSeg)
		}
	}
	for _, b := range backups {
		pending = pending || !b.Restorable && b.StartSeg > h
	}
	return h, pending, nil
}

func (s *Store) filesAfter(dir, after string) ([]*index.File, error) {
	var out []*index.File
	err := s.idx.View(func(x *index.Txn) error {
		return x.FilesAfter(dir, after, settleFiles, func(f *index.File) error {
			out = append(out, f)
			return nil
		})
	})
	return out, err
}

func (s *Store) lookupBlock(h index.Hash) (*index.Block, error) {
	var b *index.Block
	err := s.idx.View(func(x *index.Txn) error {
		var err error
		b, err = x.Block(h)
		return err
	})
	return b, err
}

// move re-encodes block h (at loc) and queues the move.
func (w *settleWork) move(h index.Hash, loc *index.Block, dir string, cold bool) error {
	s := w.s
	if err := w.ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return ErrClosed
	case <-s.st.stop:
		return ErrClosed
	default:
	}
	if w.opts.MaxBlocks > 0 && w.rep.Settled+w.rep.Cold >= w.opts.MaxBlocks {
		return errSettleLimit
	}
	if w.opts.yield != nil {
		if err := w.flushIfWaiting(); err != nil {
			return err
		}
		if err := w.opts.yield(); err != nil {
			return err
		}
	}
	raw, err := s.readBlock(h, loc)
	if err != nil {
		// Moved by GC meanwhile, or damaged: verify reports damage.
		w.rep.Skipped++
		return nil
	}
	var payload []byte
	codec := index.CodecZstd
	if cold {
		var ok bool
		payload, ok, err = encodeLZMA2(raw, w.dst[:0], coldParams)
		if err != nil {
			return err
		}
		codec = index.CodecLZMA2
		if !ok || len(payload) >= int(loc.StoredLen) {
			w.rep.Skipped++
			return nil
		}
	} else {
		payload = s.st.enc.EncodeAll(raw, w.dst[:0])
		if len(payload) >= len(raw) {
			payload, codec = raw, index.CodecRaw
		}
	}
	if cap(payload) > cap(w.dst) && len(payload) < len(raw) {
		w.dst = payload[:0]
	}
	// Settling must not take the space uploads need: it stops at the same
	// floor they do (see "Full disk" in doc.go).
	if err := s.space.forUpload(int64(recordHeaderLen + len(payload))); err != nil {
		return err
	}
	id, off, err := s.pw.append(h, len(raw), codec, payload)
	if err != nil {
		return err
	}
	to := index.Block{Pack: id, Offset: off, RawLen: uint32(len(raw)), StoredLen: uint32(len(payload)), Codec: codec}
	w.moves = append(w.moves, settleMove{h: h, from: *loc, to: to, dir: dir})
	if cold {
		w.rep.Cold++
		w.rep.ColdFrom += loc.RecordLen()
		w.rep.ColdTo += to.RecordLen()
	} else {
		w.rep.Settled++
		w.rep.SettledFrom += loc.RecordLen()
		w.rep.SettledTo += to.RecordLen()
	}
	if len(w.moves) >= settleBatch {
		return w.flush()
	}
	return nil
}

// flushIfWaiting commits the queued moves before the worker waits for
// uploads, so that they do not wait with it.
func (w *settleWork) flushIfWaiting() error {
	if len(w.moves) > 0 && w.s.st.uploads.Load() > 0 {
		return w.flush()
	}
	return nil
}

func (w *settleWork) flush() error {
	if len(w.moves) == 0 {
		return nil
	}
	op := &settleOp{moves: w.moves}
	w.moves = nil
	err := w.s.submit(op)
	if errors.Is(err, ErrRetry) {
		// A new record's pack failed to fsync or was collected: the blocks
		// stay where they were, the copies are dead bytes.
		w.rep.Skipped += len(op.moves)
		return nil
	}
	w.rep.Skipped += len(op.moves) - op.applied
	return err
}

// settleMove is one re-encoded block: where it was read from, where its new
// record is, and the directory whose stored bytes it counts in.
type settleMove struct {
	h    index.Hash
	from index.Block
	to   index.Block
	dir  string
}

// settleOp repoints every block still at the location its move read it
// from to its new record (see the top of settle.go).
type settleOp struct {
	moves   []settleMove
	applied int // out
}

func (o *settleOp) apply(x *index.Txn, _ time.Time) error {
	o.applied = 0
	packs := map[uint32]*index.Pack{}
	pack := func(id uint32) (*index.Pack, error) {
		if p := packs[id]; p != nil {
			return p, nil
		}
		p, err := packRecord(x, id)
		packs[id] = p
		return p, err
	}
	// Checks first: every new record must be durable.
	for _, m := range o.moves {
		p, err := pack(m.to.Pack)
		if err != nil {
			return err
		}
		if err := checkDurable(p, &m.to, "settle"); err != nil {
			return refuse(err)
		}
	}
	dirs := map[string]int64{}
	for _, m := range o.moves {
		b, err := x.Block(m.h)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if b.Pack != m.from.Pack || b.Offset != m.from.Offset {
			continue
		}
		old, err := pack(b.Pack)
		if err != nil {
			return err
		}
		if old.Retired {
			continue // cannot be: a retired pack has no live block
		}
		nb := m.to
		nb.Refs = b.Refs
		if err := x.PutBlock(m.h, &nb); err != nil {
			return err
		}
		old.AddLive(b, -1)
		np, err := pack(nb.Pack)
		if err != nil {
			return err
		}
		np.AddLive(&nb, 1)
		dirs[m.dir] += nb.RecordLen() - b.RecordLen()
		o.applied++
	}
	for _, id := range sortedKeys(packs) {
		if err := x.PutPack(packs[id]); err != nil {
			return err
		}
	}
	for name, delta := range dirs {
		d, err := x.Dir(name)
		if errors.Is(err, index.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		d.StoredBytes += delta
		if err := x.PutDir(d); err != nil {
			return err
		}
	}
	return nil
}
