package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// claimsGroup starts a versitygw with one bucket and opens n stores on
// their own data directories, each with its own S3 client on the shared
// claims prefix (as n front-ends would be configured); no Remote.
func claimsGroup(t *testing.T, n int, timeout time.Duration, mod ...func(*Config)) (*backendtest.VersityGW, backend.Backend, []*Store) {
	t.Helper()
	gw := backendtest.StartVersityGW(t)
	bucket := gw.NewBucket(t)
	client := func() backend.Backend {
		s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: bucket, Prefix: "group/",
			AccessKey: gw.AccessKey, SecretKey: gw.Secret})
		if err != nil {
			t.Fatal(err)
		}
		return backend.Stack(s3, backend.StackOptions{Attempts: 2, BackoffBase: 10 * time.Millisecond,
			BackoffMax: 50 * time.Millisecond, Timeout: 5 * time.Second})
	}
	var stores []*Store
	for range n {
		b := client()
		stores = append(stores, openTest(t, t.TempDir(), func(c *Config) {
			c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 4<<20, 1<<20
			c.Claims, c.AckTimeout = b, timeout
			for _, m := range mod {
				m(c)
			}
		}))
	}
	return gw, client(), stores
}

// race pushes data[i] to stores[i], all released at once by a barrier,
// and returns each push's error.
func race(t *testing.T, stores []*Store, name string, data [][]byte) []error {
	t.Helper()
	errs := make([]error, len(stores))
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i, s := range stores {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			_, errs[i] = put(t, s, name, data[i])
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// Two front-ends, one name, different content, pushed at the same
// moment: exactly one push succeeds, the other is refused with ErrExists
// and its store does not hold the name; the winner's store reads back its
// own bytes. Without the claim both succeed (tried: it fails in round 0).
func TestClaimsOneWinnerInRaces(t *testing.T) {
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	_, _, stores := claimsGroup(t, 2, 10*time.Second)
	wins := [2]int{}
	began := time.Now()
	for r := range rounds {
		name := fmt.Sprintf("race/f-%04d.dat", r)
		data := [][]byte{randomBytes(4<<10, uint64(2*r+1)), randomBytes(4<<10, uint64(2*r+2))}
		errs := race(t, stores, name, data)
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("round %d: %s: errors %v and %v, want exactly one success", r, name, errs[0], errs[1])
		}
		w, l := 0, 1
		if errs[0] != nil {
			w, l = 1, 0
		}
		wins[w]++
		if !errors.Is(errs[l], ErrExists) || !strings.Contains(errs[l].Error(), "claimed by front-end") {
			t.Fatalf("round %d: the loser's error: %v, want ErrExists naming the claimant", r, errs[l])
		}
		if _, err := stores[l].StatHere(name); !errors.Is(err, ErrNotFound) {
			t.Fatalf("round %d: the loser's store: Stat %s = %v, want ErrNotFound", r, name, err)
		}
		if got := readAll(t, stores[w], name); !bytes.Equal(got, data[w]) {
			t.Fatalf("round %d: the winner's store does not read back its own bytes", r)
		}
	}
	took := time.Since(began)
	t.Logf("%d races in %v (%v per race); wins %d : %d", rounds, took.Round(time.Millisecond),
		(took / time.Duration(rounds)).Round(time.Microsecond), wins[0], wins[1])
	// Status counts every outcome, on the front-end it happened on.
	var claimed, refused int64
	for i, s := range stores {
		st, err := s.Status()
		if err != nil || st.Claims == nil {
			t.Fatalf("status: %v %+v", err, st.Claims)
		}
		if st.Claims.Claimed != int64(wins[i]) || st.Claims.Refused != int64(rounds-wins[i]) || st.Claims.Failures != 0 {
			t.Errorf("front-end %d: status %+v, want %d claimed, %d refused", i+1, st.Claims, wins[i], rounds-wins[i])
		}
		claimed, refused = claimed+st.Claims.Claimed, refused+st.Claims.Refused
	}
	if claimed != int64(rounds) || refused != int64(rounds) {
		t.Errorf("%d claimed and %d refused in all, want %d each", claimed, refused, rounds)
	}
}

// The same content pushed to both front-ends at once (PostgreSQL's retry
// reaching another front-end while the first push is still in flight):
// both succeed, and both hold the bytes.
func TestClaimsIdenticalRacesBothSucceed(t *testing.T) {
	_, _, stores := claimsGroup(t, 2, 10*time.Second)
	began := time.Now()
	const rounds = 100
	for r := range rounds {
		name := fmt.Sprintf("same/f-%04d.dat", r)
		d := randomBytes(4<<10, uint64(r+1))
		errs := race(t, stores, name, [][]byte{d, d})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: store %d: %v", r, i, err)
			}
			if got := readAll(t, stores[i], name); !bytes.Equal(got, d) {
				t.Fatalf("round %d: store %d does not read back the bytes", r, i)
			}
		}
	}
	t.Logf("%d identical races in %v", rounds, time.Since(began).Round(time.Millisecond))
}

