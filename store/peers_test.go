package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// peerEnv is one bucket shared by several front-ends: each its own packs
// prefix, all one claims prefix (archive/).
type peerEnv struct {
	gw     *backendtest.VersityGW
	bucket string

	mu    sync.Mutex
	reads map[string]int // pack objects read through OpenPrefix backends
	// listings: per OpenPrefix prefix, the objects each listing of its
	// packs/ reported and the LIST requests (pages) it took, in the order
	// of the listings.
	listings map[string][]listing
	pages    map[string]int // LIST requests sent, by the prefix listed
}

type listing struct{ objects, pages int }

// peerListPage is the S3 page size of the env's backends: the listing of
// a few hundred packs takes several pages.
const peerListPage = 50

// listCounter counts the LIST requests (ListObjectsV2) sent, by prefix.
type listCounter struct{ e *peerEnv }

func (c listCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if q := r.URL.Query(); r.Method == http.MethodGet && q.Get("list-type") == "2" {
		c.e.mu.Lock()
		c.e.pages[q.Get("prefix")]++
		c.e.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func newPeerEnv(t *testing.T) *peerEnv {
	gw := backendtest.StartVersityGW(t)
	return &peerEnv{gw: gw, bucket: gw.NewBucket(t), reads: map[string]int{},
		listings: map[string][]listing{}, pages: map[string]int{}}
}

func (e *peerEnv) backend(prefix string) (backend.Backend, error) {
	s3, err := backend.NewS3(backend.S3Config{Endpoint: e.gw.Endpoint, Bucket: e.bucket, Prefix: prefix,
		AccessKey: e.gw.AccessKey, SecretKey: e.gw.Secret, ListPageSize: peerListPage, Transport: listCounter{e}})
	if err != nil {
		return nil, err
	}
	return backend.Stack(s3, backend.StackOptions{Attempts: 2, BackoffBase: 10 * time.Millisecond,
		BackoffMax: 50 * time.Millisecond, Timeout: 5 * time.Second}), nil
}

func (e *peerEnv) mustBackend(t *testing.T, prefix string) backend.Backend {
	t.Helper()
	b, err := e.backend(prefix)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// packReads returns a copy of the per-object read counts.
func (e *peerEnv) packReads() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := map[string]int{}
	for k, v := range e.reads {
		m[k] = v
	}
	return m
}

// countingBackend counts the reads of pack objects (downloads) and the
// objects each listing of packs/ reports.
type countingBackend struct {
	backend.Backend
	e      *peerEnv
	prefix string
}

func (c countingBackend) List(ctx context.Context, prefix string, fn func(backend.Info) error) error {
	return c.count(prefix, fn, func(fn func(backend.Info) error) error { return c.Backend.List(ctx, prefix, fn) })
}

func (c countingBackend) ListAfter(ctx context.Context, prefix, after string, fn func(backend.Info) error) error {
	return c.count(prefix, fn, func(fn func(backend.Info) error) error { return c.Backend.ListAfter(ctx, prefix, after, fn) })
}

// count runs list, and records a listing of packs/ (the follower's, one
// at a time per prefix, so the pages sent meanwhile are its own).
func (c countingBackend) count(prefix string, fn func(backend.Info) error, list func(func(backend.Info) error) error) error {
	key := c.prefix + remotePackPrefix
	c.e.mu.Lock()
	pages := c.e.pages[key]
	c.e.mu.Unlock()
	n := 0
	err := list(func(in backend.Info) error { n++; return fn(in) })
	if prefix == remotePackPrefix {
		c.e.mu.Lock()
		c.e.listings[c.prefix] = append(c.e.listings[c.prefix], listing{n, c.e.pages[key] - pages})
		c.e.mu.Unlock()
	}
	return err
}

// packListings returns the listings of prefix's packs/ so far.
func (e *peerEnv) packListings(prefix string) []listing {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.listings[prefix])
}

func (c countingBackend) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	if strings.HasPrefix(name, remotePackPrefix) {
		c.e.mu.Lock()
		c.e.reads[c.prefix+name]++
		c.e.mu.Unlock()
	}
	return c.Backend.ReadAt(ctx, name, p, off)
}

