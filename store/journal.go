package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/walrus-archive/walrus/index"
)

// The journal: every change to a file or namespace record is also written,
// as a journal record, into the packs, in the same group commit and before
// the same fsync as the blocks it names (see "The journal" in doc.go). The
// packs alone then hold everything the index holds, and walrus repair can
// rebuild the index from them.
//
// A journal record is framed like a block record (pack.go), so that every
// pack scanner can step over it, with its own magic and codec:
//
//	"WJNL" | sha256 of payload (32) | u32 payload length | u32 payload length |
//	u8 0x80 | 3 bytes zero | u32 CRC-32C of the preceding 48 bytes and the payload |
//	payload
//
// and a payload of unsigned (uvarint) and signed (varint) integers, strings
// (uvarint length, bytes) and raw 32-byte hashes:
//
//	u8 version (1) | u8 type | uvar seq | type fields | uvar n | n entries
//
//	type 1 batch           the changes of one group commit (or one part of them):
//	                       uvar prev | u8 flags (1: covered) | svar unix ns | uvar part | uvar parts
//	type 2 checkpoint      one chunk of a snapshot of every namespace and file:
//	                       uvar checkpoint id | uvar chunk
//	type 3 checkpoint end  the snapshot is complete:
//	                       uvar checkpoint id | uvar chunks | uvar entries | svar unix ns
//
//	entry 1 file    str dir | str name | svar size | uvar mode | svar mtime |
//	                svar archived | hash | uvar block size | uvar blocks |
//	                per block u8 0 (hole) or u8 1 and hash | svar stored
//	entry 2 remove  str dir | str name
//	entry 3 dir     str name | svar created | uvar sysid | uvar segsize | uvar magic | str version
//	entry 4 rmdir   str name
//
// seq numbers the group commits of a store; a batch's prev is the seq of
// the last batch the index had committed when it was written, so the
// committed batches form a chain back from the newest, and a batch whose
// index transaction failed after its record was written is on no chain. A
// checkpoint's seq is the last committed seq its snapshot includes. A file
// entry always carries the whole record (a metadata change writes it
// again), so replaying entries in order rebuilds every record exactly.

const (
	journalMagic   = "WJNL"
	codecJournal   = index.Codec(0x80)
	journalVersion = 1
	// journalChunk is the payload size at which a batch or checkpoint
	// starts a new record; one entry is never split, so a record may grow
	// to one entry past it, bounded by maxStoredLen.
	journalChunk  = 1 << 20
	maxNameInJrnl = 4096
)

// Journal record types.
const (
	jrBatch         = 1
	jrCheckpoint    = 2
	jrCheckpointEnd = 3
)

// Journal entry kinds.
const (
	jeFile   = 1
	jeRemove = 2
	jeDir    = 3
	jeRmdir  = 4
)

// jeCopied, or'ed into an entry's kind byte: the change was copied from
// another front-end of the group (an adopted file, a followed removal;
// peers.go), not made here by a client. Followers skip copied entries:
// they follow every front-end's own changes directly, and following
// copies would echo them back and forth (a name removed by retention
// here would come back from a peer's earlier copy of it). Everything else
// reads the entry as its kind. A walrus from before issue 15 refuses such
// a journal ("entry kind 129"): no downgrade past it.
const jeCopied = 0x80

const jrCovered = 1 << 0

// jentry is one change.
type jentry struct {
	kind   uint8
	copied bool        // jeCopied
	file   *index.File // jeFile
	dir    *index.Dir  // jeDir: Name, Created and the WAL identity
	// jeRemove: dirName/name; jeRmdir: dirName
	dirName, name string
}

// jrecord is one decoded journal record.
type jrecord struct {
	typ     uint8
	seq     uint64
	prev    uint64 // batch
	covered bool   // batch: every index record was journaled when it was written
	time    int64  // batch, checkpoint end
	part    uint32 // batch: part; checkpoint: chunk number
	parts   uint32 // batch: parts; checkpoint end: chunks
	ckpt    uint64 // checkpoint id
	count   uint64 // checkpoint end: entries in all chunks
	entries []jentry
}

// jenc appends the journal encoding to b.
type jenc struct{ b []byte }

