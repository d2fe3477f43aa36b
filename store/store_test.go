package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/walgen"
)

const testSysID = 7300000000000000001

func openTest(t testing.TB, dir string, mod ...func(*Config)) *Store {
	t.Helper()
	cfg := Config{Dir: dir, CacheBytes: 32 << 20}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// put writes data under path in pieces of random size, as FUSE and rsync do.
func put(t testing.TB, s *Store, path string, data []byte) (FileInfo, error) {
	t.Helper()
	u, err := s.Create(path, FileMeta{Mode: 0o600, MTime: time.Unix(1700000000, 0)})
	if err != nil {
		return FileInfo{}, err
	}
	rng := rand.New(rand.NewPCG(uint64(len(data)), 1))
	for p := data; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(300<<10))
		if _, err := u.Write(p[:n]); err != nil {
			u.Abort()
			return FileInfo{}, err
		}
		p = p[n:]
	}
	return u.Commit()
}

func mustPut(t testing.TB, s *Store, path string, data []byte) FileInfo {
	t.Helper()
	fi, err := put(t, s, path, data)
	if err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	return fi
}

func readAll(t testing.TB, s *Store, path string) []byte {
	t.Helper()
	r, err := s.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return buf.Bytes()
}

func segment(segno uint64, mod ...func(*walgen.Segment)) walgen.Segment {
	sg := walgen.Segment{TLI: 1, SegNo: segno, SysID: testSysID, SegSize: 16 << 20, Seed: 42}
	for _, m := range mod {
		m(&sg)
	}
	return sg
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestRoundTripSizes(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	bs := s.Config().BlockSize
	for _, n := range []int{0, 1, 8191, bs - 1, bs, bs + 1, 3*bs + 17} {
		data := randomBytes(n, uint64(n))
		name := fmt.Sprintf("opaque-%d", n)
		fi := mustPut(t, s, name, data)
		if fi.Size != int64(n) || fi.Hash != rootOf(data, bs) {
			t.Fatalf("%s: info %+v", name, fi)
		}
		if got := readAll(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, differs", name, len(got))
		}
	}
}

func TestReadAtAnyOffset(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	data := segment(3, func(g *walgen.Segment) { g.SegSize = 1 << 20 }).Bytes()
	name := segment(3, func(g *walgen.Segment) { g.SegSize = 1 << 20 }).Name()
	mustPut(t, s, name, data)
	r, err := s.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		off := rng.Int64N(int64(len(data)) + 10)
		n := rng.IntN(200 << 10)
		buf := make([]byte, n)
		got, err := r.ReadAt(buf, off)
		wantN := max(0, min(n, len(data)-int(off)))
		if got != wantN {
			t.Fatalf("ReadAt(%d, %d) = %d, want %d (%v)", n, off, got, wantN, err)
		}
		if got < n && err != io.EOF {
			t.Fatalf("short read without EOF: %v", err)
		}
		if !bytes.Equal(buf[:got], data[min(int(off), len(data)):min(int(off), len(data))+got]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
		}
	}
}

func TestIdenticalRepushStoresNothing(t *testing.T) {
	s := openTest(t, t.TempDir())
	sg := segment(1)
	data := sg.Bytes()
	first := mustPut(t, s, sg.Name(), data)
	before, _ := s.Status()
	again := mustPut(t, s, sg.Name(), data)
	after, _ := s.Status()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("re-push changed status: %+v -> %+v", before, after)
	}
	if !again.Archived.Equal(first.Archived) {
		t.Fatalf("re-push changed archive time: %v -> %v", first.Archived, again.Archived)
	}
	if after.Files != 1 || after.LogicalBytes != int64(len(data)) {
		t.Fatalf("status %+v", after)
	}
}

func TestDifferentContentRefused(t *testing.T) {
	s := openTest(t, t.TempDir())
	orig := randomBytes(300<<10, 1)
	mustPut(t, s, "notes.txt", orig)
	before, _ := s.Status()
	for _, other := range [][]byte{randomBytes(300<<10, 2), orig[:len(orig)-1], append(append([]byte{}, orig...), 0)} {
		_, err := put(t, s, "notes.txt", other)
		if !errors.Is(err, ErrExists) {
			t.Fatalf("different content: err = %v, want ErrExists", err)
		}
		if !strings.Contains(err.Error(), "notes.txt") {
			t.Fatalf("error does not name the file: %v", err)
		}
	}
	if got := readAll(t, s, "notes.txt"); !bytes.Equal(got, orig) {
		t.Fatal("original changed")
	}
	after, _ := s.Status()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("refused push changed status: %+v -> %+v", before, after)
	}
}