func (e *peerEnv) open(t *testing.T, dir, prefix string, mod ...func(*Config)) *Store {
	t.Helper()
	remote, claims := e.mustBackend(t, prefix), e.mustBackend(t, "archive/")
	return openTest(t, dir, append([]func(*Config){func(c *Config) {
		c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 512<<10, 1<<20
		c.Remote, c.RemotePrefix, c.RollAge = remote, prefix, 100*time.Millisecond
		c.Claims, c.AckTimeout = claims, 10*time.Second
		c.PeerInterval, c.PeerWait = 50*time.Millisecond, 500*time.Millisecond
		c.OpenPrefix = func(p string) (backend.Backend, error) {
			b, err := e.backend(p)
			if err != nil {
				return nil, err
			}
			return countingBackend{Backend: b, e: e, prefix: p}, nil
		}
	}}, mod...)...)
}

func peerFile(seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 15))
	b := make([]byte, 2048+rng.IntN(6<<10))
	for i := range b {
		b[i] = byte(rng.IntN(16)) // compressible, distinct per seed
	}
	return b
}

// holdsAll reports whether s holds every file of want byte-identically.
func holdsAll(t *testing.T, s *Store, want map[string][]byte) bool {
	t.Helper()
	for name, data := range want {
		if _, err := s.lookup(name); err != nil {
			return false
		}
		if got := readAll(t, s, name); !bytes.Equal(got, data) {
			t.Fatalf("%s: %d bytes read, not the %d pushed", name, len(got), len(data))
		}
	}
	return true
}

func peerStatus(t *testing.T, s *Store) []PeerStatus {
	t.Helper()
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Peers
}

