package soak

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// cycles is how many SIGKILL cycles TestCrashCycles runs: a few in make
// test, WALRUS_SOAK_CYCLES of them in make soak.
func cycles() int {
	if n, err := strconv.Atoi(os.Getenv("WALRUS_SOAK_CYCLES")); err == nil && n > 0 {
		return n
	}
	return 3
}

// ledger records what the load was told: acknowledged files (exit 0) with
// their content, acknowledged removals, and attempts whose outcome the kill
// cut off (they may exist, but only with their whole content).
type ledger struct {
	mu      sync.Mutex
	acked   map[string][]byte
	removed map[string]bool
	tried   map[string][]byte
}

func newLedger() *ledger {
	return &ledger{acked: map[string][]byte{}, removed: map[string]bool{}, tried: map[string][]byte{}}
}

func (l *ledger) try(name string, data []byte) {
	l.mu.Lock()
	l.tried[name] = data
	l.mu.Unlock()
}

func (l *ledger) ack(name string, data []byte) {
	l.mu.Lock()
	l.acked[name] = data
	delete(l.tried, name)
	delete(l.removed, name)
	l.mu.Unlock()
}

func (l *ledger) ackRemove(name string) {
	l.mu.Lock()
	delete(l.acked, name)
	l.removed[name] = true
	l.mu.Unlock()
}

// pick returns a random acknowledged file.
func (l *ledger) pick(rng *rand.Rand) (string, []byte, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.acked) == 0 {
		return "", nil, false
	}
	i := rng.IntN(len(l.acked))
	for n, d := range l.acked {
		if i == 0 {
			return n, d, true
		}
		i--
	}
	return "", nil, false
}

// load runs the mixed workload against w until stop closes: rsync pushes
// through the gateway, cp into the mount, basic_archive's temp + rename,
// cp out of the mount (every byte compared), rm, and walrus gc.
type load struct {
	t     *testing.T
	w     *walrusproc.Server
	l     *ledger
	src   string
	next  atomic.Uint64 // segment numbers, never reused
	wrong atomic.Int64  // reads that returned other bytes with exit 0
	ops   atomic.Int64
}

func (ld *load) segment() (string, []byte) {
	n := ld.next.Add(1)
	g := walgen.Segment{TLI: 1, SegNo: n, SysID: 7100000000000000001, SegSize: 1 << 20, Seed: n, UsedPages: 1 + int(n%96)}
	return g.Name(), g.Bytes()
}

func (ld *load) source(name string, data []byte) string {
	p := filepath.Join(ld.src, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		ld.t.Error(err)
	}
	return p
}

func run(name string, args ...string) error {
	return exec.Command(name, args...).Run()
}

func (ld *load) pushRsync() {
	name, data := ld.segment()
	path := "gw/" + name
	ld.l.try(path, data)
	if run("rsync", "-aq", ld.source(name, data), ld.w.StoreURL(path)) == nil {
		ld.l.ack(path, data)
	}
}

func (ld *load) pushCp() {
	name, data := ld.segment()
	path := "cp/" + name
	ld.l.try(path, data)
	if run("cp", ld.source(name, data), filepath.Join(ld.w.Mount, path)) == nil {
		ld.l.ack(path, data)
	}
}

// pushRename is basic_archive's way: a temp name without a dot, fsync,
// rename onto the final name.
func (ld *load) pushRename() {
	name, data := ld.segment()
	path := "ba/" + name
	ld.l.try(path, data)
	tmp := filepath.Join(ld.w.Mount, "ba", "archtemp."+name+".1.2")
	script := `cp "$1" "$2" && sync "$2" && mv "$2" "$3"`
	if run("sh", "-c", script, "sh", ld.source(name, data), tmp, filepath.Join(ld.w.Mount, path)) == nil {
		ld.l.ack(path, data)
	}
}

func (ld *load) readBack(rng *rand.Rand, out string) {
	path, data, ok := ld.l.pick(rng)
	if !ok {
		return
	}
	dst := filepath.Join(out, strconv.Itoa(rng.IntN(1<<30)))
	defer os.Remove(dst)
	if run("cp", filepath.Join(ld.w.Mount, path), dst) != nil {
		return // the kill, or a concurrent rm
	}
	got, _ := os.ReadFile(dst)
	if !bytes.Equal(got, data) {
		ld.l.mu.Lock()
		removed := ld.l.removed[path]
		ld.l.mu.Unlock()
		if !removed {
			ld.wrong.Add(1)
			ld.t.Errorf("cp out of %s exited 0 with %d bytes, want the %d acknowledged", path, len(got), len(data))
		}
	}
}

func (ld *load) remove(rng *rand.Rand) {
	path, _, ok := ld.l.pick(rng)
	if !ok {
		return
	}
	if run("rm", filepath.Join(ld.w.Mount, path)) == nil {
		ld.l.ackRemove(path)
	}
}

