package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/wal"
)

// ErrUnnamed is returned by Repair when packs hold blocks of files whose
// names no pack records: packs written before walrus journaled file
// records, in a store never checkpointed since. RepairOptions.Force
// rebuilds the index without those files.
var ErrUnnamed = errors.New("store: packs hold files that no pack names")

// ErrJournalBroken is returned by Repair when the pack journal has a hole
// (a batch record is damaged or missing), so the files it would have named
// or removed are unknown. RepairOptions.Force replays what is there.
var ErrJournalBroken = errors.New("store: pack journal incomplete")

// RepairOptions tune Repair.
type RepairOptions struct {
	// Force rebuilds even when some files cannot be named (ErrUnnamed) or
	// the journal has a hole (ErrJournalBroken): the index then lacks those
	// files (or their removals), and GC later deletes blocks no file names.
	Force bool
	// Progress, if set, is called as packs are scanned ("scan"), when the
	// new index is written ("write") and swapped in ("swap"), and as files
	// are verified ("verify").
	Progress func(RepairProgress)
}

// RepairProgress is the state of a running repair.
type RepairProgress struct {
	Phase string // "scan", "write", "swap" or "verify"
	Items int64  // packs scanned, or files verified
	Bytes int64  // of them
	Total int64  // bytes to scan or verify
}

// RepairReport says what Repair found and rebuilt.
type RepairReport struct {
	Packs          int           `json:"packs"`
	PackBytes      int64         `json:"pack_bytes"`
	BlockRecords   int           `json:"block_records"`
	JournalRecords int           `json:"journal_records"`
	CheckpointSeq  uint64        `json:"checkpoint_seq"` // the snapshot the replay started from (0: none)
	Batches        int           `json:"batches"`        // journal batches replayed on top of it
	HeadSeq        uint64        `json:"head_seq"`
	Files          int64         `json:"files"`
	Dirs           int           `json:"dirs"`
	LogicalBytes   int64         `json:"logical_bytes"`
	LiveBytes      int64         `json:"live_bytes"`
	DeadBytes      int64         `json:"dead_bytes"`    // block records no file references (GC reclaims them)
	UnnamedPacks   []uint32      `json:"unnamed_packs"` // packs written before the journal, not covered by a checkpoint
	OldIndex       string        `json:"old_index,omitempty"`
	Problems       []Problem     `json:"problems"` // damage the scan found
	Verify         *VerifyReport `json:"verify,omitempty"`
	RebuildSeconds float64       `json:"rebuild_seconds"` // scan, replay, new index in place
	Seconds        float64       `json:"seconds"`         // and the checkpoint and verify after it
}

// indexOpenError turns badger's failure to open the index of a store with
// pack files into ErrIndexDamaged: the index is not usable, and nothing may
// start over with an empty one.
//
// A file of the index that this user may not open is no damage: it is what
// a command run as another user (root) leaves behind, having created files
// the store's owner cannot open. Repair would not help; say who must run it.
func indexOpenError(dir string, err error) error {
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "permission denied") {
		owner := "its owner"
		if st, serr := os.Stat(dir); serr == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				owner = fmt.Sprintf("uid %d", sys.Uid)
				if u, uerr := user.LookupId(fmt.Sprint(sys.Uid)); uerr == nil {
					owner = u.Username
				}
			}
		}
		return fmt.Errorf("store: the index in %s cannot be opened by this user (uid %d): %v; every file under %s must belong to the user walrus runs as: run walrus as %s, or chown -R %s back to it (a command run as another user, e.g. root, creates index files only that user can open)",
			dir, os.Getuid(), err, dir, owner, dir)
	}
	packs, cerr := countPackFiles(filepath.Join(dir, "packs"))
	if cerr != nil || packs == 0 {
		return err
	}
	return fmt.Errorf("%w: %s holds %d pack files and its index does not open (%v); not opening it", ErrIndexDamaged, dir, packs, err)
}