func TestDedupAcrossNames(t *testing.T) {
	s := openTest(t, t.TempDir())
	data := randomBytes(3<<20, 9)
	mustPut(t, s, "a", data)
	one, _ := s.Status()
	mustPut(t, s, "b", data)
	two, _ := s.Status()
	if two.StoredBytes != one.StoredBytes || two.Files != 2 {
		t.Fatalf("same content under a second name stored again: %+v -> %+v", one, two)
	}
}

func TestInvalidSegmentsRefused(t *testing.T) {
	s := openTest(t, t.TempDir())
	good := segment(5)
	cases := []struct {
		name string
		path string
		data func() []byte
		want string
	}{
		{"bad magic", good.Name(), func() []byte { b := good.Bytes(); b[0], b[1] = 0x34, 0x12; return b }, "magic"},
		{"pageaddr", segment(6).Name(), good.Bytes, "pageaddr"},
		{"wrong size", good.Name(), func() []byte { return good.Bytes()[:8<<20] }, "size"},
		{"tli above name", good.Name(), func() []byte { return segment(5, func(g *walgen.Segment) { g.TLI = 2 }).Bytes() }, "tli"},
		{"too short", good.Name(), func() []byte { return good.Bytes()[:100] }, "shorter than one wal page"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := put(t, s, tc.path, tc.data())
			if !errors.Is(err, ErrInvalidWAL) {
				t.Fatalf("err = %v, want ErrInvalidWAL", err)
			}
			if !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if _, err := s.Stat(tc.path); !errors.Is(err, ErrNotFound) {
				t.Fatalf("refused file is visible: %v", err)
			}
		})
	}
}

func TestNewTimelineSegmentCarriesParentTLI(t *testing.T) {
	s := openTest(t, t.TempDir())
	// The first segment of timeline 2 is a copy of timeline 1's segment up
	// to the switch point: its first page header says tli 1.
	sg := segment(7)
	name := "00000002" + sg.Name()[8:]
	mustPut(t, s, name, sg.Bytes())
}

func TestOtherClusterRefused(t *testing.T) {
	s := openTest(t, t.TempDir())
	mustPut(t, s, "c1/"+segment(1).Name(), segment(1).Bytes())
	other := segment(2, func(g *walgen.Segment) { g.SysID = testSysID + 1 })
	_, err := put(t, s, "c1/"+other.Name(), other.Bytes())
	if !errors.Is(err, ErrClusterMismatch) {
		t.Fatalf("err = %v, want ErrClusterMismatch", err)
	}
	// The same segment in its own directory is fine.
	mustPut(t, s, "c2/"+other.Name(), other.Bytes())
	m, err := s.DirMeta("c1")
	if err != nil || m.SysID != testSysID || m.SegSize != 16<<20 || m.Version != "15" || m.Segments != 1 {
		t.Fatalf("dir meta %+v, %v", m, err)
	}
}

func TestAbortLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	sg := segment(9)
	u, err := s.Create(sg.Name(), FileMeta{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(sg.Bytes()[:5<<20]); err != nil {
		t.Fatal(err)
	}
	u.Abort()
	if _, err := s.Stat(sg.Name()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted upload visible: %v", err)
	}
	st, _ := s.Status()
	if st.Files != 0 || st.StoredBytes != 0 {
		t.Fatalf("aborted upload counted: %+v", st)
	}
	// The whole file can be uploaded afterwards.
	mustPut(t, s, sg.Name(), sg.Bytes())
}

func TestSwitchedSegmentIsTiny(t *testing.T) {
	s := openTest(t, t.TempDir())
	sg := segment(12, func(g *walgen.Segment) { g.UsedPages = 1 })
	mustPut(t, s, sg.Name(), sg.Bytes())
	st, _ := s.Status()
	if st.StoredBytes >= 4096 {
		t.Fatalf("switched segment stored in %d bytes, want < 4 KiB", st.StoredBytes)
	}
	if got := readAll(t, s, sg.Name()); !bytes.Equal(got, sg.Bytes()) {
		t.Fatal("switched segment reads back wrong")
	}
}

func TestRemoveReleasesBlocks(t *testing.T) {
	s := openTest(t, t.TempDir())
	a, b := randomBytes(2<<20, 1), randomBytes(2<<20, 2)
	mustPut(t, s, "a", a)
	mustPut(t, s, "b", b)
	mustPut(t, s, "a2", a)
	full, _ := s.Status()
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status()
	if st.StoredBytes != full.StoredBytes || st.Files != 2 {
		t.Fatalf("removing a shared file released its blocks: %+v -> %+v", full, st)
	}
	if err := s.Remove("a2"); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status()
	if st.StoredBytes >= full.StoredBytes || st.Files != 1 || st.LogicalBytes != int64(len(b)) {
		t.Fatalf("removal not accounted: %+v -> %+v", full, st)
	}
	if err := s.Remove("a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second remove: %v", err)
	}
	if got := readAll(t, s, "b"); !bytes.Equal(got, b) {
		t.Fatal("other file damaged")
	}
}

