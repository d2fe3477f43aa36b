package store

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/walrus-archive/walrus/store/backend"
)

// The maintenance lease of a group of front-ends (issue 15).
//
// Retention decides, for the whole archive, which names go. With several
// front-ends (Config.Claims) exactly one of them decides: the holder of
// the maintenance lease. The others never run retention; their followers
// apply the holder's removals (peers.go), so the group converges on the
// holder's decision instead of each front-end deciding on its own view
// at its own time. GC stays with each front-end, over its own packs: in
// this design every front-end holds its own copy in its own packs prefix,
// so each one alone knows which of its bytes are dead, and its bucket
// deletes wait for every live peer to have read the packs (remotegc.go).
//
// The lease is a sequence of objects in the claims prefix,
// leases/maintenance/EEEEEEEEEEEEEEEE (the epoch, 16 hex digits, so that
// names sort by epoch), each created with PutIfAbsent and never
// rewritten; its body a leaseRecord naming the holder and its TTL. The
// highest epoch is the lease. Of several front-ends creating epoch E+1
// exactly one succeeds (the same guarantee claims rest on), so an epoch
// has one holder, and a holder that lost it finds out at its next
// renewal, which fails.
//
// Time: nobody compares clocks. A holder counts its lease valid from the
// moment it started the request that created its epoch until TTL minus
// a tenth (leaseMargin, for clock-rate drift) later, by its own monotonic
// clock. Another front-end may take over only once the highest epoch has
// stayed the same for a whole TTL by its own monotonic clock, counted
// from the first listing that showed it, which came after the epoch was
// created, hence after its holder started counting. So the old holder's
// validity has ended before anyone else can create the next epoch.
//
// Loop (one goroutine, every TTL/3 or when kicked):
//
//  1. List leases/maintenance/, take the highest epoch E and read it;
//     none: create epoch 1;
//  2. E is ours and confirmed (this process created it): renew, that is
//     create E+1; ErrExist means another front-end took over (we were
//     late): the lease is lost at once;
//  3. E is ours but not confirmed (created before a restart, or a
//     create whose reply was lost): create E+1 at once, which no other
//     front-end can hold;
//  4. E is another's: once it has stood a TTL unchanged (its TTL or
//     ours, the longer), or it is released, create E+1;
//  5. holding E: delete the objects of epochs below E-1.
//
// Close releases a valid lease by creating E+1 with no holder, which the
// others may take at once (step 4), instead of after a TTL.
//
// Retention checks the lease before every removal transaction
// (Store.maintainer): a lease lost in the middle of a run stops it at the
// next batch. Two front-ends removing the same names would not corrupt
// the archive anyway (a removal of a name not held is a no-op); the lease
// is there so that one decision is made, not to keep bytes safe.

// ErrNotMaintainer: the maintenance lease is held by another front-end
// (or by nobody reachable): retention runs there.
var ErrNotMaintainer = errors.New("store: another front-end holds the maintenance lease")

const (
	leasePrefix     = "leases/maintenance/"
	leaseMaxRecord  = 4096
	DefaultLeaseTTL = 30 * time.Second
)

// leaseMargin is the part of the TTL a holder gives up for clock drift.
func leaseMargin(ttl time.Duration) time.Duration { return ttl / 10 }

// leaseRecord is the body of an epoch object.
type leaseRecord struct {
	Holder   string `json:"holder"` // hex claimant id; "" released
	TTLms    int64  `json:"ttl_ms"`
	Location string `json:"location,omitempty"` // the holder's packs location, for status
	Time     int64  `json:"time"`               // unix ms at the holder; for people only
}

// LeaseStatus is what status shows of the maintenance lease
// (Status.Lease; nil without claims).
type LeaseStatus struct {
	Epoch  uint64 `json:"epoch"`
	Holder string `json:"holder,omitempty"` // "" released, or not read yet
	// Here: this front-end holds it, for ValidSeconds more.
	Here         bool    `json:"here"`
	ValidSeconds float64 `json:"valid_seconds,omitempty"`
	// SeenSeconds: how long the current epoch has stood (another's).
	SeenSeconds float64 `json:"seen_seconds,omitempty"`
	TTLSeconds  float64 `json:"ttl_seconds"`
	Acquired    int64   `json:"acquired"` // times taken over since Open (renewals not counted)
	Lost        int64   `json:"lost"`     // times lost since Open (found taken, or not renewed in time)
	LastError   string  `json:"last_error,omitempty"`
}

