package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// testKey is a fixed key for the tests (a real one comes from a key file).
var testKey = backend.Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func newLocal(t *testing.T) *backend.Local {
	b, err := backend.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// versitygwOptions: what the suite may assume of versitygw (package doc).
var versitygwOptions = backendtest.Options{}

// s3Env is one versitygw for a test and a way to get fresh buckets on it.
type s3Env struct {
	gw *backendtest.VersityGW
	// lists counts ListObjectsV2 requests sent (pages).
	lists atomic.Int64
}

func newS3Env(t *testing.T) *s3Env {
	return &s3Env{gw: backendtest.StartVersityGW(t)}
}

func (e *s3Env) config(t *testing.T) backend.S3Config {
	return backend.S3Config{
		Endpoint: e.gw.Endpoint, Bucket: e.gw.NewBucket(t), Prefix: "walrus/",
		AccessKey: e.gw.AccessKey, SecretKey: e.gw.Secret,
		ListPageSize: 7, // testList's 25 objects take 4 pages
		Transport:    countingTransport{next: http.DefaultTransport, lists: &e.lists},
	}
}

func (e *s3Env) backend(t *testing.T) *backend.S3 {
	b, err := backend.NewS3(e.config(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b
}

type countingTransport struct {
	next  http.RoundTripper
	lists *atomic.Int64
}

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2" {
		c.lists.Add(1)
	}
	return c.next.RoundTrip(r)
}

func TestLocalConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return newLocal(t) }, backendtest.Options{})
}

func TestS3Conformance(t *testing.T) {
	env := newS3Env(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend { return env.backend(t) }, versitygwOptions)

	// Paging: 25 objects at 7 keys per page are 4 LIST requests.
	b := env.backend(t)
	for i := range 25 {
		backendtest.Put(t, b, fmt.Sprintf("page/%02d", i), nil)
	}
	env.lists.Store(0)
	n := 0
	if err := b.List(context.Background(), "page/", func(backend.Info) error { n++; return nil }); err != nil || n != 25 {
		t.Fatalf("List: %d objects, %v", n, err)
	}
	if got := env.lists.Load(); got != 4 {
		t.Errorf("listing 25 objects at 7 per page took %d LIST requests, want 4", got)
	}

	// ListAfter starts the listing there: the 6 objects after page/18
	// are one page, not four.
	env.lists.Store(0)
	var got []string
	if err := b.ListAfter(context.Background(), "page/", "page/18", func(i backend.Info) error {
		got = append(got, i.Name)
		return nil
	}); err != nil || strings.Join(got, ",") != "page/19,page/20,page/21,page/22,page/23,page/24" {
		t.Fatalf("ListAfter(page/, page/18) = %v, %v", got, err)
	}
	if got := env.lists.Load(); got != 1 {
		t.Errorf("listing the 6 of 25 objects after page/18 took %d LIST requests, want 1", got)
	}

	// Pages of 2 keys: start-after and continuation tokens together.
	t.Run("ListAfterPages2", func(t *testing.T) {
		cfg := env.config(t)
		cfg.ListPageSize = 2
		b2, err := backend.NewS3(cfg)
		if err != nil {
			t.Fatal(err)
		}
		env.lists.Store(0)
		backendtest.CheckListAfter(t, b2)
		t.Logf("%d LIST requests", env.lists.Load())
	})
}

// TestS3TwoGatewaysRace races PutIfAbsent through two versitygw
// processes on one posix directory. With the shared lock file (the
// default) exactly one writer wins every round; with
// --disable-object-lock-file each process only excludes its own writers,
// and the test reports how often both processes' writers won (it
// asserts only that the object is a winner's).
func TestS3TwoGatewaysRace(t *testing.T) {
	for _, c := range []struct {
		args   []string
		atomic bool
	}{{nil, true}, {[]string{"--disable-object-lock-file"}, false}} {
		t.Run(fmt.Sprintf("lockfile=%v", c.atomic), func(t *testing.T) {
			root := t.TempDir()
			g1 := &s3Env{gw: backendtest.StartVersityGWOn(t, root, c.args...)}
			g2 := &s3Env{gw: backendtest.StartVersityGWOn(t, root, c.args...)}
			cfg := g1.config(t)
			b1, err := backend.NewS3(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Endpoint = g2.gw.Endpoint
			b2, err := backend.NewS3(cfg)
			if err != nil {
				t.Fatal(err)
			}
			multi, none := backendtest.Race(t, []backend.Backend{b1, b2}, "race2/", 200, 8)
			if none > 0 || c.atomic && multi > 0 {
				t.Errorf("%d rounds with several winners, %d with none", multi, none)
			}
		})
	}
}

func TestStackedS3Conformance(t *testing.T) {
	env := newS3Env(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return backend.Stack(env.backend(t), backend.StackOptions{Timeout: 10 * time.Second, Connections: 4})
	}, versitygwOptions)
}

func TestEncryptedLocalConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return backend.NewEncrypted(newLocal(t), testKey)
	}, backendtest.Options{})
}

func TestEncryptedS3Conformance(t *testing.T) {
	env := newS3Env(t)
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return backend.NewEncrypted(backend.Stack(env.backend(t), backend.StackOptions{}), testKey)
	}, versitygwOptions)
}

// tamperEnv reaches the stored (encrypted) objects under the decorator:
// the raw backend, and the file a stored object lives in.
type tamperEnv struct {
	raw  backend.Backend
	file func(name string) string // path of the stored object's file
}

func TestTamperLocal(t *testing.T) {
	dir := t.TempDir()
	raw, err := backend.NewLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	testTamper(t, tamperEnv{raw: raw, file: func(name string) string { return filepath.Join(dir, name) }})
}

func TestTamperS3(t *testing.T) {
	env := newS3Env(t)
	cfg := env.config(t)
	raw, err := backend.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testTamper(t, tamperEnv{raw: raw, file: func(name string) string {
		return filepath.Join(env.gw.Root, cfg.Bucket, cfg.Prefix, name)
	}})
}

func testTamper(t *testing.T, env tamperEnv) {
	ctx := context.Background()
	plain := backendtest.Data(11, 3*65536+100) // four chunks, the last one short
	enc := backend.NewEncrypted(env.raw, testKey)
	put := func(name string) []byte {
		backendtest.Put(t, enc, name, plain)
		stored, err := backendtest.ReadAll(ctx, env.raw, name)
		if err != nil {
			t.Fatal(err)
		}
		return stored
	}
	// expectRejected reads the damaged object, through a fresh decorator
	// (no cached header) and through enc (which wrote it and remembers its
	// header). A read returns an error or exactly the bytes written there,
	// never other bytes; a failed read leaves the buffer untouched. The
	// fresh decorator must fail with ErrTampered on the ranges given
	// (chosen to touch the damage) and fail the whole read (ErrTampered,
	// or ErrShort when the object was cut short of the range).
	expectRejected := func(what, name string, ranges ...[2]int64) {
		t.Helper()
		whole := [2]int64{0, int64(len(plain))}
		for i, e := range []*backend.Encrypted{backend.NewEncrypted(env.raw, testKey), enc} {
			fresh := i == 0
			for _, r := range append(ranges, whole) {
				q := make([]byte, r[1])
				err := e.ReadAt(ctx, name, q, r[0])
				switch {
				case err == nil && fresh:
					t.Errorf("%s: ReadAt(%d, %d) succeeded", what, r[0], r[1])
				case err == nil && !bytes.Equal(q, plain[r[0]:r[0]+r[1]]):
					t.Errorf("%s: ReadAt(%d, %d) with the cached header returned wrong bytes", what, r[0], r[1])
				case err == nil:
				case !errors.Is(err, backend.ErrTampered) && !(r == whole && errors.Is(err, backend.ErrShort)):
					t.Errorf("%s: ReadAt(%d, %d) (cached header: %v) = %v; want ErrTampered", what, r[0], r[1], !fresh, err)
				case !bytes.Equal(q, make([]byte, len(q))):
					t.Errorf("%s: a failed read returned bytes", what)
				}
			}
		}
	}
	flipFile := func(name string, off int64) {
		t.Helper()
		f, err := os.OpenFile(env.file(name), os.O_RDWR, 0)
		if err != nil {
			t.Fatalf("opening the stored object's file: %v", err)
		}
		defer f.Close()
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	const hdr, sealed = 32, 65536 + 16

	// A flipped byte in the header, in chunk 1, in the last chunk's tag.
	for _, c := range []struct {
		what  string
		off   int64
		check [2]int64
	}{
		{"flipped magic", 3, [2]int64{0, 1}},
		{"flipped object id", 20, [2]int64{70000, 10}},
		{"flipped chunk 1 byte", hdr + sealed + 5, [2]int64{65536, 1}},
		{"flipped last tag", int64(hdr + 3*sealed + 100 + 15), [2]int64{int64(len(plain)) - 1, 1}},
	} {
		put("victim")
		flipFile("victim", c.off)
		expectRejected(c.what, "victim", c.check)
	}

	// An empty object is one empty sealed chunk: a flipped tag byte fails
	// even a zero-length read.
	backendtest.Put(t, enc, "empty", nil)
	flipFile("empty", 40)
	if err := backend.NewEncrypted(env.raw, testKey).ReadAt(ctx, "empty", nil, 0); !errors.Is(err, backend.ErrTampered) {
		t.Errorf("zero-length read of a damaged empty object = %v; want ErrTampered", err)
	}

	// Swapped objects: a's bytes under b's name and b's under a's.
	a, b := put("a"), put("b")
	backendtest.Put(t, env.raw, "a", b)
	backendtest.Put(t, env.raw, "b", a)
	expectRejected("swapped a", "a", [2]int64{0, 10})
	expectRejected("swapped b", "b", [2]int64{0, 10})
	// Renamed (copied) under another name.
	backendtest.Put(t, env.raw, "c", put("victim"))
	expectRejected("renamed", "c", [2]int64{0, 10})
	// Reordered chunks 0 and 1.
	s := put("victim")
	r := append([]byte(nil), s...)
	copy(r[hdr:], s[hdr+sealed:hdr+2*sealed])
	copy(r[hdr+sealed:], s[hdr:hdr+sealed])
	backendtest.Put(t, env.raw, "victim", r)
	expectRejected("reordered chunks", "victim", [2]int64{0, 10}, [2]int64{65536, 10})
	// Truncated at a chunk boundary (chunk 2 was not sealed as last), in a
	// chunk, to the header, and extended.
	for _, c := range []struct {
		what  string
		bytes []byte
		check [2]int64
	}{
		{"truncated at a chunk boundary", s[:hdr+3*sealed], [2]int64{2 * 65536, 10}},
		{"truncated in a chunk", s[:hdr+2*sealed+1000], [2]int64{2 * 65536, 10}},
		{"truncated to the header", s[:hdr], [2]int64{0, 0}},
		{"truncated into the header", s[:10], [2]int64{0, 0}},
		{"extended", append(append([]byte(nil), s...), make([]byte, 16)...), [2]int64{int64(len(plain)) - 1, 1}},
		{"plaintext object", plain, [2]int64{0, 10}},
	} {
		backendtest.Put(t, env.raw, "victim", c.bytes)
		expectRejected(c.what, "victim", c.check)
	}
	// Another key.
	put("victim")
	other := backend.NewEncrypted(env.raw, backend.Key{9})
	err := other.ReadAt(ctx, "victim", make([]byte, 10), 0)
	if !errors.Is(err, backend.ErrTampered) || !strings.Contains(err.Error(), "another key") {
		t.Errorf("read with another key = %v; want ErrTampered naming the key", err)
	}
	// The stored bytes hold no plaintext run: the key is not in them.
	if stored := put("victim"); bytes.Contains(stored, plain[1000:1064]) || bytes.Contains(stored, testKey[:]) {
		t.Errorf("stored object contains plaintext or the key")
	}
	// A replacement by another process is read correctly (the cached
	// header goes stale and is re-read).
	put("victim")
	if err := enc.ReadAt(ctx, "victim", make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	fresh := backendtest.Data(12, len(plain))
	backendtest.Put(t, backend.NewEncrypted(env.raw, testKey), "victim", fresh)
	got := make([]byte, len(fresh))
	if err := enc.ReadAt(ctx, "victim", got, 0); err != nil || !bytes.Equal(got, fresh) {
		t.Errorf("read after replacement by another writer: %v (equal %v)", err, bytes.Equal(got, fresh))
	}
}

// TestOutageRetried: calls during a bucket outage (the gateway killed:
// connection refused, a transient error) are retried with backoff and
// succeed once it is back; a call whose attempts run out fails with a
// transient error naming the cause.
func TestOutageRetried(t *testing.T) {
	env := newS3Env(t)
	s3 := env.backend(t)
	reg := prometheus.NewRegistry()
	m, err := backend.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	env.gw.Stop()
	short := backend.Stack(s3, backend.StackOptions{Attempts: 2, BackoffBase: time.Millisecond})
	if _, err := short.Stat(ctx, "x"); !backend.IsTransient(err) {
		t.Fatalf("Stat during an outage, attempts exhausted = %v; want a transient error", err)
	}
	b := backend.Stack(s3, backend.StackOptions{Attempts: 1000, BackoffBase: time.Millisecond, BackoffMax: 20 * time.Millisecond, Observer: m})
	data := backendtest.Data(1, 100000)
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, "during-outage", bytes.NewReader(data), int64(len(data))) }()
	backendtestWait(t, func() bool { return counter(t, reg, "put", "transient") >= 3 })
	env.gw.Restart(t)
	if err := <-done; err != nil {
		t.Fatalf("Put across an outage: %v", err)
	}
	got, err := backendtest.ReadAll(ctx, b, "during-outage")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading back: %v", err)
	}
	t.Logf("put: %v transient failures, then %v ok", counter(t, reg, "put", "transient"), counter(t, reg, "put", "ok"))
}

