package index

import (
	"bytes"

	"github.com/dgraph-io/badger/v4"
)

// releaseEvery is how many bytes of table data a long scan reads between
// two releases of the table pages it has mapped (releaseTablePages).
const releaseEvery = 32 << 20

// ScanFileNames calls fn for every file name in dir, in byte order, reading
// keys only. The name is valid only during the call (no copy is made: a
// million names cost no allocation).
//
// Badger keeps a file record's value inline in its table, beside the key,
// so a key-only scan still reads every record's bytes through the
// memory-mapped tables, and each page read stays in the process's resident
// set: a scan of a million records would hold about 600 MB of the index
// file resident. Every releaseEvery bytes the scan hands the pages of the
// read-only table mappings back to the kernel (they stay in the page
// cache; a later read faults them back in), so the resident set of
// `walrus status` does not grow with the archive.
func (d *DB) ScanFileNames(dir string, fn func(name []byte) error) error {
	tables := tableMappingsOf(d.db.Opts().Dir)
	defer tables.release()
	return d.db.View(func(t *badger.Txn) error {
		p := filePrefix(dir)
		opts := badger.DefaultIteratorOptions
		opts.PrefetchValues = false
		opts.Prefix = p
		it := t.NewIterator(opts)
		defer it.Close()
		var read int64
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			item := it.Item()
			if err := fn(item.Key()[len(p):]); err != nil {
				return err
			}
			if read += item.EstimatedSize(); read >= releaseEvery {
				tables.release()
				read = 0
			}
		}
		return nil
	})
}

// FilesNewestNameFirst calls fn for the file records of dir in reverse name
// order (for WAL segments: newest first) until fn returns false. It reads
// only as far as fn wants, so recent history costs what it covers.
func (x *Txn) FilesNewestNameFirst(dir string, fn func(*File) bool) error {
	p := filePrefix(dir)
	opts := badger.DefaultIteratorOptions
	opts.Reverse = true
	opts.Prefix = p
	opts.PrefetchSize = 16
	it := x.t.NewIterator(opts)
	defer it.Close()
	// In reverse, Seek goes to the last key <= its argument: past every
	// name of the prefix (names are at most 255 bytes: store.SplitPath).
	end := append(append([]byte(nil), p...), bytes.Repeat([]byte{0xff}, 256)...)
	for it.Seek(end); it.ValidForPrefix(p); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return err
		}
		f, err := decodeFile(dir, string(it.Item().Key()[len(p):]), v)
		if err != nil {
			return err
		}
		if !fn(f) {
			return nil
		}
	}
	return nil
}
