//go:build bench

package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store/backend/backendtest"
	"github.com/walrus-archive/walrus/test/e2e/walrusproc"
)

// TestFrontEndLagBench measures how soon a segment pushed to one
// front-end of a group is readable through the other's mount, under a
// steady stream of pushes (real WAL from the corpus, one every
// WALRUS_LAG_EVERY, default 250 ms, like a busy primary), for two groups
// on one versitygw in the same run: local-ack (the bucket lags by
// --bucket-roll-age, 1 s here) and remote-ack (a push is in the bucket
// when it succeeds). For every segment: the push's time (rsync to the
// first front-end, claims included) and the delay from its success to
// the second front-end's mount answering a stat of it (a stat of a name
// claimed elsewhere waits for its arrival, so it returns when the file
// arrived, give or take one follower pass).
func TestFrontEndLagBench(t *testing.T) {
	segs := corpus(t)
	if len(segs) > 40 {
		segs = segs[:40]
	}
	every := 250 * time.Millisecond
	if v := os.Getenv("WALRUS_LAG_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		every = d
	}
	gw := backendtest.StartVersityGW(t)
	type result struct{ push, arrive []float64 }
	res := map[string]*result{}
	for _, ack := range []string{"local", "remote"} {
		fe, _ := walrusproc.StartFrontEnds(t, gw, [2]string{t.TempDir(), t.TempDir()}, "--ack", ack, "--bucket-roll-age", "1s", "--log-level", "warn")
		r := &result{}
		res[ack] = r
		var mu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(every)
		for _, path := range segs {
			<-tick.C
			name := filepath.Base(path)
			start := time.Now()
			if out, err := exec.Command("rsync", "-aq", path, fe[0].StoreURL(name)).CombinedOutput(); err != nil {
				t.Fatalf("%s-ack: rsync %s: %v %s", ack, name, err, out)
			}
			acked := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := acked.Add(2 * time.Minute)
				for {
					if _, err := os.Stat(filepath.Join(fe[1].Mount, name)); err == nil {
						break
					} else if time.Now().After(deadline) {
						t.Errorf("%s-ack: %s not readable on the second front-end after 2 minutes: %v", ack, name, err)
						return
					}
				}
				mu.Lock()
				r.push = append(r.push, acked.Sub(start).Seconds()*1000)
				r.arrive = append(r.arrive, time.Since(acked).Seconds())
				mu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
	}
	q := func(xs []float64, p float64) float64 {
		s := append([]float64(nil), xs...)
		sort.Float64s(s)
		if len(s) == 0 {
			return 0
		}
		return s[min(len(s)-1, int(p*float64(len(s))))]
	}
	l, r := res["local"], res["remote"]
	t.Logf("\n## Front-ends: a push to one, readable on the other (%d real segments, one every %v, roll age 1 s, versitygw on this host)\n\n"+
		"| | local-ack | remote-ack | remote ÷ local |\n|---|---:|---:|---:|\n"+
		"| push, median (ms) | %.1f | %.1f | %.2f |\n| push, p90 (ms) | %.1f | %.1f | %.2f |\n"+
		"| readable on the other, median (s) | %.2f | %.2f | %.2f |\n| readable on the other, p90 (s) | %.2f | %.2f | %.2f |\n"+
		"| readable on the other, max (s) | %.2f | %.2f | %.2f |\n",
		len(segs), every,
		median(l.push), median(r.push), median(r.push)/median(l.push), q(l.push, .9), q(r.push, .9), q(r.push, .9)/q(l.push, .9),
		median(l.arrive), median(r.arrive), median(r.arrive)/median(l.arrive), q(l.arrive, .9), q(r.arrive, .9), q(r.arrive, .9)/q(l.arrive, .9),
		q(l.arrive, 1), q(r.arrive, 1), q(r.arrive, 1)/q(l.arrive, 1))
}
