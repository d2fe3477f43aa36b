package rsyncgw

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// A small syslog client for the daemon log (rsync: log.c syslog_init,
// logit): the local syslog socket, messages in the local format
// "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG", as syslog(3) with LOG_PID sends
// them. Unlike syslog(3) a write never waits for a stalled syslog daemon
// for more than syslogWriteTimeout: the line is dropped instead, so that
// logging cannot hold up an archive_command.

const syslogWriteTimeout = 200 * time.Millisecond

// syslogFacilities are the names `syslog facility` accepts, with their
// codes (syslog.h).
var syslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5, "lpr": 6,
	"news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

const (
	syslogWarning = 4
	syslogInfo    = 6
)

func validFacility(name string) bool {
	_, ok := syslogFacilities[strings.ToLower(name)]
	return ok
}

// syslogWriter is one connection to syslog.
type syslogWriter struct {
	conn     net.Conn
	facility int
	tag      string
}

// dialSyslog connects to network/addr, or to the local syslog socket
// when network is empty.
func dialSyslog(network, addr string, t LogTarget) (*syslogWriter, error) {
	f, ok := syslogFacilities[t.SyslogFacility]
	if !ok {
		return nil, fmt.Errorf("unknown syslog facility %q", t.SyslogFacility)
	}
	w := &syslogWriter{facility: f, tag: t.SyslogTag}
	var err error
	if network != "" {
		w.conn, err = net.DialTimeout(network, addr, time.Second)
		return w, err
	}
	for _, path := range []string{"/dev/log", "/var/run/syslog", "/var/run/log"} {
		for _, n := range []string{"unixgram", "unix"} {
			if w.conn, err = net.DialTimeout(n, path, time.Second); err == nil {
				return w, nil
			}
		}
	}
	return nil, errors.New("no local syslog socket")
}

func (w *syslogWriter) send(severity int, msg string) error {
	line := fmt.Sprintf("<%d>%s %s[%d]: %s\n", w.facility*8+severity, time.Now().Format(time.Stamp), w.tag, os.Getpid(), msg)
	w.conn.SetWriteDeadline(time.Now().Add(syslogWriteTimeout))
	_, err := w.conn.Write([]byte(line))
	return err
}

func (w *syslogWriter) close() error { return w.conn.Close() }
