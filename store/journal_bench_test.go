package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// Commit latency with the journal: each benchmark commits one change at a
// time, so every op is one group commit (journal record, pack fsync, index
// sync). Compare with the same benchmarks before the journal existed (the
// README's "Repair" section has the figures).

// BenchmarkCommitSmallFile: one writer archives 8 KiB opaque files.
func BenchmarkCommitSmallFile(b *testing.B) {
	s := openTest(b, b.TempDir())
	data := randomBytes(8<<10, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(data, uint64(i)) // distinct content
		if _, err := put(b, s, fmt.Sprintf("d/f%08d", i), data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommitSegmentParallel: four writers archive 1 MiB segments
// (group commits of several files).
func BenchmarkCommitSegmentParallel(b *testing.B) {
	s := openTest(b, b.TempDir())
	b.SetBytes(1 << 20)
	b.ResetTimer()
	b.SetParallelism(2) // 2 × GOMAXPROCS writers
	var next uint64
	var mu = make(chan struct{}, 1)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu <- struct{}{}
			next++
			n := next
			<-mu
			sg := walgen.Segment{TLI: 1, SegNo: n, SysID: testSysID, SegSize: 1 << 20, Seed: n, UsedPages: 32}
			if _, err := put(b, s, "c/"+sg.Name(), sg.Bytes()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkRemove: one rm at a time.
func BenchmarkRemove(b *testing.B) {
	s := openTest(b, b.TempDir())
	data := randomBytes(8<<10, 1)
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(data, uint64(i))
		if _, err := put(b, s, fmt.Sprintf("d/f%08d", i), data); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Remove(fmt.Sprintf("d/f%08d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRepair rebuilds the index of a store of 10 000 files (1 MiB
// segments half full and small opaque files, in four namespaces) after it
// was deleted.
func BenchmarkRepair(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "data")
	s := openTest(b, dir)
	const files = 10000
	for i := 0; i < files; i++ {
		ns := fmt.Sprintf("c%d", i%4)
		if i%2 == 0 {
			sg := walgen.Segment{TLI: 1, SegNo: uint64(i/4 + 1), SysID: testSysID + uint64(i%4), SegSize: 1 << 20, Seed: uint64(i), UsedPages: 64}
			if _, err := put(b, s, ns+"/"+sg.Name(), sg.Bytes()); err != nil {
				b.Fatal(err)
			}
			continue
		}
		if _, err := put(b, s, fmt.Sprintf("%s/file-%05d", ns, i), randomBytes(4<<10+i, uint64(i))); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
			b.Fatal(err)
		}
		rep, err := Repair(context.Background(), Config{Dir: dir}, RepairOptions{})
		if err != nil || rep.Files != files || len(rep.Verify.DataProblems()) > 0 {
			b.Fatalf("repair: %v %+v", err, rep)
		}
		b.ReportMetric(rep.RebuildSeconds, "rebuild-s")
		b.ReportMetric(rep.Verify.Seconds, "verify-s")
	}
	b.ReportMetric(files, "files")
}
