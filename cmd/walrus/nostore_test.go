package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/internal/walgen"
)

// A wrong --data must fail loudly: a command that answered from an empty
// store would make restore_command report "end of archive" and a recovery
// stop early, and status and verify would call a missing archive healthy.
func TestCLIRefusesDirectoryWithoutStore(t *testing.T) {
	work := t.TempDir()
	sg := walgen.Segment{TLI: 1, SegNo: 1, SysID: 7, SegSize: 1 << 20, Seed: 1}
	src := filepath.Join(work, sg.Name())
	if err := os.WriteFile(src, sg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(work, "RECOVERYXLOG")
	commands := [][]string{
		{"put", sg.Name(), src},
		{"put", sg.Name()}, // standard input
		{"get", sg.Name(), dst},
		{"get", sg.Name(), "-"},
		{"ls"},
		{"ls", "-l", "c1"},
		{"rm", sg.Name()},
		{"status"},
		{"status", "--json"},
		{"status", "--check"},
		{"verify"},
		{"retain", "--keep-backups", "1"},
		{"gc"},
	}
	empty := filepath.Join(work, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{filepath.Join(work, "nonexistent", "data"), empty} {
		for _, args := range commands {
			r := walrus(t, data, sg.Bytes(), args...)
			want := "walrus: " + data + " holds no walrus store (no index/, no packs/); check --data, or create one with `walrus --data " + data + " init`"
			if r.code != exitNoStore || !strings.HasPrefix(r.stderr, want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Errorf("walrus --data %s %s: exit %d, stdout %q, stderr %q; want exit %d and one line %q...",
					data, strings.Join(args, " "), r.code, r.stdout, r.stderr, exitNoStore, want)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(work, "nonexistent")); !os.IsNotExist(err) {
		t.Errorf("a command created the missing data directory: %v", err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 0 {
		t.Errorf("a command wrote into the empty data directory: %v", ents)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("get left %s behind", dst)
	}
	// PostgreSQL aborts recovery, instead of ending it, only on a
	// restore_command exit status above 125 (see exit.go).
	if exitNoStore <= 125 || exitIndexMissing <= 125 {
		t.Errorf("exit codes %d, %d: want above 125", exitNoStore, exitIndexMissing)
	}
}

func TestCLIInit(t *testing.T) {
	data := filepath.Join(t.TempDir(), "a", "data")
	if r := walrus(t, data, nil, "init"); r.code != 0 || r.stdout != "created an empty walrus store in "+data+"\n" {
		t.Fatalf("init: %+v", r)
	}
	for _, d := range []string{"index", "packs"} {
		if st, err := os.Stat(filepath.Join(data, d)); err != nil || !st.IsDir() {
			t.Fatalf("init made no %s/: %v", d, err)
		}
	}
	if r := walrus(t, data, nil, "init"); r.code != 0 || r.stdout != data+" already holds a walrus store\n" {
		t.Fatalf("init again: %+v", r)
	}
	if r := walrus(t, data, nil, "status", "--check"); r.code != 0 || !strings.HasPrefix(r.stdout, "OK: 0 directories") {
		t.Fatalf("status --check of an empty store: %+v", r)
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 || !strings.Contains(r.stdout, "0 problems") {
		t.Fatalf("verify of an empty store: %+v", r)
	}
}

// A store whose index is gone (or unusable) while packs remain is not "no
// store": opening it with a new, empty index would delete every pack
// (issue 11). Every command, init and serve included, refuses it with its
// own message, naming walrus repair, and exit code, and leaves the packs
// alone.
func TestCLIRefusesPacksWithoutIndex(t *testing.T) {
	for _, tc := range []struct {
		name, lost, message string
	}{
		{"index", "index", ` holds \d+ pack files but no index`},
		{"MANIFEST", "index/MANIFEST", ` holds \d+ pack files but \S+ has no MANIFEST`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := newStore(t)
			for n := uint64(1); n <= 3; n++ {
				sg := walgen.Segment{TLI: 1, SegNo: n, SysID: 7, SegSize: 1 << 20, Seed: n}
				if r := walrus(t, data, sg.Bytes(), "put", "c1/"+sg.Name()); r.code != 0 {
					t.Fatalf("put: %+v", r)
				}
			}
			if err := os.RemoveAll(filepath.Join(data, tc.lost)); err != nil {
				t.Fatal(err)
			}
			before := packFiles(t, data)
			conf := filepath.Join(t.TempDir(), "rsyncd.conf") // serve opens the store before it reads this
			for _, args := range [][]string{
				{"status"}, {"status", "--check"}, {"verify"}, {"ls"}, {"get", "c1/000000010000000000000001", "-"},
				{"put", "c1/000000010000000000000004"}, {"rm", "c1/000000010000000000000001"}, {"gc"}, {"retain", "--keep-backups", "1"}, {"init"},
				{"serve", "--rsyncd-conf", conf, "--rsync-listen", "127.0.0.1:0"},
			} {
				r := walrus(t, data, nil, args...)
				if r.code != exitIndexMissing || !regexp.MustCompile(regexp.QuoteMeta(data)+tc.message).MatchString(r.stderr) ||
					!strings.Contains(r.stderr, "`walrus --data "+data+" repair`") || strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("walrus %s: exit %d, stderr %q; want exit %d naming the lost index and walrus repair", strings.Join(args, " "), r.code, r.stderr, exitIndexMissing)
				}
			}
			if tc.lost == "index" {
				if _, err := os.Stat(filepath.Join(data, "index")); !os.IsNotExist(err) {
					t.Errorf("a command made a new index: %v", err)
				}
			}
			if after := packFiles(t, data); after != before {
				t.Errorf("packs changed: %s, then %s", before, after)
			}
			if r := walrus(t, data, nil, "repair"); r.code != 0 || !strings.Contains(r.stdout, "rebuilt 3 files") {
				t.Fatalf("repair: %+v", r)
			}
			if r := walrus(t, data, nil, "ls", "c1"); r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
				t.Fatalf("ls after repair: %+v", r)
			}
		})
	}
}

// packFiles lists DATA/packs with sizes and modification times.
func packFiles(t *testing.T, data string) string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(data, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %d %s; ", e.Name(), info.Size(), info.ModTime())
	}
	return b.String()
}

func TestCLIVersion(t *testing.T) {
	run0 := func(args ...string) result {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, nil, &out, &errb)
		return result{code, out.String(), errb.String()}
	}
	r := run0("--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "walrus ") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("--version: %+v", r)
	}
	saved := version
	version = "v9.8.7-test" // what make build sets with -ldflags -X main.version=...
	defer func() { version = saved }()
	if r := run0("--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "walrus v9.8.7-test (go") {
		t.Fatalf("--version with a linker-set version: %+v", r)
	}
}