// checkManifest refuses an index directory without badger's MANIFEST while
// pack files exist: badger would start an empty index there (and delete its
// tables), as if the archive were empty.
func checkManifest(dir string, packs int) error {
	_, err := os.Stat(filepath.Join(dir, "index", "MANIFEST"))
	if !errors.Is(err, fs.ErrNotExist) || packs == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s holds %d pack files but %s has no MANIFEST; not opening it (badger would start an empty index)",
		ErrIndexDamaged, dir, packs, filepath.Join(dir, "index"))
}

// Repair rebuilds the index of the store in cfg.Dir from its packs alone:
// every file and namespace record from the journal (the newest complete
// checkpoint and the chain of batches after it), block locations and
// reference counts, pack lengths and live bytes, namespace and archive
// totals. The new index is built beside the old one and swapped in by
// rename; the old one, if any, is kept as index.old-TIME. Then the store is
// opened, checkpointed and verified (RepairReport.Verify). Nothing in
// packs/ is changed or deleted by the rebuild. No other process may use the
// store meanwhile (ErrLocked). A crash at any point leaves a store that a
// second Repair rebuilds.
func Repair(ctx context.Context, cfg Config, opts RepairOptions) (RepairReport, error) {
	start := time.Now()
	rep := RepairReport{Problems: []Problem{}, UnnamedPacks: []uint32{}}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return rep, err
	}
	packDir := filepath.Join(cfg.Dir, "packs")
	if _, err := os.Stat(packDir); err != nil {
		return rep, fmt.Errorf("%w in %s (no packs/): %w", ErrNoStore, cfg.Dir, err)
	}
	unlock, err := lockForRepair(cfg.Dir)
	if err != nil {
		return rep, err
	}
	defer unlock()
	if err := checkNoEvicted(cfg.Dir); err != nil {
		return rep, err
	}
	sc, err := scanStore(ctx, packDir, opts.Progress)
	if err != nil {
		return rep, err
	}
	sc.report(&rep)
	r, err := sc.rebuild(ctx, cfg.BlockSize, opts.Force, &rep)
	if err != nil {
		return rep, err
	}
	if err := writeIndex(cfg, r, &rep, opts.Progress); err != nil {
		return rep, err
	}
	unlock()
	rep.RebuildSeconds = time.Since(start).Seconds()
	vr, err := checkRepaired(ctx, cfg, opts.Progress)
	rep.Verify = vr
	rep.Seconds = time.Since(start).Seconds()
	return rep, err
}

// lockForRepair takes the packs directory's lock (one repair at a time)
// and, if there is an index directory, the lock badger takes on it, so no
// walrus process has the store open.
func lockForRepair(dir string) (func(), error) {
	var held []*os.File
	release := func() {
		for _, f := range held {
			f.Close()
		}
		held = nil
	}
	for _, p := range []string{filepath.Join(dir, "packs"), filepath.Join(dir, "index")} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			release()
			return nil, fmt.Errorf("store: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			release()
			return nil, fmt.Errorf("%w: %s (stop walrus serve, or the other walrus, first)", ErrLocked, dir)
		}
		held = append(held, f)
	}
	return release, nil
}

// blockLoc is where the scan found a block, and how often files use it.
type blockLoc struct {
	index.Block
	dir string // the namespace its stored bytes are attributed to
}

// jrecMeta is what the scan keeps of a journal record: where it is, and
// its head.
type jrecMeta struct {
	pack    uint32
	off     int64
	typ     uint8
	seq     uint64
	prev    uint64
	covered bool
	part    uint32
	parts   uint32
	ckpt    uint64
	count   uint64
	entries int
}

type ckptMeta struct {
	seq    uint64
	chunks map[uint32]jrecMeta
	end    *jrecMeta
}

func (c *ckptMeta) complete() bool {
	if c.end == nil || uint32(len(c.chunks)) != c.end.parts {
		return false
	}
	n := uint64(0)
	for i := uint32(0); i < c.end.parts; i++ {
		m, ok := c.chunks[i]
		if !ok {
			return false
		}
		n += uint64(m.entries)
	}
	return n == c.end.count
}

