package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// A front-end does not take back its own files from a peer's copies: A
// commits a file, B adopts it, A removes it (retention), and B's pack with
// the adoption reaches A's follower after the removal. A must not adopt
// it again (it would come back after every retention run, and B's next
// adoption of A's copy would ping-pong for ever). Without the jeCopied
// mark A adopts it back (Adopted 2, the file held again).
func TestPeersDoNotEchoCopies(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	bdir := t.TempDir()
	b := e.open(t, bdir, "fe2/")
	n1, n2 := peerFile(1), peerFile(3)
	mustPut(t, a, "n1", n1)
	mustPut(t, a, "n2", n2)
	testenv.WaitFor(t, "B adopts n1 and n2", 30*time.Second, func() bool { return holdsAll(t, b, map[string][]byte{"n1": n1, "n2": n2}) })
	if err := a.Remove("n1"); err != nil {
		t.Fatal(err)
	}
	m := peerFile(2)
	mustPut(t, b, "m", m) // committed on B after its adoption of n1: in the same pack or a later one
	testenv.WaitFor(t, "A adopts m", 30*time.Second, func() bool { return holdsAll(t, a, map[string][]byte{"m": m}) })
	if _, err := a.StatHere("n1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("A holds n1 again after removing it (adopted back from B's copy): %v", err)
	}
	if ps := peerStatus(t, a); len(ps) != 1 || ps[0].Adopted != 1 {
		t.Fatalf("A's peer status %+v: want exactly 1 file adopted (m)", ps)
	}

	// The copied entries are ordinary files to Repair: B's index rebuilt
	// from its packs holds what it adopted.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := Repair(context.Background(), Config{Dir: bdir}, RepairOptions{}); err != nil || len(rep.Verify.Problems) > 0 {
		t.Fatalf("repair of B: %v %+v", err, rep.Verify)
	}
	r := openTest(t, bdir, func(c *Config) { c.BlockSize = 64 << 10 })
	if !holdsAll(t, r, map[string][]byte{"n2": n2, "m": m}) {
		t.Fatal("B's repaired index lacks the adopted n2 or its own m")
	}
}

// A front-end that claimed a name and crashed before committing it (the
// claim is written first), whose push PostgreSQL then retried through
// another front-end, gets the file from that one: the other's commit is
// its own (not a copy), so it is followed although the claim is ours.
func TestPeersClaimantThatCrashedBeforeItsCommitGetsTheFile(t *testing.T) {
	e := newPeerEnv(t)
	a := e.open(t, t.TempDir(), "fe1/")
	b := e.open(t, t.TempDir(), "fe2/")
	data := peerFile(21)
	scratch := openTest(t, t.TempDir(), func(c *Config) { c.BlockSize = 64 << 10 })
	mustPut(t, scratch, "seg", data)
	f, err := scratch.lookup("seg")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.claim(f); err != nil { // A's claim, and then A "crashed"
		t.Fatal(err)
	}
	mustPut(t, b, "seg", data) // the retry through B: an identical claim
	testenv.WaitFor(t, "A adopts the file B committed under A's claim", 30*time.Second, func() bool {
		return holdsAll(t, a, map[string][]byte{"seg": data})
	})
}
