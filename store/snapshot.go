package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// Index snapshots in the bucket (issue 14): a cold start of a new front-end
// on an empty data directory reads the newest snapshot and the packs
// written after it, not every pack (coldstart.go).
//
// A snapshot is one object, snapshots/SSSSSSSSSSSSSSSS.snap (S: the hex
// journal seq it includes, so names sort by age), written through the
// same Backend as the packs (so encrypted and authenticated with them,
// its name bound to its content). It holds, from one index read
// transaction at the last committed batch C:
//
//   - every pack (id, committed length, MaxSeq, retired), so that a cold
//     start knows which objects it may delete;
//   - every block record (hash, pack, offset, lengths, codec);
//   - every namespace and file record (the journal's entry encoding);
//   - ScanFrom: a cold start scans every pack at or above it. It is the
//     lowest of: the active pack (or the next id); the pack the batch
//     committing at that moment may append its journal records to (the
//     committer sets Store.journalFrom before appending, clears it after
//     the commit); the packs of blocks written but not committed; the
//     packs not uploaded. These are read in that order before the index
//     transaction, and pack ids only grow, so every journal batch after C
//     is in a pack at or above ScanFrom. A block record can still be
//     below it: one appended just before ScanFrom was read but not yet in
//     the pending map, or a copy GC or the settler wrote whose move
//     committed after C (the old pack's object may be gone by the cold
//     start). Then a file the replayed journal names lacks a location:
//     the cold start detects that and scans further down (coldstart.go).
//
// Format (version 1): a zstd stream of frames, each u8 type | uvarint
// length | payload, a payload at most snapFrameMax bytes; integers are
// uvarints as in the journal (journal.go):
//
//	'H' header  "WSNP" | u8 version | uvar seq C | uvar high seq | uvar scanFrom |
//	            uvar next pack id | svar unix ns | str bucket id
//	'P' packs   uvar n | n × (uvar id | uvar committed | uvar maxSeq | u8 flags (1: retired))
//	'B' blocks  uvar n | n × (hash | uvar pack | uvar offset | uvar raw | uvar stored | u8 codec)
//	'D' dirs    uvar n | n × a journal dir entry
//	'F' files   uvar n | n × a journal file entry
//	'E' end     uvar packs | uvar blocks | uvar dirs | uvar files |
//	            sha256 of every frame before it (uncompressed)
//
// The end frame is what makes a snapshot complete: a truncated or damaged
// object fails to decode and the cold start takes the next older one.
//
// Writing (WriteSnapshot): the stream goes to DATA/snapshot.tmp, fsynced,
// then Put (durable when it returns) and Stat, which must report its size;
// then the snapshots older than the newest two are deleted. Nothing in the
// index changes, so a crash anywhere leaves at worst a stale temporary
// file (overwritten next time) or an extra object (deleted next time).
//
// When (snapshotter): after an upload pass that left nothing waiting, once
// the packs uploaded since the last snapshot hold at least
// max(Config.SnapshotBytes, the last snapshot's size) bytes, at most once
// per Config.SnapshotInterval; and once at the first such pass after Open
// if the bucket holds none. So a cold start reads at most about that many
// pack bytes beyond the snapshot, and snapshots cost at most about as many
// bytes as the packs they spare a cold start from reading.

const (
	remoteSnapPrefix = "snapshots/"
	snapMagic        = "WSNP"
	snapVersion      = 1
	snapFrameMax     = 4 << 20
	// snapKeep is how many snapshots stay in the bucket.
	snapKeep = 2
	// DefaultSnapshotBytes and DefaultSnapshotInterval: Config.
	DefaultSnapshotBytes    = 64 << 20
	DefaultSnapshotInterval = 5 * time.Minute
)

// testSnapIgnorePending, set by tests, leaves the pending blocks out of
// ScanFrom: what a block appended just before ScanFrom is read, and put
// in the pending map just after, does.
var testSnapIgnorePending bool