// storeScan is what scanning every pack found.
type storeScan struct {
	dir      string
	packs    []packScan
	blocks   map[index.Hash]*blockLoc
	batches  map[uint64][]jrecMeta // by seq, parts in any order
	ckpts    map[uint64]*ckptMeta  // by checkpoint id
	problems []Problem
	journal  int
	// remote, if set, reads a pack that has no local file (evicted: it
	// lives in the bucket; Store.scanSource).
	remote func(id uint32) (io.ReaderAt, int64, bool)
}

func scanStore(ctx context.Context, packDir string, progress func(RepairProgress)) (*storeScan, error) {
	ids, total, err := listPacks(packDir)
	if err != nil {
		return nil, err
	}
	sc := &storeScan{dir: packDir, blocks: map[index.Hash]*blockLoc{}, batches: map[uint64][]jrecMeta{}, ckpts: map[uint64]*ckptMeta{}}
	var done int64
	for i, id := range ids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ps, err := sc.scanOne(id, -1, true)
		if err != nil {
			return nil, err
		}
		sc.packs = append(sc.packs, ps)
		done += ps.Size
		if progress != nil {
			progress(RepairProgress{Phase: "scan", Items: int64(i + 1), Bytes: done, Total: total})
		}
	}
	return sc, nil
}

// listPacks returns the pack ids in packDir in order and their total size.
func listPacks(packDir string) ([]uint32, int64, error) {
	entries, err := os.ReadDir(packDir)
	if err != nil {
		return nil, 0, fmt.Errorf("store: read %s: %w", packDir, err)
	}
	var ids []uint32
	var total int64
	for _, e := range entries {
		if id, ok := parsePackName(e.Name()); ok {
			ids = append(ids, id)
			if fi, err := e.Info(); err == nil {
				total += fi.Size()
			}
		}
	}
	slices.Sort(ids)
	return ids, total, nil
}

// scanOne scans pack id up to limit (-1: all of it); sc.blocks nil skips
// block records.
func (sc *storeScan) scanOne(id uint32, limit int64, allPayloads bool) (packScan, error) {
	name := packFileName(sc.dir, id)
	f, size, done, err := sc.open(id)
	if err != nil {
		return packScan{}, err
	}
	defer done()
	if limit >= 0 {
		size = min(size, limit)
	}
	ps, err := scanPack(f, id, size, allPayloads, func(off int64, h recordHeader, payload []byte) error {
		if h.Codec != codecJournal {
			if sc.blocks == nil {
				return nil
			}
			// Packs are scanned in id order, records in offset order: a
			// later copy (GC's) replaces an earlier one.
			sc.blocks[h.Hash] = &blockLoc{Block: index.Block{Pack: id, Offset: off, RawLen: h.RawLen, StoredLen: h.StoredLen, Codec: h.Codec}}
			return nil
		}
		sc.addJournal(name, id, off, payload)
		return nil
	})
	if err != nil {
		return ps, err
	}
	sc.packProblems(name, ps)
	return ps, nil
}

