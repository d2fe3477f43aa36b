package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// gcCrashChild is run in a child process by TestGCCrashConsistency. It
// loops: archive two new segments ("ok NAME SHA256" once committed), remove
// an older one ("rm NAME" before the removal starts), and run GC with a high
// threshold so that nearly every sealed pack is rewritten, until killed.
func gcCrashChild(dir string, start uint64) {
	s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 512 << 10, CacheBytes: 128 << 10})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mine []string
	for i := start; ; i += 2 {
		for _, segno := range []uint64{i, i + 1} {
			sg := gcSeg(segno)
			sg.UsedPages = 16
			data := sg.Bytes()
			u, err := s.Create(sg.Name(), FileMeta{Mode: 0o600, MTime: time.Now()})
			if err == nil {
				_, err = u.Write(data)
			}
			if err == nil {
				_, err = u.Commit()
			}
			if err != nil {
				fmt.Println("err", sg.Name(), err)
				continue
			}
			fmt.Printf("ok %s %x\n", sg.Name(), sha256.Sum256(data))
			mine = append(mine, sg.Name())
		}
		if len(mine) > 3 {
			victim := mine[len(mine)/2]
			mine = append(mine[:len(mine)/2], mine[len(mine)/2+1:]...)
			fmt.Println("rm", victim)
			if err := s.Remove(victim); err != nil {
				fmt.Println("err", victim, err)
			}
		}
		if _, err := s.GC(context.Background(), GCOptions{Threshold: 0.95}); err != nil {
			fmt.Println("err gc", err)
		}
	}
}

// TestGCCrashConsistency SIGKILLs a process that archives, removes and runs
// GC in a loop, at random moments, many times over one data directory. After
// every crash each acknowledged file that was never removed must read back
// identical, verify must find no damaged data, no retired or unreferenced
// pack file may be left on disk, and live counts must match block records.
func TestGCCrashConsistency(t *testing.T) {
	iterations, maxLines := 20, 40
	if testing.Short() || raceEnabled {
		iterations, maxLines = 4, 16 // the race detector slows the child ~20x
	}
	dir := t.TempDir()
	acked := map[string]string{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	gcRuns := 0
	for it := 0; it < iterations; it++ {
		got, removed, gcs := runGCCrashChild(t, dir, uint64(it)*1000+1, rng.IntN(maxLines), time.Duration(rng.IntN(20))*time.Millisecond)
		gcRuns += gcs
		for name, sum := range got {
			acked[name] = sum
		}
		for _, name := range removed {
			delete(acked, name)
		}
		s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 512 << 10, CacheBytes: 128 << 10})
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkAcked(t, it, s, acked)
		checkGCInvariants(t, s)
		if t.Failed() {
			t.FailNow()
		}
		s.Close()
	}
	if len(acked) == 0 || gcRuns == 0 {
		t.Fatalf("%d files acknowledged, %d GC runs: the test proved nothing", len(acked), gcRuns)
	}
	t.Logf("%d iterations, %d GC runs, %d live files intact", iterations, gcRuns, len(acked))
}

func runGCCrashChild(t *testing.T, dir string, start uint64, killAfter int, extra time.Duration) (acked map[string]string, removed []string, gcs int) {
	t.Helper()
	acked = map[string]string{}
	runKilledChild(t, "WALRUS_GC_CHILD="+dir, start, killAfter, extra, func(f []string) bool {
		switch {
		case len(f) == 3 && f[0] == "ok":
			acked[f[1]] = f[2]
			gcs++ // an "ok" pair per loop: count loops that reached GC below
		case len(f) == 2 && f[0] == "rm":
			removed = append(removed, f[1]) // possibly removed: no longer required
		default:
			return false
		}
		return true
	})
	return acked, removed, gcs / 2
}
