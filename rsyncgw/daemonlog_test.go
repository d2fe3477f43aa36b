package rsyncgw

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// TestDaemonLogFile checks the log lines a stock rsyncd writes (compared
// with rsync 3.5.0's log file): the global `log file`, a module's own,
// `transfer logging` in the default and a custom `log format`.
func TestDaemonLogFile(t *testing.T) {
	dir := t.TempDir()
	global, own := filepath.Join(dir, "rsyncd.log"), filepath.Join(dir, "custom.log")
	secrets := filepath.Join(dir, "secrets")
	os.WriteFile(secrets, []byte("alice:pw\n"), 0o600)
	e := startServer(t, fmt.Sprintf(`
log file = %s
transfer logging = yes
reverse lookup = no
[wal_store]
	path = /db/pg_archived
	read only = false
[wal_fetch]
	path = /db/pg_archived
[custom]
	path = /db/pg_archived
	read only = false
	log file = %s
	log format = %%o|%%-8m|%%9l|%%'l|%%i|%%f|%%u|%%n|%%B|%%%%
	auth users = alice
	secrets file = %s
[quiet]
	path = /db/pg_archived
	transfer logging = no
	reverse lookup = yes
`, global, own, secrets), func(o *Options) { o.Logger = quiet })
	seg := segment(1)
	src := e.writeFile(seg.Name(), seg.Bytes())
	name := seg.Name()
	run := func(code int, args ...string) {
		t.Helper()
		out, got := e.rsyncEnv([]string{"RSYNC_PASSWORD=pw"}, args...)
		expectExit(t, out, got, code)
	}
	run(0, "-a", src, "rsync://HOST/wal_store/"+name)
	run(0, "-a", "rsync://HOST/wal_fetch/"+name, filepath.Join(e.tmp, "pulled"))
	run(exitPartial, "-a", e.writeFile("other", make([]byte, 100)), "rsync://HOST/wal_store/"+name)
	run(0, "rsync://HOST/")
	run(exitStartClient, "rsync://HOST/nosuch/")
	run(0, "-a", src, "rsync://alice@HOST/custom/ns/"+name)
	run(0, "-a", "rsync://HOST/quiet/"+name, filepath.Join(e.tmp, "quiet"))
	run(exitUnsupported, "-aH", "rsync://HOST/wal_fetch/"+name, filepath.Join(e.tmp, "refused"))

	line := `^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[\d+\] `
	host := `UNDETERMINED \(127\.0\.0\.1\)`
	expectLines(t, global,
		line+`connect from `+host+`$`,
		line+`rsync allowed access on module wal_store from `+host+`$`,
		line+`rsync to wal_store/`+name+` from `+host+`$`,
		line+`receiving file list$`,
		line+`recv UNDETERMINED \[127\.0\.0\.1\] wal_store \(\) `+name+` 1048576$`,
		line+`sent \d+ bytes  received \d+ bytes  total size 1048576$`,
		line+`rsync on wal_fetch/`+name+` from `+host+`$`,
		line+`building file list$`,
		line+`send UNDETERMINED \[127\.0\.0\.1\] wal_fetch \(\) `+name+` 1048576$`,
		line+`rsync: \[receiver\] refused "`+name+`" \(in wal_store\): `,
		line+`rsync error: some files/attrs were not transferred \(see previous errors\) \(code 23\)$`,
		line+`module-list request from `+host+`$`,
		line+`unknown module 'nosuch' tried from `+host+`$`,
		line+`rsync allowed access on module custom from `+host+`$`,
		line+`rsync on quiet/`+name+` from [^U ]\S* \(127\.0\.0\.1\)$`, // the module looks the name up
		line+`rsync: The server is configured to refuse --hard-links \(-H\)$`,
		line+`rsync error: requested action not supported \(code 4\)$`,
	)
	expectLines(t, own,
		line+`rsync to custom/ns/`+name+` from alice@`+host+`$`,
		line+`recv\|custom  \|  1048576\|1,048,576\|>f\+\+\+\+\+\+\+\+\+\|ns/`+name+`\|alice\|`+name+`\|rw-------\|%$`,
	)
	if b, _ := os.ReadFile(global); strings.Contains(string(b), "recv|") || regexp.MustCompile(`send \S+ \[127\.0\.0\.1\] quiet`).Match(b) {
		t.Errorf("a module's transfer line went to the wrong log:\n%s", b)
	}
}

