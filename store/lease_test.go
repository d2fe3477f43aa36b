package store

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/walrus-archive/walrus/internal/retention"
)

// leaseHolders returns the indexes of the stores holding the lease now.
func leaseHolders(stores []*Store) []int {
	var out []int
	for i, s := range stores {
		if s.lease.heldNow() != 0 {
			out = append(out, i)
		}
	}
	return out
}

// waitLease polls until cond holds for the stores' leases (each pass
// closes lease.changed; the deadline only bounds a broken run).
func waitLease(t *testing.T, what string, stores []*Store, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
		var chs []chan struct{}
		for _, s := range stores {
			s.lease.mu.Lock()
			chs = append(chs, s.lease.changed)
			s.lease.mu.Unlock()
		}
		select {
		case <-chs[0]:
		case <-chs[len(chs)-1]:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Three front-ends: one holds the lease and is the maintainer, the others
// are refused naming it; a holder that closes hands the lease over (its
// release record names nobody), and one that stops without a word (a
// crash) loses it to another only after its own validity ended.
func TestLeaseOneHolderHandOverAndTakeover(t *testing.T) {
	const ttl = 600 * time.Millisecond
	_, _, stores := claimsGroup(t, 3, 5*time.Second, func(c *Config) { c.LeaseTTL = ttl })
	waitLease(t, "a holder", stores, func() bool { return len(leaseHolders(stores)) == 1 })
	h := leaseHolders(stores)[0]
	if err := stores[h].Maintainer(); err != nil {
		t.Fatalf("holder: %v", err)
	}
	holderID := stores[h].lease.self
	for i, s := range stores {
		if i == h {
			continue
		}
		waitLease(t, "the others see the holder", stores, func() bool { return s.lease.status().Holder == holderID })
		err := s.Maintainer()
		if !errors.Is(err, ErrNotMaintainer) || !strings.Contains(err.Error(), holderID) {
			t.Fatalf("store %d: Maintainer = %v, want ErrNotMaintainer naming %s", i, err, holderID)
		}
		if st := s.lease.status(); st.Here || st.Holder != holderID {
			t.Fatalf("store %d status %+v", i, st)
		}
	}

	// Renewals: the epoch grows while the holder keeps it.
	e0 := stores[h].lease.heldNow()
	waitLease(t, "a renewal", stores, func() bool { return stores[h].lease.heldNow() > e0 })
	if got := leaseHolders(stores); !slices.Equal(got, []int{h}) {
		t.Fatalf("holders after renewal %v, want [%d]", got, h)
	}

	// Close: released, and another store takes it.
	released := stores[h].lease.heldNow() + 1
	if err := stores[h].Close(); err != nil {
		t.Fatal(err)
	}
	rest := slices.Delete(slices.Clone(stores), h, h+1)
	rec, err := rest[0].lease.read(context.Background(), released)
	if err != nil || rec.Holder != "" {
		t.Fatalf("release record %d: %+v, %v; want one naming nobody", released, rec, err)
	}
	waitLease(t, "a new holder after the release", rest, func() bool { return len(leaseHolders(rest)) == 1 })
	if rest[leaseHolders(rest)[0]].lease.status().Acquired != 1 {
		t.Fatal("the new holder does not count its acquisition")
	}

	// Crash: the holder stops renewing and says nothing. The other takes
	// over, and not before the crashed one's validity ended.
	h2 := rest[leaseHolders(rest)[0]]
	other := rest[1-leaseHolders(rest)[0]]
	h2.lease.mu.Lock()
	till := h2.lease.validTill
	h2.lease.mu.Unlock()
	var took time.Time
	var mu sync.Mutex
	other.lease.mu.Lock()
	other.lease.testHeld = func(_ uint64, from, _ time.Time) {
		mu.Lock()
		if took.IsZero() {
			took = from
		}
		mu.Unlock()
	}
	other.lease.mu.Unlock()
	h2.lease.mu.Lock()
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })             // before the stores close (registered after them)
	h2.lease.testBeforeCreate = func() { <-stall } // stalls before its next renewal
	h2.lease.mu.Unlock()
	waitLease(t, "a takeover after a silent stop", rest, func() bool { return other.lease.heldNow() != 0 })
	mu.Lock()
	defer mu.Unlock()
	h2.lease.mu.Lock()
	if h2.lease.validTill.After(till) {
		till = h2.lease.validTill
	}
	h2.lease.mu.Unlock()
	if took.Before(till) {
		t.Fatalf("taken over at %v, before the old holder's validity ended (%v later)", took, till.Sub(took))
	}
	if err := other.Maintainer(); err != nil {
		t.Fatal(err)
	}
	if h2.lease.heldNow() != 0 {
		t.Fatal("the stalled holder still counts itself holder after its validity")
	}
}