// open opens pack id for a scan: its file, or through sc.remote.
func (sc *storeScan) open(id uint32) (io.ReaderAt, int64, func(), error) {
	f, err := os.Open(packFileName(sc.dir, id))
	if err != nil {
		if sc.remote != nil && errors.Is(err, fs.ErrNotExist) {
			if r, size, ok := sc.remote(id); ok {
				return r, size, func() {}, nil
			}
		}
		return nil, 0, nil, fmt.Errorf("store: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("store: %w", err)
	}
	return f, st.Size(), func() { f.Close() }, nil
}

func (sc *storeScan) addJournal(name string, id uint32, off int64, payload []byte) {
	r, err := decodeJournal(payload)
	if err != nil {
		sc.problems = append(sc.problems, Problem{Kind: ProblemPack, Path: name, Err: fmt.Sprintf("journal record at %d: %v", off, err)})
		return
	}
	sc.journal++
	m := jrecMeta{pack: id, off: off, typ: r.typ, seq: r.seq, prev: r.prev, covered: r.covered,
		part: r.part, parts: r.parts, ckpt: r.ckpt, count: r.count, entries: len(r.entries)}
	switch r.typ {
	case jrBatch:
		for _, o := range sc.batches[r.seq] {
			if o.part == r.part {
				if o.prev != r.prev || o.entries != m.entries {
					sc.problems = append(sc.problems, Problem{Kind: ProblemPack, Path: name,
						Err: fmt.Sprintf("journal batch %d part %d at %d differs from its copy in pack %d", r.seq, r.part, off, o.pack)})
				}
				return
			}
		}
		sc.batches[r.seq] = append(sc.batches[r.seq], m)
	case jrCheckpoint, jrCheckpointEnd:
		c := sc.ckpts[r.ckpt]
		if c == nil {
			c = &ckptMeta{seq: r.seq, chunks: map[uint32]jrecMeta{}}
			sc.ckpts[r.ckpt] = c
		}
		if r.typ == jrCheckpointEnd {
			c.end = &m
		} else {
			c.chunks[r.part] = m
		}
	}
}

func (sc *storeScan) packProblems(name string, ps packScan) {
	if ps.HeaderErr != "" {
		sc.problems = append(sc.problems, Problem{Kind: ProblemPack, Path: name, Err: "pack header: " + ps.HeaderErr})
	}
	for _, d := range ps.Damaged {
		sc.problems = append(sc.problems, Problem{Kind: ProblemPack, Path: name, Err: fmt.Sprintf("%d damaged bytes at %d skipped", d.Len, d.Off)})
	}
	if ps.Tail > maxTornTail {
		sc.problems = append(sc.problems, Problem{Kind: ProblemPack, Path: name, Err: fmt.Sprintf("%d bytes after the last valid record at %d hold no record; kept", ps.Tail, ps.End)})
	}
}

// maxTornTail is the longest tail a crash can leave: one record cut short.
// A longer invalid tail is damage, and repair keeps it (committed) rather
// than let Open truncate it.
const maxTornTail = recordHeaderLen + maxStoredLen

func (sc *storeScan) report(rep *RepairReport) {
	rep.Packs = len(sc.packs)
	for _, p := range sc.packs {
		rep.PackBytes += p.Size
		rep.BlockRecords += p.Blocks
	}
	rep.JournalRecords = sc.journal
	rep.Problems = append(rep.Problems, sc.problems...)
}

// rebuilt is the index Repair writes.
type rebuilt struct {
	files    map[string]*index.File // by dir\x00name
	dirs     map[string]*index.Dir
	blocks   map[index.Hash]*blockLoc
	packs    []*index.Pack
	journal  index.Journal
	packSeq  map[uint32]uint64 // newest batch in each pack
	problems []Problem
}

// rebuild replays the journal: the newest complete checkpoint, then the
// chain of batches from the newest back to it.
func (sc *storeScan) rebuild(ctx context.Context, blockSize int, force bool, rep *RepairReport) (*rebuilt, error) {
	r := newRebuilt(sc.blocks)
	for seq, parts := range sc.batches {
		for _, m := range parts {
			r.packSeq[m.pack] = max(r.packSeq[m.pack], seq)
		}
	}
	ckptID, ckpt := sc.newestCheckpoint()
	var floor uint64
	if ckpt != nil {
		floor = ckpt.seq
		r.journal.CkptSeq, r.journal.CkptID = ckpt.seq, ckptID
	}
	chain, head, err := sc.chain(floor)
	rep.CheckpointSeq, rep.HeadSeq, rep.Batches = floor, head, len(chain)
	if err != nil && !force {
		return nil, err
	}
	if err != nil {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemPack, Path: sc.dir, Err: err.Error()})
	}
	if ckpt == nil {
		rep.UnnamedPacks = sc.unnamed(chain)
	}
	if len(rep.UnnamedPacks) > 0 && !force {
		return nil, fmt.Errorf("%w: packs %v were written before walrus recorded file names in packs, and no checkpoint "+
			"(written by any newer walrus opening the store) names their files; walrus repair --force rebuilds the index "+
			"without them (their blocks become dead and the next gc deletes them: copy packs/ away first)", ErrUnnamed, rep.UnnamedPacks)
	}
	if err := sc.replay(ctx, r, ckpt, chain); err != nil {
		return nil, err
	}
	r.journal.LastSeq, r.journal.Covered = max(head, floor), true
	for seq := range sc.batches {
		r.journal.HighSeq = max(r.journal.HighSeq, seq)
	}
	r.account(sc.packs, sc.dir, rep)
	return r, nil
}

