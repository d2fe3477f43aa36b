package rsyncgw

import (
	"errors"
	"fmt"
)

// Errors of the package. ParseConfig, ReadConfig and NewServer return
// ErrConfig; the others end sessions and are logged, never returned by
// Serve.
var (
	ErrConfig   = errors.New("rsyncgw: config error")
	ErrProtocol = errors.New("rsyncgw: protocol error")
	ErrTooLong  = errors.New("rsyncgw: length from the wire exceeds its limit")
	ErrPeerExit = errors.New("rsyncgw: client aborted the session")
)

// Exit codes the client ends with (rsync: errcode.h). exitSyntax and
// exitUnsupported are sent (MSG_ERROR_EXIT); the others name what tests
// expect.
const (
	exitSyntax      = 1  // RERR_SYNTAX: read only / write only module
	exitUnsupported = 4  // RERR_UNSUPPORTED: -c with checksum "none"
	exitStartClient = 5  // RERR_STARTCLIENT: any @ERROR line
	exitStreamIO    = 12 // RERR_STREAMIO: refused option, stock behaviour
	exitPartial     = 23 // RERR_PARTIAL: a file was refused or missing
)

// configError names the file, the line and the problem.
func configError(file string, line int, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s", ErrConfig, file, line, fmt.Sprintf(format, args...))
}
