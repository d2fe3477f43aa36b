//go:build windows || plan9

package rsyncgw

import "errors"

type syslogWriter struct{}

func validFacility(name string) bool { return name != "" }

func dialSyslog(network, addr string, t LogTarget) (*syslogWriter, error) {
	return nil, errors.New("syslog is not available on this system")
}

func syslogSend(w *syslogWriter, warning bool, msg string) error { return nil }
