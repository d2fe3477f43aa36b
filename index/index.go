package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("index: not found")

// Options tune the badger instance. Zero values take the defaults below.
type Options struct {
	Logger         *slog.Logger
	MemTableSize   int64 // default 8 MiB
	BlockCacheSize int64 // default 16 MiB
	IndexCacheSize int64 // default 8 MiB
	ReadOnly       bool
}

// DB is the index. It is safe for concurrent use; writers should still be
// serialised by the caller (the store's committer), because a group commit
// reads and then writes several records in one transaction.
type DB struct {
	db *badger.DB
}

// Open opens (creating if needed) the index in dir.
//
// Badger's defaults are sized for a large key-value store (64 MiB memtables,
// 256 MiB block cache, 1 GiB value-log files); an archive index holds a few
// hundred bytes per file, so everything is scaled down to keep the resident
// set of even a short-lived `walrus status` small.
func Open(dir string, o Options) (*DB, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if !o.ReadOnly {
		if err := dropEmptyValueLogs(dir); err != nil {
			return nil, err
		}
	}
	opts := badger.DefaultOptions(dir).
		WithLogger(slogLogger{o.Logger.With("component", "badger")}).
		WithSyncWrites(true).
		WithMemTableSize(orDefault(o.MemTableSize, 8<<20)).
		WithNumMemtables(2).
		WithBlockCacheSize(orDefault(o.BlockCacheSize, 16<<20)).
		WithIndexCacheSize(orDefault(o.IndexCacheSize, 8<<20)).
		WithValueLogFileSize(64 << 20).
		WithBaseTableSize(4 << 20).
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(10).
		WithNumCompactors(2).
		WithCompression(options.None). // values are mostly SHA-256 hashes
		WithNumVersionsToKeep(1).
		WithReadOnly(o.ReadOnly)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return &DB{db: db}, nil
}

// dropEmptyValueLogs removes value-log files of zero bytes. Badger creates
// a new value-log file at every open and writes its 20-byte header only
// afterwards; a process killed in between leaves an empty file, and the next
// open fails on it ("Open existing file ... Create a new file": badger:
// value.go valueLog.open treats logFile.open's z.NewFile as an error, where
// openMemTable accepts it). An empty file holds no header and no value, so
// nothing can refer to it.
func dropEmptyValueLogs(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".vlog") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Size() == 0 {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("index: remove empty value log: %w", err)
			}
		}
	}
	return nil
}

func orDefault(v, d int64) int64 {
	if v > 0 {
		return v
	}
	return d
}

// Close flushes and closes the index.
func (d *DB) Close() error { return d.db.Close() }

// Sync forces the value log to disk (Update already does for its own writes).
func (d *DB) Sync() error { return d.db.Sync() }