// Sequentially: a name claimed through one front-end is refused to
// another one for different content (nothing committed there) and
// accepted for the same content; the record in the bucket is the first
// claimant's.
func TestClaimsSecondFrontEnd(t *testing.T) {
	_, b, stores := claimsGroup(t, 2, 10*time.Second)
	x, y := randomBytes(20<<10, 1), randomBytes(20<<10, 2)
	mustPut(t, stores[0], "seq/a.dat", x)
	mustPut(t, stores[0], "seq/a.dat", x) // identical re-push to the same front-end
	_, err := put(t, stores[1], "seq/a.dat", y)
	id := hexID(t, stores[0])
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), id) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("different content to the second front-end: %v, want one-line ErrExists naming %s", err, id)
	}
	if _, err := stores[1].StatHere("seq/a.dat"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused push: Stat = %v, want ErrNotFound", err)
	}
	// Not "no such file" through the read path: front-end 0 holds it
	// (peers.go; no bucket here, so no follower: at once).
	if _, err := stores[1].Stat("seq/a.dat"); !errors.Is(err, ErrElsewhere) {
		t.Fatalf("refused push: Stat = %v, want ErrElsewhere", err)
	}
	mustPut(t, stores[1], "seq/a.dat", x)
	if got := readAll(t, stores[1], "seq/a.dat"); !bytes.Equal(got, x) {
		t.Fatal("the second front-end does not read back the identical push")
	}
	// A name in the root namespace, and the claim record itself.
	mustPut(t, stores[1], "top.dat", y)
	if _, err := put(t, stores[0], "top.dat", x); !errors.Is(err, ErrExists) {
		t.Fatalf("root name: %v, want ErrExists", err)
	}
	rec, err := stores[0].claims.read(context.Background(), "claims/_/top.dat")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Path != "top.dat" || rec.Size != int64(len(y)) || rec.Claimant != stores[1].claims.id {
		t.Fatalf("claim record %+v", rec)
	}
	if _, err := b.Stat(context.Background(), "claims/seq/a.dat"); err != nil {
		t.Fatalf("claim object: %v", err)
	}
}

func hexID(t *testing.T, s *Store) string {
	t.Helper()
	id, err := readIDFile(s.cfg.Dir, claimantFile)
	if err != nil || id == "" {
		t.Fatalf("claimant id: %q, %v", id, err)
	}
	return id
}

