package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// settleSeg is a 1 MiB segment of c1 with 512 KiB of records: 8 stored
// blocks of 64 KiB.
func settleSeg(segno uint64) walgen.Segment {
	return walgen.Segment{TLI: 1, SegNo: segno, SysID: testSysID, SegSize: mib, Seed: segno % 5, UsedPages: 64}
}

func settleConfig(c *Config) {
	c.BlockSize = 64 << 10
	c.PackSize = 4 << 20
}

// putSettleSegs archives segments first..last into c1 and returns their
// contents by path.
func putSettleSegs(t *testing.T, s *Store, first, last uint64) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for n := first; n <= last; n++ {
		sg := settleSeg(n)
		p := "c1/" + sg.Name()
		out[p] = sg.Bytes()
		mustPut(t, s, p, out[p])
	}
	return out
}

// codecCounts counts the index's block records by codec.
func codecCounts(t *testing.T, s *Store) map[index.Codec]int {
	t.Helper()
	n := map[index.Codec]int{}
	err := s.idx.View(func(x *index.Txn) error {
		return x.Blocks(func(_ index.Hash, b *index.Block) error { n[b.Codec]++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkSettleInvariants checks what settling must keep: every pack's live,
// unsettled and cold bytes are the sums over the block records pointing
// into it, no block points into a retired or unknown pack, the
// directories' stored bytes add up to the live bytes, and Status reports
// the same unsettled and cold totals.
func checkSettleInvariants(t *testing.T, s *Store) {
	t.Helper()
	checkGCInvariants(t, s)
	sums := map[uint32]*index.Pack{}
	var live, unsettled, cold, dirs int64
	err := s.idx.View(func(x *index.Txn) error {
		err := x.Blocks(func(_ index.Hash, b *index.Block) error {
			if sums[b.Pack] == nil {
				sums[b.Pack] = &index.Pack{}
			}
			sums[b.Pack].AddLive(b, 1)
			return nil
		})
		if err != nil {
			return err
		}
		err = x.Packs(func(p *index.Pack) error {
			if p.Retired {
				return nil
			}
			want := sums[p.ID]
			if want == nil {
				want = &index.Pack{}
			}
			if p.Unsettled != want.Unsettled || p.Cold != want.Cold {
				t.Errorf("pack %d: unsettled %d cold %d, block records sum to %d and %d", p.ID, p.Unsettled, p.Cold, want.Unsettled, want.Cold)
			}
			live, unsettled, cold = live+p.Live, unsettled+p.Unsettled, cold+p.Cold
			return nil
		})
		if err != nil {
			return err
		}
		return x.Dirs(func(d *index.Dir) error { dirs += d.StoredBytes; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if dirs != live {
		t.Errorf("directories' stored bytes add up to %d, packs hold %d live", dirs, live)
	}
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.UnsettledBytes != unsettled || st.ColdBytes != cold || st.StoredBytes != live {
		t.Errorf("status: %+v; packs: live %d unsettled %d cold %d", st, live, unsettled, cold)
	}
}

func checkContents(t *testing.T, s *Store, want map[string][]byte) {
	t.Helper()
	for p, b := range want {
		if got := readAll(t, s, p); !bytes.Equal(got, b) {
			t.Fatalf("%s reads back different bytes", p)
		}
	}
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil || len(rep.DataProblems()) > 0 {
		t.Fatalf("verify: %v %+v", err, rep.DataProblems())
	}
}

// TestSettleMovesEveryUnsettledBlock: uploads write CodecZstdIngest; one
// Settle pass re-encodes every such block at the settle level, smaller,
// with identical contents and consistent totals; GC then reclaims the old
// records.
func TestSettleMovesEveryUnsettledBlock(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, settleConfig, func(c *Config) { c.ColdTier = "off" })
	want := putSettleSegs(t, s, 1, 12)
	mustPut(t, s, "notes.txt", bytes.Repeat([]byte("not WAL, settled too "), 8000))
	want["notes.txt"] = bytes.Repeat([]byte("not WAL, settled too "), 8000)
	before := codecCounts(t, s)
	if before[index.CodecZstdIngest] == 0 || before[index.CodecZstd] != 0 {
		t.Fatalf("uploads wrote %v, want only ingest-level zstd blocks", before)
	}
	st0, _ := s.Status()
	if st0.UnsettledBytes == 0 || st0.UnsettledBytes > st0.StoredBytes {
		t.Fatalf("status before settling: %+v", st0)
	}
	checkSettleInvariants(t, s)

	rep, err := s.Settle(context.Background(), SettleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	after := codecCounts(t, s)
	if after[index.CodecZstdIngest] != 0 || rep.Settled != before[index.CodecZstdIngest] {
		t.Fatalf("after settling %v (report %+v), want every one of %d blocks settled", after, rep, before[index.CodecZstdIngest])
	}
	st1, _ := s.Status()
	if st1.UnsettledBytes != 0 || st1.StoredBytes >= st0.StoredBytes || st1.StoredBytes != st0.StoredBytes-(rep.SettledFrom-rep.SettledTo) {
		t.Fatalf("stored bytes %d -> %d, report %+v", st0.StoredBytes, st1.StoredBytes, rep)
	}
	checkSettleInvariants(t, s)
	checkContents(t, s, want)
	t.Logf("settled %d blocks: %d -> %d record bytes (%.3fx)", rep.Settled, rep.SettledFrom, rep.SettledTo, float64(rep.SettledTo)/float64(rep.SettledFrom))

	// A second pass finds nothing; GC reclaims the ingest records.
	if rep, err := s.Settle(context.Background(), SettleOptions{}); err != nil || rep.Settled+rep.Cold != 0 {
		t.Fatalf("second pass: %+v %v", rep, err)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	if d := packFilesBytes(t, s); float64(d) > float64(st1.StoredBytes)*1.6+float64(s.Config().PackSize) {
		t.Errorf("after GC the packs take %d bytes for %d live", d, st1.StoredBytes)
	}
	checkSettleInvariants(t, s)
	checkContents(t, s, want)

	// Repair rebuilds the same counters from the packs.
	s.Close()
	if _, err := Repair(context.Background(), Config{Dir: dir, BlockSize: 64 << 10}, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, settleConfig)
	checkSettleInvariants(t, s)
	checkContents(t, s, want)
}

// TestIngestLevelSettledWhenEqual: with the ingest level at the settle
// level (or settling off) uploads write settled records, which the settler
// leaves alone.
func TestIngestLevelSettledWhenEqual(t *testing.T) {
	for _, c := range []struct{ level, settle string }{{"best", "best"}, {"fastest", "off"}} {
		s := openTest(t, t.TempDir(), settleConfig, func(cfg *Config) { cfg.Level, cfg.SettleLevel = c.level, c.settle })
		putSettleSegs(t, s, 1, 2)
		if n := codecCounts(t, s); n[index.CodecZstdIngest] != 0 || n[index.CodecZstd] == 0 {
			t.Errorf("level %s settle %s: uploads wrote %v", c.level, c.settle, n)
		}
		if rep, err := s.Settle(context.Background(), SettleOptions{NoCold: true}); err != nil || rep.Settled != 0 {
			t.Errorf("level %s settle %s: settle %+v %v", c.level, c.settle, rep, err)
		}
	}
	if _, err := (Config{Dir: "x", SettleLevel: "slow"}).withDefaults(); err == nil {
		t.Error("settle level slow accepted")
	}
	if _, err := (Config{Dir: "x", ColdTier: "xz"}).withDefaults(); err == nil {
		t.Error("cold tier xz accepted")
	}
}

// TestBackgroundSettlerSettlesAndStops: with Config.Settle the worker
// settles what uploads wrote on its own, and Close stops it.
func TestBackgroundSettlerSettlesAndStops(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, settleConfig, func(c *Config) { c.Settle = true })
	want := putSettleSegs(t, s, 1, 4)
	testenv.WaitFor(t, "the background settler to settle every block", 2*time.Minute, func() bool {
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.UnsettledBytes == 0
	})
	checkSettleInvariants(t, s)
	checkContents(t, s, want)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, settleConfig, func(c *Config) { c.Settle = true })
	checkContents(t, s, want)
}

// realWAL returns the real segments first..last of the corpus
// (test/testdata/walcache, made by test/testdata/mkwal.sh), by name.
func realWAL(t *testing.T, first, last uint64) map[string][]byte {
	t.Helper()
	dir := os.Getenv("WALRUS_WALCACHE")
	if dir == "" {
		dir = filepath.Join("..", "test", "testdata", "walcache")
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		testenv.Require(t, fmt.Sprintf("real WAL in %s (make corpus, or test/testdata/mkwal.sh %s): %v", dir, dir, err))
	}
	out := map[string][]byte{}
	for n := first; n <= last; n++ {
		name := wal.SegmentFileName(1, n, 16<<20)
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

// backupFile is a backup history file (postgres: xlogbackup.c
// build_backup_content) for a backup on timeline 1 inside segment n of
// 16 MiB segments.
func backupFile(n uint64, label string) (name string, text []byte) {
	const segSize = 16 << 20
	seg := wal.SegmentFileName(1, n, segSize)
	start := wal.SegmentStart(n, segSize) + 0x28
	text = []byte(fmt.Sprintf("START WAL LOCATION: %s (file %s)\nSTOP WAL LOCATION: %s (file %s)\nCHECKPOINT LOCATION: %s\n"+
		"BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-01 21:48:28 UTC\nLABEL: %s\nSTART TIMELINE: 1\n"+
		"STOP TIME: 2026-12-01 21:48:29 UTC\nSTOP TIMELINE: 1\n", start, seg, start+0xd8, seg, start+0x38, label))
	return fmt.Sprintf("%s.%08X.backup", seg, 0x28), text
}

// TestColdTierBehindNewestBackup: on real WAL, the segments below the start
// of the newest restorable backup go to LZMA2, the rest stays zstd;
// everything reads back identical; repair and verify understand the cold
// records; the pure-Go decoder reads what liblzma wrote.
func TestColdTierBehindNewestBackup(t *testing.T) {
	if !canEncodeCold {
		testenv.Require(t, "a build with cgo and liblzma (apt-get install liblzma-dev) to write the cold tier")
	}
	segs := realWAL(t, 1, 8)
	dir := t.TempDir()
	s := openTest(t, dir)
	want := map[string][]byte{}
	add := func(name string, b []byte) {
		mustPut(t, s, "c1/"+name, b)
		want["c1/"+name] = b
	}
	for n := uint64(1); n <= 6; n++ {
		name := wal.SegmentFileName(1, n, 16<<20)
		add(name, segs[name])
	}
	add(backupFile(2, "old"))
	add(backupFile(5, "new"))
	rep, err := s.Settle(context.Background(), SettleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds, err := s.DirStatus("c1", time.Now()); err == nil {
		t.Logf("report %+v backups %+v problems %v", rep, ds.Backups, ds.Problems)
	}
	checkColdSplit(t, s, 5)
	if rep.Cold == 0 || rep.ColdTo >= rep.ColdFrom {
		t.Fatalf("report %+v", rep)
	}
	checkSettleInvariants(t, s)
	checkContents(t, s, want)
	t.Logf("settled %d blocks %.3fx; cold %d blocks: %d -> %d record bytes (%.3fx of settled zstd)", rep.Settled,
		float64(rep.SettledTo)/float64(rep.SettledFrom), rep.Cold, rep.ColdFrom, rep.ColdTo, float64(rep.ColdTo)/float64(rep.ColdFrom))

	// The horizon moves: a newer restorable backup makes 5 and 6 cold too.
	for n := uint64(7); n <= 8; n++ {
		name := wal.SegmentFileName(1, n, 16<<20)
		add(name, segs[name])
	}
	add(backupFile(7, "newer"))
	if _, err := s.Settle(context.Background(), SettleOptions{}); err != nil {
		t.Fatal(err)
	}
	checkColdSplit(t, s, 7)
	checkSettleInvariants(t, s)

	// Every record is understood by repair; the rebuilt index has the same counters.
	s.Close()
	if _, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{}); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir)
	checkColdSplit(t, s, 7)
	checkSettleInvariants(t, s)
	checkContents(t, s, want)

	// The pure-Go decoder reads what liblzma wrote.
	n := 0
	err = eachPayload(s, func(b *index.Block) bool { return b.Codec == index.CodecLZMA2 && n < 8 }, func(h index.Hash, b *index.Block, payload []byte) error {
		n++
		raw, err := decodeLZMA2Go(payload, b.RawLen)
		if err != nil || sha256.Sum256(raw) != h {
			return fmt.Errorf("pure-Go decode of block %s: %v", h, err)
		}
		return nil
	})
	if err != nil || n == 0 {
		t.Fatalf("pure-Go decoding: %v (%d blocks)", err, n)
	}
}

// eachPayload calls fn with the stored payload of every block record that
// want selects.
func eachPayload(s *Store, want func(*index.Block) bool, fn func(h index.Hash, b *index.Block, payload []byte) error) error {
	return s.idx.View(func(x *index.Txn) error {
		return x.Blocks(func(h index.Hash, b *index.Block) error {
			if !want(b) {
				return nil
			}
			pf, err := s.packs.get(b.Pack)
			if err != nil {
				return err
			}
			defer s.packs.release(pf)
			_, payload, err := readRecord(pf.f, b.Offset, b)
			if err != nil {
				return err
			}
			return fn(h, b, payload)
		})
	})
}

// checkColdSplit checks that no block of c1's segments at or above
// horizon is cold, and that each block below it is, unless another file
// shares it or LZMA2 does not make it smaller.
func checkColdSplit(t *testing.T, s *Store, horizon uint64) {
	t.Helper()
	files, err := s.List("c1")
	if err != nil {
		t.Fatal(err)
	}
	cold, kept := 0, 0
	for _, fi := range files {
		n := wal.ParseName(fi.Name)
		if n.Kind != wal.KindSegment {
			continue
		}
		segno, _ := n.SegNo(16 << 20)
		f, err := s.lookup(fi.Path)
		if err != nil {
			t.Fatal(err)
		}
		count := map[index.Hash]uint32{}
		for _, h := range f.Blocks {
			count[h]++
		}
		for _, h := range f.Blocks {
			if h.IsZero() {
				continue
			}
			b, err := s.lookupBlock(h)
			if err != nil {
				t.Fatal(err)
			}
			isCold := b.Codec == index.CodecLZMA2
			switch {
			case isCold && segno >= horizon:
				t.Fatalf("%s (segment %d, horizon %d): block is cold", fi.Name, segno, horizon)
			case isCold:
				cold++
			case segno < horizon && b.Refs == count[h] && b.Codec != index.CodecRaw:
				raw, err := s.readBlock(h, b)
				if err != nil {
					t.Fatal(err)
				}
				if p, ok, _ := encodeLZMA2(raw, nil, coldParams); ok && len(p) < int(b.StoredLen) {
					t.Fatalf("%s (segment %d, horizon %d): block in codec %d, %d bytes, would be %d in LZMA2", fi.Name, segno, horizon, b.Codec, b.StoredLen, len(p))
				}
				kept++
			}
		}
	}
	if cold == 0 {
		t.Fatal("no cold block")
	}
	t.Logf("horizon %d: %d cold blocks, %d left in zstd (LZMA2 not smaller)", horizon, cold, kept)
}

func TestLZMA2DecoderBounds(t *testing.T) {
	raw := settleSeg(3).Bytes()[:64<<10]
	good := []byte{lzmaDictProp(len(raw))}
	if canEncodeCold {
		p, ok, err := encodeLZMA2(raw, nil, coldParams)
		if err != nil || !ok {
			t.Fatalf("encode: %v %v", ok, err)
		}
		good = p
		if got, err := decodeLZMA2(p, uint32(len(raw))); err != nil || !bytes.Equal(got, raw) {
			t.Fatalf("liblzma round trip: %v", err)
		}
	} else {
		t.Log("built without cgo: only the malformed inputs are checked")
	}
	bad := [][]byte{nil, {16}, {41, 0}, append(bytes.Clone(good), 0)}
	if len(good) > 8 {
		bad = append(bad, good[:len(good)/2])
	}
	for i, p := range bad {
		if _, err := decodeLZMA2Go(p, uint32(len(raw))); err == nil {
			t.Errorf("pure Go: malformed payload %d decoded", i)
		}
		if _, err := decodeLZMA2(p, uint32(len(raw))); err == nil {
			t.Errorf("malformed payload %d decoded", i)
		}
	}
	if canEncodeCold {
		if _, err := decodeLZMA2Go(good, uint32(len(raw))-1); err == nil {
			t.Error("pure Go: a stream longer than the block decoded")
		}
		if _, err := decodeLZMA2(good, uint32(len(raw))-1); err == nil {
			t.Error("a stream longer than the block decoded")
		}
	}
}

// settleCrashChild is run by TestSettleCrashConsistency: it archives
// segments of c1 (and a backup history file making the first ones cold),
// printing "ok NAME SHA256" after each commit, and settles one block at a
// time, printing "settled N" after each, until it is killed.
func settleCrashChild(dir string, start uint64) {
	s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 4 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ack := func(p string, data []byte) {
		u, err := s.Create(p, FileMeta{Mode: 0o600, MTime: time.Now()})
		if err == nil {
			for b := data; len(b) > 0 && err == nil; b = b[min(len(b), 100_000):] {
				_, err = u.Write(b[:min(len(b), 100_000)])
			}
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			fmt.Println("err", p, err)
			os.Exit(2)
		}
		fmt.Printf("ok %s %x\n", p, sha256.Sum256(data))
	}
	for i := uint64(0); ; i++ {
		for n := start + 4*i; n < start+4*i+4; n++ {
			sg := settleSeg(n)
			ack("c1/"+sg.Name(), sg.Bytes())
		}
		if i == 1 {
			name, text := backupText(1, start+2, start+3, fmt.Sprint("b", start), time.Unix(1700000000+int64(start), 0))
			ack("c1/"+name, []byte(text))
		}
		for k := 0; k < 6; k++ {
			rep, err := s.Settle(context.Background(), SettleOptions{MaxBlocks: 1})
			if err != nil {
				fmt.Println("settle:", err)
				os.Exit(2)
			}
			fmt.Println("settled", rep.Settled+rep.Cold)
		}
	}
}

// TestSettleCrashConsistency kills a process that archives and settles at
// random points (SIGKILL: no Close), many times over one data directory,
// and checks after each crash that every acknowledged file reads back
// identical, verify is clean and the counters are consistent; at the end
// a full settle and GC keep all of that.
func TestSettleCrashConsistency(t *testing.T) {
	iterations := 20
	if testing.Short() || raceEnabled {
		iterations = 8
	}
	dir := t.TempDir()
	acked := map[string]string{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 9))
	settled := 0
	for it := 0; it < iterations; it++ {
		start := uint64(it)*100 + 1
		runKilledChild(t, "WALRUS_SETTLE_CHILD="+dir, start, 1+rng.IntN(30), time.Duration(rng.IntN(20))*time.Millisecond, func(f []string) bool {
			switch {
			case len(f) == 3 && f[0] == "ok":
				acked[f[1]] = f[2]
			case len(f) == 2 && f[0] == "settled":
				settled++
			default:
				return false
			}
			return true
		})
		s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 4 << 20})
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkAcked(t, it, s, acked)
		checkSettleInvariants(t, s)
		s.Close()
	}
	if len(acked) == 0 || settled == 0 {
		t.Fatalf("%d files acknowledged, %d settle steps: the test proved nothing", len(acked), settled)
	}
	s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Settle(context.Background(), SettleOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := codecCounts(t, s); n[index.CodecZstdIngest] != 0 {
		t.Fatalf("after a full settle: %v", n)
	}
	if _, err := s.GC(context.Background(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	checkAcked(t, iterations, s, acked)
	checkSettleInvariants(t, s)
	t.Logf("%d iterations, %d acknowledged files intact, %d settle steps", iterations, len(acked), settled)
}

// TestPureGoReadsColdTier writes cold blocks with liblzma, then builds a
// reader with CGO_ENABLED=0 (store/testdata/coldread) and checks that it
// reads every file back identical and verify finds nothing.
func TestPureGoReadsColdTier(t *testing.T) {
	if !canEncodeCold {
		testenv.Require(t, "a build with cgo and liblzma (apt-get install liblzma-dev) to write the cold tier it reads back without cgo")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		testenv.Require(t, "the go command, to build the CGO_ENABLED=0 reader: "+err.Error())
	}
	segs := realWAL(t, 3, 5)
	dir := t.TempDir()
	s := openTest(t, dir)
	want := map[string]string{}
	add := func(name string, b []byte) {
		mustPut(t, s, "c1/"+name, b)
		want["c1/"+name] = fmt.Sprintf("%x", sha256.Sum256(b))
	}
	for name, b := range segs {
		add(name, b)
	}
	add(backupFile(5, "b"))
	if rep, err := s.Settle(context.Background(), SettleOptions{}); err != nil || rep.Cold == 0 {
		t.Fatalf("settle: %+v %v", rep, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	bin := filepath.Join(t.TempDir(), "coldread")
	build := exec.Command(goBin, "build", "-o", bin, "./testdata/coldread")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, dir).Output()
	if err != nil {
		t.Fatalf("coldread: %v\n%s", err, out)
	}
	got := map[string]string{}
	var coldBytes, problems int64 = -1, -1
	writer := ""
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "file":
			got[f[1]] = f[2]
		case len(f) == 2 && f[0] == "cold":
			coldBytes, _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) == 2 && f[0] == "problems":
			problems, _ = strconv.ParseInt(f[1], 10, 64)
		case len(f) == 2 && f[0] == "cold-writer":
			writer = f[1]
		}
	}
	if writer != "false" || coldBytes <= 0 || problems != 0 {
		t.Fatalf("pure-Go reader: cold-writer %s, cold bytes %d, problems %d\n%s", writer, coldBytes, problems, out)
	}
	for p, sum := range want {
		if got[p] != sum {
			t.Errorf("pure-Go reader: %s reads back %q, want %s", p, got[p], sum)
		}
	}
}

// TestCloseStopsARunningSettle: Close while a Settle pass runs ends the
// pass (ErrClosed), commits what it had done, and loses nothing.
func TestCloseStopsARunningSettle(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, settleConfig, func(c *Config) { c.ColdTier = "off" })
	want := putSettleSegs(t, s, 1, 12)
	started := make(chan struct{})
	done := make(chan error, 1)
	var once bool
	go func() {
		_, err := s.Settle(context.Background(), SettleOptions{yield: func() error {
			if !once {
				once = true
				close(started)
			}
			return nil
		}})
		done <- err
	}()
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("settle during Close: %v", err)
	}
	s = openTest(t, dir, settleConfig)
	checkSettleInvariants(t, s)
	checkContents(t, s, want)
}

// TestIngestFramesSkipEntropyOnlyWhenSettled: blocks the settler will
// re-encode (CodecZstdIngest) are written without Huffman-coded literals,
// the cheaper ingest encoding; blocks written as settled (settling off)
// keep it, since nothing re-encodes them. Both kinds carry the zstd
// content checksum the read path relies on (decodedChecked), and read
// back.
func TestIngestFramesSkipEntropyOnlyWhenSettled(t *testing.T) {
	stored := map[string]int64{}
	for _, settle := range []string{"best", "off"} {
		s := openTest(t, t.TempDir(), settleConfig, func(c *Config) { c.SettleLevel, c.ColdTier = settle, "off" })
		want := putSettleSegs(t, s, 1, 6)
		err := eachPayload(s, func(b *index.Block) bool { return b.Codec != index.CodecRaw }, func(h index.Hash, b *index.Block, payload []byte) error {
			if !decodedChecked(b.Codec, payload) {
				t.Errorf("settle %s: block %s (codec %d) written without the content checksum", settle, h, b.Codec)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		checkContents(t, s, want)
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		stored[settle] = st.StoredBytes
	}
	// The same bytes: without entropy coding the ingest records are larger.
	if stored["best"] <= stored["off"] {
		t.Errorf("ingest records take %d bytes, settled ones %d: want the ingest encoding without entropy coding (larger)", stored["best"], stored["off"])
	}
	t.Logf("stored bytes: ingest (to be settled) %d, settled at ingest %d (%.3fx)", stored["best"], stored["off"], float64(stored["best"])/float64(stored["off"]))
}

// TestLastBlockEncodedWhileHashed: an upload's last block is compressed
// while it is hashed (storeBlock). Whether the store already has it (the
// payload is thrown away) or not, and whether it is a whole block of a
// segment or the partial tail of another file, the committed file reads
// back as written and a known block is stored once.
func TestLastBlockEncodedWhileHashed(t *testing.T) {
	s := openTest(t, t.TempDir(), settleConfig, func(c *Config) { c.ColdTier = "off" })
	seg := settleSeg(3)
	data := seg.Bytes()
	want := map[string][]byte{"c1/" + seg.Name(): data}
	mustPut(t, s, "c1/"+seg.Name(), data)
	blocks := func() int {
		n := 0
		for _, c := range codecCounts(t, s) {
			n += c
		}
		return n
	}
	n0 := blocks()
	// The same bytes under other names: every block, the last included, is
	// known; nothing new is stored.
	want["other/"+seg.Name()] = data
	mustPut(t, s, "other/"+seg.Name(), data)
	want["copy.bin"] = data
	mustPut(t, s, "copy.bin", data)
	if n := blocks(); n != n0 {
		t.Errorf("re-storing known blocks: %d block records, want %d", n, n0)
	}
	// A partial last block, new and then known.
	tail := append(bytes.Repeat([]byte("partial tail block "), 5000), data[:1000]...)
	want["tail.bin"], want["tail2.bin"] = tail, tail
	mustPut(t, s, "tail.bin", tail)
	n1 := blocks()
	mustPut(t, s, "tail2.bin", tail)
	if n := blocks(); n1 <= n0 || n != n1 {
		t.Errorf("block records %d, %d after the partial files, want %d < the first and no more after the second", n1, n, n0)
	}
	checkContents(t, s, want)
}

// TestUploadBufferAdvance: bytes read into Buffer and taken with Advance,
// in pieces that straddle block boundaries, store the same file as Write;
// Advance past the buffer is refused, and a bad WAL header fails Buffer
// and Advance as it fails Write.
func TestUploadBufferAdvance(t *testing.T) {
	s := openTest(t, t.TempDir(), settleConfig)
	seg := settleSeg(4)
	data := seg.Bytes()
	u, err := s.Create("c1/"+seg.Name(), FileMeta{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	if all, err := u.Buffer(1 << 30); err != nil || len(all) != 64<<10 {
		t.Fatalf("Buffer of an empty upload: %d bytes, %v; want the block size", len(all), err)
	} else if err := u.Advance(len(all) + 1); err == nil {
		t.Fatal("Advance past the buffer accepted")
	}
	for p, step := data, 1; len(p) > 0; step = step*7%100003 + 1 {
		b, err := u.Buffer(min(step, len(p)))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 || len(b) > step {
			t.Fatalf("Buffer(%d) gave %d bytes", step, len(b))
		}
		k := copy(b, p)
		if err := u.Advance(k); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if _, err := u.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "c1/"+seg.Name()); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	// The same bytes through Write: the same identity.
	if fi := mustPut(t, s, "copy.bin", data); fi.Hash != statHash(t, s, "c1/"+seg.Name()) {
		t.Fatal("Buffer/Advance and Write stored different identities")
	}

	bad := settleSeg(5).Bytes()
	bad[0] ^= 0xff // the page magic
	u, err = s.Create("c1/"+settleSeg(5).Name(), FileMeta{Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := u.Buffer(len(bad))
	err = u.Advance(copy(b, bad))
	if !errors.Is(err, ErrInvalidWAL) {
		t.Fatalf("Advance of a bad header: %v, want ErrInvalidWAL", err)
	}
	if _, err := u.Buffer(10); !errors.Is(err, ErrInvalidWAL) {
		t.Fatalf("Buffer after a bad header: %v, want ErrInvalidWAL", err)
	}
	u.Abort()
}

func statHash(t *testing.T, s *Store, path string) index.Hash {
	t.Helper()
	fi, err := s.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Hash
}

// The background settler stays paused while a restore reads segment after
// segment with pauses between them (500 ms here; replay and other work in
// a real recovery), also when it only opens them (the kernel's page cache
// serves the reads), and settles once the reads stop. Before, it resumed
// 200 ms after each read and recompressed between the restore's reads.
func TestSettlerPausesDuringRestores(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, settleConfig)
	want := putSettleSegs(t, s, 1, 6)
	s.Close()
	s = openTest(t, dir, settleConfig, func(c *Config) { c.Settle = true })
	unsettled := func() int64 {
		st, err := s.Status()
		if err != nil {
			t.Fatal(err)
		}
		return st.UnsettledBytes
	}
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	read := func(p string) {
		r, err := s.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		if _, err := r.ReadAt(buf, 0); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	read(paths[0])
	// A block the worker had begun before that read may still commit:
	// wait until the count holds still across a read.
	before := unsettled()
	for i := 0; ; i++ {
		time.Sleep(300 * time.Millisecond) // the restore's pace, not synchronisation
		read(paths[i%len(paths)])
		if now := unsettled(); now == before {
			break
		} else {
			before = now
		}
		if i > 10 {
			t.Fatalf("unsettled bytes keep changing while the store is read every 300 ms (%d)", before)
		}
	}
	if before == 0 {
		t.Fatal("everything settled before the restore started: nothing to observe")
	}
	for i := range 8 { // 4 s of reads, 500 ms apart
		time.Sleep(500 * time.Millisecond) // the restore's pace
		if i%2 == 0 {
			read(paths[i%len(paths)])
			continue
		}
		// Opened but not read: a cp the kernel serves from its page cache.
		r, err := s.Open(paths[i%len(paths)])
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if now := unsettled(); now != before {
		t.Errorf("the settler recompressed during the restore: unsettled bytes %d -> %d", before, now)
	}
	testenv.WaitFor(t, "the settler to settle once the reads stop", 2*time.Minute, func() bool { return unsettled() == 0 })
	checkContents(t, s, want)
}

// TestColdHorizonFollowsNewBackup: the background settler caches each
// directory's cold horizon for coldCheckEvery (10 minutes), but a newly
// archived .backup file makes it look again at its next pass: the WAL
// behind the new backup goes cold within seconds, not ten minutes later.
func TestColdHorizonFollowsNewBackup(t *testing.T) {
	if !canEncodeCold {
		testenv.Require(t, "a build with cgo and liblzma (apt-get install liblzma-dev) to write the cold tier")
	}
	segs := realWAL(t, 1, 4)
	s := openTest(t, t.TempDir(), func(c *Config) { c.Settle = true })
	for n := uint64(1); n <= 4; n++ {
		name := wal.SegmentFileName(1, n, 16<<20)
		mustPut(t, s, "c1/"+name, segs[name])
	}
	testenv.WaitFor(t, "the settler's first pass (no backup: nothing cold)", 2*time.Minute, func() bool {
		st, err := s.Status()
		return err == nil && st.UnsettledBytes == 0
	})
	s.st.mu.Lock()
	_, seen := s.st.coldSeen["c1"]
	s.st.mu.Unlock()
	if !seen {
		t.Fatal("the settler's pass did not look at c1's cold horizon")
	}
	name, text := backupFile(3, "b")
	mustPut(t, s, "c1/"+name, text)
	testenv.WaitFor(t, "segments 1 and 2 to go cold after the backup arrived", time.Minute, func() bool {
		st, err := s.Status()
		return err == nil && st.ColdBytes > 0
	})
	checkColdSplit(t, s, 3)
}

// TestStatusDoesNotPauseTheSettler: walrus's own reads of .history and
// .backup files (status, metrics scrapes, the settler's cold horizon) are
// not restores; only client reads pause the settler.
func TestStatusDoesNotPauseTheSettler(t *testing.T) {
	s := openTest(t, t.TempDir(), settleConfig)
	putSettleSegs(t, s, 1, 2)
	name, text := backupFile(1, "b")
	mustPut(t, s, "c1/"+name, text)
	before := s.st.read.Load()
	if _, err := s.StatusReport("*", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s.st.read.Load() != before {
		t.Fatal("walrus status counted as a client read: the settler pauses for it")
	}
	r, err := s.Open("c1/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if s.st.read.Load() == before {
		t.Fatal("a client's open did not count as a read")
	}
}
