package soak

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// A damage is one way a data directory gets hurt while walrus is down.
type damage struct {
	name  string
	apply func(t *testing.T, data string, rng *rand.Rand)
	pack  bool // damages a pack: verify must report it even when every read succeeds
}

func packs(t *testing.T, data string) []string {
	t.Helper()
	ps, _ := filepath.Glob(filepath.Join(data, "packs", "*.pack"))
	sort.Strings(ps)
	if len(ps) == 0 {
		t.Fatal("no pack files")
	}
	return ps
}

// flip xors one byte at a random offset past skip in a random file of files.
func flip(t *testing.T, files []string, skip int64, rng *rand.Rand) {
	t.Helper()
	p := files[rng.IntN(len(files))]
	fi, err := os.Stat(p)
	if err != nil || fi.Size() <= skip {
		t.Fatalf("%s: %v, %d bytes", p, err, fi.Size())
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := skip + rng.Int64N(fi.Size()-skip)
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= byte(1 + rng.IntN(255))
	f.WriteAt(b, off)
}

var damages = []damage{
	{"one byte flipped in a pack (payload or record header)", func(t *testing.T, data string, rng *rand.Rand) {
		flip(t, packs(t, data), 16, rng)
	}, true},
	{"8 bytes flipped across packs", func(t *testing.T, data string, rng *rand.Rand) {
		for range 8 {
			flip(t, packs(t, data), 16, rng)
		}
	}, true},
	{"pack header overwritten", func(t *testing.T, data string, rng *rand.Rand) {
		p := packs(t, data)[0]
		f, _ := os.OpenFile(p, os.O_RDWR, 0)
		f.WriteAt(make([]byte, 16), 0)
		f.Close()
	}, true},
	{"pack truncated by a third", func(t *testing.T, data string, rng *rand.Rand) {
		p := packs(t, data)[0]
		fi, _ := os.Stat(p)
		os.Truncate(p, fi.Size()*2/3)
	}, true},
	{"pack file deleted", func(t *testing.T, data string, rng *rand.Rand) {
		os.Remove(packs(t, data)[0])
	}, true},
	{"one byte flipped in an index file", func(t *testing.T, data string, rng *rand.Rand) {
		var files []string
		filepath.Walk(filepath.Join(data, "index"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Size() > 64 && !strings.HasSuffix(p, "LOCK") {
				files = append(files, p)
			}
			return nil
		})
		if len(files) == 0 {
			t.Fatal("no index files")
		}
		flip(t, files, 0, rng)
	}, false},
}

// TestCorruption damages copies of one data directory in each way above
// while walrus is down, starts it again and reads every file through the
// mount: a read either returns the archived bytes or fails, never returns
// other bytes with exit 0, and walrus verify names every file that cannot
// be read (or the server refuses to start, saying why). Figures for
// docs/reliability.md are printed.
func TestCorruption(t *testing.T) {
	testenv.RequireFUSE(t)
	base := t.TempDir()
	os.Chmod(base, 0o755)
	w := walrusproc.Start(t, filepath.Join(base, "origin"))
	if err := run("mkdir", filepath.Join(w.Mount, "ns")); err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 24 {
		g := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: 7200000000000000001, SegSize: 1 << 20, Seed: uint64(i), UsedPages: 16 + 4*i}
		p := filepath.Join(src, g.Name())
		os.WriteFile(p, g.Bytes(), 0o600)
		if err := run("cp", p, filepath.Join(w.Mount, "ns", g.Name())); err != nil {
			t.Fatal(err)
		}
		want["ns/"+g.Name()] = g.Bytes()
	}
	if err := w.Stop(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var rows []string
	var wrongTotal, unnamedTotal int
	for i, d := range damages {
		home := filepath.Join(base, fmt.Sprintf("case%d", i))
		if out, err := exec.Command("cp", "-a", filepath.Join(base, "origin"), home).CombinedOutput(); err != nil {
			t.Fatalf("copy: %v %s", err, out)
		}
		os.Remove(filepath.Join(home, "data", "walrus.sock"))
		os.Remove(filepath.Join(home, "rsyncd.conf")) // its module paths name the origin; serve writes a new one
		d.apply(t, filepath.Join(home, "data"), rng)
		row, wrong, unnamed := readDamaged(t, home, want, d.pack)
		wrongTotal += wrong
		unnamedTotal += unnamed
		rows = append(rows, fmt.Sprintf("  %-55s %s", d.name, row))
	}
	fmt.Printf("corruption: %d kinds of damage to %d files; wrong bytes served %d, unreadable files verify did not name %d\n%s\n",
		len(damages), len(want), wrongTotal, unnamedTotal, strings.Join(rows, "\n"))
}

// readDamaged starts walrus on home and reads every file; it returns a
// summary, the reads that returned wrong bytes with exit 0, and the
// unreadable files walrus verify did not name.
func readDamaged(t *testing.T, home string, want map[string][]byte, packDamaged bool) (row string, wrong, unnamed int) {
	t.Helper()
	w, err := walrusproc.TryStart(t, home)
	if err != nil {
		line := strings.TrimSpace(err.Error())
		if i := strings.LastIndex(line, "walrus:"); i >= 0 {
			line = line[i:]
		}
		if len(line) > 120 {
			line = line[:120] + "…"
		}
		return "refused to start: " + strings.Split(line, "\n")[0], 0, 0
	}
	defer w.Stop()
	out := t.TempDir()
	var bad []string
	for path, data := range want {
		dst := filepath.Join(out, filepath.Base(path))
		if run("cp", filepath.Join(w.Mount, path), dst) != nil {
			bad = append(bad, path)
			continue
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
			wrong++
			t.Errorf("%s: cp exited 0 with other bytes (%d of %d)", home, len(got), len(data))
		}
	}
	report, code, _ := w.CLI("verify")
	for _, path := range bad {
		if !strings.Contains(report, "BAD  "+path+":") && !strings.Contains(report, "BAD  /"+path+":") {
			unnamed++
			t.Errorf("%s: %s cannot be read but verify (exit %d) does not name it:\n%s", home, path, code, report)
		}
	}
	if (len(bad) > 0 || packDamaged) && code == 0 {
		t.Errorf("%s: a damaged pack (%d files unreadable), verify exited 0", home, len(bad))
	}
	return fmt.Sprintf("%2d of %d files unreadable (EIO), verify exit %d", len(bad), len(want), code), wrong, unnamed
}
