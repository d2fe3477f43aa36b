// Package walgen makes synthetic WAL segments for tests and benchmarks:
// valid long and short page headers (PostgreSQL 15 layout) around
// pseudo-random, moderately compressible record bytes. Real WAL from
// test/testdata/mkwal.sh is preferred where a test can afford it; these are
// for fast unit tests and for scale tests of 100 000 files.
package walgen

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
)

// Magic15 is PostgreSQL 15's xlp_magic.
const Magic15 = 0xD110

const pageSize = 8192

// Segment describes a synthetic segment.
type Segment struct {
	TLI     uint32
	SegNo   uint64
	SysID   uint64
	SegSize uint32
	Seed    uint64
	// UsedPages is how many pages carry data; the rest are zero, like a
	// segment forced out by archive_timeout. 0 means all pages.
	UsedPages int
}

// Name is the segment's file name.
func (s Segment) Name() string {
	per := uint64(1<<32) / uint64(s.SegSize)
	return fmt.Sprintf("%08X%08X%08X", s.TLI, s.SegNo/per, s.SegNo%per)
}

// Bytes builds the segment.
func (s Segment) Bytes() []byte {
	b := make([]byte, s.SegSize)
	pages := int(s.SegSize / pageSize)
	used := s.UsedPages
	if used <= 0 || used > pages {
		used = pages
	}
	rng := rand.New(rand.NewPCG(s.Seed, s.SegNo))
	start := s.SegNo * uint64(s.SegSize)
	for p := 0; p < used; p++ {
		page := b[p*pageSize : (p+1)*pageSize]
		hdr := 24
		binary.LittleEndian.PutUint16(page[0:], Magic15)
		binary.LittleEndian.PutUint32(page[4:], s.TLI)
		binary.LittleEndian.PutUint64(page[8:], start+uint64(p*pageSize))
		if p == 0 {
			binary.LittleEndian.PutUint16(page[2:], 0x2) // XLP_LONG_HEADER
			binary.LittleEndian.PutUint64(page[24:], s.SysID)
			binary.LittleEndian.PutUint32(page[32:], s.SegSize)
			binary.LittleEndian.PutUint32(page[36:], pageSize)
			hdr = 40
		}
		fillRecords(page[hdr:], rng)
	}
	return b
}

// fillRecords writes record-like bytes: runs copied from a fixed vocabulary
// of repetitive text at random offsets, separated by random 8-byte fields,
// which compresses roughly like pgbench WAL. Copying runs keeps generation
// fast even under the race detector.
func fillRecords(b []byte, rng *rand.Rand) {
	voc := vocabulary()
	for i := 0; i < len(b); {
		if i+8 <= len(b) {
			binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
			i += 8
		}
		n := 24 + rng.IntN(200)
		off := rng.IntN(len(voc) - 256)
		i += copy(b[i:], voc[off:off+n])
	}
}

var (
	vocOnce sync.Once
	voc     []byte
)

func vocabulary() []byte {
	vocOnce.Do(func() {
		words := []string{"pgbench_accounts", "abalance", "filler", "UPDATE", "heap", "btree", "commit", "\x00\x00"}
		rng := rand.New(rand.NewPCG(1, 2))
		for len(voc) < 64<<10 {
			voc = append(voc, words[rng.IntN(len(words))]...)
			if rng.IntN(3) == 0 {
				voc = binary.LittleEndian.AppendUint32(voc, rng.Uint32()%1000)
			}
		}
	})
	return voc
}