// replay applies the checkpoint (if any), then the batches of chain in
// order, to r.
func (sc *storeScan) replay(ctx context.Context, r *rebuilt, ckpt *ckptMeta, chain []uint64) error {
	rd := newRecordReader(sc.dir)
	rd.remote = sc.remote
	defer rd.close()
	if ckpt != nil {
		for i := uint32(0); i < ckpt.end.parts; i++ {
			if err := rd.replay(r, ckpt.chunks[i]); err != nil {
				return err
			}
			r.journal.CkptPacks = appendUnique(r.journal.CkptPacks, ckpt.chunks[i].pack)
		}
		r.journal.CkptPacks = appendUnique(r.journal.CkptPacks, ckpt.end.pack)
	}
	for _, seq := range chain {
		if err := ctx.Err(); err != nil {
			return err
		}
		parts := sc.batches[seq]
		sort.Slice(parts, func(i, j int) bool { return parts[i].part < parts[j].part })
		for _, m := range parts {
			if err := rd.replay(r, m); err != nil {
				return err
			}
		}
	}
	return nil
}

func newRebuilt(blocks map[index.Hash]*blockLoc) *rebuilt {
	return &rebuilt{files: map[string]*index.File{}, dirs: map[string]*index.Dir{}, blocks: blocks, packSeq: map[uint32]uint64{}}
}

func appendUnique(ids []uint32, id uint32) []uint32 {
	if slices.Contains(ids, id) {
		return ids
	}
	return append(ids, id)
}

// newestCheckpoint returns the complete checkpoint with the highest seq.
func (sc *storeScan) newestCheckpoint() (uint64, *ckptMeta) {
	var id uint64
	var best *ckptMeta
	for cid, c := range sc.ckpts {
		if c.complete() && (best == nil || c.seq > best.seq || c.seq == best.seq && cid < id) {
			id, best = cid, c
		}
	}
	return id, best
}

// chain returns, oldest first, the batches after floor that committed:
// those reached from the newest complete batch by prev links. A batch whose
// index transaction failed is on no chain (its successor names the batch
// before it). It fails when a link is missing; the batches after floor are
// then returned all, in order, for a forced repair.
func (sc *storeScan) chain(floor uint64) ([]uint64, uint64, error) {
	var head uint64
	for seq := range sc.batches {
		if sc.completeBatch(seq) {
			head = max(head, seq)
		}
	}
	out, err := sc.chainFrom(head, floor)
	return out, head, err
}

func (sc *storeScan) completeBatch(seq uint64) bool {
	parts := sc.batches[seq]
	return len(parts) > 0 && uint32(len(parts)) == parts[0].parts
}

// chainFrom follows prev links from head down to floor and returns the
// batches oldest first. On a broken link it returns every complete batch
// after floor up to head instead, for a forced repair, and the error.
func (sc *storeScan) chainFrom(head, floor uint64) ([]uint64, error) {
	var out []uint64
	for cur := head; cur > floor; {
		if !sc.completeBatch(cur) {
			return sc.allAfter(floor, head), fmt.Errorf("%w: batch %d (needed to reach checkpoint %d from batch %d) is missing or damaged",
				ErrJournalBroken, cur, floor, head)
		}
		out = append(out, cur)
		prev := sc.batches[cur][0].prev
		if prev < floor {
			return sc.allAfter(floor, head), fmt.Errorf("%w: batch %d follows batch %d, older than checkpoint %d", ErrJournalBroken, cur, prev, floor)
		}
		cur = prev
	}
	slices.Reverse(out)
	return out, nil
}

