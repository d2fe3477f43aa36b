package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
)

// TestPutFullDisk: `walrus put` as archive_command on a full disk exits 8
// with one line saying why, stores nothing, and succeeds again once space
// returns; rm, retain and gc work on the full disk.
func TestPutFullDisk(t *testing.T) {
	root := testenv.SmallFS(t, 256<<20) // room for the default floor (index need, reserve, --min-free)
	data := filepath.Join(root, "data")
	if r := walrus(t, data, nil, "init"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	seg := func(n uint64) []byte {
		return walgen.Segment{TLI: 1, SegNo: n, SysID: 99, SegSize: 1 << 20, Seed: n}.Bytes()
	}
	name := func(n uint64) string { return walgen.Segment{TLI: 1, SegNo: n, SysID: 99, SegSize: 1 << 20}.Name() }
	for n := uint64(1); n <= 4; n++ {
		if r := walrus(t, data, seg(n), "put", name(n)); r.code != 0 {
			t.Fatalf("put: %+v", r)
		}
	}
	filler := filepath.Join(root, "filler")
	for cycle := uint64(0); cycle < 3; cycle++ {
		testenv.Fill(t, filler, 0)
		n := 10 + cycle
		r := walrus(t, data, seg(n), "put", name(n))
		if r.code != exitNoSpace || strings.Count(r.stderr, "walrus: store: not enough free space: ") != 1 {
			t.Fatalf("put on a full disk: %+v, want exit %d and one error line", r, exitNoSpace)
		}
		if r := walrus(t, data, seg(1), "put", name(1)); r.code != 0 { // an identical re-push stores nothing
			t.Fatalf("identical re-put on a full disk: %+v", r)
		}
		if r := walrus(t, data, nil, "rm", name(2+cycle)); r.code != 0 {
			t.Fatalf("rm on a full disk: %+v", r)
		}
		for _, args := range [][]string{{"retain", "--keep-backups", "1"}, {"gc"}, {"ls"}, {"status"}} {
			if r := walrus(t, data, nil, args...); r.code != 0 {
				t.Fatalf("%v on a full disk: %+v", args, r)
			}
		}
		os.Remove(filler)
		if r := walrus(t, data, seg(n), "put", name(n)); r.code != 0 {
			t.Fatalf("put after space returned: %+v", r)
		}
	}
}

// TestPutPerCallFillsOnePack: the documented archive_command `walrus put`
// opens the store once per file; packs must not grow with the calls.
func TestPutPerCallFillsOnePack(t *testing.T) {
	n := 100
	if os.Getenv("WALRUS_SOAK") != "" {
		n = 1000
	}
	data := newStore(t)
	for i := range n {
		sg := walgen.Segment{TLI: 1, SegNo: uint64(i + 1), SysID: 99, SegSize: 1 << 20, Seed: uint64(i), UsedPages: 4}
		if r := walrus(t, data, sg.Bytes(), "put", sg.Name()); r.code != 0 {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	packs, _ := filepath.Glob(filepath.Join(data, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("%d calls of walrus put left %d packs, want 1", n, len(packs))
	}
	t.Logf("%d calls of walrus put: %d pack", n, len(packs))
}
