package soak

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// TestConcurrentClients runs 64 rsync clients at once against one walrus
// serve — each pushes 16 MiB segments through the gateway and pulls them
// back — and reports push and pull latency (p50, p99) and the server's
// peak RSS (VmHWM), for docs/reliability.md. It asserts correctness only
// (every push exits 0, every pull returns the pushed bytes); speed and
// memory are printed, never asserted. make soak runs it (WALRUS_SOAK=1).
func TestConcurrentClients(t *testing.T) {
	if os.Getenv("WALRUS_SOAK") != "1" {
		t.Skip("set WALRUS_SOAK=1 (make soak) for the 64-client load run")
	}
	testenv.RequireFUSE(t)
	testenv.RequireCommand(t, "rsync")
	const clients, rounds = 64, 3
	home := t.TempDir()
	os.Chmod(home, 0o755)
	w := walrusproc.Start(t, home)
	if err := run("mkdir", filepath.Join(w.Mount, "load")); err != nil {
		t.Fatal(err)
	}
	src, out := t.TempDir(), t.TempDir()
	var mu sync.Mutex
	var push, pull []time.Duration
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				n := uint64(1 + c*rounds + r)
				g := walgen.Segment{TLI: 1, SegNo: n, SysID: 7300000000000000001, SegSize: 16 << 20, Seed: n}
				p := filepath.Join(src, g.Name())
				os.WriteFile(p, g.Bytes(), 0o600)
				start := time.Now()
				if b, err := exec.Command("rsync", "-aq", p, w.StoreURL("load/"+g.Name())).CombinedOutput(); err != nil {
					t.Errorf("push %s: %v %s", g.Name(), err, b)
					continue
				}
				d := time.Since(start)
				dst := filepath.Join(out, g.Name())
				start = time.Now()
				if b, err := exec.Command("rsync", "-aq", w.FetchURL("load/"+g.Name()), dst).CombinedOutput(); err != nil {
					t.Errorf("pull %s: %v %s", g.Name(), err, b)
					continue
				}
				e := time.Since(start)
				if got, _ := os.ReadFile(dst); string(got) != string(g.Bytes()) {
					t.Errorf("pull %s: other bytes", g.Name())
				}
				os.Remove(dst)
				os.Remove(p)
				mu.Lock()
				push, pull = append(push, d), append(pull, e)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	hwm := peakRSS(t, w)
	fmt.Printf("load: %d rsync clients × %d rounds of a 16 MiB push + pull: push p50 %v p99 %v, pull p50 %v p99 %v; serve peak RSS %d MiB\n",
		clients, rounds, pct(push, 50), pct(push, 99), pct(pull, 50), pct(pull, 99), hwm>>20)
}

// peakRSS reads VmHWM of the walrus serve process listening for w.
func peakRSS(t *testing.T, w *walrusproc.Server) int64 {
	t.Helper()
	pid := w.Pid()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/PID/status")
	return 0
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Millisecond)
}