func TestConcurrentUploadsGroupCommit(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, func(c *Config) { c.BlockSize = 64 << 10 })
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n*2)
	for i := 0; i < n; i++ {
		wg.Add(2)
		sg := segment(uint64(i+1), func(g *walgen.Segment) { g.SegSize = 1 << 20; g.Seed = uint64(i) })
		for j := 0; j < 2; j++ { // two writers of the same segment, like primary and standby
			go func() {
				defer wg.Done()
				_, err := put(t, s, "c/"+sg.Name(), sg.Bytes())
				errs <- err
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openTest(t, dir, func(c *Config) { c.BlockSize = 64 << 10 })
	for i := 0; i < n; i++ {
		sg := segment(uint64(i+1), func(g *walgen.Segment) { g.SegSize = 1 << 20; g.Seed = uint64(i) })
		if got := readAll(t, s, "c/"+sg.Name()); !bytes.Equal(got, sg.Bytes()) {
			t.Fatalf("segment %d differs after reopen", i)
		}
	}
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil || len(rep.Problems) != 0 || rep.Files != n {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestCorruptPackDetected(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	a, b := randomBytes(1<<20, 11), randomBytes(1<<20, 12)
	mustPut(t, s, "a", a)
	st1, _ := s.Status()
	mustPut(t, s, "b", b)
	s.Close()
	// Flip one byte in the middle of a's record (the first after the header).
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	f, err := os.OpenFile(packs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	off := int64(packHeaderLen) + st1.StoredBytes/2
	one := []byte{0}
	f.ReadAt(one, off)
	one[0] ^= 0x40
	f.WriteAt(one, off)
	f.Close()

	s = openTest(t, dir)
	r, err := s.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadAt(make([]byte, 100), 0)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "a:") {
		t.Fatalf("corrupt read: err = %v, want ErrCorrupt naming the file", err)
	}
	if got := readAll(t, s, "b"); !bytes.Equal(got, b) {
		t.Fatal("undamaged file unreadable")
	}
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Path != "a" {
		t.Fatalf("verify problems = %+v, want exactly file a", rep.Problems)
	}
}

func TestTornTailRepaired(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	data := randomBytes(2<<20, 5)
	mustPut(t, s, "kept", data)
	s.Close()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	st, _ := os.Stat(packs[0])
	f, _ := os.OpenFile(packs[0], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("WBLK half a record that never committed"))
	f.Close()
	s = openTest(t, dir)
	after, _ := os.Stat(packs[0])
	if after.Size() != st.Size() {
		t.Fatalf("pack not truncated: %d -> %d", st.Size(), after.Size())
	}
	if got := readAll(t, s, "kept"); !bytes.Equal(got, data) {
		t.Fatal("committed file damaged by repair")
	}
}

func TestSecondOpenRefused(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir)
	_, err := Open(Config{Dir: dir})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
}

func TestMkdirRmdir(t *testing.T) {
	s := openTest(t, t.TempDir())
	if err := s.Mkdir("clusterA"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.IsDir("clusterA"); !ok {
		t.Fatal("mkdir not visible")
	}
	mustPut(t, s, "clusterA/x", []byte("x"))
	if err := s.Rmdir("clusterA"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := s.Remove("clusterA/x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir("clusterA"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := SplitPath("a/b/c"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("nested path accepted: %v", err)
	}
	if _, _, err := SplitPath("../x"); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("dot-dot accepted: %v", err)
	}
	for _, bad := range []string{"a\nb", "ns/x\ty", "\x1b[31mred", "del\x7f", "bad\nns/x"} {
		if _, _, err := SplitPath(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

// A block repeated inside one file is stored once and counted per use, so
// removing the files releases it exactly when the last use goes.
func TestRepeatedBlockRefcounts(t *testing.T) {
	s := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	block := randomBytes(64<<10, 77)
	data := bytes.Repeat(block, 3)
	mustPut(t, s, "a", data)
	one, _ := s.Status()
	if one.StoredBytes <= 0 || one.StoredBytes > int64(len(block)+100) {
		t.Fatalf("three copies of one block stored in %d bytes", one.StoredBytes)
	}
	mustPut(t, s, "b", data)
	if err := s.Remove("a"); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, "b"); !bytes.Equal(got, data) {
		t.Fatal("b damaged by removing a")
	}
	if st, _ := s.Status(); st.StoredBytes != one.StoredBytes {
		t.Fatalf("stored bytes %d after removing a, want %d", st.StoredBytes, one.StoredBytes)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(); st.StoredBytes != 0 {
		t.Fatalf("stored bytes %d after removing every file", st.StoredBytes)
	}
}
