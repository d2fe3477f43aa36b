package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/walrus-archive/walrus/index"
)

func sampleRecords() []*jrecord {
	h1, h2 := sha256.Sum256([]byte("one")), sha256.Sum256([]byte("two"))
	file := &index.File{Dir: "c1", Name: "000000010000000000000001", Size: 3 << 20, Mode: 0o600, MTime: 1700000000123456789,
		Archived: 1700000001000000000, Hash: h1, BlockSize: 1 << 20, Blocks: []index.Hash{h1, {}, h2}, Stored: 1234}
	dir := &index.Dir{Name: "c1", Created: 17, SysID: 7300000000000000001, SegSize: 16 << 20, Magic: 0xD110, Version: "15"}
	return []*jrecord{
		{typ: jrBatch, seq: 9, prev: 7, covered: true, time: 123, part: 1, parts: 2, entries: []jentry{
			{kind: jeDir, dir: dir}, {kind: jeFile, file: file},
			{kind: jeRemove, dirName: "c1", name: "00000002.history"}, {kind: jeRmdir, dirName: "old"},
			{kind: jeFile, file: &index.File{Name: "empty", Hash: h2, BlockSize: 1 << 20, Blocks: []index.Hash{}}},
		}},
		{typ: jrBatch, seq: 1, parts: 1},
		{typ: jrCheckpoint, seq: 5, ckpt: 0xfeed, part: 3, entries: []jentry{{kind: jeDir, dir: dir}, {kind: jeFile, file: file}}},
		{typ: jrCheckpointEnd, seq: 5, ckpt: 0xfeed, parts: 4, count: 1000, time: 99},
	}
}

func TestJournalRoundTrip(t *testing.T) {
	for _, r := range sampleRecords() {
		got, err := decodeJournal(r.encode())
		if err != nil {
			t.Fatalf("decode %+v: %v", r, err)
		}
		if d := cmp.Diff(r, got, cmp.AllowUnexported(jrecord{}, jentry{})); d != "" {
			t.Fatalf("round trip (-want +got):\n%s", d)
		}
	}
}

func TestJournalDecodeRejects(t *testing.T) {
	good := sampleRecords()[0].encode()
	for name, b := range map[string][]byte{
		"empty":          {},
		"version":        append([]byte{2}, good[1:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte{}, good...), 0),
		"prev>=seq":      (&jrecord{typ: jrBatch, seq: 3, prev: 3, parts: 1}).encode(),
		"part>=parts":    (&jrecord{typ: jrBatch, seq: 3, part: 1, parts: 1}).encode(),
		"unknown type":   {1, 9, 1, 0},
		"huge count":     {1, jrBatch, 2, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"blocks/size":    (&jrecord{typ: jrBatch, seq: 2, parts: 1, entries: []jentry{{kind: jeFile, file: &index.File{Size: 10, BlockSize: 4, Blocks: make([]index.Hash, 2)}}}}).encode(),
		"end w/ entries": append((&jrecord{typ: jrCheckpointEnd, seq: 1}).encodeHeadOnly(), 1, jeRmdir, 0),
	} {
		if _, err := decodeJournal(b); !errors.Is(err, errJournal) {
			t.Errorf("%s: %v, want errJournal", name, err)
		}
	}
}

// encodeHeadOnly encodes r's head without the entry count.
func (r *jrecord) encodeHeadOnly() []byte {
	e := jenc{}
	r.encodeHead(&e)
	return e.b
}

// FuzzJournalRecord: decoding never panics or allocates past its input's
// bounds, and what decodes re-encodes to the same bytes.
func FuzzJournalRecord(f *testing.F) {
	for _, r := range sampleRecords() {
		f.Add(r.encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeJournal(b)
		if err != nil {
			return
		}
		if again := r.encode(); !bytes.Equal(again, b) {
			// Varints have one shortest form; a longer one decodes too.
			r2, err := decodeJournal(again)
			if err != nil || !bytes.Equal(r2.encode(), again) {
				t.Fatalf("re-encoding is not stable: %v", err)
			}
		}
	})
}

// FuzzScanPack: scanning arbitrary bytes as a pack never panics, reports
// only records that check, and accounts for every byte.
func FuzzScanPack(f *testing.F) {
	var pack []byte
	pack = append(pack, "WALRUSPK\x02\x00\x00\x00\x01\x00\x00\x00"...)
	for _, r := range sampleRecords() {
		pack = appendRecord(pack, codecJournal, r.encode())
	}
	pack = appendRecord(pack, index.CodecRaw, []byte("a raw block"))
	f.Add(pack)
	f.Add(pack[:len(pack)-3])
	damaged := bytes.Clone(pack)
	damaged[100] ^= 1
	f.Add(damaged)
	f.Fuzz(func(t *testing.T, b []byte) {
		var seen int64
		ps, err := scanPack(bytes.NewReader(b), 1, int64(len(b)), true, func(off int64, h recordHeader, payload []byte) error {
			seen += recordHeaderLen + int64(h.StoredLen)
			if h.Codec == codecJournal {
				decodeJournal(payload)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var damaged int64
		for _, d := range ps.Damaged {
			damaged += d.Len
		}
		if len(b) > packHeaderLen && packHeaderLen+seen+damaged+ps.Tail != int64(len(b)) {
			t.Fatalf("records %d + damaged %d + tail %d + header != %d bytes", seen, damaged, ps.Tail, len(b))
		}
	})
}

func appendRecord(b []byte, codec index.Codec, payload []byte) []byte {
	hdr := make([]byte, recordHeaderLen)
	encodeRecordHeader(hdr, sha256.Sum256(payload), len(payload), codec, payload)
	return append(append(b, hdr...), payload...)
}