func TestPeersServeEachOthersFiles(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	b := e.open(t, t.TempDir(), "fe2/")
	want := map[string][]byte{}
	for i := range 20 {
		for j, s := range []*Store{a, b} {
			name := fmt.Sprintf("file-%d-%02d", j, i)
			if i%2 == 1 {
				name = "ns/" + name // a namespace too
			}
			want[name] = peerFile(uint64(100*j + i))
			mustPut(t, s, name, want[name])
		}
	}
	// WAL segments of 1 MiB, and 700 KiB that do not compress: more than
	// fit one 512 KiB pack, so the blocks of one file span packs (the
	// look-back).
	want["big"] = randomBytes(700<<10, 3)
	mustPut(t, a, "big", want["big"])
	for i := uint64(1); i <= 2; i++ {
		sg := segment(i, func(g *walgen.Segment) { g.SegSize = 1 << 20 })
		name := "db/" + sg.Name()
		want[name] = sg.Bytes()
		mustPut(t, a, name, want[name])
	}
	for i, s := range []*Store{a, b} {
		testenv.WaitFor(t, fmt.Sprintf("store %d holds all 43 files", i), 30*time.Second, func() bool { return holdsAll(t, s, want) })
	}
	for i, s := range []*Store{a, b} {
		testenv.WaitFor(t, fmt.Sprintf("store %d follows its peer with nothing behind", i), 30*time.Second, func() bool {
			ps := peerStatus(t, s)
			return len(ps) == 1 && ps[0].PacksBehind == 0 && ps[0].Marker > 0 && ps[0].LastError == ""
		})
		ps := peerStatus(t, s)
		if ps[0].Adopted != int64(20+3*i) || !strings.Contains(ps[0].Packs, []string{"fe2/", "fe1/"}[i]) {
			t.Fatalf("store %d: peer status %+v, want %d adopted from %s", i, ps[0], 20+3*i, []string{"fe2/", "fe1/"}[i])
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		if got := readAll(t, b, name); !bytes.Equal(got, data) {
			t.Fatalf("after closing A, B reads %d bytes of %s, not %d", len(got), name, len(data))
		}
	}
}

func TestPeersNotFoundIsNotAnswered(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/", func(c *Config) { c.RollAge = time.Hour })
	b := e.open(t, t.TempDir(), "fe2/")
	mustPut(t, a, "held-by-a", peerFile(1))
	start := time.Now()
	_, err := b.Stat("held-by-a")
	took := time.Since(start)
	if !errors.Is(err, ErrElsewhere) || errors.Is(err, ErrNotFound) {
		t.Fatalf("B's Stat of a name A holds: %v, want ErrElsewhere", err)
	}
	if !strings.HasPrefix(err.Error(), "store: held-by-a is archived by front-end ") {
		t.Fatalf("ErrElsewhere message %q does not name the file and the front-end", err)
	}
	if took < 400*time.Millisecond || took > 20*time.Second {
		t.Fatalf("B answered after %v, want about PeerWait (500ms)", took)
	}
	if _, err := b.Open("held-by-a"); !errors.Is(err, ErrElsewhere) {
		t.Fatalf("B's Open of a name A holds: %v, want ErrElsewhere", err)
	}
	if _, err := b.Stat("nobody-has-it"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("B's Stat of an unclaimed name: %v, want ErrNotFound", err)
	}
	if _, err := a.Stat("nobody-has-it"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A's Stat of an unclaimed name: %v, want ErrNotFound", err)
	}
}

func TestPeersRestartDoesNotDownloadAgain(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	bdir := t.TempDir()
	b := e.open(t, bdir, "fe2/")
	want := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("first-%d", i)
		want[name] = peerFile(uint64(i))
		mustPut(t, a, name, want[name])
	}
	testenv.WaitFor(t, "B holds A's files", 30*time.Second, func() bool { return holdsAll(t, b, want) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before := e.packReads()
	if len(before) == 0 {
		t.Fatal("B adopted A's files without downloading any pack of A's")
	}
	b = e.open(t, bdir, "fe2/")
	more := map[string][]byte{}
	for i := range 5 {
		name := fmt.Sprintf("second-%d", i)
		more[name] = peerFile(uint64(50 + i))
		mustPut(t, a, name, more[name])
	}
	testenv.WaitFor(t, "reopened B holds A's new files", 30*time.Second, func() bool { return holdsAll(t, b, more) })
	if !holdsAll(t, b, want) {
		t.Fatal("reopened B lost A's first files")
	}
	after := e.packReads()
	for name, n := range after {
		if strings.HasPrefix(name, "fe1/") && before[name] != 0 && n != before[name] {
			t.Fatalf("reopened B read %s again (%d reads before the restart, %d after)", name, before[name], n)
		}
	}
	if len(after) <= len(before) {
		t.Fatalf("reopened B downloaded no new pack of A's (%d objects read before, %d after)", len(before), len(after))
	}
}

// TestPeersLookupWaitsForArrival: a lookup of a name another front-end
// holds kicks the follower (whose interval is an hour here) and answers
// with the file once it arrives.
func TestPeersLookupWaitsForArrival(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	b := e.open(t, t.TempDir(), "fe2/", func(c *Config) { c.PeerInterval, c.PeerWait = time.Hour, 30*time.Second })
	// B's first pass (at its start) is over before A's file exists.
	testenv.WaitFor(t, "B's first pass", 10*time.Second, func() bool { return len(peerStatus(t, b)) == 1 })
	data := peerFile(7)
	mustPut(t, a, "wanted", data)
	fi, err := b.Stat("wanted")
	if err != nil {
		t.Fatalf("B's Stat of a file A holds: %v, want it once it arrived", err)
	}
	if fi.Size != int64(len(data)) {
		t.Fatalf("B's Stat: %d bytes, want %d", fi.Size, len(data))
	}
	if got := readAll(t, b, "wanted"); !bytes.Equal(got, data) {
		t.Fatalf("B reads %d bytes, not the %d pushed to A", len(got), len(data))
	}
}

// putEmptyPack stores a pack object of id with a header and no record (as
// a pack without batches: the follower takes it and adopts nothing).
func putEmptyPack(t *testing.T, b backend.Backend, id uint32) {
	t.Helper()
	var hdr [packHeaderLen]byte
	copy(hdr[:8], packMagic)
	binary.LittleEndian.PutUint32(hdr[8:12], packVersion)
	binary.LittleEndian.PutUint32(hdr[12:16], id)
	backendtest.Put(t, b, packObjectName(id), hdr[:])
}

// TestPeersFollowerListsFromMarker: a follower caught up with a
// front-end of 200 packs lists peerLookBack of them a pass (ListAfter
// from the look-back window below the marker), not all 200, and
// PacksBehind still counts the packs above the marker. The front-end is
// a registry record and a packs prefix of header-only packs.
func TestPeersFollowerListsFromMarker(t *testing.T) {
	const packs = 200
	e := newPeerEnv(t)
	quiet := e.mustBackend(t, "quiet/")
	for id := uint32(1); id <= packs; id++ {
		putEmptyPack(t, quiet, id)
	}
	rec, err := json.Marshal(peerRecord{Prefix: "quiet/", Location: quiet.Location(), Time: time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	backendtest.Put(t, e.mustBackend(t, "archive/"), peerPrefix+strings.Repeat("ab", 16), rec)

	b := e.open(t, t.TempDir(), "fe2/")
	caughtUp := func(marker uint32, behind int) func() bool {
		return func() bool {
			ps := peerStatus(t, b)
			return len(ps) == 1 && ps[0].Marker == marker && ps[0].PacksBehind == behind
		}
	}
	testenv.WaitFor(t, "B follows the 200 packs", 60*time.Second, caughtUp(packs, 0))
	n := len(e.packListings("quiet/"))
	testenv.WaitFor(t, "B's next 3 passes", 30*time.Second, func() bool { return len(e.packListings("quiet/")) >= n+3 })
	ls := e.packListings("quiet/")
	t.Logf("per pass, objects listed and LIST requests (%d keys a page): first %+v, caught up %+v", peerListPage, ls[0], ls[n:n+3])
	if ls[0].objects != packs {
		t.Errorf("the first pass listed %d objects, want all %d", ls[0].objects, packs)
	}
	for _, got := range ls[n : n+3] {
		if got.objects > peerLookBack+1 || got.pages != 1 {
			t.Fatalf("a pass caught up with %d packs listed %d objects in %d requests, want at most %d (peerLookBack+1) in 1: %+v", packs, got.objects, got.pages, peerLookBack+1, ls)
		}
	}

	// Three more packs, the first of them not a pack: B stays at the
	// marker with the three behind, listing them and the window only;
	// once it is a pack, B takes all three.
	backendtest.Put(t, quiet, packObjectName(packs+1), []byte("not a pack, not yet"))
	putEmptyPack(t, quiet, packs+2)
	putEmptyPack(t, quiet, packs+3)
	testenv.WaitFor(t, "B stuck at the bad pack, 3 behind", 30*time.Second, func() bool {
		ps := peerStatus(t, b)
		return caughtUp(packs, 3)() && strings.Contains(ps[0].LastError, "does not start with the header of pack 201")
	})
	n = len(e.packListings("quiet/"))
	testenv.WaitFor(t, "B's next pass", 30*time.Second, func() bool { return len(e.packListings("quiet/")) > n })
	if got := e.packListings("quiet/")[n]; got.objects != peerLookBack+3 {
		t.Errorf("a pass 3 packs behind listed %d objects, want %d (peerLookBack+3)", got.objects, peerLookBack+3)
	}
	// Its lag grows while it is stuck, and is 0 once it caught up.
	lag := peerStatus(t, b)[0].LagSeconds
	testenv.WaitFor(t, "B's lag to grow while it is stuck", 30*time.Second, func() bool { return peerStatus(t, b)[0].LagSeconds > lag })
	if lag <= 0 {
		t.Errorf("B stuck 3 packs behind shows a lag of %v s", lag)
	}
	putEmptyPack(t, quiet, packs+1)
	testenv.WaitFor(t, "B follows the 3 new packs", 30*time.Second, caughtUp(packs+3, 0))
	if ps := peerStatus(t, b)[0]; ps.LagSeconds != 0 {
		t.Errorf("B caught up shows a lag of %v s", ps.LagSeconds)
	}
}

// TestPeersListPackObjectsAfter: listPackObjectsAfter returns the pack
// objects of ids above after, also across the 8 digits packObjectName
// pads to (names of 9 and 10 digits sort by their first digit).
func TestPeersListPackObjectsAfter(t *testing.T) {
	b, err := backend.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ids := []uint32{1, 2, 5, 9_999_999, 10_000_000, 10_000_001, 20_000_000, 99_999_999, 100_000_000, 150_000_000, 4_000_000_000}
	for _, id := range ids {
		backendtest.Put(t, b, packObjectName(id), nil)
	}
	backendtest.Put(t, b, remotePackPrefix+"notapack", nil)
	backendtest.Put(t, b, remotePackPrefix+"sub/00000009.pack", nil)
	for _, after := range []uint32{0, 1, 3, 5, 9_999_998, 9_999_999, 10_000_000, 15_000_000, 99_999_999, 100_000_000, 4_000_000_000} {
		objs, err := listPackObjectsAfter(context.Background(), b, after)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint32
		for _, id := range ids {
			if id > after {
				want = append(want, id)
			}
		}
		if got := slices.Sorted(maps.Keys(objs)); !slices.Equal(got, want) {
			t.Errorf("listPackObjectsAfter(%d) = %v, want %v", after, got, want)
		}
		for id, in := range objs {
			if in.Name != packObjectName(id) {
				t.Errorf("listPackObjectsAfter(%d): pack %d is %q", after, id, in.Name)
			}
		}
	}
}

// heldNames returns the paths s holds with their hashes.
func heldNames(t *testing.T, s *Store) map[string]index.Hash {
	t.Helper()
	out := map[string]index.Hash{}
	if err := s.Walk(context.Background(), "*", func(fi FileInfo) error {
		out[fi.Path] = fi.Hash
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// caughtUp reports whether s has followed every pack in the bucket of
// its one peer, whose packs prefix is pb.
func caughtUp(t *testing.T, s *Store, pb backend.Backend) bool {
	t.Helper()
	ids, _ := bucketPackIDs(t, pb)
	ps := peerStatus(t, s)
	return len(ids) > 0 && len(ps) == 1 && ps[0].Marker == ids[len(ids)-1] && ps[0].PacksBehind == 0 && ps[0].LastError == ""
}

// TestPeersFollowRemovals: B follows A's removals, in journal order: a
// Remove and a Rename on A leave B with exactly A's names and bytes; a
// name B removed itself first is no error; and A does not adopt back
// the names it removed from B's packs that adopted them.
func TestPeersFollowRemovals(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	b := e.open(t, t.TempDir(), "fe2/")
	want := map[string][]byte{}
	for i := range 6 {
		name := fmt.Sprintf("rm-%d", i)
		if i%2 == 1 {
			name = "ns/" + name
		}
		want[name] = peerFile(uint64(300 + i))
		mustPut(t, a, name, want[name])
	}
	testenv.WaitFor(t, "B holds A's files", 30*time.Second, func() bool { return holdsAll(t, b, want) })
	start := time.Now()
	if err := b.Remove("rm-4"); err != nil { // B first: A's removal of it then finds nothing
		t.Fatal(err)
	}
	if err := a.Remove("rm-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rename("ns/rm-1", "ns/rm-1.renamed"); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove("rm-4"); err != nil {
		t.Fatal(err)
	}
	want["ns/rm-1.renamed"] = want["ns/rm-1"]
	for _, name := range []string{"rm-0", "ns/rm-1", "rm-4"} {
		delete(want, name)
	}
	gone := func(s *Store, name string) bool {
		_, err := s.StatHere(name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatalf("StatHere(%s): %v", name, err)
		}
		return err != nil
	}
	testenv.WaitFor(t, "B follows A's removals and rename", 30*time.Second, func() bool {
		return gone(b, "rm-0") && gone(b, "ns/rm-1") && holdsAll(t, b, want)
	})
	took := time.Since(start)
	// Both caught up with each other's bucket: A has followed B's
	// adoptions and removals, B A's.
	pa, pb := e.mustBackend(t, "fe1/"), e.mustBackend(t, "fe2/")
	for _, s := range []*Store{a, b} {
		waitBucket(t, s, "everything is in the bucket", drained)
	}
	testenv.WaitFor(t, "A and B caught up with each other", 30*time.Second, func() bool {
		return caughtUp(t, a, pb) && caughtUp(t, b, pa)
	})
	ha, hb := heldNames(t, a), heldNames(t, b)
	if !maps.Equal(ha, hb) || len(ha) != len(want) {
		t.Fatalf("A holds %v, B %v; want the %d names of %v", slices.Sorted(maps.Keys(ha)), slices.Sorted(maps.Keys(hb)), len(want), slices.Sorted(maps.Keys(want)))
	}
	if !holdsAll(t, a, want) || !holdsAll(t, b, want) {
		t.Fatal("a remaining file is missing")
	}
	for _, name := range []string{"rm-0", "ns/rm-1", "rm-4"} {
		if !gone(a, name) || !gone(b, name) {
			t.Fatalf("%s is held again after its removal", name)
		}
	}
	psb, psa := peerStatus(t, b)[0], peerStatus(t, a)[0]
	if psb.Removed != 2 || psb.Adopted != 7 || psb.LastError != "" {
		t.Fatalf("B's status of A: %+v, want 2 removals (rm-0, ns/rm-1; rm-4 was gone) and 7 adoptions", psb)
	}
	if psa.Removed != 0 || psa.Adopted != 0 || psa.LastError != "" {
		t.Fatalf("A's status of B: %+v, want nothing adopted or removed (its own files and removals)", psa)
	}
	t.Logf("B followed the removals in %v; A %+v, B %+v", took.Round(time.Millisecond), psa, psb)
}

func claimantOf(t *testing.T, s *Store) string {
	t.Helper()
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Claims.Claimant
}

// retireWorkload commits files across several packs on s, removes them,
// commits more packs after them (so that a follower's marker ends more
// than peerLookBack above the removed ones) and runs GC once all is in
// the bucket. It returns the names removed and the names kept.
func retireWorkload(t *testing.T, s *Store) (removed []string, kept map[string][]byte) {
	t.Helper()
	for i := range 6 {
		name := fmt.Sprintf("gone-%d", i)
		mustPut(t, s, name, randomBytes(300<<10, uint64(700+i))) // one or two to a pack of 512 KiB
		removed = append(removed, name)
	}
	for _, name := range removed {
		if err := s.Remove(name); err != nil {
			t.Fatal(err)
		}
	}
	kept = map[string][]byte{}
	for i := range peerLookBack + 2 {
		name := fmt.Sprintf("kept-%d", i)
		kept[name] = peerFile(uint64(800 + i))
		mustPut(t, s, name, kept[name])
		waitBucket(t, s, "the pack is sealed and uploaded", drained) // one pack each
	}
	rep, err := s.GC(context.Background(), GCOptions{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PacksDeleted+rep.PacksRewritten == 0 {
		t.Fatalf("GC retired nothing: %+v", rep)
	}
	return removed, kept
}

// TestPeersBucketDeletesWaitForFollowers: A deletes no object of its
// retired packs that B, registered but not running, has not followed
// (status shows them held by B); once B runs and follows them, adopting
// and removing their files, they are deleted.
func TestPeersBucketDeletesWaitForFollowers(t *testing.T) {
	e := newPeerEnv(t)
	hb := func(c *Config) { c.PeerHeartbeat = 100 * time.Millisecond }
	bdir := t.TempDir()
	b := e.open(t, bdir, "fe2/", hb)
	bid := claimantOf(t, b)
	claims := e.mustBackend(t, "archive/")
	testenv.WaitFor(t, "B's registry record", 10*time.Second, func() bool {
		_, err := claims.Stat(context.Background(), peerPrefix+bid)
		return err == nil
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	a := e.open(t, t.TempDir(), "fe1/", hb)
	removed, kept := retireWorkload(t, a)
	bs := waitBucket(t, a, "the retired packs are held for B", func(bs *BucketStatus) bool {
		return drained(bs) && bs.PendingDeletePacks > 0 && bs.HeldForPeers == bs.PendingDeletePacks
	})
	if !slices.Equal(bs.HeldBy, []string{bid}) || bs.HeldUnlisted || bs.Deletes != 0 {
		t.Fatalf("bucket status %+v: want every pending deletion held by B (%s), none deleted", bs, bid)
	}
	pa := e.mustBackend(t, "fe1/")
	for id, there := range pendingObjects(t, a, pa) {
		if !there {
			t.Fatalf("the object of retired pack %d is gone before B followed it", id)
		}
	}
	held := bs.PendingDeletePacks
	start := time.Now()
	b = e.open(t, bdir, "fe2/", hb)
	// The newest peerLookBack packs at or below B's marker stay held (the
	// follower may read them by range for the pack after it): A goes on
	// archiving, a pack a file, and the bound moves past them.
	for i := range peerLookBack + 1 {
		name := fmt.Sprintf("later-%d", i)
		kept[name] = peerFile(uint64(900 + i))
		mustPut(t, a, name, kept[name])
		a.pw.sealIfOlder(0, time.Now().Add(time.Hour))
		a.kickUpload()
	}
	bs = waitBucket(t, a, "the objects are deleted once B followed them", noPendingDeletes)
	took := time.Since(start)
	checkBucketIsLivePacks(t, a, pa)
	if bs.Deletes != int64(held) || bs.HeldForPeers != 0 {
		t.Fatalf("bucket status %+v: want the %d held deleted", bs, held)
	}
	testenv.WaitFor(t, "B caught up with A", 30*time.Second, func() bool { return caughtUp(t, b, pa) })
	if !holdsAll(t, b, kept) {
		t.Fatal("B lacks a file A kept")
	}
	for _, name := range removed {
		if _, err := b.StatHere(name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("B's StatHere(%s) of a name A removed: %v", name, err)
		}
	}
	ps := peerStatus(t, b)[0]
	if ps.Adopted != int64(len(removed)+len(kept)) || ps.Removed != int64(len(removed)) || ps.LastError != "" {
		t.Fatalf("B's status of A: %+v, want %d adopted, %d removed, no error", ps, len(removed)+len(kept), len(removed))
	}
	t.Logf("%d deletions held for B, done %v after B started; B: %+v", held, took.Round(time.Millisecond), ps)
}

// TestPeersExpiredFrontEndHoldsNoDeletes: a registry record older than
// PeerExpiry holds no deletion.
func TestPeersExpiredFrontEndHoldsNoDeletes(t *testing.T) {
	e := newPeerEnv(t)
	claims := e.mustBackend(t, "archive/")
	old, err := json.Marshal(peerRecord{Prefix: "fe9/", Location: "gone", Time: time.Now().Add(-2 * time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := claims.Put(context.Background(), peerPrefix+strings.Repeat("9", 32), bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	a := e.open(t, t.TempDir(), "fe1/", func(c *Config) { c.PeerExpiry = time.Hour })
	retireWorkload(t, a)
	bs := waitBucket(t, a, "the retired packs' objects are deleted", noPendingDeletes)
	checkBucketIsLivePacks(t, a, e.mustBackend(t, "fe1/"))
	if bs.Deletes == 0 || bs.HeldForPeers != 0 {
		t.Fatalf("bucket status %+v: want deletions, none held", bs)
	}
}

// caughtUpWith reports whether s has followed every pack in the bucket
// of each of its peers (by id: their packs prefix), with no error.
func caughtUpWith(t *testing.T, s *Store, peers map[string]backend.Backend) bool {
	t.Helper()
	ps := peerStatus(t, s)
	if len(ps) != len(peers) {
		return false
	}
	for _, p := range ps {
		ids, _ := bucketPackIDs(t, peers[p.ID])
		if len(ids) == 0 || p.Marker != ids[len(ids)-1] || p.PacksBehind != 0 || p.LastError != "" {
			return false
		}
	}
	return true
}

// TestPeersThreeFrontEndsSettleRemovals: with three front-ends, files
// pushed to A under a temporary name and renamed at once (cp then mv)
// end under their final names only, everywhere: B and C adopt them from
// A alone, not from each other's copies, which would hand the removed
// temporary names back and forth between them for ever.
func TestPeersThreeFrontEndsSettleRemovals(t *testing.T) {
	e := newPeerEnv(t)
	prefixes := []string{"fe1/", "fe2/", "fe3/"}
	var stores []*Store
	for _, p := range prefixes {
		stores = append(stores, e.open(t, t.TempDir(), p))
	}
	a := stores[0]
	want := map[string][]byte{}
	for i := range 10 {
		name := fmt.Sprintf("seg-%d", i)
		want[name] = peerFile(uint64(900 + i))
		mustPut(t, a, name+".tmp", want[name])
		if _, err := a.Rename(name+".tmp", name); err != nil {
			t.Fatal(err)
		}
	}
	ids := map[string]backend.Backend{}
	for i, s := range stores {
		ids[claimantOf(t, s)] = e.mustBackend(t, prefixes[i])
	}
	start := time.Now()
	testenv.WaitFor(t, "the three front-ends hold the same names, in the bucket, caught up with each other", 60*time.Second, func() bool {
		for _, s := range stores {
			st, err := s.Status()
			if err != nil {
				t.Fatal(err)
			}
			if !drained(st.Bucket) || len(heldNames(t, s)) != len(want) || !holdsAll(t, s, want) {
				return false
			}
		}
		for _, s := range stores {
			others := maps.Clone(ids)
			delete(others, claimantOf(t, s))
			if !caughtUpWith(t, s, others) {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	aid := claimantOf(t, a)
	for i, s := range stores[1:] {
		var adopted, removed int64
		for _, p := range peerStatus(t, s) {
			if p.ID != aid && p.Adopted != 0 {
				t.Fatalf("store %d adopted %d files from %s, not their claimant A", i+1, p.Adopted, p.ID)
			}
			adopted, removed = adopted+p.Adopted, removed+p.Removed
		}
		if adopted != 20 || removed != 10 {
			t.Fatalf("store %d: %d adopted, %d removed, want 20 and 10 (each name once): %+v", i+1, adopted, removed, peerStatus(t, s))
		}
	}
	t.Logf("settled in %v; B %+v, C %+v", took.Round(time.Millisecond), peerStatus(t, stores[1]), peerStatus(t, stores[2]))
}
