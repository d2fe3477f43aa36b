package index

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestRecordsRoundTrip(t *testing.T) {
	db := openTest(t)
	f := &File{Dir: "c1", Name: "000000010000000000000001", Size: 16 << 20, Mode: 0o600, MTime: 123, Archived: 456,
		Hash: sha256.Sum256([]byte("x")), BlockSize: 1 << 20, Blocks: []Hash{sha256.Sum256([]byte("a")), ZeroHash, sha256.Sum256([]byte("b"))},
		Stored: 99, HashKind: HashRoot}
	blk := &Block{Pack: 3, Offset: 1 << 40, RawLen: 1 << 20, StoredLen: 70000, Codec: CodecZstd, Refs: 2}
	pk := &Pack{ID: 3, Committed: 1 << 30, Live: 12345, Retired: true, MaxSeq: 9, Unsettled: 1000, Cold: 2000}
	dir := &Dir{Name: "c1", SysID: 7300000000000000001, SegSize: 16 << 20, Magic: 0xD110, Version: "15", Created: 9, Segments: 1,
		Files: 2, LogicalBytes: 17 << 20, StoredBytes: 5000}
	st := &Stats{Files: 1, LogicalBytes: 16 << 20}
	err := db.Update(func(x *Txn) error {
		return errors.Join(x.PutFile(f), x.PutBlock(f.Blocks[0], blk), x.PutPack(pk), x.PutDir(dir), x.PutStats(st))
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(x *Txn) error {
		gf, err := x.File("c1", f.Name)
		if err != nil {
			return err
		}
		gb, _ := x.Block(f.Blocks[0])
		gp, _ := x.Pack(3)
		gd, _ := x.Dir("c1")
		gs, _ := x.Stats()
		for _, d := range []string{cmp.Diff(f, gf), cmp.Diff(blk, gb), cmp.Diff(pk, gp), cmp.Diff(dir, gd), cmp.Diff(st, gs)} {
			if d != "" {
				t.Errorf("round trip (-want +got):\n%s", d)
			}
		}
		if _, err := x.File("c1", "missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing file: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestListingsStayInTheirDirectory(t *testing.T) {
	db := openTest(t)
	err := db.Update(func(x *Txn) error {
		for _, p := range [][2]string{{"", "a"}, {"", "b"}, {"c", "x"}, {"c2", "y"}, {"c", "w"}} {
			if err := x.PutFile(&File{Dir: p[0], Name: p[1]}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := func(dir string) (out []string) {
		db.View(func(x *Txn) error {
			return x.FileNames(dir, func(n string) error { out = append(out, n); return nil })
		})
		return out
	}
	if d := cmp.Diff([]string{"w", "x"}, names("c")); d != "" {
		t.Errorf("dir c (prefix of c2) listing: %s", d)
	}
	if d := cmp.Diff([]string{"a", "b"}, names("")); d != "" {
		t.Errorf("root listing: %s", d)
	}
	var all []string
	db.View(func(x *Txn) error {
		return x.Files(context.Background(), "*", func(f *File) error { all = append(all, f.Path()); return nil })
	})
	if d := cmp.Diff([]string{"a", "b", "c/w", "c/x", "c2/y"}, all); d != "" {
		t.Errorf("walk: %s", d)
	}
}

// FuzzDecode feeds arbitrary bytes to every record decoder: they must fail
// cleanly (ErrCorruptRecord), never panic or allocate without bound.
func FuzzDecode(f *testing.F) {
	f.Add(encodeFile(&File{Size: 5, Blocks: []Hash{ZeroHash, sha256.Sum256(nil)}}))
	f.Add(encodeBlock(&Block{Pack: 1, Offset: 2, RawLen: 3, StoredLen: 4, Refs: 1}))
	f.Add(encodeDir(&Dir{SysID: 1, Version: "15"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if f, err := decodeFile("d", "n", b); err == nil && f == nil {
			t.Fatal("nil file without error")
		}
		decodeBlock(b)
		decodePack(1, b)
		decodeDir("d", b)
		decodeStats(b)
	})
}

// TestOlderRecordsDecode checks that records written before the optional
// trailing fields existed (pack flags, directory totals) still decode.
func TestOlderRecordsDecode(t *testing.T) {
	e := encoder{}
	e.u8(recordVersion)
	e.svar(100)
	e.svar(40)
	p, err := decodePack(9, e.b)
	if err != nil || p.Committed != 100 || p.Live != 40 || p.Retired {
		t.Errorf("old pack record: %+v %v", p, err)
	}
	e = encoder{}
	e.u8(recordVersion)
	e.uvar(7)
	e.uvar(16 << 20)
	e.uvar(0xD110)
	e.str("15")
	e.svar(1)
	e.svar(3)
	d, err := decodeDir("c", e.b)
	if err != nil || d.Segments != 3 || d.Files != 0 || d.LogicalBytes != 0 {
		t.Errorf("old dir record: %+v %v", d, err)
	}
}

// TestOpenAfterKillDuringValueLogCreation: a process killed right after
// badger created a value-log file, before its header, leaves an empty file;
// the index must still open, with everything it had.
func TestOpenAfterKillDuringValueLogCreation(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(x *Txn) error { return x.PutStats(&Stats{Files: 3}) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "000099.vlog"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("open with an empty value log: %v", err)
	}
	defer db.Close()
	err = db.View(func(x *Txn) error {
		st, err := x.Stats()
		if err == nil && st.Files != 3 {
			err = fmt.Errorf("stats %+v", st)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A record without the HashKind field (written before it existed) decodes
// as HashWhole; an unknown kind is a corrupt record, not a silent guess.
func TestHashKindField(t *testing.T) {
	f := &File{Size: 1, BlockSize: 1 << 20, Blocks: []Hash{sha256.Sum256([]byte("a"))}, Stored: 60}
	old := encodeFile(f) // HashWhole: no trailing byte, as older binaries wrote
	g, err := decodeFile("", "x", old)
	if err != nil || g.HashKind != HashWhole {
		t.Fatalf("old record: kind %v, err %v", g.HashKind, err)
	}
	f.HashKind = HashRoot
	if g, err := decodeFile("", "x", encodeFile(f)); err != nil || g.HashKind != HashRoot {
		t.Fatalf("root record: %+v, %v", g, err)
	}
	if _, err := decodeFile("", "x", append(old, 9)); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("unknown hash kind: got %v, want ErrCorruptRecord", err)
	}
}

func TestFilesNewestNameFirst(t *testing.T) {
	db := openTest(t)
	names := []string{"a", "b", "\xff", "\xff\xff\x01", "c"}
	err := db.Update(func(x *Txn) error {
		for _, n := range names {
			if err := x.PutFile(&File{Dir: "d", Name: n, BlockSize: 1}); err != nil {
				return err
			}
		}
		return x.PutFile(&File{Dir: "e", Name: "z", BlockSize: 1}) // another directory, after d's names
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = db.View(func(x *Txn) error {
		return x.FilesNewestNameFirst("d", func(f *File) bool {
			got = append(got, f.Name)
			return len(got) < 4
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"\xff\xff\x01", "\xff", "c", "b"}; !slices.Equal(got, want) {
		t.Fatalf("newest first: %q, want %q", got, want)
	}
}

// A pack record written before the codec counters existed decodes with
// them zero, and one with them set round-trips (TestRecordsRoundTrip).
func TestPackRecordWithoutCounters(t *testing.T) {
	old := &Pack{ID: 4, Committed: 100, Live: 50, MaxSeq: 3}
	b := encodePack(old)
	got, err := decodePack(4, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(old, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	p := &Pack{}
	p.AddLive(&Block{StoredLen: 10, Codec: CodecZstdIngest}, 1)
	p.AddLive(&Block{StoredLen: 20, Codec: CodecLZMA2}, 1)
	p.AddLive(&Block{StoredLen: 30, Codec: CodecZstd}, 1)
	p.AddLive(&Block{StoredLen: 10, Codec: CodecZstdIngest}, -1)
	if p.Live != 20+30+2*RecordHeaderLen || p.Unsettled != 0 || p.Cold != 20+RecordHeaderLen {
		t.Errorf("AddLive: %+v", p)
	}
}

// The Uploaded flag is a bit of the flags byte: a record written before it
// existed (here: the encoding main wrote, bit clear) reads as not
// uploaded, and a set flag round-trips without changing any other field.
func TestPackUploadedFlag(t *testing.T) {
	p := &Pack{ID: 7, Committed: 4096, Live: 100, Retired: false, MaxSeq: 2, Uploaded: true}
	b := encodePack(p)
	got, err := decodePack(7, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	p.Uploaded = false
	old := encodePack(p)
	if len(old) != len(b) || old[len(old)-2]&packUploaded != 0 {
		t.Fatalf("flag is not a bit of the existing flags byte: %x vs %x", old, b)
	}
	got, err = decodePack(7, old)
	if err != nil || got.Uploaded {
		t.Fatalf("old record: %+v, %v", got, err)
	}
	// The shortest old record (committed and live only) too.
	short := encodePack(&Pack{ID: 1, Committed: 16})[:3]
	got, err = decodePack(1, short)
	if err != nil || got.Uploaded || got.Retired {
		t.Fatalf("short record: %+v, %v", got, err)
	}
}

// Evicted is another bit of the flags byte: it round-trips, leaves the
// other flags alone, and records without it read as not evicted.
func TestPackEvictedFlag(t *testing.T) {
	p := &Pack{ID: 9, Committed: 8192, Live: 10, MaxSeq: 3, Uploaded: true, Evicted: true}
	b := encodePack(p)
	got, err := decodePack(9, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	p.Evicted = false
	old := encodePack(p)
	if len(old) != len(b) || old[len(old)-2]&packEvicted != 0 || b[len(b)-2] != old[len(old)-2]|packEvicted {
		t.Fatalf("flag is not a bit of the existing flags byte: %x vs %x", old, b)
	}
	if got, err := decodePack(9, old); err != nil || got.Evicted || !got.Uploaded {
		t.Fatalf("record without the bit: %+v, %v", got, err)
	}
}

// MovedBelow is an optional trailing field: a record written before it
// existed (what main wrote for a retired pack) reads as 0, one with it
// round-trips, and the fields before it are encoded as before.
func TestPackMovedBelow(t *testing.T) {
	p := &Pack{ID: 9, Committed: 8192, Retired: true, Uploaded: true, MaxSeq: 5, MovedBelow: 42}
	b := encodePack(p)
	got, err := decodePack(9, b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	p.MovedBelow = 0
	old := encodePack(p)
	if !bytes.HasPrefix(b, old) {
		t.Fatalf("the field is not appended: %x vs %x", b, old)
	}
	got, err = decodePack(9, old)
	if err != nil || got.MovedBelow != 0 || !got.Retired || !got.Uploaded || got.MaxSeq != 5 {
		t.Fatalf("old record: %+v, %v", got, err)
	}
	// With codec counters present too.
	q := &Pack{ID: 3, Committed: 100, Live: 50, Unsettled: 10, Cold: 20, MovedBelow: 7}
	got, err = decodePack(3, encodePack(q))
	if err != nil || cmp.Diff(q, got) != "" {
		t.Fatalf("with counters: %+v, %v", got, err)
	}
}
