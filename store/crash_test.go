package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// crashChild is run in a child process by TestCrashConsistency: it archives
// segments until it is killed, printing "ok NAME SHA256" after each commit
// returned nil — the moment walrus would tell PostgreSQL "archived".
func crashChild(dir string, start uint64) {
	s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 4 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ { // concurrent writers exercise group commit
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(w); ; i += 3 {
				sg := crashSegment(start + i)
				data := sg.Bytes()
				u, err := s.Create(sg.Name(), FileMeta{Mode: 0o600, MTime: time.Now()})
				if err == nil {
					for p := data; len(p) > 0 && err == nil; p = p[min(len(p), 100_000):] {
						_, err = u.Write(p[:min(len(p), 100_000)])
					}
				}
				if err == nil {
					_, err = u.Commit()
				}
				mu.Lock()
				if err != nil {
					fmt.Println("err", sg.Name(), err)
				} else {
					fmt.Printf("ok %s %x\n", sg.Name(), sha256.Sum256(data))
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func crashSegment(segno uint64) walgen.Segment {
	// Up to 512 KiB of data per 1 MiB segment keeps the test quick under
	// the race detector; every fifth is a switched, mostly-zero segment.
	used := 64
	if segno%5 == 0 {
		used = 3
	}
	return walgen.Segment{TLI: 1, SegNo: segno, SysID: testSysID, SegSize: 1 << 20, Seed: segno % 7, UsedPages: used}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv("WALRUS_GC_CHILD"); dir != "" {
		start, _ := strconv.ParseUint(os.Getenv("WALRUS_CRASH_START"), 10, 64)
		gcCrashChild(dir, start)
		return
	}
	if dir := os.Getenv("WALRUS_BGC_CHILD"); dir != "" {
		start, _ := strconv.ParseUint(os.Getenv("WALRUS_CRASH_START"), 10, 64)
		bucketGCCrashChild(dir, start)
		return
	}
	if dir := os.Getenv("WALRUS_FULLDISK_CHILD"); dir != "" {
		cycles, _ := strconv.Atoi(os.Getenv("WALRUS_FULLDISK_CYCLES"))
		fullDiskChild(dir, cycles)
		return
	}
	if dir := os.Getenv("WALRUS_REPAIR_CHILD"); dir != "" {
		repairChild(dir)
		return
	}
	if dir := os.Getenv("WALRUS_SETTLE_CHILD"); dir != "" {
		start, _ := strconv.ParseUint(os.Getenv("WALRUS_CRASH_START"), 10, 64)
		settleCrashChild(dir, start)
		return
	}
	if dir := os.Getenv("WALRUS_CRASH_CHILD"); dir != "" {
		start, _ := strconv.ParseUint(os.Getenv("WALRUS_CRASH_START"), 10, 64)
		crashChild(dir, start)
		return
	}
	os.Exit(m.Run())
}

// TestCrashConsistency kills a writer with SIGKILL at random points, many
// times over the same data directory, and checks after each crash that
// every commit reported as successful reads back byte-identical and that
// verify is clean.
func TestCrashConsistency(t *testing.T) {
	iterations := 25
	if testing.Short() || raceEnabled {
		iterations = 8 // the race detector slows hashing and zstd ~20x
	}
	dir := t.TempDir()
	acked := map[string]string{} // name → sha256 hex
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for it := 0; it < iterations; it++ {
		start := uint64(it) * 1000
		killAfter := rng.IntN(12)
		got := runCrashChild(t, dir, start, killAfter, time.Duration(rng.IntN(30))*time.Millisecond)
		for name, sum := range got {
			acked[name] = sum
		}
		s, err := Open(Config{Dir: dir, BlockSize: 64 << 10, PackSize: 4 << 20})
		if err != nil {
			t.Fatalf("iteration %d: reopen after SIGKILL: %v", it, err)
		}
		checkAcked(t, it, s, acked)
		s.Close()
	}
	if len(acked) == 0 {
		t.Fatal("no commit was ever acknowledged: the test proved nothing")
	}
	t.Logf("%d iterations, %d acknowledged segments all intact", iterations, len(acked))
}

// checkAcked checks, after a crash, that every acknowledged file reads back
// with its recorded SHA-256 and that verify finds no damaged data (gaps in
// segment numbering are by design in these tests).
func checkAcked(t *testing.T, it int, s *Store, acked map[string]string) {
	t.Helper()
	for name, sum := range acked {
		var buf bytes.Buffer
		r, err := s.Open(name)
		if err == nil {
			_, err = r.WriteTo(&buf)
		}
		if err != nil {
			t.Fatalf("iteration %d: acknowledged %s lost: %v", it, name, err)
		}
		if fmt.Sprintf("%x", sha256.Sum256(buf.Bytes())) != sum {
			t.Fatalf("iteration %d: acknowledged %s reads back different bytes", it, name)
		}
	}
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil || len(rep.DataProblems()) > 0 {
		t.Fatalf("iteration %d: verify: %v %+v", it, err, rep.DataProblems())
	}
}

func runCrashChild(t *testing.T, dir string, start uint64, killAfter int, extra time.Duration) map[string]string {
	t.Helper()
	acked := map[string]string{}
	runKilledChild(t, "WALRUS_CRASH_CHILD="+dir, start, killAfter, extra, func(f []string) bool {
		if len(f) == 3 && f[0] == "ok" {
			acked[f[1]] = f[2]
			return true
		}
		return false
	})
	return acked
}

// runKilledChild re-runs the test binary as a child with env set, hands
// each line it prints to line (false: an unexpected line, reported), and
// SIGKILLs it extra after its killAfter-th line (at once for 0).
func runKilledChild(t *testing.T, env string, start uint64, killAfter int, extra time.Duration, line func(fields []string) bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env, fmt.Sprintf("WALRUS_CRASH_START=%d", start))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			time.AfterFunc(extra, func() { cmd.Process.Signal(syscall.SIGKILL) })
		}
	}
	if killAfter == 0 {
		kill()
	}
	sc := bufio.NewScanner(out)
	for lines := 1; sc.Scan(); lines++ {
		if !line(strings.Fields(sc.Text())) {
			t.Errorf("child: %s", sc.Text())
		}
		if lines >= killAfter {
			kill()
		}
	}
	kill()
	cmd.Wait()
}
