package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/index"
)

// rootOf is the HashRoot identity of data cut into bs-byte blocks, computed
// here independently of the upload path.
func rootOf(data []byte, bs int) index.Hash {
	var blocks []index.Hash
	for off := 0; off < len(data); off += bs {
		b := data[off:min(off+bs, len(data))]
		if strings.Count(string(b), "\x00") == len(b) {
			blocks = append(blocks, index.ZeroHash)
			continue
		}
		blocks = append(blocks, sha256.Sum256(b))
	}
	return index.RootHash(int64(len(data)), uint32(bs), blocks)
}

// fileProblems returns the per-file problems verify reports for dir.
func fileProblems(t *testing.T, s *Store, dir string) []Problem {
	t.Helper()
	rep, err := s.Verify(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []Problem
	for _, p := range rep.Problems {
		if p.Kind == ProblemFile {
			out = append(out, p)
		}
	}
	return out
}

// A record written before HashRoot (whole-file SHA-256, HashKind 0) keeps
// working: an identical re-push succeeds, different content is refused,
// verify checks its whole-file hash.
func TestWholeHashRecordsStillCompare(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	data := randomBytes(3*64<<10+100, 7)
	mustPut(t, s, "d/old", data)
	err := s.idx.Update(func(x *index.Txn) error {
		f, err := x.File("d", "old")
		if err != nil {
			return err
		}
		f.HashKind, f.Hash = index.HashWhole, sha256.Sum256(data)
		return x.PutFile(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put(t, s, "d/old", data); err != nil {
		t.Fatalf("identical re-push of a whole-hash record: %v", err)
	}
	other := append([]byte(nil), data...)
	other[len(other)-1] ^= 1
	if _, err := put(t, s, "d/old", other); !errors.Is(err, ErrExists) {
		t.Fatalf("different content over a whole-hash record: got %v, want ErrExists", err)
	}
	if ps := fileProblems(t, s, "d"); len(ps) != 0 {
		t.Fatalf("verify of an intact whole-hash record: %v", ps)
	}
	err = s.idx.Update(func(x *index.Txn) error {
		f, err := x.File("d", "old")
		if err != nil {
			return err
		}
		f.Hash[0] ^= 1
		return x.PutFile(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	if ps := fileProblems(t, s, "d"); len(ps) != 1 || !strings.Contains(ps[0].Err, "whole-file hash") {
		t.Fatalf("verify of a damaged whole-hash record: %v", ps)
	}
}

// A root identity that does not match its block list is found by verify,
// even though every block reads back intact.
func TestVerifyChecksRootHash(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustPut(t, s, "d/f", randomBytes(100, 1))
	if ps := fileProblems(t, s, "d"); len(ps) != 0 {
		t.Fatalf("verify of an intact file: %v", ps)
	}
	err := s.idx.Update(func(x *index.Txn) error {
		f, err := x.File("d", "f")
		if err != nil {
			return err
		}
		f.Hash[5] ^= 0x40
		return x.PutFile(f)
	})
	if err != nil {
		t.Fatal(err)
	}
	if ps := fileProblems(t, s, "d"); len(ps) != 1 || !strings.Contains(ps[0].Err, "block list") {
		t.Fatalf("verify of a damaged root hash: %v", ps)
	}
}

// Every zstd frame the store writes carries its content checksum, so reads
// may trust the decoder's XXH64 check instead of re-hashing (decodedChecked).
func TestFramesCarryContentChecksum(t *testing.T) {
	s := openTest(t, t.TempDir())
	raw := []byte(strings.Repeat("walrus wal block ", 4096))
	frame := s.enc.EncodeAll(raw, nil)
	if !decodedChecked(index.CodecZstd, frame) {
		t.Fatalf("frame header %x lacks the content checksum flag", frame[:6])
	}
	frame[len(frame)-1] ^= 1 // the checksum is the frame's last 4 bytes
	if _, err := s.dec.DecodeAll(frame, nil); err == nil {
		t.Fatal("decoder accepted a frame whose content checksum does not match")
	}
}