// expectLines checks that the file has a line matching each pattern, in
// that order.
func expectLines(t *testing.T, file string, patterns ...string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	i := 0
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			t.Errorf("%s: no line matching %q (in order); log:\n%s", filepath.Base(file), p, b)
			return
		}
		i++
	}
}

// TestDaemonLogSyslog: without a log file the lines go to syslog with
// the module's facility and tag, errors at warning priority.
func TestDaemonLogSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		testenv.Require(t, fmt.Sprintf("a unix datagram socket (%v)", err))
	}
	defer conn.Close()
	msgs := make(chan string, 1000)
	go func() { // the syslog daemon: keeps up, as a real one would
		defer close(msgs)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	e := startServer(t, `
[wal_store]
	path = /db/pg_archived
	read only = false
	transfer logging = yes
	syslog facility = local3
	syslog tag = walrus-rsyncd
`, func(o *Options) { o.Logger, o.SyslogNetwork, o.SyslogAddr = quiet, "unixgram", sock })
	seg := segment(1)
	src := e.writeFile(seg.Name(), seg.Bytes())
	out, code := e.rsync("-a", src, "rsync://HOST/wal_store/"+seg.Name())
	expectExit(t, out, code, 0)
	out, code = e.rsync("-a", e.writeFile("x", []byte("x")), "rsync://HOST/wal_store/"+seg.Name())
	expectExit(t, out, code, exitPartial)
	// local3.info, local3.warning, and the globals' defaults (daemon,
	// "rsyncd") before the module is chosen.
	want := map[string]string{
		"<158>":          "recv ",
		"<156>":          "refused",
		"<30>":           "connect from",
		"walrus-rsyncd[": "rsync to wal_store/",
		" rsyncd[":       "connect from",
	}
	got := map[string]bool{}
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case msg := <-msgs:
			for k, v := range want {
				if strings.Contains(msg, k) && strings.Contains(msg, v) {
					got[k] = true
				}
			}
		case <-timeout:
			for k, v := range want {
				if !got[k] {
					t.Errorf("no syslog message with %q and %q", k, v)
				}
			}
			return
		}
	}
}

func TestLogFormat(t *testing.T) {
	e := &fileEntry{name: "sub/000000010000000000000001", size: 16777216, mode: sIFREG | 0o640, mtime: 1700000000, uid: 26, gid: 27}
	lc := logContext{host: "db1", addr: "10.0.0.5", module: "wal_store", modPath: "/db/pg_archived", user: "", pid: 42}
	it := xferItem{op: "recv", name: e.name, path: e.name, entry: e, iflags: itemTransfer | itemIsNew, bytes: 1234567, sum: []byte{0xab, 0xcd}}
	for format, want := range map[string]string{
		DefaultLogFormat:    "recv db1 [10.0.0.5] wal_store () sub/000000010000000000000001 16777216",
		"%'l %''l %'''l":    "16,777,216 16.78M 16.00M",
		"[%-6o][%6o][%3l]":  "[recv  ][  recv][16777216]",
		"%i %b %c %C %p %P": ">f+++++++++ 1234567 0 abcd 42 /db/pg_archived",
		"%U:%G %B %n %L%%":  "26:27 rw-r----- sub/000000010000000000000001 %",
		"%M":                time.Unix(1700000000, 0).Format("2006/01/02-15:04:05"),
		"%q %":              "%q %",
	} {
		if got := formatLogLine(format, lc, it); got != want {
			t.Errorf("%q: %q, want %q", format, got, want)
		}
	}
	if got := escapeLogText("a\nb\x1b\tc\\#123"); got != `a\#012b\#033`+"\t"+`c\#134#123` {
		t.Errorf("escape: %q", got)
	}
	old := *e
	it.iflags, it.entry = itemTransfer|itemReportTime, &old
	if got := itemizeString("send", &old, it.iflags); got != "<f..t......" {
		t.Errorf("itemize: %q", got)
	}
	if got := itemizeString("recv", &old, 0); got != ".f         " {
		t.Errorf("itemize unchanged: %q", got)
	}
}