// run drives three workers until stop closes; each pushes (rsync, cp,
// temp + rename in turn), then reads a random acknowledged file back, and
// now and then removes one or runs walrus gc. ops counts the pushes.
func (ld *load) run(stop <-chan struct{}, out string) {
	var wg sync.WaitGroup
	pushes := []func(){ld.pushRsync, ld.pushCp, ld.pushRename}
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for k := i; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				pushes[k%len(pushes)]()
				ld.ops.Add(1)
				ld.readBack(rng, out)
				switch rng.IntN(10) {
				case 0:
					ld.remove(rng)
				case 1:
					ld.w.CLI("gc", "--threshold", "0.9")
				}
			}
		}()
	}
	wg.Wait()
}

// TestCrashCycles SIGKILLs walrus serve in the middle of a mixed load,
// restarts it, and checks that every acknowledged file is there with its
// bytes, no acknowledged removal came back, no cut-off attempt left a
// partial file, and walrus verify finds nothing wrong. It prints the
// figures that docs/reliability.md reports.
func TestCrashCycles(t *testing.T) {
	testenv.RequireFUSE(t)
	testenv.RequireCommand(t, "rsync")
	home := t.TempDir()
	os.Chmod(home, 0o755)
	w := walrusproc.Start(t, home)
	for _, ns := range []string{"gw", "cp", "ba"} {
		if err := run("mkdir", filepath.Join(w.Mount, ns)); err != nil {
			t.Fatal(err)
		}
	}
	ld := &load{t: t, w: w, l: newLedger(), src: t.TempDir()}
	out := t.TempDir()
	var restarts []time.Duration
	var lost, resurrected, partial int
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for range cycles() {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { ld.run(stop, out); close(done) }()
		// Kill after a random number of further operations, so the kill
		// lands anywhere in the mix.
		target := ld.ops.Load() + 5 + int64(rng.IntN(40))
		testenv.WaitFor(t, "load under way", 2*time.Minute, func() bool { return ld.ops.Load() >= target })
		w.Kill()
		close(stop)
		<-done
		start := time.Now()
		w = walrusproc.Start(t, home)
		restarts = append(restarts, time.Since(start))
		ld.w = w
		l, r, p := check(t, w, ld.l, out)
		lost, resurrected, partial = lost+l, resurrected+r, partial+p
	}
	verifyIntegrity(t, w)
	ld.l.mu.Lock()
	acked, removed := len(ld.l.acked), len(ld.l.removed)
	ld.l.mu.Unlock()
	fmt.Printf("crash cycles: %d SIGKILLs under mixed load (%d operations): %d files acknowledged and kept, %d removals acknowledged; "+
		"lost %d, resurrected %d, partial %d, wrong bytes served %d; restart to ready: median %v, max %v\n",
		cycles(), ld.ops.Load(), acked, removed, lost, resurrected, partial, ld.wrong.Load(), median(restarts), slicesMax(restarts))
}

// check reads every file of the ledger back through the mount of a freshly
// started server.
func check(t *testing.T, w *walrusproc.Server, l *ledger, out string) (lost, resurrected, partial int) {
	t.Helper()
	read := func(path string) ([]byte, bool) {
		dst := filepath.Join(out, "check")
		defer os.Remove(dst)
		if run("cp", filepath.Join(w.Mount, path), dst) != nil {
			return nil, false
		}
		b, err := os.ReadFile(dst)
		return b, err == nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for path, data := range l.acked {
		if got, ok := read(path); !ok || !bytes.Equal(got, data) {
			lost++
			t.Errorf("acknowledged %s: present %v, %d of %d bytes", path, ok, len(got), len(data))
		}
	}
	for path := range l.removed {
		if _, ok := read(path); ok {
			resurrected++
			t.Errorf("acknowledged removal of %s came back", path)
		}
	}
	for path, data := range l.tried {
		got, ok := read(path)
		switch {
		case !ok:
		case !bytes.Equal(got, data):
			partial++
			t.Errorf("cut-off push of %s left %d bytes, want none or all %d", path, len(got), len(data))
		default:
			l.acked[path] = data // it made it: from now on it must stay
		}
		delete(l.tried, path)
	}
	return lost, resurrected, partial
}

// verifyIntegrity runs walrus verify and fails on every problem but WAL
// continuity: the load removes files and the kills cut pushes off, so the
// synthetic timelines have gaps by design.
func verifyIntegrity(t *testing.T, w *walrusproc.Server) {
	t.Helper()
	out, code, _ := w.CLI("verify")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "BAD") && !strings.Contains(line, "continuity:") {
			t.Errorf("walrus verify: %s", line)
		}
	}
	if code != 0 && code != 6 {
		t.Errorf("walrus verify exited %d:\n%s", code, out)
	}
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

func slicesMax(d []time.Duration) time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m
}