func snapObjectName(seq uint64) string { return fmt.Sprintf("%s%016x.snap", remoteSnapPrefix, seq) }

func parseSnapName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, remoteSnapPrefix)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".snap")
	if !ok || len(s) != 16 {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 16, 64)
	return v, err == nil
}

// SnapshotInfo describes an index snapshot in the bucket.
type SnapshotInfo struct {
	Name     string    `json:"name"`
	Seq      uint64    `json:"seq"`       // the last journal batch it includes
	ScanFrom uint32    `json:"scan_from"` // packs from here on are read at a cold start
	Packs    int64     `json:"packs"`
	Blocks   int64     `json:"blocks"`
	Files    int64     `json:"files"`
	Bytes    int64     `json:"bytes"` // the object's size
	Time     time.Time `json:"time"`
	Seconds  float64   `json:"seconds,omitempty"` // to write it
}

// frame types
const (
	snapHeader = 'H'
	snapPacks  = 'P'
	snapBlocks = 'B'
	snapDirs   = 'D'
	snapFiles  = 'F'
	snapEnd    = 'E'

	snapRetired = 1 << 0 // pack flag
)

// snapWriter writes frames to a zstd stream, hashing them.
type snapWriter struct {
	w    *bufio.Writer
	sum  hash.Hash
	cur  jenc
	typ  byte
	n    uint64
	hdr  [binary.MaxVarintLen64 + 1]byte
	info *SnapshotInfo
}

func (w *snapWriter) frame(typ byte, payload []byte) error {
	w.hdr[0] = typ
	h := binary.AppendUvarint(w.hdr[:1], uint64(len(payload)))
	w.sum.Write(h)
	w.sum.Write(payload)
	if _, err := w.w.Write(h); err != nil {
		return err
	}
	_, err := w.w.Write(payload)
	return err
}

// item starts an item of a counted frame of type typ.
func (w *snapWriter) item(typ byte) (*jenc, error) {
	if w.typ != typ || len(w.cur.b) >= snapFrameMax-64<<10 {
		if err := w.flush(); err != nil {
			return nil, err
		}
		w.typ = typ
	}
	w.n++
	return &w.cur, nil
}

func (w *snapWriter) flush() error {
	if w.n == 0 {
		return nil
	}
	payload := binary.AppendUvarint(make([]byte, 0, len(w.cur.b)+binary.MaxVarintLen64), w.n)
	payload = append(payload, w.cur.b...)
	w.cur.b, w.n = w.cur.b[:0], 0
	return w.frame(w.typ, payload)
}

