package rsyncgw

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The daemon log is what a stock rsyncd writes (rsync: log.c): the same
// lines, to `log file` when one is set, else to syslog with `syslog
// facility` and `syslog tag` (rsync: log.c logit, syslog_init). A file
// line is "YYYY/MM/DD hh:mm:ss [N] message" with control characters
// escaped as \#ooo; N is the session's number, where stock rsyncd puts
// the pid of the process serving the connection. Lines before a module
// is chosen go where the globals say, later ones where the module says.
// With `transfer logging`, each file transferred adds a line in `log
// format`. The file is opened per session (O_APPEND), so a rotated log
// is picked up by the next connection.
//
// This log is apart from the structured log (Options.Logger), which
// keeps recording what walrus does.

// daemonLog writes one session's daemon log lines. Its methods are safe
// for concurrent use; a nil *daemonLog logs nothing.
type daemonLog struct {
	srv    *Server
	id     int64
	mu     sync.Mutex // guards the fields below
	target LogTarget
	files  map[string]*os.File
}

func newDaemonLog(srv *Server, id int64) *daemonLog {
	return &daemonLog{srv: srv, id: id, target: srv.cfg.Log}
}

// use switches to the module's log target.
func (l *daemonLog) use(t LogTarget) {
	if l == nil {
		return
	}
	l.mu.Lock()
	l.target = t
	l.mu.Unlock()
}

// printf logs one line at info priority.
func (l *daemonLog) printf(format string, args ...any) { l.write(false, fmt.Sprintf(format, args...)) }

// warnf logs one line at warning priority (errors sent to the client).
func (l *daemonLog) warnf(format string, args ...any) { l.write(true, fmt.Sprintf(format, args...)) }

func (l *daemonLog) write(warning bool, msg string) {
	if l == nil {
		return
	}
	msg = strings.TrimRight(msg, "\n")
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.target.File == "" {
		l.srv.syslogWrite(l.target, warning, msg)
		return
	}
	f, err := l.file(l.target.File)
	if err != nil {
		// rsync falls back to syslog when the log file cannot be opened.
		l.srv.syslogWrite(l.target, warning, msg)
		return
	}
	line := fmt.Sprintf("%s [%d] %s\n", time.Now().Format("2006/01/02 15:04:05"), l.id, escapeLogText(msg))
	f.Write([]byte(line)) // one write per line: O_APPEND keeps sessions' lines whole
}

func (l *daemonLog) file(name string) (*os.File, error) {
	if f, ok := l.files[name]; ok {
		return f, nil
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		l.srv.logFileFailed(name, err)
		return nil, err
	}
	if l.files == nil {
		l.files = map[string]*os.File{}
	}
	l.files[name] = f
	return f, nil
}

// close closes the session's log files.
func (l *daemonLog) close() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, f := range l.files {
		f.Close()
		delete(l.files, name)
	}
}

// escapeLogText escapes control characters but tab, and C1 controls, as
// \#ooo, so that a client-chosen file name cannot forge log lines or
// terminal escapes (rsync: log.c filtered_fwrite).
func escapeLogText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < ' ' && c != '\t') || (c >= 0x80 && c <= 0x9f) || c == 0x7f ||
			(c == '\\' && i+4 < len(s) && s[i+1] == '#' && isDigit(s[i+2]) && isDigit(s[i+3]) && isDigit(s[i+4])) {
			fmt.Fprintf(&b, "\\#%03o", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// xferItem is one transferred file as `log format` sees it.
type xferItem struct {
	op       string // "send" or "recv"
	name     string // %n: the name in the file list
	path     string // %f: the path below the module
	entry    *fileEntry
	iflags   uint16
	bytes    int64 // %b: bytes of the file on the wire
	otherWay int64 // %c: the other direction's bytes meanwhile
	sum      []byte
}

// logContext is what `log format` knows about the session.
type logContext struct {
	host, addr, module, modPath, user string
	pid                               int64
}

// formatLogLine expands a `log format` (rsync: log.c log_formatted):
// %[']*[-][width][']*X, where ' groups digits (one) or scales to units
// (two: 1000, three: 1024) and width pads (left-justified with -).
func formatLogLine(format string, c logContext, it xferItem) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			b.WriteByte(format[i])
			continue
		}
		j := i + 1
		human := 0
		for j < len(format) && format[j] == '\'' {
			human, j = human+1, j+1
		}
		spec := j
		if j < len(format) && format[j] == '-' {
			j++
		}
		for j < len(format) && isDigit(format[j]) && j-spec < 24 {
			j++
		}
		width := format[spec:j]
		for j < len(format) && format[j] == '\'' {
			human, j = human+1, j+1
		}
		if j >= len(format) {
			b.WriteString(format[i:])
			break
		}
		v, ok := logEscape(format[j], human, c, it)
		if !ok {
			b.WriteString(format[i : j+1]) // unknown escapes stay as written
		} else if width != "" {
			fmt.Fprintf(&b, "%"+width+"s", v)
		} else {
			b.WriteString(v)
		}
		i = j
	}
	return b.String()
}

