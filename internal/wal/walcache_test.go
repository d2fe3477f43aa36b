package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// walCacheDir returns the directory of real WAL made by
// test/testdata/mkwal.sh: $WALRUS_WALCACHE, else test/testdata/walcache. It
// skips the test if the directory has no .complete marker, or in -short mode.
func walCacheDir(t *testing.T) string {
	if testing.Short() {
		t.Skip("reading real WAL is skipped in -short mode")
	}
	dir := os.Getenv("WALRUS_WALCACHE")
	if dir == "" {
		dir = filepath.Join("..", "..", "test", "testdata", "walcache")
	}
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		testenv.Require(t, fmt.Sprintf("real WAL in %s (make corpus, or test/testdata/mkwal.sh %s): %v", dir, dir, err))
	}
	return dir
}

// TestWalCache checks every file of a real archive made by mkwal.sh: each
// segment and .partial page by page, the history and backup files, and
// that a switched segment was seen.
func TestWalCache(t *testing.T) {
	dir := walCacheDir(t)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	switched := completeValue(t, dir, "switched")
	var (
		mu      sync.Mutex
		sysids  = map[uint64]bool{}
		full    int
		counted = map[Kind]int{}
	)
	t.Run("files", func(t *testing.T) {
		for _, e := range entries {
			name := e.Name()
			n := ParseName(name)
			counted[n.Kind]++
			switch n.Kind {
			case KindSegment, KindPartial:
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					info := verifyFile(t, dir, n)
					mu.Lock()
					defer mu.Unlock()
					sysids[info.Header.SysID] = true
					if info.ZeroPages == 0 {
						full++
					}
					if name == switched && info.ZeroPages < info.Pages/2 {
						t.Errorf("switched segment %s: only %d of %d pages zero", name, info.ZeroPages, info.Pages)
					}
				})
			case KindHistory:
				checkHistoryFile(t, dir, n)
			case KindBackup:
				checkBackupFile(t, dir, n)
			}
		}
	})
	if len(sysids) != 1 {
		t.Errorf("want one system identifier across the archive, got %d", len(sysids))
	}
	if full < 20 || counted[KindSegment] < 20 || counted[KindBackup] < 1 {
		t.Errorf("archive too small: %d full segments, kinds %v", full, counted)
	}
	t.Logf("%s: %d full segments, kinds %v", dir, full, counted)
}

// TestWalCacheCorrupt checks that damage to the middle page of a real full
// segment is found.
func TestWalCacheCorrupt(t *testing.T) {
	n, data := fullSegment(t, walCacheDir(t))
	h, err := ParseLongPageHeader(data)
	if err != nil {
		t.Fatal(err)
	}
	bs := int(h.BlockSize)
	off := len(data) / 2
	at := fmt.Sprintf("page at offset %d", off)
	tests := []struct {
		name   string
		mutate func(b []byte)
		errHas string
	}{
		{"pageaddr", func(b []byte) { b[off+8]++ }, at + ": pageaddr"},
		{"magic", func(b []byte) { b[off]++ }, at + ": xlp_magic"},
		{"hole", func(b []byte) { clear(b[off : off+bs]) }, fmt.Sprintf("carries WAL after the end of WAL at offset %d", off)},
		{"tli", func(b []byte) { b[off+4] = 2 }, at + ": xlp_tli 2 is greater than the name's timeline 1"},
	}
	for _, tt := range tests {
		b := bytes.Clone(data)
		tt.mutate(b)
		_, err := VerifySegment(n, bytes.NewReader(b), int64(len(b)), false)
		if !errors.Is(err, ErrInvalidSegment) || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: VerifySegment error = %v, want one containing %q", tt.name, err, tt.errHas)
		}
	}
}

// fullSegment returns the first timeline 1 segment in dir, after the tenth,
// whose last page is not zero.
func fullSegment(t *testing.T, dir string) (Name, []byte) {
	paths, _ := filepath.Glob(filepath.Join(dir, "00000001????????????????"))
	for i, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i >= 10 && !isZero(data[len(data)-DefaultBlockSize:]) {
			return ParseName(filepath.Base(p)), data
		}
	}
	testenv.Require(t, "a full segment in "+dir)
	return Name{}, nil
}

// verifyFile runs VerifySegment on dir/n.
func verifyFile(t *testing.T, dir string, n Name) SegmentInfo {
	f, err := os.Open(filepath.Join(dir, n.String()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	info, err := VerifySegment(n, bufio.NewReaderSize(f, 1<<20), st.Size(), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(st.Size() / int64(info.Header.BlockSize)); info.Pages != want {
		t.Errorf("%s: %d pages, want %d", n, info.Pages, want)
	}
	return info
}

func checkHistoryFile(t *testing.T, dir string, n Name) {
	data, err := os.ReadFile(filepath.Join(dir, n.String()))
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseHistory(data)
	if err == nil {
		err = CheckHistory(n.TLI, entries)
	}
	if err != nil {
		t.Errorf("%s: %v", n, err)
	}
}

func checkBackupFile(t *testing.T, dir string, n Name) {
	data, err := os.ReadFile(filepath.Join(dir, n.String()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBackup(data)
	if err == nil {
		err = b.CheckName(n)
	}
	if err != nil {
		t.Errorf("%s: %v", n, err)
	}
}

// completeValue returns the value of key=value in dir/.complete.
func completeValue(t *testing.T, dir, key string) string {
	data, err := os.ReadFile(filepath.Join(dir, ".complete"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, key+"="); ok {
			return v
		}
	}
	return ""
}
