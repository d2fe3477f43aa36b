package rsyncgw

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// TestPushSkipRules checks the decisions documented in skip.go (README:
// "Skip rules"): a push exits 0 only when every file it names is
// archived with the pushed content.
func TestPushSkipRules(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	seg := segment(7)
	archived := seg.Bytes()
	e.put(seg.Name(), archived) // mtime 1700000000
	other := seg
	other.Seed = 99 // same name and size, other content
	same := e.writeFile("same/"+seg.Name(), archived)
	diff := e.writeFile("diff/"+seg.Name(), other.Bytes())
	old := time.Unix(1600000000, 0) // older than the archived copy: -u would skip it
	os.Chtimes(diff, old, old)
	fresh := segment(8)
	newSrc := e.writeFile(fresh.Name(), fresh.Bytes())
	dest := "rsync://HOST/wal_store/"
	for _, c := range []struct {
		args []string
		src  string
		code int
		text string
	}{
		{[]string{"--existing"}, newSrc, exitPartial, `not archived "` + fresh.Name() + `" (in wal_store): it is not in the archive and --existing creates no files`},
		{[]string{"--existing"}, same, 0, ""},
		{[]string{"--existing"}, diff, exitPartial, `refused "` + seg.Name() + `"`},
		{[]string{"--ignore-existing"}, same, 0, ""},
		{[]string{"--ignore-existing"}, diff, exitPartial, "exists in the archive with different content"},
		{[]string{"-u"}, same, 0, ""},
		{[]string{"-u"}, diff, exitPartial, "exists in the archive with different content"},
		{[]string{"--size-only"}, same, 0, ""},
		{[]string{"--size-only"}, diff, exitPartial, "exists in the archive with different content"},
		{[]string{"--max-size=1K"}, newSrc, exitPartial, "it is larger than --max-size=1024"},
		{[]string{"--min-size=2M"}, newSrc, exitPartial, "it is smaller than --min-size=2097152"},
		{[]string{"--ignore-existing", "--size-only", "-u"}, same, 0, ""},
	} {
		out, code := e.rsync(append(append([]string{"-a"}, c.args...), c.src, dest)...)
		expectExit(t, out, code, c.code, c.text)
	}
	if !bytes.Equal(e.stored(seg.Name()), archived) {
		t.Fatal("the archived copy changed")
	}
	if _, err := e.st.Stat(fresh.Name()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a skipped new file was stored (%v)", err)
	}
}

// TestRefusalNamesDestination: the message names the archive name the
// push went to, not the source file's.
func TestRefusalNamesDestination(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	seg := segment(9)
	e.put(seg.Name(), seg.Bytes())
	other := seg
	other.Seed = 5
	src := e.writeFile("RECOVERYXLOG", other.Bytes())
	out, code := e.rsync("-a", src, "rsync://HOST/wal_store/"+seg.Name())
	expectExit(t, out, code, exitPartial, `refused "`+seg.Name()+`" (in wal_store)`)
	if strings.Contains(out, "RECOVERYXLOG") {
		t.Errorf("the message names the source:\n%s", out)
	}
}

// TestSizeMismatchRefusedBeforeData: a different size under an archived
// name is refused before the client sends the file.
func TestSizeMismatchRefusedBeforeData(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	e.put("base.backup", bytes.Repeat([]byte("b"), 1000))
	src := e.writeFile("base.backup", bytes.Repeat([]byte("c"), 3<<20))
	out, code := e.rsync("-a", "--stats", src, "rsync://HOST/wal_store/base.backup")
	expectExit(t, out, code, exitPartial, `refused "base.backup"`, "1000 bytes; the new copy of 3145728 bytes differs")
	if sent := statNumber(t, out, "Total bytes sent"); sent > 100<<10 {
		t.Errorf("the client sent %d bytes for a file refused up front", sent)
	}
}