func (e *jenc) u8(v uint8)    { e.b = append(e.b, v) }
func (e *jenc) uvar(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *jenc) svar(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *jenc) hash(h index.Hash) {
	e.b = append(e.b, h[:]...)
}
func (e *jenc) str(s string) {
	e.uvar(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (r *jrecord) encodeHead(e *jenc) {
	e.u8(journalVersion)
	e.u8(r.typ)
	e.uvar(r.seq)
	switch r.typ {
	case jrBatch:
		e.uvar(r.prev)
		var flags uint8
		if r.covered {
			flags |= jrCovered
		}
		e.u8(flags)
		e.svar(r.time)
		e.uvar(uint64(r.part))
		e.uvar(uint64(r.parts))
	case jrCheckpoint:
		e.uvar(r.ckpt)
		e.uvar(uint64(r.part))
	case jrCheckpointEnd:
		e.uvar(r.ckpt)
		e.uvar(uint64(r.parts))
		e.uvar(r.count)
		e.svar(r.time)
	}
}

// encode returns the record's payload.
func (r *jrecord) encode() []byte {
	e := jenc{b: make([]byte, 0, 64)}
	r.encodeHead(&e)
	e.uvar(uint64(len(r.entries)))
	for i := range r.entries {
		r.entries[i].encode(&e)
	}
	return e.b
}

func (j *jentry) encode(e *jenc) {
	if j.copied {
		e.u8(j.kind | jeCopied)
	} else {
		e.u8(j.kind)
	}
	switch j.kind {
	case jeFile:
		e.str(j.file.Dir)
		e.str(j.file.Name)
		rec := index.EncodeFile(j.file) // the index's own record encoding
		e.uvar(uint64(len(rec)))
		e.b = append(e.b, rec...)
	case jeRemove:
		e.str(j.dirName)
		e.str(j.name)
	case jeDir:
		d := j.dir
		e.str(d.Name)
		e.svar(d.Created)
		e.uvar(d.SysID)
		e.uvar(uint64(d.SegSize))
		e.uvar(uint64(d.Magic))
		e.str(d.Version)
	case jeRmdir:
		e.str(j.dirName)
	}
}

// size is an upper bound of the entry's encoded length.
func (j *jentry) size() int {
	switch j.kind {
	case jeFile:
		return 96 + len(j.file.Dir) + len(j.file.Name) + 33*len(j.file.Blocks)
	case jeDir:
		return 64 + len(j.dir.Name) + len(j.dir.Version)
	}
	return 16 + len(j.dirName) + len(j.name)
}

// errJournal is wrapped by every decoding failure.
var errJournal = errors.New("store: malformed journal record")

// jdec reads the journal encoding, bounding every length by what is left.
type jdec struct {
	b   []byte
	err error
}

func (d *jdec) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errJournal, what)
	}
	d.b = nil
}

func (d *jdec) u8() uint8 {
	if len(d.b) < 1 {
		d.fail("short")
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *jdec) uvar() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *jdec) svar() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *jdec) u32() uint32 {
	v := d.uvar()
	if v > 1<<32-1 {
		d.fail("value out of range")
		return 0
	}
	return uint32(v)
}

