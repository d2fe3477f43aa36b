//go:build bench

package rsyncgw

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// TestCompareIngestLevel pushes every segment with the real rsync client
// to two gateways, one whose store compresses uploads at `fastest` (the
// ingest level) and one at `default` (what main used), alternating which
// goes first, and prints median wall time and the server's CPU per push
// (in-process: the client is a child process and not counted). Run it with
//
//	WALRUS_BENCH=1 WALRUS_WALCACHE=test/testdata/walcache go test -tags bench ./rsyncgw -run CompareIngestLevel -v
func TestCompareIngestLevel(t *testing.T) {
	segs := benchSegments(t)
	rsyncTimeout = 5 * time.Minute
	envs := [2]*testEnv{startLevelServer(t, "fastest"), startLevelServer(t, "default")}
	var wall, cpu [2][]time.Duration
	for i, src := range segs {
		name := filepath.Base(src)
		for k := 0; k < 2; k++ {
			j := (i + k) % 2
			c0, w0 := selfCPU(), time.Now()
			if out, code := envs[j].rsync("-a", src, "rsync://HOST/wal/"+name); code != 0 {
				t.Fatalf("rsync push: exit %d: %s", code, out)
			}
			wall[j] = append(wall[j], time.Since(w0))
			cpu[j] = append(cpu[j], selfCPU()-c0)
		}
	}
	fmt.Printf("\nrsync push of %d segments, interleaved: fastest vs default\n", len(segs))
	fmt.Printf("wall median: %v vs %v (%.3fx); server CPU median: %v vs %v (%.3fx)\n",
		median(wall[0]).Round(time.Millisecond/10), median(wall[1]).Round(time.Millisecond/10), float64(median(wall[0]))/float64(median(wall[1])),
		median(cpu[0]).Round(time.Millisecond/10), median(cpu[1]).Round(time.Millisecond/10), float64(median(cpu[0]))/float64(median(cpu[1])))
	for j, e := range envs {
		st, _ := e.st.Status()
		fmt.Printf("stored at %s: %d bytes\n", []string{"fastest", "default"}[j], st.StoredBytes)
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startLevelServer(t *testing.T, level string) *testEnv {
	t.Helper()
	return startServerAt(t, store.Config{Dir: t.TempDir(), Level: level}, "[wal]\n\tpath = /db/pg_archived\n\tread only = false\n",
		func(s *store.Store) Store { return s }, func(o *Options) { o.Logger = quiet })
}
