package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/internal/walgen"
)

type result struct {
	code           int
	stdout, stderr string
}

func walrus(t *testing.T, data string, stdin []byte, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	all := append([]string{"--data", data}, args...)
	code := run(context.Background(), all, bytes.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// newStore makes an empty store with walrus init, as an operator would: no
// other command creates one.
func newStore(t *testing.T) string {
	t.Helper()
	data := filepath.Join(t.TempDir(), "data")
	if r := walrus(t, data, nil, "init"); r.code != 0 || !strings.Contains(r.stdout, "created an empty walrus store in "+data) {
		t.Fatalf("init: %+v", r)
	}
	return data
}

func TestCLIArchiveCycle(t *testing.T) {
	data := newStore(t)
	work := t.TempDir()
	sg := walgen.Segment{TLI: 1, SegNo: 2, SysID: 99, SegSize: 1 << 20, Seed: 1}
	src := filepath.Join(work, sg.Name())
	if err := os.WriteFile(src, sg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	// archive_command = 'walrus put %f %p'
	if r := walrus(t, data, nil, "put", sg.Name(), src); r.code != 0 {
		t.Fatalf("put: %+v", r)
	}
	if r := walrus(t, data, nil, "put", sg.Name(), src); r.code != 0 {
		t.Fatalf("identical re-put: %+v", r)
	}
	other := walgen.Segment{TLI: 1, SegNo: 2, SysID: 99, SegSize: 1 << 20, Seed: 2}.Bytes()
	if r := walrus(t, data, other, "put", sg.Name()); r.code != exitExists || !strings.Contains(r.stderr, "different content") {
		t.Fatalf("different re-put: %+v, want exit %d", r, exitExists)
	}
	foreign := walgen.Segment{TLI: 1, SegNo: 3, SysID: 100, SegSize: 1 << 20, Seed: 2}
	if r := walrus(t, data, foreign.Bytes(), "put", foreign.Name(), "-"); r.code != exitInvalid || !strings.Contains(r.stderr, "another cluster") {
		t.Fatalf("foreign segment: %+v, want exit %d", r, exitInvalid)
	}
	if r := walrus(t, data, []byte("garbage"), "put", "000000010000000000000009"); r.code != exitInvalid {
		t.Fatalf("garbage segment: %+v, want exit %d", r, exitInvalid)
	}
	// restore_command = 'walrus get %f %p'
	dst := filepath.Join(work, "RECOVERYXLOG")
	if r := walrus(t, data, nil, "get", sg.Name(), dst); r.code != 0 {
		t.Fatalf("get: %+v", r)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, sg.Bytes()) {
		t.Fatal("restored segment differs")
	}
	if r := walrus(t, data, nil, "get", "00000002.history", filepath.Join(work, "h")); r.code != exitNotFound {
		t.Fatalf("missing file: %+v, want exit %d", r, exitNotFound)
	}
	if _, err := os.Stat(filepath.Join(work, "h")); !os.IsNotExist(err) {
		t.Fatal("a failed get left a file behind")
	}
	r := walrus(t, data, nil, "status", "--json")
	var st struct{ Files, LogicalBytes, StoredBytes int64 }
	if err := json.Unmarshal([]byte(strings.ReplaceAll(r.stdout, "_b", "B")), &st); err != nil || r.code != 0 {
		t.Fatalf("status --json: %+v %v", r, err)
	}
	if st.Files != 1 || st.LogicalBytes != 1<<20 || st.StoredBytes <= 0 || st.StoredBytes >= 1<<20 {
		t.Fatalf("status %+v", st)
	}
	if r := walrus(t, data, nil, "ls"); r.code != 0 || strings.TrimSpace(r.stdout) != sg.Name() {
		t.Fatalf("ls: %+v", r)
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 || !strings.Contains(r.stdout, "0 problems") {
		t.Fatalf("verify: %+v", r)
	}
	if r := walrus(t, data, nil, "rm", sg.Name()); r.code != 0 {
		t.Fatalf("rm: %+v", r)
	}
	if r := walrus(t, data, nil, "rm", sg.Name()); r.code != exitNotFound {
		t.Fatalf("rm again: %+v", r)
	}
}

func TestCLIVerifyNamesCorruptFile(t *testing.T) {
	data := newStore(t)
	good := bytes.Repeat([]byte("good file "), 50_000)
	bad := bytes.Repeat([]byte("will be damaged "), 50_000)
	if r := walrus(t, data, bad, "put", "bad.txt"); r.code != 0 {
		t.Fatal(r)
	}
	if r := walrus(t, data, good, "put", "good.txt"); r.code != 0 {
		t.Fatal(r)
	}
	packs, _ := filepath.Glob(filepath.Join(data, "packs", "*.pack"))
	f, err := os.OpenFile(packs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff, 0xff, 0xff}, 16+60) // inside bad.txt's payload, the first record
	f.Close()
	r := walrus(t, data, nil, "verify")
	if r.code != exitProblems || !strings.Contains(r.stdout, "BAD  bad.txt") || strings.Contains(r.stdout, "good.txt") {
		t.Fatalf("verify: %+v, want exit %d naming bad.txt only", r, exitProblems)
	}
	if r := walrus(t, data, nil, "get", "bad.txt", "-"); r.code == 0 || !strings.Contains(r.stderr, "corrupt") {
		t.Fatalf("reading a corrupt file: %+v", r)
	}
	if r := walrus(t, data, nil, "get", "good.txt", "-"); r.code != 0 || r.stdout != string(good) {
		t.Fatalf("reading an intact file: code %d", r.code)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	data := newStore(t)
	if r := walrus(t, data, nil, "frobnicate"); r.code != exitError {
		t.Fatalf("unknown command: %+v", r)
	}
	if r := walrus(t, data, nil, "put", "a/b/c", "-"); r.code != exitError || !strings.Contains(r.stderr, "invalid name") {
		t.Fatalf("bad name: %+v", r)
	}
}