// WriteSnapshot writes an index snapshot to the bucket (the format and
// the order are above). skipped: the newest snapshot this process wrote
// already includes every batch.
func (s *Store) WriteSnapshot(ctx context.Context) (info SnapshotInfo, skipped bool, err error) {
	if s.cfg.Remote == nil {
		return info, false, errors.New("store: index snapshots need a bucket")
	}
	start := time.Now()
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	tmp := filepath.Join(s.cfg.Dir, "snapshot.tmp")
	defer os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return info, false, fmt.Errorf("store: snapshot: %w", err)
	}
	defer f.Close()
	id, err := readLocalBucketID(s.cfg.Dir)
	if err != nil {
		return info, false, err
	}
	// ScanFrom's parts that are not in the index, before its transaction,
	// in this order: the active pack, then the batch committing now (it
	// set journalFrom before appending to the then active pack or a later
	// one), then the blocks written and not committed yet.
	scanFrom := s.pw.sealedBelow()
	if j := s.journalFrom.Load(); j > 0 {
		scanFrom = min(scanFrom, uint32(j-1))
	}
	s.pendingMu.Lock()
	for _, b := range s.pending {
		if !testSnapIgnorePending {
			scanFrom = min(scanFrom, b.Pack)
		}
	}
	s.pendingMu.Unlock()
	next := s.pw.allocatedBelow()

	zw, err := zstd.NewWriter(f, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return info, false, fmt.Errorf("store: snapshot: %w", err)
	}
	w := &snapWriter{w: bufio.NewWriterSize(zw, 1<<20), sum: sha256.New(), info: &info}
	err = s.idx.View(func(x *index.Txn) error {
		j, _, err := x.Journal()
		if err != nil {
			return err
		}
		info.Seq = j.LastSeq
		if s.snapLast.Name != "" && s.snapLast.Seq == j.LastSeq {
			skipped = true
			return nil
		}
		var packs []*index.Pack
		if err := x.Packs(func(p *index.Pack) error {
			if !p.Retired && !p.Uploaded {
				scanFrom = min(scanFrom, p.ID)
			}
			packs = append(packs, p)
			return nil
		}); err != nil {
			return err
		}
		info.ScanFrom = scanFrom
		var h jenc
		h.b = append(h.b, snapMagic...)
		h.u8(snapVersion)
		h.uvar(j.LastSeq)
		h.uvar(j.HighSeq)
		h.uvar(uint64(scanFrom))
		h.uvar(uint64(next))
		h.svar(start.UnixNano())
		h.str(id)
		if err := w.frame(snapHeader, h.b); err != nil {
			return err
		}
		for _, p := range packs {
			e, err := w.item(snapPacks)
			if err != nil {
				return err
			}
			e.uvar(uint64(p.ID))
			e.uvar(uint64(p.Committed))
			e.uvar(p.MaxSeq)
			var flags uint8
			if p.Retired {
				flags |= snapRetired
			}
			e.u8(flags)
			info.Packs++
		}
		if err := x.Blocks(func(h index.Hash, b *index.Block) error {
			e, err := w.item(snapBlocks)
			if err != nil {
				return err
			}
			e.hash(h)
			e.uvar(uint64(b.Pack))
			e.uvar(uint64(b.Offset))
			e.uvar(uint64(b.RawLen))
			e.uvar(uint64(b.StoredLen))
			e.u8(uint8(b.Codec))
			info.Blocks++
			return nil
		}); err != nil {
			return err
		}
		dirs := int64(0)
		if err := x.Dirs(func(d *index.Dir) error {
			e, err := w.item(snapDirs)
			if err != nil {
				return err
			}
			je := jentry{kind: jeDir, dir: dirIdentity(d)}
			je.encode(e)
			dirs++
			return nil
		}); err != nil {
			return err
		}
		if err := x.Files(ctx, "*", func(fr *index.File) error {
			e, err := w.item(snapFiles)
			if err != nil {
				return err
			}
			je := jentry{kind: jeFile, file: fr}
			je.encode(e)
			info.Files++
			return nil
		}); err != nil {
			return err
		}
		if err := w.flush(); err != nil {
			return err
		}
		var end jenc
		end.uvar(uint64(info.Packs))
		end.uvar(uint64(info.Blocks))
		end.uvar(uint64(dirs))
		end.uvar(uint64(info.Files))
		end.b = w.sum.Sum(end.b)
		return w.frame(snapEnd, end.b)
	})
	if err == nil && !skipped {
		err = w.w.Flush()
	}
	if cerr := zw.Close(); err == nil && !skipped {
		err = cerr
	}
	if err != nil {
		return info, false, fmt.Errorf("store: snapshot: %w", err)
	}
	if skipped {
		return info, true, nil
	}
	if err := f.Sync(); err != nil {
		return info, false, fmt.Errorf("store: snapshot: fsync %s: %w", tmp, err)
	}
	st, err := f.Stat()
	if err != nil {
		return info, false, fmt.Errorf("store: snapshot: %w", err)
	}
	info.Name, info.Bytes, info.Time = snapObjectName(info.Seq), st.Size(), start
	if err := s.cfg.Remote.Put(ctx, info.Name, f, info.Bytes); err != nil {
		return info, false, fmt.Errorf("store: snapshot: put %s: %w", info.Name, err)
	}
	got, err := s.cfg.Remote.Stat(ctx, info.Name)
	if err == nil && got.Size != info.Bytes {
		err = fmt.Errorf("the bucket reports %d bytes, %d were put", got.Size, info.Bytes)
	}
	if err != nil {
		return info, false, fmt.Errorf("store: snapshot: check %s: %w", info.Name, err)
	}
	info.Seconds = time.Since(start).Seconds()
	s.snapLast = info
	if err := deleteOldSnapshots(ctx, s.cfg.Remote, snapKeep); err != nil {
		s.log.Warn("index snapshot: deleting older snapshots failed; retried after the next one", "err", err)
	}
	s.log.Info("index snapshot written", "name", info.Name, "seq", info.Seq, "files", info.Files, "blocks", info.Blocks,
		"bytes", info.Bytes, "scan_from", info.ScanFrom, "seconds", info.Seconds)
	return info, false, nil
}