type lease struct {
	b    backend.Backend
	self string
	ttl  time.Duration
	loc  string
	log  func(msg string, args ...any)
	kick chan struct{}
	ctx  context.Context
	stop context.CancelFunc
	done chan struct{}

	mu        sync.Mutex
	epoch     uint64 // highest seen
	holder    string
	released  bool
	seenAt    time.Time // when epoch was first listed here
	recTTL    time.Duration
	held      uint64    // the epoch this process created and holds; 0 none
	validTill time.Time // of held
	acquired  int64
	lost      int64
	lastErr   string
	changed   chan struct{} // closed and replaced after every pass

	// Tests: testBeforeCreate runs before every create (a stalled
	// holder); testHeld is told every epoch created, and the interval
	// this process counts it valid.
	testBeforeCreate func()
	testHeld         func(epoch uint64, from, till time.Time)
}

func newLease(s *Store) *lease {
	ctx, cancel := context.WithCancel(context.Background())
	loc := ""
	if s.cfg.Remote != nil {
		loc = s.cfg.Remote.Location()
	}
	return &lease{b: s.claims.b, self: hex.EncodeToString(s.claims.id[:]), ttl: s.cfg.LeaseTTL, loc: loc,
		log: s.log.Info, kick: make(chan struct{}, 1), ctx: ctx, stop: cancel, done: make(chan struct{}),
		changed: make(chan struct{})}
}

func (l *lease) run() {
	defer close(l.done)
	for {
		err := l.pass()
		l.mu.Lock()
		l.lastErr = ""
		if err != nil && l.ctx.Err() == nil {
			l.lastErr = oneLine(err.Error())
		}
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
		t := time.NewTimer(l.ttl / 3)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-l.kick:
			t.Stop()
		case <-t.C:
		}
	}
}

// close stops the loop and releases a valid lease.
func (l *lease) close(timeout time.Duration) {
	l.stop()
	<-l.done
	l.mu.Lock()
	e, ok := l.held, l.held != 0 && time.Now().Before(l.validTill)
	l.held = 0
	l.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := l.create(ctx, e+1, ""); err == nil {
		l.log("released the maintenance lease", "epoch", e+1)
	}
}

// abandon stops the loop without releasing: what a crash does (tests).
func (l *lease) abandon() {
	l.stop()
	<-l.done
	l.mu.Lock()
	l.held = 0
	l.mu.Unlock()
}

// heldNow returns the epoch this front-end holds, or 0.
func (l *lease) heldNow() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != 0 && time.Now().Before(l.validTill) {
		return l.held
	}
	return 0
}

func leaseObject(e uint64) string { return fmt.Sprintf("%s%016x", leasePrefix, e) }

