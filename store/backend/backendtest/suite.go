// Package backendtest is the conformance suite every backend.Backend
// implementation (and every decorator over one) must pass, and a helper
// that starts a real S3 server (versitygw) for the tests that need one.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/walrus-archive/walrus/store/backend"
)

// Options tells the suite what the implementation guarantees.
type Options struct {
	// Races is the number of rounds of concurrent PutIfAbsent on one name
	// (default 200); each round has RaceWriters writers (default 8).
	Races, RaceWriters int
	// WeakConditionalCreate: the storage does not guarantee that exactly
	// one of concurrent PutIfAbsent calls wins. The race test then logs
	// how often more than one won and asserts only what such storage
	// still guarantees (at least one winner; the object is one winner's).
	WeakConditionalCreate bool
}

// Run runs the suite against the backends newBackend returns; each call
// must return an empty backend.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend, o Options) {
	if o.Races == 0 {
		o.Races = 200
	}
	if o.RaceWriters == 0 {
		o.RaceWriters = 8
	}
	t.Run("PutReadStat", func(t *testing.T) { testPutReadStat(t, newBackend(t)) })
	t.Run("RangeEdges", func(t *testing.T) { testRangeEdges(t, newBackend(t)) })
	t.Run("NotExist", func(t *testing.T) { testNotExist(t, newBackend(t)) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newBackend(t)) })
	t.Run("AtomicCreate", func(t *testing.T) { testAtomicCreate(t, newBackend(t)) })
	t.Run("PutIfAbsent", func(t *testing.T) { testPutIfAbsent(t, newBackend(t)) })
	t.Run("PutIfAbsentRace", func(t *testing.T) { testPutIfAbsentRace(t, newBackend(t), o) })
	t.Run("List", func(t *testing.T) { testList(t, newBackend(t)) })
	t.Run("ListAfter", func(t *testing.T) { CheckListAfter(t, newBackend(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newBackend(t)) })
	t.Run("InvalidNames", func(t *testing.T) { testInvalidNames(t, newBackend(t)) })
	t.Run("Cancelled", func(t *testing.T) { testCancelled(t, newBackend(t)) })
}

// Data returns n deterministic pseudo-random bytes for seed.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Put stores data as name, failing t on error.
func Put(t testing.TB, b backend.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

// ReadAll reads the whole object (Stat, then ReadAt).
func ReadAll(ctx context.Context, b backend.Backend, name string) ([]byte, error) {
	info, err := b.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	p := make([]byte, info.Size)
	if err := b.ReadAt(ctx, name, p, 0); err != nil {
		return nil, err
	}
	return p, nil
}

func mustRead(t testing.TB, b backend.Backend, name string, want []byte) {
	t.Helper()
	got, err := ReadAll(context.Background(), b, name)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%q: read %d bytes that differ from the %d written", name, len(got), len(want))
	}
}

// sizes straddle 0, 1 and the encryption decorator's 64 KiB chunks.
var sizes = []int{0, 1, 100, 65535, 65536, 65537, 3*65536 + 17}

func testPutReadStat(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	for i, n := range sizes {
		name := fmt.Sprintf("prs/obj-%d", n)
		data := Data(uint64(i), n)
		Put(t, b, name, data)
		info, err := b.Stat(ctx, name)
		if err != nil || info.Size != int64(n) || info.Name != name {
			t.Fatalf("Stat(%q) = %+v, %v; want size %d", name, info, err, n)
		}
		mustRead(t, b, name, data)
	}
}

func testRangeEdges(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	n := 3*65536 + 17
	data := Data(7, n)
	Put(t, b, "range", data)
	ok := []struct{ off, len int }{
		{0, 1}, {n - 1, 1}, {65535, 2}, {65536, 65536}, {1, n - 1}, {100, 2 * 65536}, {n, 0}, {0, 0}, {n - 17, 17},
	}
	for _, c := range ok {
		p := make([]byte, c.len)
		if err := b.ReadAt(ctx, "range", p, int64(c.off)); err != nil {
			t.Fatalf("ReadAt(off %d, len %d) of %d bytes: %v", c.off, c.len, n, err)
		}
		if !bytes.Equal(p, data[c.off:c.off+c.len]) {
			t.Fatalf("ReadAt(off %d, len %d): wrong bytes", c.off, c.len)
		}
	}
	short := []struct{ off, len int }{{n, 1}, {n - 1, 2}, {0, n + 1}, {n + 10, 5}, {n + 1, 0}, {-1, 1}}
	for _, c := range short {
		err := b.ReadAt(ctx, "range", make([]byte, c.len), int64(c.off))
		if !errors.Is(err, backend.ErrShort) {
			t.Fatalf("ReadAt(off %d, len %d) of %d bytes = %v; want ErrShort", c.off, c.len, n, err)
		}
		if backend.IsTransient(err) || backend.IsNotExist(err) {
			t.Fatalf("ErrShort classified transient or not-exist: %v", err)
		}
	}
}

