package store

import (
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// BenchmarkIngestSegment measures one writer archiving distinct 16 MiB
// synthetic segments, fsync and index commit included.
func BenchmarkIngestSegment(b *testing.B) {
	s := openTest(b, b.TempDir())
	b.SetBytes(16 << 20)
	segs := make([][]byte, 8)
	for i := range segs {
		segs[i] = segment(uint64(i+1), func(g *walgen.Segment) { g.Seed = uint64(i) }).Bytes()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		sg := segment(uint64(i+1), func(g *walgen.Segment) { g.Seed = uint64(i % 8) })
		data := segs[i%8]
		// Rewrite pageaddr so each iteration is a distinct valid segment.
		binary.LittleEndian.PutUint64(data[8:16], uint64(i+1)*16<<20)
		u, err := s.Create(sg.Name(), FileMeta{Mode: 0o600, MTime: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		for p := data; len(p) > 0; p = p[128<<10:] {
			if _, err := u.Write(p[:128<<10]); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := u.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadWarm measures reading a cached segment.
func BenchmarkReadWarm(b *testing.B) {
	s := openTest(b, b.TempDir())
	sg := segment(1)
	mustPut(b, s, sg.Name(), sg.Bytes())
	b.SetBytes(16 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := s.Open(sg.Name())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadCold measures reading a segment from its pack, bypassing
// the block cache (every block read, CRC-checked, decoded and checked).
func BenchmarkReadCold(b *testing.B) {
	s := openTest(b, b.TempDir())
	sg := segment(1)
	mustPut(b, s, sg.Name(), sg.Bytes())
	f, err := s.lookup(sg.Name())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 20)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := &Reader{s: s, f: f, noCache: true}
		if _, err := r.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}