// blackHole accepts connections and never answers: a server that stopped
// responding.
func blackHole(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return l.Addr().String()
}

// TestHungServerTimesOut: every call to a server that accepts and never
// answers fails with ErrTimeout after Attempts attempts; none hangs.
func TestHungServerTimesOut(t *testing.T) {
	s3, err := backend.NewS3(backend.S3Config{Endpoint: blackHole(t), Bucket: "walrus", AccessKey: "k", SecretKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := backend.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b := backend.Stack(s3, backend.StackOptions{Timeout: 200 * time.Millisecond, Attempts: 2, BackoffBase: time.Millisecond, Observer: m})
	ctx := context.Background()
	calls := map[string]func() error{
		"put":    func() error { return b.Put(ctx, "x", bytes.NewReader([]byte("abc")), 3) },
		"read":   func() error { return b.ReadAt(ctx, "x", make([]byte, 3), 0) },
		"stat":   func() error { _, err := b.Stat(ctx, "x"); return err },
		"list":   func() error { return b.List(ctx, "", func(backend.Info) error { return nil }) },
		"delete": func() error { return b.Delete(ctx, "x") },
	}
	for method, call := range calls {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if !errors.Is(err, backend.ErrTimeout) {
				t.Errorf("%s on a hung server = %v; want ErrTimeout", method, err)
			}
		case <-time.After(time.Minute): // a hang guard, not a speed assertion
			t.Fatalf("%s on a hung server did not return", method)
		}
		if n := counter(t, reg, method, "timeout"); n != 2 {
			t.Errorf("%s: %v timed-out attempts counted, want 2 (Attempts)", method, n)
		}
	}
}

func counter(t *testing.T, reg *prometheus.Registry, method, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "walrus_backend_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label(m, "method") == method && label(m, "outcome") == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// failing is a Backend over a real one whose next n calls fail with err
// before reaching it: the fault the retry decorator is tested against.
type failing struct {
	backend.Backend
	n     atomic.Int32
	err   error
	calls atomic.Int32
}

func (f *failing) fail() error {
	f.calls.Add(1)
	if f.n.Add(-1) >= 0 {
		return f.err
	}
	return nil
}

func (f *failing) Stat(ctx context.Context, name string) (backend.Info, error) {
	if err := f.fail(); err != nil {
		return backend.Info{}, err
	}
	return f.Backend.Stat(ctx, name)
}

func (f *failing) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Backend.PutIfAbsent(ctx, name, r, size)
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	local := newLocal(t)
	backendtest.Put(t, local, "x", []byte("abc"))
	reg := prometheus.NewRegistry()
	m, err := backend.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	opts := backend.StackOptions{Attempts: 4, BackoffBase: time.Microsecond, BackoffMax: time.Millisecond, Observer: m}

	// Transient failures are retried, up to Attempts.
	f := &failing{Backend: local, err: backend.Transient(errors.New("connection reset"))}
	f.n.Store(3)
	if info, err := backend.Stack(f, opts).Stat(ctx, "x"); err != nil || info.Size != 3 {
		t.Fatalf("Stat after 3 transient failures with 4 attempts = %+v, %v", info, err)
	}
	if got := f.calls.Load(); got != 4 {
		t.Errorf("%d calls, want 4", got)
	}
	if counter(t, reg, "stat", "transient") != 3 || counter(t, reg, "stat", "ok") != 1 {
		t.Errorf("metrics: %v transient, %v ok stats; want 3 and 1", counter(t, reg, "stat", "transient"), counter(t, reg, "stat", "ok"))
	}
	f.calls.Store(0)
	f.n.Store(10)
	if _, err := backend.Stack(f, opts).Stat(ctx, "x"); !backend.IsTransient(err) || f.calls.Load() != 4 {
		t.Errorf("Stat failing 10 times: %v after %d calls; want the transient error after 4", err, f.calls.Load())
	}

	// A conflict and a missing object are answers, not failures: one call.
	s := backend.Stack(local, opts)
	for what, call := range map[string]func() error{
		"conflict":  func() error { return s.PutIfAbsent(ctx, "x", bytes.NewReader(nil), 0) },
		"not found": func() error { _, err := s.Stat(ctx, "nope"); return err },
		"short":     func() error { return s.ReadAt(ctx, "x", make([]byte, 4), 0) },
	} {
		before := counterSum(t, reg)
		if err := call(); err == nil {
			t.Errorf("%s: no error", what)
		}
		if n := counterSum(t, reg) - before; n != 1 {
			t.Errorf("%s: %v requests, want 1 (no retry)", what, n)
		}
	}
	// A cancelled caller is not retried either.
	f.calls.Store(0)
	f.n.Store(10)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := backend.Stack(f, opts).Stat(cctx, "x"); err == nil || f.calls.Load() > 1 {
		t.Errorf("cancelled Stat: %v after %d calls", err, f.calls.Load())
	}
}

// cutList is a Backend whose listings fail transiently after cut
// objects, the first fails times; it records each ListAfter's after.
type cutList struct {
	backend.Backend
	cut, fails int
	afters     []string
}

func (c *cutList) cutting(fn func(backend.Info) error) func(backend.Info) error {
	n := 0
	fail := c.fails > 0
	c.fails--
	return func(i backend.Info) error {
		if fail && n == c.cut {
			return backend.Transient(errors.New("connection reset"))
		}
		n++
		return fn(i)
	}
}

func (c *cutList) List(ctx context.Context, prefix string, fn func(backend.Info) error) error {
	return c.Backend.List(ctx, prefix, c.cutting(fn))
}

func (c *cutList) ListAfter(ctx context.Context, prefix, after string, fn func(backend.Info) error) error {
	c.afters = append(c.afters, after)
	return c.Backend.ListAfter(ctx, prefix, after, c.cutting(fn))
}

// TestRetryListAfter: a ListAfter cut off after reporting objects is
// retried after the last one, reporting each once and in order; a List
// cut off so is not retried (it could report an object twice).
func TestRetryListAfter(t *testing.T) {
	ctx := context.Background()
	local := newLocal(t)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("l/%02d", i))
		backendtest.Put(t, local, want[i], nil)
	}
	opts := backend.StackOptions{Attempts: 4, BackoffBase: time.Microsecond, BackoffMax: time.Millisecond}
	c := &cutList{Backend: local, cut: 2, fails: 3}
	var got []string
	if err := backend.Stack(c, opts).ListAfter(ctx, "l/", "l/00", func(i backend.Info) error {
		got = append(got, i.Name)
		return nil
	}); err != nil || !slices.Equal(got, want[1:]) {
		t.Fatalf("ListAfter cut after 2 objects 3 times = %v, %v; want %v", got, err, want[1:])
	}
	if a := strings.Join(c.afters, ","); a != "l/00,l/02,l/04,l/06" {
		t.Errorf("attempts listed after %s; want l/00,l/02,l/04,l/06", a)
	}

	c = &cutList{Backend: local, cut: 3, fails: 1}
	n := 0
	err := backend.Stack(c, opts).List(ctx, "l/", func(backend.Info) error { n++; return nil })
	if !backend.IsTransient(err) || n != 3 {
		t.Errorf("List cut after 3 objects: %v after %d; want the transient error after 3", err, n)
	}
}

