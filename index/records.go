package index

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// Hash identifies a block or a whole file: SHA-256 of the raw bytes.
type Hash [sha256.Size]byte

// ZeroHash marks a hole in a block list: a block of all-zero bytes that is
// not stored at all.
var ZeroHash Hash

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// IsZero reports whether h is the hole marker.
func (h Hash) IsZero() bool { return h == ZeroHash }

// ErrCorruptRecord is returned when a stored record cannot be decoded.
var ErrCorruptRecord = errors.New("index: corrupt record")

// File is one archived file.
type File struct {
	Dir       string // namespace, "" for the archive root
	Name      string // base name
	Size      int64
	Mode      uint32 // permission bits as given by the writer
	MTime     int64  // modification time from the writer, unix nanoseconds
	Archived  int64  // when the file was committed, unix nanoseconds
	Hash      Hash   // the file's identity; how it is computed: HashKind
	BlockSize uint32 // size of every block but the last
	Blocks    []Hash // one per block; ZeroHash for a hole
	// Stored is the pack footprint of the file's distinct blocks when it
	// was committed (what du shows); 0 in records written before it existed.
	Stored int64
	// HashKind says what Hash is: HashWhole in records written before
	// HashRoot existed, HashRoot since.
	HashKind HashKind
}

// HashKind says how a file's identity hash was computed.
type HashKind uint8

const (
	// HashWhole is SHA-256 of the file's bytes (records written before
	// HashRoot; they keep it).
	HashWhole HashKind = 0
	// HashRoot is SHA-256 over the size and the block list (RootHash): it
	// needs no second pass over the bytes, since every block is hashed anyway.
	HashRoot HashKind = 1
)