// View runs fn in a read-only snapshot.
func (d *DB) View(fn func(*Txn) error) error {
	return d.db.View(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
}

// Update runs fn in one read-write transaction and commits it durably.
// If fn returns an error nothing is written.
func (d *DB) Update(fn func(*Txn) error) error {
	return d.db.Update(func(t *badger.Txn) error { return fn(&Txn{t: t}) })
}

// Txn is a typed view of a badger transaction.
type Txn struct{ t *badger.Txn }

func fileKey(dir, name string) []byte {
	k := make([]byte, 0, 3+len(dir)+len(name))
	k = append(k, "f/"...)
	k = append(k, dir...)
	k = append(k, 0)
	return append(k, name...)
}

func filePrefix(dir string) []byte {
	k := append([]byte("f/"), dir...)
	return append(k, 0)
}

func dirKey(dir string) []byte { return append([]byte("d/"), dir...) }
func blockKey(h Hash) []byte   { return append([]byte("b/"), h[:]...) }
func packKey(id uint32) []byte { return binary.BigEndian.AppendUint32([]byte("p/"), id) }

func newPackKey(id uint32) []byte { return binary.BigEndian.AppendUint32([]byte("n/"), id) }

var (
	statsKey   = []byte("s/stats")
	journalKey = []byte("s/journal")
)

func (x *Txn) get(key []byte) ([]byte, error) {
	it, err := x.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// File returns the record of dir/name.
func (x *Txn) File(dir, name string) (*File, error) {
	v, err := x.get(fileKey(dir, name))
	if err != nil {
		return nil, err
	}
	return decodeFile(dir, name, v)
}

// PutFile writes a file record.
func (x *Txn) PutFile(f *File) error { return x.t.Set(fileKey(f.Dir, f.Name), encodeFile(f)) }

// DeleteFile removes a file record (not its blocks: see the store).
func (x *Txn) DeleteFile(dir, name string) error { return x.t.Delete(fileKey(dir, name)) }

// Block returns the record of block h.
func (x *Txn) Block(h Hash) (*Block, error) {
	v, err := x.get(blockKey(h))
	if err != nil {
		return nil, err
	}
	return decodeBlock(v)
}

// PutBlock writes a block record.
func (x *Txn) PutBlock(h Hash, b *Block) error { return x.t.Set(blockKey(h), encodeBlock(b)) }

// DeleteBlock removes a block record.
func (x *Txn) DeleteBlock(h Hash) error { return x.t.Delete(blockKey(h)) }

// Pack returns the record of pack id.
func (x *Txn) Pack(id uint32) (*Pack, error) {
	v, err := x.get(packKey(id))
	if err != nil {
		return nil, err
	}
	return decodePack(id, v)
}

// PutPack writes a pack record.
func (x *Txn) PutPack(p *Pack) error { return x.t.Set(packKey(p.ID), encodePack(p)) }

// DeletePack removes a pack record.
func (x *Txn) DeletePack(id uint32) error { return x.t.Delete(packKey(id)) }

// Dir returns the namespace record of dir.
func (x *Txn) Dir(dir string) (*Dir, error) {
	v, err := x.get(dirKey(dir))
	if err != nil {
		return nil, err
	}
	return decodeDir(dir, v)
}

// PutDir writes a namespace record.
func (x *Txn) PutDir(m *Dir) error { return x.t.Set(dirKey(m.Name), encodeDir(m)) }

// DeleteDir removes a namespace record.
func (x *Txn) DeleteDir(dir string) error { return x.t.Delete(dirKey(dir)) }

// Stats returns the running totals (zero when none were written yet).
func (x *Txn) Stats() (*Stats, error) {
	v, err := x.get(statsKey)
	if errors.Is(err, ErrNotFound) {
		return &Stats{}, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeStats(v)
}

// PutStats writes the running totals.
func (x *Txn) PutStats(s *Stats) error { return x.t.Set(statsKey, encodeStats(s)) }

// Journal returns the journal state; ok is false when none was written yet
// (a store from before packs carried a journal, or a new one).
func (x *Txn) Journal() (j *Journal, ok bool, err error) {
	v, err := x.get(journalKey)
	if errors.Is(err, ErrNotFound) {
		return &Journal{}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	j, err = decodeJournal(v)
	return j, err == nil, err
}

// PutJournal writes the journal state.
func (x *Txn) PutJournal(j *Journal) error { return x.t.Set(journalKey, encodeJournal(j)) }

// PutNewPack records that pack file id was created. A pack's own record
// (PutPack) is written by the first commit that uses it; this marker makes
// the index know the file before any record is appended to it, so a crash
// in between leaves no pack file the index has never heard of.
func (x *Txn) PutNewPack(id uint32) error { return x.t.Set(newPackKey(id), nil) }

// DeleteNewPack removes the creation marker of pack id.
func (x *Txn) DeleteNewPack(id uint32) error { return x.t.Delete(newPackKey(id)) }

// NewPacks calls fn with the id of every creation marker, in id order.
func (x *Txn) NewPacks(fn func(id uint32) error) error {
	p := []byte("n/")
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = p
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		k := it.Item().Key()
		if len(k) != 6 {
			return fmt.Errorf("%w: new-pack key %q", ErrCorruptRecord, k)
		}
		if err := fn(binary.BigEndian.Uint32(k[2:])); err != nil {
			return err
		}
	}
	return nil
}

// FileNames calls fn for every file name in dir, in byte order, reading keys only.
func (x *Txn) FileNames(dir string, fn func(name string) error) error {
	p := filePrefix(dir)
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = p
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		if err := fn(string(it.Item().Key()[len(p):])); err != nil {
			return err
		}
	}
	return nil
}

// Files calls fn for every file record in dir, in name order. With dir "*"
// it walks every directory.
func (x *Txn) Files(ctx context.Context, dir string, fn func(*File) error) error {
	p := []byte("f/")
	if dir != "*" {
		p = filePrefix(dir)
	}
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	opts.PrefetchSize = 64
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := it.Item().Key()[2:]
		i := bytes.IndexByte(k, 0)
		if i < 0 {
			return fmt.Errorf("%w: file key %q", ErrCorruptRecord, k)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		f, err := decodeFile(string(k[:i]), string(k[i+1:]), v)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// Dirs calls fn for every namespace record in name order.
func (x *Txn) Dirs(fn func(*Dir) error) error {
	p := []byte("d/")
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		m, err := decodeDir(string(it.Item().Key()[2:]), v)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Packs calls fn for every pack record in id order.
func (x *Txn) Packs(fn func(*Pack) error) error {
	p := []byte("p/")
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		k := it.Item().Key()
		if len(k) != 6 {
			return fmt.Errorf("%w: pack key %q", ErrCorruptRecord, k)
		}
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		pk, err := decodePack(binary.BigEndian.Uint32(k[2:]), v)
		if err != nil {
			return err
		}
		if err := fn(pk); err != nil {
			return err
		}
	}
	return nil
}

// Blocks calls fn for every block record.
func (x *Txn) Blocks(fn func(Hash, *Block) error) error {
	p := []byte("b/")
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	it := x.t.NewIterator(opts)
	defer it.Close()
	for it.Seek(p); it.ValidForPrefix(p); it.Next() {
		k := it.Item().Key()[2:]
		var h Hash
		if len(k) != len(h) {
			return fmt.Errorf("%w: block key", ErrCorruptRecord)
		}
		copy(h[:], k)
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		b, err := decodeBlock(v)
		if err != nil {
			return err
		}
		if err := fn(h, b); err != nil {
			return err
		}
	}
	return nil
}

// Loader writes many records outside any transaction (badger's
// WriteBatch): for building a whole index at once, as walrus repair does,
// into a database nobody else uses yet. Nothing is durable before Flush
// returns nil.
type Loader struct{ wb *badger.WriteBatch }

// NewLoader starts a bulk load.
func (d *DB) NewLoader() *Loader { return &Loader{wb: d.db.NewWriteBatch()} }

func (l *Loader) PutFile(f *File) error           { return l.wb.Set(fileKey(f.Dir, f.Name), encodeFile(f)) }
func (l *Loader) PutBlock(h Hash, b *Block) error { return l.wb.Set(blockKey(h), encodeBlock(b)) }
func (l *Loader) PutPack(p *Pack) error           { return l.wb.Set(packKey(p.ID), encodePack(p)) }
func (l *Loader) PutDir(m *Dir) error             { return l.wb.Set(dirKey(m.Name), encodeDir(m)) }
func (l *Loader) PutStats(s *Stats) error         { return l.wb.Set(statsKey, encodeStats(s)) }
func (l *Loader) PutJournal(j *Journal) error     { return l.wb.Set(journalKey, encodeJournal(j)) }

// Flush writes what is left and waits for it.
func (l *Loader) Flush() error { return l.wb.Flush() }

// Cancel discards the load.
func (l *Loader) Cancel() { l.wb.Cancel() }

// IsTooBig reports whether err means a transaction grew past badger's limit.
func IsTooBig(err error) bool { return errors.Is(err, badger.ErrTxnTooBig) }

// slogLogger routes badger's printf-style logging to slog. Badger's INFO
// chatter (compactions, replays) is demoted to DEBUG.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Errorf(f string, a ...any)   { s.l.Error(trim(f, a)) }
func (s slogLogger) Warningf(f string, a ...any) { s.l.Warn(trim(f, a)) }
func (s slogLogger) Infof(f string, a ...any)    { s.l.Debug(trim(f, a)) }
func (s slogLogger) Debugf(f string, a ...any)   { s.l.Debug(trim(f, a)) }

func trim(f string, a []any) string { return strings.TrimSpace(fmt.Sprintf(f, a...)) }

// FilesAfter calls fn for up to limit file records of dir whose names sort
// after after ("" : from the first), in name order.
func (x *Txn) FilesAfter(dir, after string, limit int, fn func(*File) error) error {
	p := filePrefix(dir)
	opts := badger.DefaultIteratorOptions
	opts.Prefix = p
	opts.PrefetchSize = min(limit, 64)
	it := x.t.NewIterator(opts)
	defer it.Close()
	n := 0
	for it.Seek(append(fileKey(dir, after), 0)); it.ValidForPrefix(p) && n < limit; it.Next() {
		name := string(it.Item().Key()[len(p):])
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		f, err := decodeFile(dir, name, v)
		if err != nil {
			return err
		}
		n++
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}
