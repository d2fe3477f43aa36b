//go:build !windows && !plan9

package rsyncgw

import (
	"fmt"
	"log/syslog"
	"strings"
)

// syslogWriter is a connection to syslog for one facility and tag.
type syslogWriter = syslog.Writer

// syslogFacilities are the names rsyncd.conf accepts for `syslog
// facility` (rsync: loadparm.c, the syslog.h names).
var syslogFacilities = map[string]syslog.Priority{
	"auth": syslog.LOG_AUTH, "authpriv": syslog.LOG_AUTHPRIV, "cron": syslog.LOG_CRON,
	"daemon": syslog.LOG_DAEMON, "ftp": syslog.LOG_FTP, "kern": syslog.LOG_KERN, "lpr": syslog.LOG_LPR,
	"mail": syslog.LOG_MAIL, "news": syslog.LOG_NEWS, "security": syslog.LOG_AUTH,
	"syslog": syslog.LOG_SYSLOG, "user": syslog.LOG_USER, "uucp": syslog.LOG_UUCP,
	"local0": syslog.LOG_LOCAL0, "local1": syslog.LOG_LOCAL1, "local2": syslog.LOG_LOCAL2,
	"local3": syslog.LOG_LOCAL3, "local4": syslog.LOG_LOCAL4, "local5": syslog.LOG_LOCAL5,
	"local6": syslog.LOG_LOCAL6, "local7": syslog.LOG_LOCAL7,
}

func validFacility(name string) bool {
	_, ok := syslogFacilities[strings.ToLower(name)]
	return ok
}

// dialSyslog connects to syslog: the local daemon, or network/addr when
// Options name one.
func dialSyslog(network, addr string, t LogTarget) (*syslogWriter, error) {
	f, ok := syslogFacilities[t.SyslogFacility]
	if !ok {
		return nil, fmt.Errorf("unknown syslog facility %q", t.SyslogFacility)
	}
	return syslog.Dial(network, addr, f|syslog.LOG_INFO, t.SyslogTag)
}

func syslogSend(w *syslogWriter, warning bool, msg string) error {
	if warning {
		return w.Warning(msg)
	}
	return w.Info(msg)
}