func testNotExist(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	if _, err := b.Stat(ctx, "missing/x"); !backend.IsNotExist(err) {
		t.Fatalf("Stat of a missing object = %v; want ErrNotExist", err)
	}
	if err := b.ReadAt(ctx, "missing/x", make([]byte, 10), 0); !backend.IsNotExist(err) {
		t.Fatalf("ReadAt of a missing object = %v; want ErrNotExist", err)
	}
	if err := b.ReadAt(ctx, "missing/x", nil, 0); !backend.IsNotExist(err) {
		t.Fatalf("empty ReadAt of a missing object = %v; want ErrNotExist", err)
	}
	if _, err := b.Stat(ctx, "missing/x"); backend.IsTransient(err) {
		t.Fatalf("not-exist classified transient: %v", err)
	}
}

func testReplace(t *testing.T, b backend.Backend) {
	a, c := Data(1, 70000), Data(2, 5)
	Put(t, b, "replace", a)
	Put(t, b, "replace", c)
	mustRead(t, b, "replace", c)
}

// gate is an io.ReaderAt over data that, once, stops at half the data and
// signals reached, then waits for release (or returns an error when
// release is closed with fail set).
type gate struct {
	data    []byte
	once    sync.Once
	reached chan struct{}
	release chan struct{}
}

func newGate(data []byte) *gate {
	return &gate{data: data, reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(g.data)/2) {
		g.once.Do(func() { close(g.reached) })
		<-g.release
	}
	if off >= int64(len(g.data)) {
		return 0, io.EOF
	}
	n := copy(p, g.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// testAtomicCreate holds a Put in the middle of its data and checks that
// nobody sees the object (or a changed one) until Put returns, and that a
// cancelled Put leaves the old object.
func testAtomicCreate(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	data := Data(3, 1<<20)
	g := newGate(data)
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, "atomic/new", g, int64(len(data))) }()
	<-g.reached
	if _, err := b.Stat(ctx, "atomic/new"); !backend.IsNotExist(err) {
		t.Errorf("Stat during Put = %v; want ErrNotExist", err)
	}
	if names := list(t, b, "atomic/"); len(names) != 0 {
		t.Errorf("List during Put = %v; want nothing", names)
	}
	close(g.release)
	if err := <-done; err != nil {
		t.Fatalf("Put: %v", err)
	}
	mustRead(t, b, "atomic/new", data)

	// A replacing Put cancelled before its source was read to the end
	// leaves the old object whole.
	old := Data(4, 1000)
	Put(t, b, "atomic/old", old)
	cctx, cancel := context.WithCancel(ctx)
	g = newGate(data)
	go func() { done <- b.Put(cctx, "atomic/old", g, int64(len(data))) }()
	<-g.reached
	mustRead(t, b, "atomic/old", old)
	cancel()
	close(g.release)
	if err := <-done; err == nil {
		t.Fatalf("cancelled Put returned nil")
	}
	mustRead(t, b, "atomic/old", old)
}

func testPutIfAbsent(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	first, second := Data(5, 100), Data(6, 200)
	if err := b.PutIfAbsent(ctx, "claim", bytes.NewReader(first), int64(len(first))); err != nil {
		t.Fatalf("first PutIfAbsent: %v", err)
	}
	err := b.PutIfAbsent(ctx, "claim", bytes.NewReader(second), int64(len(second)))
	if !backend.IsExist(err) || backend.IsTransient(err) {
		t.Fatalf("second PutIfAbsent = %v; want ErrExist, not transient", err)
	}
	mustRead(t, b, "claim", first)
	if err := b.Delete(ctx, "claim"); err != nil {
		t.Fatal(err)
	}
	if err := b.PutIfAbsent(ctx, "claim", bytes.NewReader(second), int64(len(second))); err != nil {
		t.Fatalf("PutIfAbsent after Delete: %v", err)
	}
	mustRead(t, b, "claim", second)
}

// testPutIfAbsentRace runs rounds of concurrent PutIfAbsent on one name
// and counts the winners of each.
func testPutIfAbsentRace(t *testing.T, b backend.Backend, o Options) {
	multi, none := Race(t, []backend.Backend{b}, "race/", o.Races, o.RaceWriters)
	if none > 0 {
		t.Errorf("%d rounds had no winner", none)
	}
	if multi > 0 && !o.WeakConditionalCreate {
		t.Errorf("%d of %d rounds had more than one winner: conditional create is not atomic", multi, o.Races)
	}
}