func (sc *storeScan) allAfter(floor, head uint64) []uint64 {
	var all []uint64
	for seq := range sc.batches {
		if seq > floor && seq <= head && sc.completeBatch(seq) {
			all = append(all, seq)
		}
	}
	slices.Sort(all)
	return all
}

// unnamed returns the packs whose files no journal names: without a
// checkpoint, every pack written before the journal existed (version 1)
// that holds blocks; all of them if a batch says it was written into a
// store holding such files.
func (sc *storeScan) unnamed(chain []uint64) []uint32 {
	uncovered := false
	for _, seq := range chain {
		if !sc.batches[seq][0].covered {
			uncovered = true
		}
	}
	var out []uint32
	for _, p := range sc.packs {
		if p.Blocks > 0 && (p.Version == 1 || uncovered) {
			out = append(out, p.ID)
		}
	}
	return out
}

// recordReader reads journal records back by location.
type recordReader struct {
	dir   string
	files map[uint32]*os.File
	hdr   []byte
	// remote and far: packs without a local file (storeScan.remote).
	remote func(id uint32) (io.ReaderAt, int64, bool)
	far    map[uint32]*windowReader
}

func newRecordReader(dir string) *recordReader {
	return &recordReader{dir: dir, files: map[uint32]*os.File{}, hdr: make([]byte, recordHeaderLen)}
}

func (rd *recordReader) close() {
	for _, f := range rd.files {
		f.Close()
	}
}