// Three front-ends contending for a short lease while holders stall (a
// delay before a renewal longer than the TTL) and crash and restart at
// random: no two of them ever count themselves holder at the same time
// (the intervals each process counts its epochs valid never overlap
// across processes), and epochs grow with time.
func TestLeaseNeverTwoHolders(t *testing.T) {
	const ttl = 300 * time.Millisecond
	_, _, stores := claimsGroup(t, 3, 5*time.Second, func(c *Config) { c.LeaseTTL = ttl })
	type held struct {
		inst      int
		epoch     uint64
		from, end time.Time
	}
	var mu sync.Mutex
	var log []held
	ends := map[int]time.Time{} // instance → when it was abandoned
	inst := 0
	instOf := map[*lease]int{}
	start := func(s *Store) {
		l := newLease(s)
		mu.Lock()
		inst++
		me := inst
		mu.Unlock()
		rng := rand.New(rand.NewPCG(uint64(me), 7))
		l.testBeforeCreate = func() {
			if rng.IntN(4) == 0 {
				time.Sleep(time.Duration(rng.IntN(int(2 * ttl)))) // a stalled holder, not synchronisation
			}
		}
		l.testHeld = func(e uint64, from, till time.Time) {
			mu.Lock()
			log = append(log, held{me, e, from, till})
			mu.Unlock()
		}
		s.lease = l
		mu.Lock()
		instOf[l] = me
		mu.Unlock()
		go l.run()
	}
	for _, s := range stores {
		s.lease.abandon()
		start(s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Duration(200+rng.IntN(300)) * time.Millisecond) // the load: crashes at random moments
		s := stores[rng.IntN(len(stores))]
		old := s.lease
		old.abandon()
		mu.Lock()
		ends[instOf[old]] = time.Now()
		mu.Unlock()
		start(s)
	}
	for _, s := range stores {
		s.lease.abandon()
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range log {
		if e, ok := ends[log[i].inst]; ok && e.Before(log[i].end) {
			log[i].end = e
		}
	}
	slices.SortFunc(log, func(a, b held) int { return a.from.Compare(b.from) })
	holders := map[int]bool{}
	for i, a := range log {
		holders[a.inst] = true
		for _, b := range log[i+1:] {
			if b.epoch <= a.epoch {
				t.Fatalf("epoch %d created at %v after epoch %d", b.epoch, b.from, a.epoch)
			}
			if b.inst != a.inst && b.from.Before(a.end) {
				t.Fatalf("two holders: instance %d epoch %d valid until %v, instance %d took epoch %d %v before that",
					a.inst, a.epoch, a.end, b.inst, b.epoch, a.end.Sub(b.from))
			}
		}
	}
	if len(holders) < 3 {
		t.Fatalf("only %d instances ever held the lease in %d epochs: the run did not exercise takeovers", len(holders), len(log))
	}
	t.Logf("%d epochs, %d holders, %d crashes", len(log), len(holders), len(ends))
}

// Retention removes only on the lease holder: the other front-end is
// refused naming it and removes nothing; once the holder crashed, the
// other takes the lease and its retention runs.
func TestRetentionRunsOnlyOnTheLeaseHolder(t *testing.T) {
	_, _, stores := claimsGroup(t, 2, 5*time.Second, func(c *Config) { c.LeaseTTL = 400 * time.Millisecond })
	now := time.Now()
	for _, s := range stores {
		archiveLayout(t, s, 1, 15) // the same segments pushed to both: identical claims
		putBackup(t, s, 1, 2, 3, "b1", now.Add(-72*time.Hour))
		putBackup(t, s, 1, 7, 8, "b2", now.Add(-48*time.Hour))
	}
	waitLease(t, "a holder", stores, func() bool { return len(leaseHolders(stores)) == 1 })
	h := leaseHolders(stores)[0]
	holder, other := stores[h], stores[1-h]
	waitLease(t, "the other sees the holder", stores, func() bool { return other.lease.status().Holder == holder.lease.self })
	p := retention.Policy{KeepBackups: 1}
	before := names(t, other, "c1")
	_, err := other.Retain(context.Background(), "c1", p, now, false)
	if !errors.Is(err, ErrNotMaintainer) || !strings.Contains(err.Error(), holder.lease.self) {
		t.Fatalf("retention on the other front-end: %v, want ErrNotMaintainer naming %s", err, holder.lease.self)
	}
	if d := cmp.Diff(before, names(t, other, "c1")); d != "" {
		t.Fatalf("the refused retention removed files:\n%s", d)
	}
	if _, err := other.Retain(context.Background(), "c1", p, now, true); err != nil {
		t.Fatalf("a dry run needs no lease: %v", err)
	}
	reps, err := holder.Retain(context.Background(), "c1", p, now, false)
	if err != nil || len(reps) != 1 || len(reps[0].Removed) == 0 {
		t.Fatalf("retention on the holder: %+v, %v", reps, err)
	}

	holder.lease.abandon() // a crash: no release
	waitLease(t, "the takeover", []*Store{other}, func() bool { return other.lease.heldNow() != 0 })
	reps, err = other.Retain(context.Background(), "c1", p, now, false)
	if err != nil || len(reps) != 1 || len(reps[0].Removed) != len(before)-len(names(t, holder, "c1")) {
		t.Fatalf("retention after the takeover: %+v, %v", reps, err)
	}
	if d := cmp.Diff(names(t, holder, "c1"), names(t, other, "c1")); d != "" {
		t.Fatalf("the two front-ends kept different names:\n%s", d)
	}
}
