package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
	"github.com/walrus-archive/walrus/test/e2e/pgcluster"
)

// Migration in and out, against real archives: PostgreSQL 15 archives each
// segment with pgBackRest's archive-push (zst) and into a plain directory
// (cp); the plain copies are then compressed as archive_commands do (gzip,
// zstd, lz4, bzip2) or left as they are. Both are imported, twice
// (idempotent), verified, exported byte-identically, and a point-in-time
// recovery from the imported pgBackRest archive replays every row. A
// repository file whose content does not match its SHA-1 is refused and
// named; the rest of that import goes on.
func TestImportExport(t *testing.T) {
	testenv.RequirePostgres(t)
	testenv.Require(t, testenv.Command("pgbackrest"))
	for _, c := range []string{"gzip", "zstd", "lz4", "bzip2"} {
		testenv.Require(t, testenv.Command(c))
	}
	bin := binary(t)
	work := pgcluster.TempDir(t)
	plain := filepath.Join(work, "plain")
	pristine := filepath.Join(work, "pristine")
	conf := filepath.Join(work, "pgbackrest.conf")
	for _, d := range []string{plain, pristine} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		pgcluster.Chown(t, d)
	}
	pg := pgcluster.Init(t, "primary", pgcluster.Options{SegSizeMiB: 1, Conf: []string{
		"archive_mode = on",
		fmt.Sprintf("archive_command = 'cp %%p %s/%%f && cp %%p %s/%%f && pgbackrest --config=%s --stanza=main archive-push %%p'", plain, pristine, conf),
	}})
	body := fmt.Sprintf("[global]\nrepo1-path=%[1]s/repo\ncompress-type=zst\nlog-level-console=warn\nlog-level-file=off\nlock-path=%[1]s/lock\nspool-path=%[1]s/spool\n\n[main]\npg1-path=%[2]s\npg1-socket-path=%[3]s\n", work, pg.Dir, pg.Sock)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	pg.Start()
	pgcluster.Run(t, work, "pgbackrest", "--config="+conf, "--stanza=main", "stanza-create")
	backup := pg.BaseBackup("base", "-X", "none")
	pg.Query("create table after_backup as select generate_series(1, 1000) as i")
	pg.Pgbench("-i", "-q", "-s", "2")
	seg, _ := pg.SwitchWAL()
	pg.WaitArchived(time.Minute, seg)
	pg.Stop("fast")

	// Compress the plain copies the ways archive_commands do.
	segs, _ := filepath.Glob(filepath.Join(plain, "[0-9A-F]*"))
	tools := []func(p string) []string{
		func(p string) []string { return []string{"gzip", p} },
		func(p string) []string { return []string{"zstd", "-q", "--rm", p} },
		func(p string) []string { return []string{"lz4", "-q", "--rm", p, p + ".lz4"} }, // lz4 FILE alone writes to a non-terminal stdout
		func(p string) []string { return []string{"bzip2", p} },
		nil,
	}
	for i, p := range segs {
		if tool := tools[i%len(tools)]; tool != nil && !strings.HasSuffix(p, ".backup") {
			args := tool(p)
			pgcluster.Run(t, work, args[0], args[1:]...)
		}
	}
	for _, ext := range []string{".gz", ".zst", ".lz4", ".bz2"} {
		if m, _ := filepath.Glob(filepath.Join(plain, "*"+ext)); len(m) == 0 {
			t.Fatalf("no %s files in the plain archive", ext)
		}
	}

	data := filepath.Join(work, "data")
	if r := walrus(t, data, nil, "init"); r.code != 0 {
		t.Fatal(r)
	}
	for run := 0; run < 2; run++ {
		if r := walrus(t, data, nil, "import", filepath.Join(work, "repo"), "br"); r.code != 0 || !strings.Contains(r.stdout, "pgBackRest archive") {
			t.Fatalf("import of the pgBackRest repository (run %d): %+v", run, r)
		}
		if r := walrus(t, data, nil, "import", plain, "plain"); r.code != 0 || !strings.Contains(r.stdout, "0 refused") {
			t.Fatalf("import of the plain directory (run %d): %+v", run, r)
		}
	}
	if r := walrus(t, data, nil, "verify"); r.code != 0 {
		t.Fatalf("verify after import: %+v", r)
	}

	// Both imports hold exactly what PostgreSQL archived.
	originals, _ := os.ReadDir(pristine)
	for _, ns := range []string{"br", "plain"} {
		out := filepath.Join(work, "export-"+ns)
		if r := walrus(t, data, nil, "export", ns, out); r.code != 0 {
			t.Fatalf("export %s: %+v", ns, r)
		}
		for _, e := range originals {
			want, _ := os.ReadFile(filepath.Join(pristine, e.Name()))
			got, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: exported %s differs from what PostgreSQL archived (%v)", ns, e.Name(), err)
			}
		}
		if r := walrus(t, data, nil, "export", ns, out); r.code != 0 || !strings.Contains(r.stdout, fmt.Sprintf("%d were there already", len(originals))) {
			t.Fatalf("second export of %s: %+v", ns, r)
		}
	}

	// A damaged repository file: another segment's content under a name
	// and SHA-1 that do not match it.
	files, _ := filepath.Glob(filepath.Join(work, "repo", "archive", "main", "*", "*", "*-*.zst"))
	if len(files) < 2 {
		t.Fatalf("pgBackRest archive holds %d segments", len(files))
	}
	other, _ := os.ReadFile(files[0])
	if err := os.WriteFile(files[1], other, 0o640); err != nil {
		t.Fatal(err)
	}
	r := walrus(t, data, nil, "import", filepath.Join(work, "repo"), "damaged")
	if r.code == 0 || !strings.Contains(r.stderr, filepath.Base(files[1])) || !strings.Contains(r.stderr, "SHA-1") ||
		!strings.Contains(r.stdout, "; 1 refused") {
		t.Fatalf("import of a damaged repository: %+v", r)
	}

	// PITR from the imported pgBackRest archive, by PostgreSQL's own
	// restore_command (as the postgres user: the store is its).
	if err := filepath.Walk(data, func(p string, _ os.FileInfo, err error) error {
		if err == nil {
			pgcluster.Chown(t, p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	r2 := pgcluster.FromBackup(t, "restored", backup, fmt.Sprintf("restore_command = '%s --data %s get br/%%f %%p'", bin, data))
	r2.Signal("recovery.signal")
	r2.Start()
	r2.WaitRecovered(2 * time.Minute)
	if n := r2.Query("select count(*) from after_backup"); n != "1000" {
		t.Fatalf("recovered %s rows from the imported archive, want 1000", n)
	}
	if n := r2.Query("select count(*) from pgbench_accounts"); n != "200000" {
		t.Fatalf("recovered %s pgbench accounts from the imported archive, want 200000", n)
	}
}
