package rsyncgw

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"
)

// authLimiter slows repeated failed authentication from one address, as a
// hardened daemon does (sshd's PerSourcePenalties, fail2ban): the first
// authFreeFailures failures of a burst cost nothing (a mistyped password
// must not hurt), every further attempt from that address waits for a
// slot, and the slots move apart by a penalty that doubles per failure up
// to authMaxPenalty. Slots are reserved, so parallel connections from one
// address queue behind each other instead of each waiting alone: the
// address gets at most one attempt per penalty; attempts beyond a queue of
// authMaxPenalty are refused at once. A success, or authForget
// without a failure, ends the burst. Failures are logged at the first, at
// the one that starts the penalty, and at every doubling of the count —
// not one line per attempt. Locking: mu guards addrs.
type authLimiter struct {
	mu    sync.Mutex
	addrs map[netip.Addr]*authBurst
	log   *slog.Logger
	now   func() time.Time
}

type authBurst struct {
	failures int
	first    time.Time // first failure of the burst
	last     time.Time // latest failure
	next     time.Time // the slot the next attempt from this address gets
}

const (
	authFreeFailures = 10
	authPenalty      = 100 * time.Millisecond
	authMaxPenalty   = 5 * time.Second
	authForget       = time.Minute
)

func newAuthLimiter(log *slog.Logger) *authLimiter {
	return &authLimiter{addrs: map[netip.Addr]*authBurst{}, log: log, now: time.Now}
}

// delay returns how long an attempt from addr must wait before it is
// answered, reserving its slot; refuse is set, and nothing reserved, when
// the queue of that address is longer than authMaxPenalty (the session
// then ends at once instead of sleeping).
func (l *authLimiter) delay(addr netip.Addr) (wait time.Duration, refuse bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.current(addr)
	if b == nil || b.failures < authFreeFailures {
		return 0, false
	}
	now := l.now()
	slot := b.next
	if slot.Before(now) {
		slot = now
	}
	if slot.Sub(now) > authMaxPenalty {
		return 0, true
	}
	b.next = slot.Add(penalty(b.failures))
	return slot.Sub(now), false
}

// current returns addr's burst, dropping one that has gone quiet.
func (l *authLimiter) current(addr netip.Addr) *authBurst {
	b := l.addrs[addr]
	if b != nil && l.now().Sub(b.last) > authForget {
		delete(l.addrs, addr)
		return nil
	}
	return b
}

func penalty(failures int) time.Duration {
	d := authPenalty
	for i := authFreeFailures; i < failures && d < authMaxPenalty; i++ {
		d *= 2
	}
	return min(d, authMaxPenalty)
}

// failed records a failure from addr and logs the burst when it is due.
func (l *authLimiter) failed(addr netip.Addr, module, user, why string) {
	l.mu.Lock()
	b := l.current(addr)
	now := l.now()
	if b == nil {
		b = &authBurst{first: now}
		l.addrs[addr] = b
		l.forgetQuiet()
	}
	b.failures++
	b.last = now
	n, since := b.failures, now.Sub(b.first)
	l.mu.Unlock()
	switch {
	case n == 1:
		l.log.Warn("rsync auth failed", "addr", addr, "module", module, "user", user, "reason", why)
	case n == authFreeFailures || n&(n-1) == 0 && n > authFreeFailures:
		l.log.Warn("rsync auth keeps failing from one address; slowing its attempts",
			"addr", addr, "failures", n, "in", since.Round(time.Millisecond), "penalty", penalty(n+1),
			"module", module, "user", user, "reason", why)
	}
}

// succeeded ends addr's burst.
func (l *authLimiter) succeeded(addr netip.Addr) {
	l.mu.Lock()
	delete(l.addrs, addr)
	l.mu.Unlock()
}

// forgetQuiet drops quiet bursts so the table stays bounded by the
// addresses that failed within authForget. Called with mu held.
func (l *authLimiter) forgetQuiet() {
	if len(l.addrs) < 1024 {
		return
	}
	now := l.now()
	for a, b := range l.addrs {
		if now.Sub(b.last) > authForget {
			delete(l.addrs, a)
		}
	}
}