func (d *jdec) str() string {
	n := d.uvar()
	if n > maxNameInJrnl || n > uint64(len(d.b)) {
		d.fail("string length out of range")
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *jdec) hash() (h index.Hash) {
	if len(d.b) < len(h) {
		d.fail("short hash")
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

// decodeJournalHead decodes a payload's type fields, leaving d at the
// entry count.
func decodeJournalHead(d *jdec) *jrecord {
	if v := d.u8(); v != journalVersion && d.err == nil {
		d.fail(fmt.Sprintf("version %d", v))
	}
	r := &jrecord{typ: d.u8(), seq: d.uvar()}
	switch r.typ {
	case jrBatch:
		r.prev = d.uvar()
		flags := d.u8()
		r.covered = flags&jrCovered != 0
		r.time = d.svar()
		r.part, r.parts = d.u32(), d.u32()
		if d.err == nil && (r.parts == 0 || r.part >= r.parts || r.prev >= r.seq) {
			d.fail("batch fields out of range")
		}
	case jrCheckpoint:
		r.ckpt, r.part = d.uvar(), d.u32()
	case jrCheckpointEnd:
		r.ckpt, r.parts, r.count, r.time = d.uvar(), d.u32(), d.uvar(), d.svar()
	default:
		d.fail(fmt.Sprintf("type %d", r.typ))
	}
	return r
}

// decodeJournal decodes a whole payload.
func decodeJournal(payload []byte) (*jrecord, error) {
	d := &jdec{b: payload}
	r := decodeJournalHead(d)
	n := d.uvar()
	if n > uint64(len(d.b)) { // every entry takes at least two bytes
		d.fail("entry count out of range")
	}
	if r.typ == jrCheckpointEnd && n != 0 {
		d.fail("entries in a checkpoint end")
	}
	if d.err == nil && n > 0 {
		r.entries = make([]jentry, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.entries = append(r.entries, decodeEntry(d))
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func decodeEntry(d *jdec) jentry {
	k := d.u8()
	j := jentry{kind: k &^ jeCopied, copied: k&jeCopied != 0}
	switch j.kind {
	case jeFile:
		j.file = decodeFileEntry(d)
	case jeRemove:
		j.dirName, j.name = d.str(), d.str()
	case jeDir:
		m := &index.Dir{Name: d.str(), Created: d.svar(), SysID: d.uvar()}
		m.SegSize = d.u32()
		if mg := d.uvar(); mg > 0xffff {
			d.fail("magic out of range")
		} else {
			m.Magic = uint16(mg)
		}
		m.Version = d.str()
		j.dir = m
	case jeRmdir:
		j.dirName = d.str()
	default:
		d.fail(fmt.Sprintf("entry kind %d", j.kind))
	}
	return j
}

func decodeFileEntry(d *jdec) *index.File {
	dir, name := d.str(), d.str()
	n := d.uvar()
	if d.err != nil {
		return &index.File{Dir: dir, Name: name}
	}
	if n > uint64(len(d.b)) {
		d.fail("file record length out of range")
		return &index.File{Dir: dir, Name: name}
	}
	rec := d.b[:n]
	d.b = d.b[n:]
	f, err := index.DecodeFile(dir, name, rec)
	if err != nil {
		d.fail(err.Error())
		return &index.File{Dir: dir, Name: name}
	}
	if !bytes.Equal(index.EncodeFile(f), rec) { // one encoding per record: repair replays what was written
		d.fail("file record not in its canonical encoding")
	}
	if f.Size < 0 || f.BlockSize == 0 && len(f.Blocks) > 0 || uint64(len(f.Blocks)) != blocksFor(f.Size, f.BlockSize) {
		d.fail("file size, block size and block count disagree")
	}
	return f
}

// blocksFor is the length of the block list of a file of size bytes.
func blocksFor(size int64, blockSize uint32) uint64 {
	if size <= 0 || blockSize == 0 {
		return 0
	}
	return (uint64(size) + uint64(blockSize) - 1) / uint64(blockSize)
}

// appendJournal frames payload as a journal record and appends it to the
// active pack; like a block, it is durable only after the pack's fsync.
// Journal records of a batch that frees space (freesSpace), and of
// checkpoints, may take the reserve file: mayRelease.
func (w *packWriter) appendJournal(payload []byte, mayRelease bool) (uint32, int64, error) {
	room := func(n int64) error { return w.space.check(n, mayRelease) }
	return w.appendChecked(sha256.Sum256(payload), len(payload), codecJournal, payload, room)
}

// journalBatch gathers the entries of one group commit's ops.
type journalBatch struct {
	time       time.Time
	entries    []jentry
	mayRelease bool // the batch frees space: its records may take the reserve file
}

// journaled is implemented by ops that change file or namespace records;
// journal is called once apply has succeeded and adds what apply did.
type journaled interface {
	journal(b *journalBatch)
}

func (b *journalBatch) add(o op) {
	if j, ok := o.(journaled); ok {
		j.journal(b)
	}
}

func (b *journalBatch) file(f *index.File) { b.fileFrom(f, false) }

// fileFrom is file with the entry marked copied from another front-end.
func (b *journalBatch) fileFrom(f *index.File, copied bool) {
	c := *f
	b.entries = append(b.entries, jentry{kind: jeFile, file: &c, copied: copied})
}

func (b *journalBatch) dir(d *index.Dir) {
	b.entries = append(b.entries, jentry{kind: jeDir, dir: dirIdentity(d)})
}

// dirIdentity is what a journal keeps of a namespace record; the counters
// are derived from the files.
func dirIdentity(d *index.Dir) *index.Dir {
	return &index.Dir{Name: d.Name, Created: d.Created, SysID: d.SysID, SegSize: d.SegSize, Magic: d.Magic, Version: d.Version}
}

func (o *commitFileOp) journal(b *journalBatch) {
	if o.existed {
		return
	}
	if o.dirChanged != nil {
		b.dir(o.dirChanged)
	}
	b.fileFrom(o.file, o.copied)
}

func (o *setMetaOp) journal(b *journalBatch) { b.file(o.file) }

func (o *removeOp) journal(b *journalBatch) {
	b.entries = append(b.entries, jentry{kind: jeRemove, dirName: o.dir, name: o.name, copied: o.copied})
}

func (o *removeFilesOp) journal(b *journalBatch) {
	for _, name := range o.removed {
		b.entries = append(b.entries, jentry{kind: jeRemove, dirName: o.dir, name: name})
	}
}

func (o *mkdirOp) journal(b *journalBatch) {
	if o.created != nil {
		b.dir(o.created)
	}
}

func (o *rmdirOp) journal(b *journalBatch) {
	b.entries = append(b.entries, jentry{kind: jeRmdir, dirName: o.dir})
}

// records splits the batch's entries into records of about journalChunk
// bytes each.
func (b *journalBatch) records(seq, prev uint64, covered bool) []*jrecord {
	var out []*jrecord
	cur := &jrecord{}
	size := 0
	for _, e := range b.entries {
		if n := e.size(); size > 0 && size+n > journalChunk {
			out = append(out, cur)
			cur, size = &jrecord{}, 0
		}
		cur.entries = append(cur.entries, e)
		size += e.size()
	}
	out = append(out, cur)
	for i, r := range out {
		r.typ, r.seq, r.prev, r.covered, r.time = jrBatch, seq, prev, covered, b.time.UnixNano()
		r.part, r.parts = uint32(i), uint32(len(out))
	}
	return out
}

// packSyncError is a failed fsync of one pack inside a commit.
type packSyncError struct {
	pack uint32
	err  error
}

func (e *packSyncError) Error() string { return fmt.Sprintf("store: fsync pack %d: %v", e.pack, e.err) }
func (e *packSyncError) Unwrap() error { return e.err }

// commitJournal is the durability point of a group commit, run inside its
// index transaction once every op has applied: it appends the batch's
// journal records to the active pack, fsyncs every pack written since the
// last batch (dirty, which it extends with the journal's packs), and
// records the journal's pack ends and sequence number in x. The
// transaction commits only after it returned nil, so an acknowledged
// change is in the packs before it is in the index.
func (s *Store) commitJournal(x *index.Txn, b *journalBatch, dirty map[uint32]int64) error {
	j, _, err := x.Journal()
	if err != nil {
		return err
	}
	wrote := map[uint32]int64{}
	if len(b.entries) > 0 {
		seq := s.seq
		s.seq++ // consumed even if the transaction fails: a seq is never reused
		for _, r := range b.records(seq, j.LastSeq, j.Covered) {
			payload := r.encode()
			id, off, err := s.pw.appendJournal(payload, b.mayRelease)
			if err != nil {
				return err
			}
			end := off + int64(recordHeaderLen+len(payload))
			wrote[id] = max(wrote[id], end)
			dirty[id] = max(dirty[id], end)
		}
		j.LastSeq = seq
		if err := x.PutJournal(j); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(dirty) {
		if err := s.syncPack(id); err != nil {
			return &packSyncError{pack: id, err: err}
		}
	}
	if err := recordPackEnds(x, wrote); err != nil {
		return err
	}
	for id := range wrote {
		p, err := packRecord(x, id)
		if err != nil {
			return err
		}
		p.MaxSeq = max(p.MaxSeq, j.LastSeq)
		if err := x.PutPack(p); err != nil {
			return err
		}
	}
	return nil
}

// journalPinned reports whether GC must keep pack p because the journal
// needs it: it holds batches newer than the newest durable checkpoint, or
// that checkpoint itself (see "The journal" in doc.go).
func journalPinned(j *index.Journal, p *index.Pack) bool {
	if p.MaxSeq > j.CkptSeq {
		return true
	}
	for _, id := range j.CkptPacks {
		if id == p.ID {
			return true
		}
	}
	return false
}

// retirable reports whether the journal lets GC retire p now.
func retirable(x *index.Txn, p *index.Pack) (bool, error) {
	j, _, err := x.Journal()
	if err != nil {
		return false, err
	}
	return !journalPinned(j, p), nil
}

// announce records new pack id in the index before anything is appended
// to it (index.Txn.PutNewPack), so that a crash never leaves a pack holding
// records the index has not heard of: Open keeps such a pack, as it may
// hold the only copy of data a damaged index lost.
func (w *packWriter) announce(id uint32) error {
	if w.created == nil {
		return nil
	}
	return w.created(id)
}

// announcePack is packWriter.created. It runs outside the committer, which
// is safe: creation markers are only written here and read by Open, so no
// committer transaction ever conflicts with it.
func (s *Store) announcePack(id uint32) error {
	if err := s.idx.Update(func(x *index.Txn) error { return x.PutNewPack(id) }); err != nil {
		return fmt.Errorf("store: record new pack %d: %w", id, err)
	}
	return nil
}