// Race runs rounds of writers concurrent PutIfAbsent calls on one name
// per round (prefix + round), writer w through backends[w%len(backends)],
// and returns how many rounds had more than one winner and how many had
// none. Whatever the count, it fails t if a call failed with anything but
// ErrExist, or if the object read back afterwards is not the content of a
// writer that was told it won.
func Race(t *testing.T, backends []backend.Backend, prefix string, rounds, writers int) (multi, none int) {
	ctx := context.Background()
	for round := range rounds {
		name := fmt.Sprintf("%s%d", prefix, round)
		content := func(w int) []byte {
			// 64 KiB: long enough for the uploads to overlap.
			return append([]byte(fmt.Sprintf("writer %d of round %d\n", w, round)), make([]byte, 64<<10)...)
		}
		var wg sync.WaitGroup
		var wins atomic.Int32
		winners := make([]bool, writers)
		errs := make([]error, writers)
		start := make(chan struct{})
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := content(w)
				<-start
				err := backends[w%len(backends)].PutIfAbsent(ctx, name, bytes.NewReader(data), int64(len(data)))
				if err == nil {
					wins.Add(1)
					winners[w] = true
				} else if !backend.IsExist(err) {
					errs[w] = err
				}
			}()
		}
		close(start)
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: PutIfAbsent failed with neither nil nor ErrExist: %v", round, err)
			}
		}
		got, err := ReadAll(ctx, backends[0], name)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		var w, r int
		if _, err := fmt.Sscanf(string(got), "writer %d of round %d\n", &w, &r); err != nil || r != round || w >= writers || !bytes.Equal(got, content(w)) {
			t.Fatalf("round %d: object holds %.40q (%d bytes), no writer's content", round, got, len(got))
		}
		if !winners[w] {
			t.Errorf("round %d: object holds writer %d's content, but writer %d got ErrExist", round, w, w)
		}
		switch n := wins.Load(); {
		case n == 0:
			none++
		case n > 1:
			multi++
		}
	}
	t.Logf("%d rounds of %d concurrent PutIfAbsent through %d endpoint(s): %d with more than one winner, %d with none", rounds, writers, len(backends), multi, none)
	return multi, none
}