// listSnapshots returns the snapshot objects in the bucket, newest first.
func listSnapshots(ctx context.Context, b backend.Backend) ([]backend.Info, error) {
	var out []backend.Info
	err := b.List(ctx, remoteSnapPrefix, func(in backend.Info) error {
		if _, ok := parseSnapName(in.Name); ok {
			out = append(out, in)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: list snapshots in %s: %w", b.Location(), err)
	}
	slices.SortFunc(out, func(a, b backend.Info) int { return strings.Compare(b.Name, a.Name) })
	return out, nil
}

func deleteOldSnapshots(ctx context.Context, b backend.Backend, keep int) error {
	snaps, err := listSnapshots(ctx, b)
	if err != nil {
		return err
	}
	for _, in := range snaps[min(keep, len(snaps)):] {
		if err := b.Delete(ctx, in.Name); err != nil {
			return fmt.Errorf("store: delete %s: %w", in.Name, err)
		}
	}
	return nil
}

// snapshot is a decoded snapshot.
type snapshot struct {
	info   SnapshotInfo
	high   uint64
	next   uint32
	id     string
	packs  []snapPack
	blocks map[index.Hash]*blockLoc
	dirs   []*index.Dir
	files  []*index.File
}

type snapPack struct {
	id        uint32
	committed int64
	maxSeq    uint64
	retired   bool
}

// readSnapshot downloads the snapshot object in (into tmp, removed after)
// and decodes it; any damage, truncation or failed authentication is an
// error naming the object.
func readSnapshot(ctx context.Context, b backend.Backend, in backend.Info, tmp string) (*snapshot, error) {
	fail := func(err error) (*snapshot, error) {
		return nil, fmt.Errorf("store: snapshot %s: %w", in.Name, err)
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp)
	defer f.Close()
	buf := make([]byte, min(fetchChunk, max(in.Size, 1)))
	for off := int64(0); off < in.Size; {
		n := min(int64(len(buf)), in.Size-off)
		if err := b.ReadAt(ctx, in.Name, buf[:n], off); err != nil {
			return fail(err)
		}
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fail(err)
		}
		off += n
	}
	zr, err := zstd.NewReader(io.NewSectionReader(f, 0, in.Size), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return fail(err)
	}
	defer zr.Close()
	sn, err := decodeSnapshot(bufio.NewReaderSize(zr, 1<<20))
	if err != nil {
		return fail(err)
	}
	sn.info.Name, sn.info.Bytes = in.Name, in.Size
	return sn, nil
}

var errSnapshot = errors.New("malformed snapshot")

func decodeSnapshot(r *bufio.Reader) (*snapshot, error) {
	sn := &snapshot{blocks: map[index.Hash]*blockLoc{}}
	sum := sha256.New()
	bad := func(what string) error { return fmt.Errorf("%w: %s", errSnapshot, what) }
	var hdr []byte
	first := true
	for {
		typ, err := r.ReadByte()
		if err != nil {
			return nil, bad("it ends before its end frame (truncated)")
		}
		n, err := binary.ReadUvarint(r)
		if err != nil || n > snapFrameMax {
			return nil, bad("bad frame length")
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			return nil, bad("it ends inside a frame (truncated)")
		}
		if typ == snapEnd {
			want := sum.Sum(nil)
			d := &jdec{b: payload}
			np, nb, nd, nf := d.uvar(), d.uvar(), d.uvar(), d.uvar()
			if d.err != nil || len(d.b) != sha256.Size || string(d.b) != string(want) {
				return nil, bad("its end frame does not match its content")
			}
			if np != uint64(len(sn.packs)) || nb != uint64(len(sn.blocks)) || nd != uint64(len(sn.dirs)) || nf != uint64(len(sn.files)) {
				return nil, bad("its counts do not match its content")
			}
			if _, err := r.ReadByte(); err != io.EOF {
				return nil, bad("bytes after its end frame")
			}
			sn.info.Packs, sn.info.Blocks, sn.info.Files = int64(np), int64(nb), int64(nf)
			return sn, nil
		}
		hdr = binary.AppendUvarint(append(hdr[:0], typ), n)
		sum.Write(hdr)
		sum.Write(payload)
		d := &jdec{b: payload}
		if first != (typ == snapHeader) {
			return nil, bad("the header frame is not first")
		}
		first = false
		if typ == snapHeader {
			if len(payload) < 5 || string(payload[:4]) != snapMagic {
				return nil, bad("not a walrus index snapshot")
			}
			d.b = d.b[4:]
			if v := d.u8(); v != snapVersion {
				return nil, bad(fmt.Sprintf("version %d (this walrus reads %d)", v, snapVersion))
			}
			sn.info.Seq, sn.high = d.uvar(), d.uvar()
			sn.info.ScanFrom, sn.next = d.u32(), d.u32()
			sn.info.Time = time.Unix(0, d.svar())
			sn.id = d.str()
			if d.err == nil && len(d.b) != 0 {
				d.fail("trailing bytes")
			}
			if d.err != nil {
				return nil, d.err
			}
			continue
		}
		count := d.uvar()
		if count > uint64(len(d.b)) {
			return nil, bad("item count out of range")
		}
		for i := uint64(0); i < count && d.err == nil; i++ {
			switch typ {
			case snapPacks:
				p := snapPack{id: d.u32(), committed: int64(d.uvar()), maxSeq: d.uvar()}
				p.retired = d.u8()&snapRetired != 0
				sn.packs = append(sn.packs, p)
			case snapBlocks:
				h := d.hash()
				b := &blockLoc{Block: index.Block{Pack: d.u32(), Offset: int64(d.uvar()), RawLen: d.u32(), StoredLen: d.u32(), Codec: index.Codec(d.u8())}}
				if d.err == nil {
					if _, dup := sn.blocks[h]; dup {
						d.fail("a block twice")
					}
					sn.blocks[h] = b
				}
			case snapDirs, snapFiles:
				e := decodeEntry(d)
				switch {
				case d.err != nil:
				case typ == snapDirs && e.kind == jeDir:
					sn.dirs = append(sn.dirs, e.dir)
				case typ == snapFiles && e.kind == jeFile:
					sn.files = append(sn.files, e.file)
				default:
					d.fail("an entry of the wrong kind")
				}
			default:
				d.fail(fmt.Sprintf("frame type %q", typ))
			}
		}
		if d.err == nil && len(d.b) != 0 {
			d.fail("trailing bytes in a frame")
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: %w", errSnapshot, d.err)
		}
	}
}

// snapshotter writes snapshots on the policy above, on its own goroutine
// (a snapshot of a large index takes seconds; uploads and remote-ack
// pushes must not wait for it).
type snapshotter struct {
	s    *Store
	kick chan struct{}
	done chan struct{}

	mu       sync.Mutex
	known    bool         // the bucket's newest snapshot was looked up
	last     SnapshotInfo // the newest snapshot known (Name "": none)
	lastAt   time.Time    // when it was written, or found (Open)
	baseline int64        // the uploader's uploaded bytes then
	writes   int64
	fails    int64
	lastErr  string
}

// SnapshotStatus is the newest index snapshot (BucketStatus.Snapshot).
type SnapshotStatus struct {
	Name       string  `json:"name,omitempty"` // "": none known yet
	Seq        uint64  `json:"seq"`
	Bytes      int64   `json:"bytes"`
	AgeSeconds float64 `json:"age_seconds"` // since it was written or, written before Open, found
	Writes     int64   `json:"writes"`      // since Open
	Failures   int64   `json:"failures"`
	LastError  string  `json:"last_error,omitempty"`
}

func newSnapshotter(s *Store) *snapshotter {
	return &snapshotter{s: s, kick: make(chan struct{}, 1), done: make(chan struct{})}
}

// due reports whether a snapshot is due with uploaded bytes uploaded
// since Open.
func (sn *snapshotter) due(uploaded int64, now time.Time) bool {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if sn.s.cfg.SnapshotBytes < 0 {
		return false
	}
	if !sn.known || sn.last.Name == "" {
		return true
	}
	return uploaded-sn.baseline >= max(sn.s.cfg.SnapshotBytes, sn.last.Bytes) && now.Sub(sn.lastAt) >= sn.s.cfg.SnapshotInterval
}

// poke is the uploader's, after a pass that left nothing waiting.
func (sn *snapshotter) poke(uploaded int64) {
	if sn.due(uploaded, time.Now()) {
		select {
		case sn.kick <- struct{}{}:
		default:
		}
	}
}

func (sn *snapshotter) run(ctx context.Context, uploaded func() int64) {
	defer close(sn.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sn.kick:
		}
		if err := sn.once(ctx, uploaded); err != nil && ctx.Err() == nil {
			sn.mu.Lock()
			sn.fails++
			first := sn.lastErr == ""
			sn.lastErr = err.Error()
			sn.mu.Unlock()
			if first {
				sn.s.log.Warn("index snapshot failed; retried after a later upload pass (a cold start reads more packs meanwhile)", "err", err)
			}
		}
	}
}

