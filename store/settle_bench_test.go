package store

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestColdParams (WALRUS_BENCH=1) compares LZMA2 encoder settings and zstd
// best per 1 MiB block on real segments: bytes against zstd best, CPU per
// segment to encode and decode (liblzma and pure Go).
func TestColdParams(t *testing.T) {
	if os.Getenv("WALRUS_BENCH") != "1" || !canEncodeCold {
		t.Skip("a measurement: WALRUS_BENCH=1, with cgo")
	}
	dir := os.Getenv("WALRUS_WALCACHE")
	if dir == "" {
		dir = filepath.Join("..", "test", "testdata", "walcache")
	}
	ents, _ := os.ReadDir(dir)
	re := regexp.MustCompile(`^00000001[0-9A-F]{16}$`)
	var files []string
	for _, e := range ents {
		if re.MatchString(e.Name()) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) > 20 {
		files = files[len(files)-20:] // the pgbench part, past initdb
	}
	var blocks [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for o := 0; o < len(b); o += 1 << 20 {
			blk := b[o : o+1<<20]
			if !isAllZero(blk) {
				blocks = append(blocks, blk)
			}
		}
	}
	segs := float64(len(files))
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	c0 := cpuNow()
	var zb int64
	for _, b := range blocks {
		zb += int64(len(enc.EncodeAll(b, nil)))
	}
	zcpu := cpuNow() - c0
	fmt.Printf("zstd best: %d bytes, %.0f ms CPU/segment\n", zb, float64(zcpu.Milliseconds())/segs)
	for _, p := range []lzma2Params{{0, 0, 3, 3}, {1, 0, 3, 3}, {1, 3, 0, 2}, {2, 0, 3, 3}} {
		var n int64
		var out [][]byte
		c0 := cpuNow()
		for _, b := range blocks {
			e, ok, err := encodeLZMA2(b, nil, p)
			if err != nil || !ok {
				t.Fatal(err, ok)
			}
			n += int64(len(e))
			out = append(out, e)
		}
		ecpu := cpuNow() - c0
		c0 = cpuNow()
		for i, e := range out {
			if _, err := decodeLZMA2(e, uint32(len(blocks[i]))); err != nil {
				t.Fatal(err)
			}
		}
		dcpu := cpuNow() - c0
		c0 = cpuNow()
		for i, e := range out[:len(out)/4] {
			if _, err := decodeLZMA2Go(e, uint32(len(blocks[i]))); err != nil {
				t.Fatal(err)
			}
		}
		gcpu := (cpuNow() - c0) * 4
		fmt.Printf("lzma2 preset %d lc=%d lp=%d pb=%d: %d bytes = %.3fx zstd best; encode %.0f ms CPU/segment, decode %.0f ms (pure Go %.0f ms)\n",
			p.preset, p.lc, p.lp, p.pb, n, float64(n)/float64(zb), float64(ecpu.Milliseconds())/segs, float64(dcpu.Milliseconds())/segs, float64(gcpu.Milliseconds())/segs)
	}
}

func isAllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
