package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/control"
	"github.com/walrus-archive/walrus/internal/walgen"
	"github.com/walrus-archive/walrus/store"
)

// archiveState is what a client sees: every file's metadata and content hash.
type archiveState map[string]string

func stateOfStore(t *testing.T, data string) archiveState {
	t.Helper()
	s, err := store.Open(store.Config{Dir: data, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := archiveState{}
	err = s.Walk(context.Background(), "*", func(fi store.FileInfo) error {
		r, err := s.Open(fi.Path)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if _, err := r.WriteTo(&buf); err != nil {
			return err
		}
		st[fi.Path] = fmt.Sprintf("%d %o %d %d %x", fi.Size, fi.Mode, fi.MTime.UnixNano(), fi.Archived.UnixNano(), sha256.Sum256(buf.Bytes()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestCLIRepair: after the index is deleted, walrus repair rebuilds it and
// walrus verify is clean; every file is back with its metadata, removed
// and renamed-away files stay gone. Repair refuses while a server runs.
func TestCLIRepair(t *testing.T) {
	data := newStore(t)
	s, err := store.Open(store.Config{Dir: data, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		var name string
		var body []byte
		if i%3 == 0 {
			sg := walgen.Segment{TLI: 1, SegNo: uint64(i/3 + 1), SysID: 11, SegSize: 1 << 20, Seed: uint64(i), UsedPages: 2}
			name, body = "pg/"+sg.Name(), sg.Bytes()
		} else {
			name, body = fmt.Sprintf("%s/f%03d", []string{"misc", "more"}[i%2], i), []byte(strings.Repeat(fmt.Sprint(i), 100+i))
		}
		u, err := s.Create(name, store.FileMeta{Mode: 0o640, MTime: time.Unix(int64(1e9+i), 0)})
		if err == nil {
			_, err = u.Write(body)
		}
		if err == nil {
			_, err = u.Commit()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	gone := []string{"misc/f004", "more/f005"}
	for _, p := range gone[:1] {
		if err := s.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rename("more/f005", "misc/renamed"); err != nil {
		t.Fatal(err)
	}
	mode := fs.FileMode(0o400)
	if _, err := s.SetMeta("misc/f008", &mode, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := stateOfStore(t, data)
	if err := os.RemoveAll(filepath.Join(data, "index")); err != nil {
		t.Fatal(err)
	}
	if r := walrus(t, data, nil, "verify"); r.code != exitIndexMissing {
		t.Fatalf("verify without an index: %+v", r)
	}

	// A server owns the store: repair must not touch it.
	l, err := net.Listen("unix", filepath.Join(data, control.SocketName))
	if err != nil {
		t.Fatal(err)
	}
	if r := walrus(t, data, nil, "repair"); r.code != exitError || !strings.Contains(r.stderr, "walrus serve is running") {
		t.Errorf("repair beside a server: %+v", r)
	}
	l.Close()
	os.Remove(filepath.Join(data, control.SocketName))

	r := walrus(t, data, nil, "repair", "--json")
	var rep store.RepairReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 0 {
		t.Fatalf("repair: %+v (%v)", r, err)
	}
	if rep.Files != int64(len(want)) || rep.Verify == nil || rep.Verify.Files != int64(len(want)) || len(rep.Verify.Problems) != 0 {
		t.Fatalf("repair report: %+v / %+v", rep, rep.Verify)
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 || !strings.Contains(r.stdout, " 0 problems") {
		t.Fatalf("verify after repair: %+v", r)
	}
	got := stateOfStore(t, data)
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: before %q, after repair %q", p, w, got[p])
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d files after repair, %d before", len(got), len(want))
	}
	for _, p := range gone {
		if _, ok := got[p]; ok {
			t.Errorf("%s is back", p)
		}
	}
	// repair is idempotent: on a healthy store it rebuilds the same index.
	var out bytes.Buffer
	if err := repair(context.Background(), repairOptions{data: data, stdout: &out, stderr: &out, log: newLogger(&out, "error", "text")}); err != nil {
		t.Fatalf("repair of a healthy store: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "the old index is kept in") || !strings.Contains(out.String(), " 0 problems") {
		t.Fatalf("repair output:\n%s", out.String())
	}
}