func (sn *snapshotter) once(ctx context.Context, uploaded func() int64) error {
	sn.mu.Lock()
	known := sn.known
	sn.mu.Unlock()
	if !known {
		snaps, err := listSnapshots(ctx, sn.s.cfg.Remote)
		if err != nil {
			return err
		}
		sn.mu.Lock()
		sn.known, sn.lastAt = true, time.Now()
		if len(snaps) > 0 {
			seq, _ := parseSnapName(snaps[0].Name)
			sn.last = SnapshotInfo{Name: snaps[0].Name, Seq: seq, Bytes: snaps[0].Size}
		}
		sn.mu.Unlock()
		if !sn.due(uploaded(), time.Now()) {
			return nil
		}
	}
	n := uploaded()
	info, skipped, err := sn.s.WriteSnapshot(ctx)
	if err != nil {
		return err
	}
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if !skipped { // skipped: the last one this process wrote is current
		sn.last, sn.lastAt, sn.writes = info, time.Now(), sn.writes+1
	}
	sn.baseline, sn.lastErr = n, ""
	return nil
}

func (sn *snapshotter) status() *SnapshotStatus {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	st := &SnapshotStatus{Name: sn.last.Name, Seq: sn.last.Seq, Bytes: sn.last.Bytes, Writes: sn.writes, Failures: sn.fails, LastError: sn.lastErr}
	if sn.last.Name != "" {
		st.AgeSeconds = time.Since(sn.lastAt).Seconds()
	}
	return st
}