// RootHash is the HashRoot identity of a file of size bytes cut into
// blockSize blocks with hashes blocks (ZeroHash for a hole): SHA-256 of
// u64 size | u32 blockSize | every block hash, integers little-endian.
func RootHash(size int64, blockSize uint32, blocks []Hash) Hash {
	h := sha256.New()
	var n [12]byte
	binary.LittleEndian.PutUint64(n[0:8], uint64(size))
	binary.LittleEndian.PutUint32(n[8:12], blockSize)
	h.Write(n[:])
	for i := range blocks {
		h.Write(blocks[i][:])
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// SameContent reports whether a and b hold the same bytes, whatever kind
// of identity each record carries: equal hashes of one kind, or (across
// kinds) equal sizes and block lists at one block size — both kinds keep
// every block's SHA-256. Records of different kinds and block sizes cannot
// be compared without reading them: false.
func SameContent(a, b *File) bool {
	if a.Size != b.Size {
		return false
	}
	if a.HashKind == b.HashKind {
		return a.Hash == b.Hash
	}
	if a.BlockSize != b.BlockSize || len(a.Blocks) != len(b.Blocks) {
		return false
	}
	for i := range a.Blocks {
		if a.Blocks[i] != b.Blocks[i] {
			return false
		}
	}
	return true
}

// Path is Dir/Name, or Name in the root.
func (f *File) Path() string {
	if f.Dir == "" {
		return f.Name
	}
	return f.Dir + "/" + f.Name
}

// Codec says how a block's payload is stored in its pack.
type Codec uint8

const (
	CodecRaw  Codec = 0
	CodecZstd Codec = 1 // a zstd frame, settled (every zstd record written before settling existed)
	// CodecZstdIngest is a zstd frame written at the fast ingest level: the
	// store's settler re-encodes it at the settle level (store/settle.go).
	// It decodes exactly as CodecZstd.
	CodecZstdIngest Codec = 2
	// CodecLZMA2 is the cold tier: one dictionary-size byte (the xz LZMA2
	// filter property) followed by a raw LZMA2 stream (store/codec_lzma.go).
	CodecLZMA2 Codec = 3
)

// Unsettled reports whether a block in codec c is waiting for the settler.
func (c Codec) Unsettled() bool { return c == CodecZstdIngest }

// Block says where one distinct block lives.
type Block struct {
	Pack      uint32
	Offset    int64  // offset of the block's record header in the pack
	RawLen    uint32 // decompressed length
	StoredLen uint32 // payload length in the pack
	Codec     Codec
	Refs      uint32 // number of file-block references
}

// RecordLen is the block's footprint in its pack: header plus payload.
func (b *Block) RecordLen() int64 { return int64(RecordHeaderLen) + int64(b.StoredLen) }

// RecordHeaderLen is the length of a pack record header (see store/pack.go);
// the index counts it in a pack's live bytes.
const RecordHeaderLen = 52

// Pack is the committed state of one pack file.
type Pack struct {
	ID        uint32
	Committed int64 // bytes known durable and referenced by committed index state
	Live      int64 // bytes of records still referenced by some file
	// Retired is set by GC in the same transaction that moves the pack's
	// last live block away (or finds it has none). The file is deleted only
	// after that transaction committed; Open deletes a retired pack's file
	// that a crash left behind. The record stays as a tombstone so the id is
	// never reused and no commit can newly reference the pack.
	Retired bool
	// MaxSeq is the highest journal batch sequence number written into the
	// pack (0: none). GC may retire the pack only when the newest durable
	// checkpoint covers it (Journal.CkptSeq >= MaxSeq): see store/doc.go.
	MaxSeq uint64
	// Unsettled and Cold are the parts of Live held by records in
	// CodecZstdIngest and CodecLZMA2 (0 in records written before they
	// existed, which held neither).
	Unsettled int64
	Cold      int64
	// Uploaded is set once the pack's Committed bytes are in the bucket
	// (store.Config.Remote): the object was put and its size confirmed.
	// Records written before it existed, or by a store without a bucket,
	// read as false ("not uploaded"). It is a flag bit, so older walrus
	// versions read such records and simply ignore it. On a retired pack
	// it means its object is still in the bucket, to be deleted (a pending
	// deletion, store/remotegc.go); it is cleared once the object is gone.
	Uploaded bool
	// Evicted is set (only on an Uploaded pack) when its local file was
	// deleted to bound the local pack cache (store/packcache.go): the
	// pack lives in the bucket only, and reads fetch its records by range.
	// A flag bit like Uploaded: older versions ignore it.
	Evicted bool
	// MovedBelow is set when the pack is retired: every copy GC made of its
	// blocks lies in a pack with a lower id (the packs allocated by then).
	// 0 in records written before it existed (and on packs not retired):
	// unknown. An optional trailing field: older versions ignore it.
	MovedBelow uint32
}

// AddLive adds (sign 1) or removes (sign -1) block b's record from the
// pack's live bytes and the codec counters they include.
func (p *Pack) AddLive(b *Block, sign int64) {
	n := sign * b.RecordLen()
	p.Live += n
	switch {
	case b.Codec.Unsettled():
		p.Unsettled += n
	case b.Codec == CodecLZMA2:
		p.Cold += n
	}
}

// Dir is a namespace. WAL fields are set by the first segment committed into it.
type Dir struct {
	Name     string
	SysID    uint64 // PostgreSQL system identifier; 0 until the first segment
	SegSize  uint32
	Magic    uint16
	Version  string // PostgreSQL major version recognised from the magic
	Created  int64
	Segments int64 // segment files (incl. .partial) currently present
	// Running totals of this namespace, maintained by every commit and
	// removal. StoredBytes attributes each stored block record to the
	// directory whose commit first stored it (and releases it from the
	// directory whose removal dropped its last reference), so the sum over
	// directories equals the live bytes of all packs.
	Files        int64
	LogicalBytes int64
	StoredBytes  int64
}

// Journal is the index's view of the metadata journal the store writes
// into its packs (store/journal.go): which batch committed last, and the
// newest checkpoint that is durable in the packs.
type Journal struct {
	LastSeq uint64 // sequence number of the last batch this index committed
	// CkptSeq is the LastSeq a checkpoint's snapshot was taken at (0: none);
	// CkptID names that checkpoint's records, CkptPacks the packs that hold
	// them and CkptBytes their size.
	CkptSeq   uint64
	CkptID    uint64
	CkptPacks []uint32
	CkptBytes int64
	// Covered says every file and directory record of the index can be
	// rebuilt from pack records. It is false in a store written before
	// packs carried a journal, until its first checkpoint.
	Covered bool
	// HighSeq is the highest batch number any pack record may carry, when
	// above LastSeq: walrus repair sets it to the highest it found (a batch
	// a crash cut short stays in a repaired pack), so that numbers are
	// never reused.
	HighSeq uint64
}

// Stats are running totals over the whole archive.
type Stats struct {
	Files        int64
	LogicalBytes int64
}

// Binary encodings. Each record starts with a version byte so the format can
// grow; decoders bound every length by the buffer they are given.

const recordVersion = 1

type encoder struct{ b []byte }

func (e *encoder) u8(v uint8)    { e.b = append(e.b, v) }
func (e *encoder) uvar(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) svar(v int64)  { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string) {
	e.uvar(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) hash(h Hash) { e.b = append(e.b, h[:]...) }

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = ErrCorruptRecord
	}
}

func (d *decoder) u8() uint8 {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvar() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) svar() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string {
	n := d.uvar()
	if n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *decoder) hash() (h Hash) {
	if len(d.b) < len(h) {
		d.fail()
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

func (d *decoder) version() {
	if d.u8() != recordVersion {
		d.fail()
	}
}

// EncodeFile is the encoding of a file record without its key (Dir and
// Name), versioned and length-bounded. The store's pack journal carries
// exactly these bytes, so index and journal can never drift apart.
func EncodeFile(f *File) []byte { return encodeFile(f) }

// DecodeFile decodes what EncodeFile wrote, as the file dir/name.
func DecodeFile(dir, name string, b []byte) (*File, error) { return decodeFile(dir, name, b) }

func encodeFile(f *File) []byte {
	e := encoder{b: make([]byte, 0, 64+len(f.Blocks)*33)}
	e.u8(recordVersion)
	e.svar(f.Size)
	e.uvar(uint64(f.Mode))
	e.svar(f.MTime)
	e.svar(f.Archived)
	e.hash(f.Hash)
	e.uvar(uint64(f.BlockSize))
	e.uvar(uint64(len(f.Blocks)))
	for _, h := range f.Blocks {
		if h.IsZero() {
			e.u8(0)
			continue
		}
		e.u8(1)
		e.hash(h)
	}
	e.svar(f.Stored) // optional trailing fields
	if f.HashKind != HashWhole {
		e.u8(uint8(f.HashKind))
	}
	return e.b
}

func decodeFile(dir, name string, b []byte) (*File, error) {
	d := decoder{b: b}
	d.version()
	f := &File{Dir: dir, Name: name}
	f.Size = d.svar()
	f.Mode = uint32(d.uvar())
	f.MTime = d.svar()
	f.Archived = d.svar()
	f.Hash = d.hash()
	f.BlockSize = uint32(d.uvar())
	n := d.uvar()
	if n > uint64(len(d.b)) { // every entry takes at least one byte
		d.fail()
		n = 0
	}
	f.Blocks = make([]Hash, n)
	for i := range f.Blocks {
		switch d.u8() {
		case 0: // a hole
		case 1:
			f.Blocks[i] = d.hash()
		default:
			d.fail()
		}
	}
	if d.err == nil && len(d.b) > 0 {
		f.Stored = d.svar()
	}
	if d.err == nil && len(d.b) > 0 {
		switch k := HashKind(d.u8()); k {
		case HashWhole, HashRoot:
			f.HashKind = k
		default:
			d.fail()
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: file %q", d.err, name)
	}
	return f, nil
}

func encodeBlock(b *Block) []byte {
	e := encoder{b: make([]byte, 0, 24)}
	e.u8(recordVersion)
	e.uvar(uint64(b.Pack))
	e.svar(b.Offset)
	e.uvar(uint64(b.RawLen))
	e.uvar(uint64(b.StoredLen))
	e.u8(uint8(b.Codec))
	e.uvar(uint64(b.Refs))
	return e.b
}

func decodeBlock(b []byte) (*Block, error) {
	d := decoder{b: b}
	d.version()
	blk := &Block{
		Pack:      uint32(d.uvar()),
		Offset:    d.svar(),
		RawLen:    uint32(d.uvar()),
		StoredLen: uint32(d.uvar()),
		Codec:     Codec(d.u8()),
		Refs:      uint32(d.uvar()),
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: block", d.err)
	}
	return blk, nil
}

func encodePack(p *Pack) []byte {
	e := encoder{}
	e.u8(recordVersion)
	e.svar(p.Committed)
	e.svar(p.Live)
	var flags uint8
	if p.Retired {
		flags |= packRetired
	}
	if p.Uploaded {
		flags |= packUploaded
	}
	if p.Evicted {
		flags |= packEvicted
	}
	e.u8(flags)
	e.uvar(p.MaxSeq)
	if p.Unsettled != 0 || p.Cold != 0 || p.MovedBelow != 0 {
		e.svar(p.Unsettled)
		e.svar(p.Cold)
	}
	if p.MovedBelow != 0 {
		e.uvar(uint64(p.MovedBelow))
	}
	return e.b
}

// Pack flags. Records written before a field existed simply end early: every
// optional trailing field decodes as zero when absent.
const (
	packRetired  = 1 << 0
	packUploaded = 1 << 1 // Pack.Uploaded; older versions ignore the bit
	packEvicted  = 1 << 2 // Pack.Evicted; older versions ignore the bit
)

func decodePack(id uint32, b []byte) (*Pack, error) {
	d := decoder{b: b}
	d.version()
	p := &Pack{ID: id, Committed: d.svar(), Live: d.svar()}
	if d.err == nil && len(d.b) > 0 {
		flags := d.u8()
		p.Retired, p.Uploaded = flags&packRetired != 0, flags&packUploaded != 0
		p.Evicted = flags&packEvicted != 0
	}
	if d.err == nil && len(d.b) > 0 {
		p.MaxSeq = d.uvar()
	}
	if d.err == nil && len(d.b) > 0 {
		p.Unsettled, p.Cold = d.svar(), d.svar()
	}
	if d.err == nil && len(d.b) > 0 {
		p.MovedBelow = uint32(d.uvar())
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: pack %d", d.err, id)
	}
	return p, nil
}

func encodeDir(m *Dir) []byte {
	e := encoder{}
	e.u8(recordVersion)
	e.uvar(m.SysID)
	e.uvar(uint64(m.SegSize))
	e.uvar(uint64(m.Magic))
	e.str(m.Version)
	e.svar(m.Created)
	e.svar(m.Segments)
	e.svar(m.Files)
	e.svar(m.LogicalBytes)
	e.svar(m.StoredBytes)
	return e.b
}

func decodeDir(name string, b []byte) (*Dir, error) {
	d := decoder{b: b}
	d.version()
	m := &Dir{Name: name}
	m.SysID = d.uvar()
	m.SegSize = uint32(d.uvar())
	m.Magic = uint16(d.uvar())
	m.Version = d.str()
	m.Created = d.svar()
	m.Segments = d.svar()
	if d.err == nil && len(d.b) > 0 {
		m.Files = d.svar()
		m.LogicalBytes = d.svar()
		m.StoredBytes = d.svar()
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: dir %q", d.err, name)
	}
	return m, nil
}

func encodeJournal(j *Journal) []byte {
	e := encoder{}
	e.u8(recordVersion)
	e.uvar(j.LastSeq)
	e.uvar(j.CkptSeq)
	e.uvar(j.CkptID)
	e.uvar(uint64(len(j.CkptPacks)))
	for _, id := range j.CkptPacks {
		e.uvar(uint64(id))
	}
	e.svar(j.CkptBytes)
	var flags uint8
	if j.Covered {
		flags |= journalCovered
	}
	e.u8(flags)
	e.uvar(j.HighSeq)
	return e.b
}

const journalCovered = 1 << 0

func decodeJournal(b []byte) (*Journal, error) {
	d := decoder{b: b}
	d.version()
	j := &Journal{LastSeq: d.uvar(), CkptSeq: d.uvar(), CkptID: d.uvar()}
	n := d.uvar()
	if n > uint64(len(d.b)) { // every id takes at least one byte
		d.fail()
		n = 0
	}
	for i := uint64(0); i < n; i++ {
		j.CkptPacks = append(j.CkptPacks, uint32(d.uvar()))
	}
	j.CkptBytes = d.svar()
	j.Covered = d.u8()&journalCovered != 0
	if d.err == nil && len(d.b) > 0 {
		j.HighSeq = d.uvar()
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: journal", d.err)
	}
	return j, nil
}

func encodeStats(s *Stats) []byte {
	e := encoder{}
	e.u8(recordVersion)
	e.svar(s.Files)
	e.svar(s.LogicalBytes)
	return e.b
}

func decodeStats(b []byte) (*Stats, error) {
	d := decoder{b: b}
	d.version()
	s := &Stats{Files: d.svar(), LogicalBytes: d.svar()}
	if d.err != nil {
		return nil, fmt.Errorf("%w: stats", d.err)
	}
	return s, nil
}