func logEscape(c byte, human int, lc logContext, it xferItem) (string, bool) {
	e := it.entry
	switch c {
	case 'h':
		return lc.host, true
	case 'a':
		return lc.addr, true
	case 'm':
		return lc.module, true
	case 'P':
		return lc.modPath, true
	case 'u':
		return lc.user, true
	case 'p':
		return strconv.FormatInt(lc.pid, 10), true
	case 't':
		return time.Now().Format("2006/01/02 15:04:05"), true
	case 'o':
		return it.op, true
	case 'f':
		return strings.TrimPrefix(it.path, "/"), true
	case 'n':
		if e.isDir() {
			return it.name + "/", true
		}
		return it.name, true
	case 'l':
		return bigNum(e.size, human), true
	case 'b':
		if it.iflags&itemTransfer == 0 {
			return bigNum(0, human), true
		}
		return bigNum(it.bytes, human), true
	case 'c':
		if it.iflags&itemTransfer == 0 {
			return bigNum(0, human), true
		}
		return bigNum(it.otherWay, human), true
	case 'U':
		return strconv.Itoa(int(e.uid)), true
	case 'G':
		return strconv.Itoa(int(e.gid)), true
	case 'M':
		return strings.ReplaceAll(time.Unix(e.mtime, 0).Format("2006/01/02 15:04:05"), " ", "-"), true
	case 'B':
		return permString(e.mode), true
	case 'C':
		return fmt.Sprintf("%x", it.sum), true
	case 'L':
		return "", true
	case 'i':
		return itemizeString(it.op, e, it.iflags), true
	case '%':
		return "%", true
	}
	return "", false
}

// bigNum formats n as rsync: lib/compat.c do_big_num: plain, with digit
// groups (human 1), or in units of 1000 (2) or 1024 (3+).
func bigNum(n int64, human int) string {
	if human >= 2 {
		mult := 1000.0
		if human > 2 {
			mult = 1024
		}
		if f := float64(n); f >= mult || f <= -mult {
			for _, u := range "KMGTP" {
				f /= mult
				if f < mult && f > -mult || u == 'P' {
					return fmt.Sprintf("%.2f%c", f, u)
				}
			}
		}
	}
	s := strconv.FormatInt(n, 10)
	if human == 0 {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// permString is the rwx part of ls -l (rsync: lib/permstring.c).
func permString(mode uint32) string {
	b := []byte("rwxrwxrwx")
	for i := range b {
		if mode&(1<<(8-i)) == 0 {
			b[i] = '-'
		}
	}
	return string(b)
}

// itemizeString is the %i summary (rsync: log.c log_formatted, case 'i').
func itemizeString(op string, e *fileEntry, iflags uint16) string {
	c := []byte("...........")
	switch {
	case iflags&itemTransfer == 0:
		c[0] = '.'
	case op == "send":
		c[0] = '<'
	default:
		c[0] = '>'
	}
	switch {
	case e.isDir():
		c[1] = 'd'
	case isSpecial(e.mode):
		c[1] = 'S'
	case isDevice(e.mode):
		c[1] = 'D'
	case e.mode&sIFMT == sIFLNK:
		c[1] = 'L'
	default:
		c[1] = 'f'
	}
	for _, f := range []struct {
		bit uint16
		at  int
		ch  byte
	}{{1 << 1, 2, 'c'}, {1 << 2, 3, 's'}, {itemReportTime, 4, 't'}, {itemReportPerms, 5, 'p'},
		{1 << 5, 6, 'o'}, {1 << 6, 7, 'g'}, {1 << 7, 9, 'a'}, {1 << 8, 10, 'x'}} {
		if iflags&f.bit != 0 {
			c[f.at] = f.ch
		}
	}
	if iflags&itemIsNew != 0 {
		for i := 2; i < len(c); i++ {
			c[i] = '+'
		}
	} else if c[0] == '.' && strings.Trim(string(c[2:]), ".") == "" {
		for i := 2; i < len(c); i++ {
			c[i] = ' '
		}
	}
	return string(c)
}