func list(t testing.TB, b backend.Backend, prefix string) []string {
	t.Helper()
	var names []string
	if err := b.List(context.Background(), prefix, func(i backend.Info) error {
		names = append(names, i.Name)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	sort.Strings(names)
	return names
}

// ListObjects is how many objects testList creates under its prefix; an
// S3 backend with a ListPageSize below it lists them in several pages.
const ListObjects = 25

func testList(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	var want []string
	sizes := map[string]int64{}
	for i := range ListObjects {
		name := fmt.Sprintf("list/a%02d", i)
		if i%5 == 0 {
			name = fmt.Sprintf("list/sub/b%02d", i)
		}
		Put(t, b, name, Data(uint64(i), i))
		want = append(want, name)
		sizes[name] = int64(i)
	}
	Put(t, b, "listing", []byte("x"))
	Put(t, b, "other/a00", []byte("y"))
	sort.Strings(want)
	seen := map[string]int{}
	err := b.List(ctx, "list/", func(i backend.Info) error {
		seen[i.Name]++
		if i.Size != sizes[i.Name] {
			t.Errorf("List: %q has size %d, want %d", i.Name, i.Size, sizes[i.Name])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range want {
		if seen[n] != 1 {
			t.Errorf("List(list/) reported %q %d times, want once", n, seen[n])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("List(list/) reported %d names, want %d: %v", len(seen), len(want), seen)
	}
	if got := list(t, b, "list/a1"); strings.Join(got, ",") != "list/a11,list/a12,list/a13,list/a14,list/a16,list/a17,list/a18,list/a19" {
		t.Errorf("List(list/a1) = %v", got)
	}
	if got := list(t, b, "list"); len(got) != len(want)+1 {
		t.Errorf("List(list) = %d names, want %d (with listing)", len(got), len(want)+1)
	}
	if got := list(t, b, "nothing/"); len(got) != 0 {
		t.Errorf("List(nothing/) = %v", got)
	}
	stop := errors.New("stop")
	calls := 0
	err = b.List(ctx, "list/", func(backend.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with fn failing: %v after %d calls; want fn's error after 1", err, calls)
	}
}

// ListAfterNames are the names testListAfter creates under "la/", in
// byte order: 20 of them, so that an S3 backend with a ListPageSize
// below that lists them in several pages. "a-b" and "a.b" sort before
// "a/b" ('-' and '.' before '/'), which a directory walk in the order of
// entry names would get wrong.
var ListAfterNames = func() []string {
	names := []string{"la/a-b", "la/a.b", "la/a/b", "la/a/c/d"}
	for i := range 12 {
		names = append(names, fmt.Sprintf("la/a%02d", i))
	}
	return append(names, "la/b", "la/b0", "la/sub/x", "la/sub/y")
}()

// CheckListAfter is the suite's ListAfter test on an empty backend b
// (for a backend configured otherwise, e.g. another S3 page size).
func CheckListAfter(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	sizes := map[string]int64{}
	for i, n := range ListAfterNames {
		Put(t, b, n, Data(uint64(i), i))
		sizes[n] = int64(i)
	}
	for _, n := range []string{"la-x", "la.x", "laz", "k/z", "lb/a"} {
		Put(t, b, n, []byte("o"))
	}
	all := ListAfterNames
	from := func(name string) []string { return all[slices.Index(all, name):] }
	for _, c := range []struct {
		prefix, after string
		want          []string
	}{
		{"la/", "", all},
		{"la/", "la/a05", from("la/a06")},         // strictly after
		{"la/", "la/a05x", from("la/a06")},        // after a name not present
		{"la/", "la/a/", from("la/a/b")},          // after a "directory"
		{"la/", "la/a/b", from("la/a/c/d")},       // into a subdirectory
		{"la/", "la/a/c/d", from("la/a00")},       // out of one
		{"la/", "la/a-b", from("la/a.b")},         // byte order, not entry order
		{"la/", "la/a.c", from("la/a/b")},         // between "a.b" and "a/b"
		{"la/", "a", all},                         // before the prefix
		{"la/", "la/sub/x", []string{"la/sub/y"}}, // the last but one
		{"la/", "la/sub/y", nil},                  // the last
		{"la/", "lz", nil},                        // past the prefix
		{"la/a0", "la/a03", all[8:14]},            // prefix in a component
		{"la/sub/", "", []string{"la/sub/x", "la/sub/y"}},
		{"la", "la/sub/x", []string{"la/sub/y", "laz"}},
		{"la", "", append(append([]string{"la-x", "la.x"}, all...), "laz")},
		{"", "la/sub/y", []string{"laz", "lb/a"}},
		{"nothing/", "", nil},
		{"nothing/", "a", nil},
	} {
		var got []string
		err := b.ListAfter(ctx, c.prefix, c.after, func(i backend.Info) error {
			got = append(got, i.Name)
			if sz, ok := sizes[i.Name]; ok && i.Size != sz {
				t.Errorf("ListAfter: %q has size %d, want %d", i.Name, i.Size, sz)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("ListAfter(%q, %q): %v", c.prefix, c.after, err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("ListAfter(%q, %q) =\n\t%v\nwant\n\t%v", c.prefix, c.after, got, c.want)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := b.ListAfter(ctx, "la/", "la/a05", func(backend.Info) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("ListAfter with fn failing: %v after %d calls; want fn's error after 1", err, calls)
	}
}

func testDelete(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	Put(t, b, "del/x", []byte("x"))
	for i := range 2 { // the second Delete finds nothing: still nil
		if err := b.Delete(ctx, "del/x"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := b.Stat(ctx, "del/x"); !backend.IsNotExist(err) {
		t.Fatalf("Stat after Delete = %v; want ErrNotExist", err)
	}
	if got := list(t, b, "del/"); len(got) != 0 {
		t.Fatalf("List after Delete = %v", got)
	}
	if err := b.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("Delete of a never-created object: %v", err)
	}
}

func testInvalidNames(t *testing.T, b backend.Backend) {
	ctx := context.Background()
	for _, name := range []string{"", "/abs", "a//b", "../up", "a/../b", ".tmp-x", "dir/.hidden", "sp ace", "a/"} {
		if err := b.Put(ctx, name, bytes.NewReader(nil), 0); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("Put(%q) = %v; want ErrInvalidName", name, err)
		}
		if _, err := b.Stat(ctx, name); !errors.Is(err, backend.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v; want ErrInvalidName", name, err)
		}
	}
}

func testCancelled(t *testing.T, b backend.Backend) {
	Put(t, b, "cancel", []byte("x"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	checks := map[string]error{
		"Put":         b.Put(ctx, "cancel2", bytes.NewReader([]byte("y")), 1),
		"PutIfAbsent": b.PutIfAbsent(ctx, "cancel3", bytes.NewReader([]byte("y")), 1),
		"ReadAt":      b.ReadAt(ctx, "cancel", make([]byte, 1), 0),
		"List":        b.List(ctx, "", func(backend.Info) error { return nil }),
		"ListAfter":   b.ListAfter(ctx, "", "a", func(backend.Info) error { return nil }),
	}
	for what, err := range checks {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v; want context.Canceled", what, err)
		}
	}
	for _, n := range []string{"cancel2", "cancel3"} {
		if _, err := b.Stat(context.Background(), n); !backend.IsNotExist(err) {
			t.Errorf("%q after a cancelled Put: Stat = %v; want ErrNotExist", n, err)
		}
	}
}