func counterSum(t *testing.T, reg *prometheus.Registry) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "walrus_backend_requests_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestConcurrencyLimit: no more than Connections calls reach the backend
// at once.
func TestConcurrencyLimit(t *testing.T) {
	g := &gauge{Backend: newLocal(t), release: make(chan struct{})}
	b := backend.Stack(g, backend.StackOptions{Connections: 3})
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() { defer wg.Done(); b.Stat(context.Background(), "x") }()
	}
	backendtestWait(t, func() bool { return g.inFlight.Load() == 3 })
	close(g.release)
	wg.Wait()
	if m := g.max.Load(); m != 3 {
		t.Errorf("%d calls in flight at most, want 3", m)
	}
}

type gauge struct {
	backend.Backend
	inFlight, max atomic.Int32
	release       chan struct{}
}

func (g *gauge) Stat(ctx context.Context, name string) (backend.Info, error) {
	n := g.inFlight.Add(1)
	for m := g.max.Load(); n > m && !g.max.CompareAndSwap(m, n); m = g.max.Load() {
	}
	<-g.release
	g.inFlight.Add(-1)
	return g.Backend.Stat(ctx, name)
}

func backendtestWait(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(time.Millisecond) // polling interval
	}
}

func TestS3ConfigValidate(t *testing.T) {
	good := backend.S3Config{Endpoint: "127.0.0.1:9000", Bucket: "walrus-packs", Prefix: "site1/", AccessKey: "a", SecretKey: "s"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mutate func(*backend.S3Config)
		want   string
	}{
		{func(c *backend.S3Config) { c.Endpoint = "" }, "endpoint is empty"},
		{func(c *backend.S3Config) { c.Endpoint = "https://s3.example.com" }, "set tls for https"},
		{func(c *backend.S3Config) { c.Endpoint = "s3.example.com/bucket" }, "has a path"},
		{func(c *backend.S3Config) { c.Bucket = "My_Bucket" }, "not a valid bucket name"},
		{func(c *backend.S3Config) { c.Prefix = "site1" }, "does not end in '/'"},
		{func(c *backend.S3Config) { c.Prefix = "../" }, "prefix"},
		{func(c *backend.S3Config) { c.SecretKey = "" }, "credentials are incomplete"},
		{func(c *backend.S3Config) { c.ListPageSize = 5000 }, "page size"},
	} {
		cfg := good
		c.mutate(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Validate(%+v) = %v; want one line containing %q", cfg, err, c.want)
		}
		if _, err := backend.NewS3(cfg); err == nil {
			t.Errorf("NewS3 accepted %+v", cfg)
		}
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "key")
	hexKey := strings.Repeat("0123456789abcdef", 4)
	os.WriteFile(p, []byte(hexKey+"\n"), 0o600)
	k, err := backend.LoadKeyFile(p)
	if err != nil || k[0] != 0x01 || k[31] != 0xef {
		t.Fatalf("LoadKeyFile = %x, %v", k, err)
	}
	for what, c := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"world-readable": {hexKey, 0o644, "chmod 600"},
		"short":          {"abcd", 0o600, "not 64 hex digits"},
		"not hex":        {strings.Repeat("zz", 32), 0o600, "not hexadecimal"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(what, " ", "-"))
		os.WriteFile(p, []byte(c.content), c.mode)
		os.Chmod(p, c.mode)
		if _, err := backend.LoadKeyFile(p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s key file: %v; want %q", what, err, c.want)
		}
	}
}