func (rd *recordReader) read(m jrecMeta) (*jrecord, error) {
	if w := rd.far[m.pack]; w != nil {
		return rd.decode(w, w.size, m)
	}
	if _, err := os.Stat(packFileName(rd.dir, m.pack)); rd.remote != nil && errors.Is(err, fs.ErrNotExist) {
		if r, size, ok := rd.remote(m.pack); ok {
			if rd.far == nil {
				rd.far = map[uint32]*windowReader{}
			}
			w, _ := r.(*windowReader)
			if w == nil {
				w = &windowReader{r: r, size: size}
			}
			rd.far[m.pack] = w
			return rd.decode(w, size, m)
		}
	}
	f := rd.files[m.pack]
	if f == nil {
		if len(rd.files) >= 64 {
			rd.close()
			rd.files = map[uint32]*os.File{}
		}
		var err error
		if f, err = os.Open(packFileName(rd.dir, m.pack)); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		rd.files[m.pack] = f
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return rd.decode(f, st.Size(), m)
}

func (rd *recordReader) decode(f io.ReaderAt, size int64, m jrecMeta) (*jrecord, error) {
	var buf []byte
	_, payload, err := readScanRecord(f, m.off, size, rd.hdr, &buf, true)
	if err != nil {
		return nil, fmt.Errorf("store: pack %d changed during repair: %w", m.pack, err)
	}
	return decodeJournal(payload)
}

func (rd *recordReader) replay(r *rebuilt, m jrecMeta) error {
	rec, err := rd.read(m)
	if err != nil {
		return err
	}
	for _, e := range rec.entries {
		r.apply(e)
	}
	return nil
}

func fileKeyOf(dir, name string) string { return dir + "\x00" + name }

// apply replays one journal entry.
func (r *rebuilt) apply(e jentry) {
	switch e.kind {
	case jeFile:
		r.files[fileKeyOf(e.file.Dir, e.file.Name)] = e.file
		if r.dirs[e.file.Dir] == nil {
			r.dirs[e.file.Dir] = &index.Dir{Name: e.file.Dir, Created: e.file.Archived}
		}
	case jeRemove:
		delete(r.files, fileKeyOf(e.dirName, e.name))
	case jeDir:
		r.dirs[e.dir.Name] = dirIdentity(e.dir)
	case jeRmdir:
		delete(r.dirs, e.dirName)
	}
}

// account derives everything the index keeps beside file and namespace
// records: block reference counts, pack live bytes, namespace and archive
// totals. A block's stored bytes go to the namespace of the earliest file
// that uses it, as the first commit storing it did.
func (r *rebuilt) account(scans []packScan, packDir string, rep *RepairReport) {
	files := make([]*index.File, 0, len(r.files))
	for _, f := range r.files {
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool {
		a, b := files[i], files[j]
		if a.Archived != b.Archived {
			return a.Archived < b.Archived
		}
		return fileKeyOf(a.Dir, a.Name) < fileKeyOf(b.Dir, b.Name)
	})
	live := map[uint32]*index.Pack{}
	for _, f := range files {
		d := r.dirs[f.Dir]
		d.Files++
		d.LogicalBytes += f.Size
		if k := wal.ParseName(f.Name).Kind; k == wal.KindSegment || k == wal.KindPartial {
			d.Segments++
		}
		missing := 0
		for _, h := range f.Blocks {
			if h.IsZero() {
				continue
			}
			b := r.blocks[h]
			if b == nil {
				missing++
				continue
			}
			if b.Refs == 0 {
				b.dir = f.Dir
				if live[b.Pack] == nil {
					live[b.Pack] = &index.Pack{}
				}
				live[b.Pack].AddLive(&b.Block, 1)
				d.StoredBytes += b.RecordLen()
			}
			b.Refs++
		}
		if missing > 0 {
			r.problems = append(r.problems, Problem{Kind: ProblemFile, Path: f.Path(), Err: fmt.Sprintf("%d blocks are in no pack", missing)})
		}
		rep.Files++
		rep.LogicalBytes += f.Size
	}
	for _, ps := range scans {
		committed := ps.End
		if ps.Tail > maxTornTail {
			committed = ps.Size
		}
		if ps.Blocks+ps.Journal == 0 && ps.Size > packHeaderLen {
			continue // nothing to account for: left unknown, so nothing deletes it (verify reports it)
		}
		l := live[ps.ID]
		if l == nil {
			l = &index.Pack{}
		}
		r.packs = append(r.packs, &index.Pack{ID: ps.ID, Committed: committed, Live: l.Live, Unsettled: l.Unsettled, Cold: l.Cold, MaxSeq: r.maxSeq(ps.ID)})
		rep.LiveBytes += l.Live
		rep.DeadBytes += max(0, ps.End-packHeaderLen) - l.Live
	}
	rep.Dirs = len(r.dirs)
	rep.Problems = append(rep.Problems, r.problems...)
}

// maxSeq is the pack's MaxSeq: the newest batch it holds, committed or not
// (GC keeps a pack until a checkpoint covers it: see journalPinned).
func (r *rebuilt) maxSeq(id uint32) uint64 { return r.packSeq[id] }

// writeIndex builds the new index in index.repair (a crashed repair's is
// discarded first), then swaps it in: the old index directory, if any, is
// renamed to index.old-TIME, index.repair to index, and the data
// directory is fsynced. A crash before the last rename leaves no index/,
// which every Open refuses (ErrIndexMissing) until repair runs again.
func writeIndex(cfg Config, r *rebuilt, rep *RepairReport, progress func(RepairProgress)) error {
	if progress == nil {
		progress = func(RepairProgress) {}
	}
	progress(RepairProgress{Phase: "write", Items: rep.Files})
	tmp := filepath.Join(cfg.Dir, "index.repair")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("store: remove %s: %w", tmp, err)
	}
	db, err := index.Open(tmp, index.Options{Logger: cfg.Logger})
	if err != nil {
		return err
	}
	if err := r.load(db.NewLoader()); err != nil {
		db.Close()
		return fmt.Errorf("store: write rebuilt index: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("store: close rebuilt index: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	progress(RepairProgress{Phase: "swap"})
	cur := filepath.Join(cfg.Dir, "index")
	if _, err := os.Stat(cur); err == nil {
		rep.OldIndex = filepath.Join(cfg.Dir, "index.old-"+time.Now().UTC().Format("20060102T150405.000000000"))
		if err := os.Rename(cur, rep.OldIndex); err != nil {
			return fmt.Errorf("store: keep the old index: %w", err)
		}
	}
	if err := os.Rename(tmp, cur); err != nil {
		return fmt.Errorf("store: install the rebuilt index: %w", err)
	}
	return syncDir(cfg.Dir)
}

func (r *rebuilt) load(l *index.Loader) error {
	var st index.Stats
	for _, f := range r.files {
		if err := l.PutFile(f); err != nil {
			l.Cancel()
			return err
		}
		st.Files++
		st.LogicalBytes += f.Size
	}
	for h, b := range r.blocks {
		if b.Refs == 0 {
			continue // dead: GC reclaims its bytes
		}
		if err := l.PutBlock(h, &b.Block); err != nil {
			l.Cancel()
			return err
		}
	}
	for _, p := range r.packs {
		if err := l.PutPack(p); err != nil {
			l.Cancel()
			return err
		}
	}
	for _, d := range r.dirs {
		if err := l.PutDir(d); err != nil {
			l.Cancel()
			return err
		}
	}
	j := r.journal
	if err := errors.Join(l.PutStats(&st), l.PutJournal(&j)); err != nil {
		l.Cancel()
		return err
	}
	return l.Flush()
}

// checkRepaired opens the repaired store, writes a checkpoint of it (so a
// later repair starts from there, and GC may reclaim what the journal no
// longer needs) and verifies it.
func checkRepaired(ctx context.Context, cfg Config, progress func(RepairProgress)) (*VerifyReport, error) {
	cfg.MustExist = true
	s, err := Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("store: open the repaired store: %w", err)
	}
	defer s.Close()
	if err := s.checkpoint(ctx); err != nil {
		return nil, err
	}
	var total int64
	if st, err := s.Status(); err == nil {
		total = st.LogicalBytes
	}
	var vp VerifyProgress
	if progress != nil {
		vp = func(files, bytes int64) {
			progress(RepairProgress{Phase: "verify", Items: files, Bytes: bytes, Total: total})
		}
	}
	vr, err := s.Verify(ctx, "*", vp)
	if err != nil {
		return &vr, err
	}
	return &vr, s.Close()
}

// checkTail refuses to cut pack id back to committed when the tail holds
// journal records the index should know: a batch whose prev is past the
// index's last batch (a batch it names committed, so the index lost it),
// or a checkpoint taken after it. What a crash leaves past the committed
// length is only batches written on top of lastSeq that never committed.
// Such a tail means the index is older than the packs (restored from a
// backup, say): truncating it would delete acknowledged files.
func (s *Store) checkTail(id uint32, committed int64, lastSeq uint64) error {
	name := packFileName(s.packs.dir, id)
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() <= committed || committed < packHeaderLen {
		return err
	}
	var newer *jrecord
	_, err = scanPackFrom(f, id, committed, st.Size(), false, func(off int64, h recordHeader, payload []byte) error {
		if h.Codec != codecJournal {
			return nil
		}
		d := &jdec{b: payload}
		r := decodeJournalHead(d)
		if d.err == nil && (r.typ == jrBatch && r.prev > lastSeq || r.typ != jrBatch && r.seq > lastSeq) {
			newer = r
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return err
	}
	if newer != nil {
		return fmt.Errorf("%w: %s holds journal records past its committed length of commits the index does not know "+
			"(batch %d after %d; the index's last is %d): the index is older than the packs; not opening it",
			ErrIndexDamaged, name, newer.seq, newer.prev, lastSeq)
	}
	return nil
}
