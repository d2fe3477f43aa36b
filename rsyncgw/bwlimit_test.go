package rsyncgw

import (
	"testing"
	"time"
)

// TestRateLimiter: writes at 1 MiB/s, in 64 KiB pieces, sleep enough to
// hold the average, in pieces of at least a tenth of a second.
func TestRateLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	var slept []time.Duration
	l := &rateLimiter{}
	l.set(1 << 20)
	l.now = func() time.Time { return now }
	l.sleep = func(d time.Duration) { slept = append(slept, d); now = now.Add(d) }
	for range 64 { // 4 MiB written instantly
		l.wrote(64 << 10)
	}
	var total time.Duration
	for _, d := range slept {
		if d < 100*time.Millisecond {
			t.Errorf("slept %v, less than a tenth of a second", d)
		}
		total += d
	}
	if total < 3900*time.Millisecond || total > 4100*time.Millisecond {
		t.Errorf("4 MiB at 1 MiB/s slept %v in all", total)
	}
	l.set(0)
	slept = nil
	l.wrote(1 << 30)
	if len(slept) != 0 {
		t.Error("no limit still slept")
	}
}
