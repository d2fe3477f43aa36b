package rsyncgw

import (
	"sync"
	"time"
)

// rateLimiter paces what a session writes to --bwlimit bytes per second
// (rsync: io.c sleep_for_bwlimit): it counts the bytes written, drains
// the count at the rate, and sleeps once the backlog is worth a tenth of
// a second or more, so short bursts pass and the average holds.
type rateLimiter struct {
	mu      sync.Mutex // guards the fields; writers of one session may race
	rate    int64      // bytes per second; 0 means no limit
	backlog float64    // bytes not yet paid for by elapsed time
	last    time.Time
	sleep   func(time.Duration)
	now     func() time.Time
}

func (l *rateLimiter) set(rate int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate, l.backlog, l.last = rate, 0, time.Time{}
	if l.sleep == nil {
		l.sleep, l.now = time.Sleep, time.Now
	}
}

// wrote accounts for n bytes just written and waits as long as needed.
func (l *rateLimiter) wrote(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate <= 0 {
		return
	}
	now := l.now()
	if !l.last.IsZero() {
		l.backlog -= now.Sub(l.last).Seconds() * float64(l.rate)
		l.backlog = max(l.backlog, 0)
	}
	l.backlog += float64(n)
	l.last = now
	wait := time.Duration(l.backlog / float64(l.rate) * float64(time.Second))
	if wait < 100*time.Millisecond {
		return
	}
	l.sleep(wait)
	after := l.now()
	l.backlog = max(0, (wait-after.Sub(now)).Seconds()*float64(l.rate))
	l.last = after
}