func statNumber(t *testing.T, out, label string) int64 {
	t.Helper()
	m := regexp.MustCompile(label + `: ([0-9,]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in:\n%s", label, out)
	}
	n, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	return n
}

// TestDryRun: -n pushes and pulls like stock rsync: the same decisions,
// no data, nothing stored or written.
func TestDryRun(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			e := startServer(t, baseConf+"[ns]\n\tpath = /db/pg_archived/ns\n", func(o *Options) { o.Logger = quiet })
			for i := uint64(1); i <= 3; i++ {
				e.put("ns/"+segment(i).Name(), segment(i).Bytes())
			}
			e.put("base.backup", []byte("x"))
			fresh := segment(20)
			src := e.writeFile(fresh.Name(), fresh.Bytes())
			out, code := e.rsync(with(p.args, "-avn", src, "rsync://HOST/wal_store/"+fresh.Name())...)
			expectExit(t, out, code, 0, fresh.Name(), "(DRY RUN)")
			if _, err := e.st.Stat(fresh.Name()); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("a dry-run push stored the file (%v)", err)
			}
			out, code = e.rsync(with(p.args, "-an", "--existing", src, "rsync://HOST/wal_store/")...)
			expectExit(t, out, code, exitPartial, "--existing creates no files")
			big := e.writeFile("base.backup", []byte("longer"))
			out, code = e.rsync(with(p.args, "-an", big, "rsync://HOST/wal_store/base.backup")...)
			expectExit(t, out, code, exitPartial, `refused "base.backup"`)
			dst := filepath.Join(e.tmp, "one")
			out, code = e.rsync(with(p.args, "-an", "rsync://HOST/wal_fetch/ns/"+segment(1).Name(), dst)...)
			expectExit(t, out, code, 0)
			dir := filepath.Join(e.tmp, "dir") + "/"
			out, code = e.rsync(with(p.args, "-avn", "rsync://HOST/wal_fetch/ns/", dir)...)
			expectExit(t, out, code, 0, segment(1).Name(), segment(3).Name())
			out, code = e.rsync(with(p.args, "-avnz", "rsync://HOST/ns/", dir)...)
			expectExit(t, out, code, 0, segment(2).Name())
			for _, p := range []string{dst, dir} {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("a dry-run pull wrote %s", p)
				}
			}
		})
	}
}

// TestIgnoreMissingArgs: a pull of a missing name with
// --ignore-missing-args succeeds with nothing, as with a stock daemon;
// without it the client exits 23 (restore_command's "not found").
func TestIgnoreMissingArgs(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	e.put(segment(1).Name(), segment(1).Bytes())
	dst := filepath.Join(e.tmp, "d") + "/"
	out, code := e.rsync("-a", "--ignore-missing-args", "rsync://HOST/wal_fetch/"+segment(2).Name(),
		"rsync://HOST/wal_fetch/"+segment(1).Name(), dst)
	expectExit(t, out, code, 0)
	if _, err := os.Stat(dst + segment(1).Name()); err != nil {
		t.Errorf("the present file was not pulled: %v", err)
	}
	out, code = e.rsync("-a", "rsync://HOST/wal_fetch/"+segment(2).Name(), dst)
	expectExit(t, out, code, exitPartial, "No such file or directory")
}

func TestIOTimeout(t *testing.T) {
	for _, c := range []struct {
		module, client, want time.Duration
	}{
		{0, 0, 10 * time.Minute}, {30 * time.Second, 0, 30 * time.Second},
		{0, 20 * time.Second, 20 * time.Second}, {30 * time.Second, 20 * time.Second, 20 * time.Second},
		{10 * time.Second, 20 * time.Second, 10 * time.Second},
	} {
		s := &session{srv: &Server{opts: Options{}.withDefaults()}, mod: &module{Module: &Module{Timeout: c.module}},
			args: &serverArgs{timeout: int(c.client / time.Second)}}
		if got := s.ioTimeout(); got != c.want {
			t.Errorf("module %v client %v: %v, want %v", c.module, c.client, got, c.want)
		}
	}
}
