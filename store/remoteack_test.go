package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store/backend"
)

// remoteAckConfig: remote-ack with a roll age no test outlives, so that
// nothing reaches the bucket by age: what is there, the acks put there.
func remoteAckConfig(b backend.Backend, timeout time.Duration) func(*Config) {
	return func(c *Config) {
		remoteConfig(b, time.Hour)(c)
		c.AckRemote, c.AckTimeout = true, timeout
	}
}

// rebuildFromBucket closes s, deletes its data directory, fetches the
// bucket into a new one and repairs it: the store as the bucket alone
// holds it.
func rebuildFromBucket(t *testing.T, s *Store, b backend.Backend) *Store {
	t.Helper()
	dir := s.cfg.Dir
	s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	dir2 := filepath.Join(t.TempDir(), "rebuilt")
	if _, err := FetchPacks(context.Background(), b, dir2, nil); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(context.Background(), Config{Dir: dir2}, RepairOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("repair of the fetched packs: %v %+v", err, rep)
	}
	return openTest(t, dir2, func(c *Config) { c.BlockSize, c.PackSize, c.CacheBytes = 64<<10, 512<<10, 1<<20 })
}

// What a remote-ack push acknowledges is in the bucket when the push
// returns: uploads (sequential and concurrent) and a landing file's
// commit; the data directory deleted right after the last one returns,
// the store rebuilt from the bucket alone holds every file byte for
// byte. With the roll age at an hour, local-ack would leave the active
// pack (and so the last files) out.
func TestAckRemotePushIsInBucket(t *testing.T) {
	_, b := testBucket(t, false)
	s := openTest(t, t.TempDir(), remoteAckConfig(b, 30*time.Second))
	want := map[string][]byte{}
	for i := range 3 {
		name := fmt.Sprintf("seq%d", i)
		want[name] = randomBytes(100<<10, uint64(i))
		mustPut(t, s, name, want[name])
		// Every pack the index knows of holds what this push needs or
		// came before it: all of them are in the bucket, Stat-checked.
		if n, err := s.notUploaded(); err != nil || n != 0 {
			t.Fatalf("after the ack of %s: %d packs not uploaded (%v)", name, n, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		name := fmt.Sprintf("conc%d", i)
		want[name] = randomBytes(80<<10, uint64(100+i))
		wg.Add(1)
		go func(i int, name string, data []byte) {
			defer wg.Done()
			_, errs[i] = put(t, s, name, data)
		}(i, name, want[name])
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent push %d: %v", i, err)
		}
	}
	seg := landSeg(1, 1)
	if _, err := land(t, s, seg.Name(), seg.Bytes()); err != nil {
		t.Fatal(err)
	}
	want[seg.Name()] = seg.Bytes()
	if n := s.Landed(); n != 0 {
		t.Fatalf("%d files landed and acknowledged in remote-ack mode", n)
	}
	st, err := s.Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d pushes: %d uploads, %d bytes", len(want), st.Bucket.Uploads, st.Bucket.UploadedBytes)
	if st.Bucket.Uploads > int64(len(want))+1 { // +1: the claim's first pass may find an empty pack
		t.Errorf("%d uploads for %d pushes", st.Bucket.Uploads, len(want))
	}
	s2 := rebuildFromBucket(t, s, b)
	for name, data := range want {
		if got := readAll(t, s2, name); !bytes.Equal(got, data) {
			t.Fatalf("%s differs after the rebuild from the bucket", name)
		}
	}
}

// The bucket down: a push fails within the timeout with ErrBucket and a
// one-line message saying so, and stays committed locally; its identical
// re-push fails too (old code: succeeds at once, bytes not in the bucket).
// Back up: the re-push succeeds and the bucket alone holds it.
func TestAckRemoteBucketDown(t *testing.T) {
	gw, b := testBucket(t, false)
	const timeout = 3 * time.Second
	s := openTest(t, t.TempDir(), remoteAckConfig(b, timeout))
	mustPut(t, s, "before", randomBytes(100<<10, 1))
	gw.Stop()
	data := randomBytes(100<<10, 2)
	for _, what := range []string{"push", "identical re-push"} {
		start := time.Now()
		_, err := put(t, s, "down", data)
		took := time.Since(start)
		if !errors.Is(err, ErrBucket) {
			t.Fatalf("%s with the bucket down: %v, want ErrBucket", what, err)
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "unreachable") || !strings.Contains(msg, "once the bucket is back") {
			t.Fatalf("%s: message %q", what, msg)
		}
		if took > timeout+2*time.Second { // bounded, not a speed assertion
			t.Fatalf("%s failed after %v, timeout %v", what, took, timeout)
		}
		t.Logf("%s failed after %v: %v", what, took.Round(time.Millisecond), err)
	}
	if got := readAll(t, s, "down"); !bytes.Equal(got, data) {
		t.Fatal("the failed push is not kept locally")
	}
	gw.Restart(t)
	mustPut(t, s, "down", data) // the retry: identical, waits for the bucket
	s2 := rebuildFromBucket(t, s, b)
	for name, d := range map[string][]byte{"before": randomBytes(100<<10, 1), "down": data} {
		if got := readAll(t, s2, name); !bytes.Equal(got, d) {
			t.Fatalf("%s differs after the rebuild", name)
		}
	}
}

// A bucket that accepts connections and never answers: the push still
// returns within the timeout (no call hangs).
func TestAckRemoteBucketHangs(t *testing.T) {
	_, b := testBucket(t, false)
	s := openTest(t, t.TempDir(), remoteAckConfig(blackhole{b}, 2*time.Second))
	start := time.Now()
	_, err := put(t, s, "f", randomBytes(100<<10, 1))
	if !errors.Is(err, ErrBucket) || time.Since(start) > 4*time.Second {
		t.Fatalf("push to a bucket that hangs: %v after %v", err, time.Since(start))
	}
	t.Log(err)
}

// blackhole is a bucket whose every call waits for its context (a
// gateway that accepts connections and never answers, with no Stack
// timeout in front of it).
type blackhole struct{ backend.Backend }

func (blackhole) Put(ctx context.Context, _ string, _ io.ReaderAt, _ int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blackhole) PutIfAbsent(ctx context.Context, _ string, _ io.ReaderAt, _ int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blackhole) ReadAt(ctx context.Context, _ string, _ []byte, _ int64) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blackhole) Stat(ctx context.Context, _ string) (backend.Info, error) {
	<-ctx.Done()
	return backend.Info{}, ctx.Err()
}

func (blackhole) List(ctx context.Context, _ string, _ func(backend.Info) error) error {
	<-ctx.Done()
	return ctx.Err()
}

func (blackhole) ListAfter(ctx context.Context, _, _ string, _ func(backend.Info) error) error {
	<-ctx.Done()
	return ctx.Err()
}

// notUploaded counts the packs not retired and not marked uploaded.
func (s *Store) notUploaded() (int, error) {
	packs, err := s.waitingPacks(^uint32(0))
	return len(packs), err
}