func (l *lease) create(ctx context.Context, e uint64, holder string) error {
	body, err := json.Marshal(leaseRecord{Holder: holder, TTLms: l.ttl.Milliseconds(), Location: l.loc, Time: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	return l.b.PutIfAbsent(ctx, leaseObject(e), strings.NewReader(string(body)), int64(len(body)))
}

// list returns the epochs in the prefix, ascending.
func (l *lease) list(ctx context.Context) ([]uint64, error) {
	var out []uint64
	err := l.b.List(ctx, leasePrefix, func(in backend.Info) error {
		e, err := strconv.ParseUint(strings.TrimPrefix(in.Name, leasePrefix), 16, 64)
		if err == nil && len(in.Name) == len(leasePrefix)+16 {
			out = append(out, e)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

func (l *lease) read(ctx context.Context, e uint64) (leaseRecord, error) {
	var rec leaseRecord
	in, err := l.b.Stat(ctx, leaseObject(e))
	if err != nil {
		return rec, err
	}
	if in.Size > leaseMaxRecord {
		return rec, fmt.Errorf("%s is %d bytes, not a lease record", leaseObject(e), in.Size)
	}
	p := make([]byte, in.Size)
	if err := l.b.ReadAt(ctx, leaseObject(e), p, 0); err != nil {
		return rec, err
	}
	if err := json.Unmarshal(p, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", leaseObject(e), err)
	}
	return rec, nil
}

// pass is steps 1-5 once.
func (l *lease) pass() error {
	ctx, cancel := context.WithTimeout(l.ctx, l.ttl/2)
	defer cancel()
	epochs, err := l.list(ctx)
	if err != nil {
		return l.failed(fmt.Errorf("list %s in %s: %w", leasePrefix, l.b.Location(), err))
	}
	var e uint64
	var rec leaseRecord
	if len(epochs) > 0 {
		e = epochs[len(epochs)-1]
		if rec, err = l.read(ctx, e); err != nil {
			if backend.IsNotExist(err) {
				return nil // cleaned up by a newer holder meanwhile: the next pass lists again
			}
			return l.failed(fmt.Errorf("read %s in %s: %w", leaseObject(e), l.b.Location(), err))
		}
	}
	now := time.Now()
	l.mu.Lock()
	if e != l.epoch || l.seenAt.IsZero() {
		l.epoch, l.holder, l.released, l.seenAt = e, rec.Holder, rec.Holder == "", now
		l.recTTL = time.Duration(rec.TTLms) * time.Millisecond
	}
	held, seen := l.held, l.seenAt
	if held != 0 && held != e {
		// A newer epoch than ours exists: another front-end took it.
		l.held = 0
		l.lost++
		l.mu.Unlock()
		l.log("the maintenance lease passed to another front-end", "epoch", e, "holder", rec.Holder)
		held = 0
	} else {
		l.mu.Unlock()
	}
	mine := e != 0 && rec.Holder == l.self
	switch {
	case e == 0:
	case mine: // steps 2 and 3: renew
	case rec.Holder == "": // released
	case now.Sub(seen) >= max(l.ttl, l.recTTL): // expired by our clock
	default:
		return nil
	}
	if held != 0 {
		l.cleanup(ctx, epochs, e)
	}
	l.mu.Lock()
	hook := l.testBeforeCreate
	l.mu.Unlock()
	if hook != nil {
		hook()
	}
	start := time.Now()
	err = l.create(ctx, e+1, l.self)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		if l.held == 0 {
			l.acquired++
			l.log("took the maintenance lease: retention runs here", "epoch", e+1, "previous_holder", rec.Holder)
		}
		l.held, l.validTill = e+1, start.Add(l.ttl-leaseMargin(l.ttl))
		if l.testHeld != nil {
			l.testHeld(e+1, start, l.validTill)
		}
		l.epoch, l.holder, l.released, l.seenAt, l.recTTL = e+1, l.self, false, start, l.ttl
		return nil
	case errors.Is(err, backend.ErrExist):
		if l.held != 0 {
			l.held = 0
			l.lost++
		}
		return nil // another front-end was first: the next pass reads it
	default:
		if l.held != 0 && !time.Now().Before(l.validTill) {
			l.held = 0
			l.lost++
		}
		return fmt.Errorf("create %s in %s: %w", leaseObject(e+1), l.b.Location(), err)
	}
}

// failed notes a listing or read failure: a holder whose lease ran out
// meanwhile is no longer one.
func (l *lease) failed(err error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held != 0 && !time.Now().Before(l.validTill) {
		l.held = 0
		l.lost++
	}
	return err
}

// cleanup deletes the epochs below cur-1 (step 5); failures are left to
// the next renewal.
func (l *lease) cleanup(ctx context.Context, epochs []uint64, cur uint64) {
	for _, e := range epochs {
		if e+1 >= cur {
			break
		}
		if err := l.b.Delete(ctx, leaseObject(e)); err != nil {
			return
		}
	}
}

func (l *lease) status() *LeaseStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := &LeaseStatus{Epoch: l.epoch, Holder: l.holder, TTLSeconds: l.ttl.Seconds(), Acquired: l.acquired, Lost: l.lost, LastError: l.lastErr}
	now := time.Now()
	if l.held != 0 && now.Before(l.validTill) {
		st.Here, st.ValidSeconds = true, l.validTill.Sub(now).Seconds()
	} else if !l.seenAt.IsZero() {
		st.SeenSeconds = now.Sub(l.seenAt).Seconds()
	}
	return st
}

// maintainer says whether this front-end runs retention: always without
// claims (one front-end), else only while it holds the lease. The error
// names the holder and what to do.
func (s *Store) maintainer() error {
	if s.lease == nil || s.lease.heldNow() != 0 {
		return nil
	}
	st := s.lease.status()
	switch {
	case st.Holder != "" && st.Holder != s.lease.self:
		return fmt.Errorf("%w: front-end %s (epoch %d): retention runs there, and this front-end follows its removals; "+
			"to run it here, stop that front-end: this one takes the lease within %s", ErrNotMaintainer, st.Holder, st.Epoch, s.lease.ttl)
	case st.LastError != "":
		return fmt.Errorf("%w: nobody holds it that this front-end can tell: %s; retried every %s", ErrNotMaintainer, st.LastError, s.lease.ttl/3)
	default:
		return fmt.Errorf("%w: this front-end is taking it over (epoch %d); retry within %s", ErrNotMaintainer, st.Epoch, s.lease.ttl)
	}
}

// Maintainer reports whether this front-end runs retention now, and if
// not, why (ErrNotMaintainer naming the holder).
func (s *Store) Maintainer() error { return s.maintainer() }