// The claims bucket down: a push fails within the timeout with ErrClaims
// and a one-line message, commits nothing, and succeeds by itself once
// the bucket is back (PostgreSQL's retry).
func TestClaimsBucketDown(t *testing.T) {
	const timeout = 3 * time.Second
	gw, _, stores := claimsGroup(t, 1, timeout)
	s := stores[0]
	mustPut(t, s, "down/before.dat", randomBytes(8<<10, 1))
	gw.Stop()
	data := randomBytes(8<<10, 2)
	start := time.Now()
	_, err := put(t, s, "down/f.dat", data)
	took := time.Since(start)
	if !errors.Is(err, ErrClaims) {
		t.Fatalf("push with the claims bucket down: %v, want ErrClaims", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "nothing was committed") || !strings.Contains(msg, "succeeds once it is back") {
		t.Fatalf("message %q", msg)
	}
	if took > timeout+2*time.Second { // bounded, not a speed assertion
		t.Fatalf("failed after %v, timeout %v", took, timeout)
	}
	t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
	if _, err := s.StatHere("down/f.dat"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused push: Stat = %v, want ErrNotFound", err)
	}
	gw.Restart(t)
	mustPut(t, s, "down/f.dat", data)
	if got := readAll(t, s, "down/f.dat"); !bytes.Equal(got, data) {
		t.Fatal("the retried push does not read back")
	}
}

// In claims mode a FUSE landing file is not landed (it would be
// acknowledged before its claim) but uploaded at close, claimed.
func TestClaimsLandingUploadsAtClose(t *testing.T) {
	_, b, stores := claimsGroup(t, 1, 10*time.Second)
	s := stores[0]
	for i := uint64(1); i <= 2; i++ { // the second one would land in local mode
		sg := landSeg(i, 1)
		if _, err := land(t, s, sg.Name(), sg.Bytes()); err != nil {
			t.Fatal(err)
		}
		if n := s.Landed(); n != 0 {
			t.Fatalf("segment %d: %d files landed, want 0", i, n)
		}
		if _, err := b.Stat(context.Background(), claimObject("", sg.Name())); err != nil {
			t.Fatalf("segment %d: claim: %v", i, err)
		}
	}
}

// Names to claim objects: every object is a valid backend name, escaped
// components round-trip, and distinct names map to distinct objects.
func TestClaimObjectNames(t *testing.T) {
	long := strings.Repeat("x", 255)
	tests := []struct {
		dir, name, object string
	}{
		{"", "000000010000000000000001", "claims/_/000000010000000000000001"},
		{"c1", "000000010000000000000001", "claims/c1/000000010000000000000001"},
		{"", "_", "claims/_/_5F"},
		{"_", "a", "claims/_5F/a"},
		{"", ".hidden", "claims/_/_2Ehidden"},
		{"", "a.b.", "claims/_/a.b."},
		{"", "a b", "claims/_/a_20b"},
		{"", "a_20b", "claims/_/a_5F20b"},
		{"", "%41", "claims/_/_2541"},
		{"", "A", "claims/_/A"},
		{"", "ü", "claims/_/_C3_BC"},
		{"", "_h00", "claims/_/_5Fh00"},
		{"", long, ""}, // hashed (checked below)
		{"c1", long, ""},
		{"", strings.Repeat("y", 255), ""},
		{strings.Repeat("~", 255), strings.Repeat("~", 255), ""},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		path := joinPath(tc.dir, tc.name)
		obj := claimObject(tc.dir, tc.name)
		if err := backend.ValidName(obj); err != nil {
			t.Errorf("%q: %v", path, err)
		}
		if tc.object != "" && obj != tc.object {
			t.Errorf("%q: object %q, want %q", path, obj, tc.object)
		}
		if prev, ok := seen[obj]; ok && prev != path {
			t.Errorf("%q and %q both map to %q", prev, path, obj)
		}
		seen[obj] = path
		last := obj[strings.LastIndexByte(obj, '/')+1:]
		got, ok := unescapeClaimComponent(last)
		hashed := len(tc.name) > 100
		if hashed != strings.HasPrefix(last, "_h") {
			t.Errorf("%q: component %q, hashed %v", path, last, hashed)
		}
		if !hashed && (!ok || got != tc.name) {
			t.Errorf("%q: component %q unescapes to %q, %v", path, last, got, ok)
		}
	}
	for _, bad := range []string{"_", "_2", "_2e", "_GG", "a_5f", "_41"} { // not what any component escapes to
		if got, ok := unescapeClaimComponent(bad); ok {
			t.Errorf("%q unescapes to %q", bad, got)
		}
	}
	r := claimRecord{HashKind: 1, BlockSize: 1 << 20, Size: 16 << 20, Hash: [32]byte{1, 2}, Claimant: [16]byte{3}, Time: 1700000000, Path: "c1/x"}
	got, err := decodeClaimRecord(r.encode())
	if err != nil || got != r {
		t.Fatalf("record round trip: %+v, %v", got, err)
	}
	for n := range len(r.encode()) {
		if _, err := decodeClaimRecord(r.encode()[:n]); err == nil {
			t.Fatalf("a record cut to %d bytes decodes", n)
		}
	}
}

// A name committed before claims were configured gets its claim from its
// next identical re-push (every commit claims), after which another
// front-end is refused other content under it.
func TestClaimsRepushClaimsEarlierName(t *testing.T) {
	_, _, stores := claimsGroup(t, 1, 10*time.Second)
	dir := t.TempDir()
	x := randomBytes(20<<10, 7)
	plain := openTest(t, dir, func(c *Config) { c.BlockSize = 64 << 10 })
	mustPut(t, plain, "old/a.dat", x)
	if err := plain.Close(); err != nil {
		t.Fatal(err)
	}
	claimsB := stores[0].cfg.Claims
	s := openTest(t, dir, func(c *Config) { c.BlockSize, c.Claims = 64<<10, claimsB })
	mustPut(t, s, "old/a.dat", x)
	if _, err := put(t, stores[0], "old/a.dat", randomBytes(20<<10, 8)); !errors.Is(err, ErrExists) {
		t.Fatalf("other content after the re-push claimed the name: %v, want ErrExists", err)
	}
}
