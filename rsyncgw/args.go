package rsyncgw

import (
	"fmt"
	"path"
	"strings"
)

// serverArgs are the options a client passes to the daemon side
// (rsync: options.c server_options, read back by parse_arguments).
type serverArgs struct {
	sender     bool // --sender: the daemon sends (a pull)
	recursive  bool // -r
	dirs       bool // -d
	links      bool // -l
	owner      bool // -o
	group      bool // -g
	devices    bool // -D (devices and specials)
	times      bool // -t
	checksum   bool // -c: file lists carry checksums
	dryRun     bool // -n
	numericIDs bool // --numeric-ids
	secluded   bool // -s: a second argument list follows
	caps       string
	csumChoice string   // --checksum-choice
	used       []option // every option given, for `refuse options`
	paths      []string // the arguments after "."
}

// option is one option the client used: its long name and short letter.
type option struct {
	long  string
	short byte
}

func (o option) String() string {
	if o.short != 0 {
		return fmt.Sprintf("--%s (-%c)", o.long, o.short)
	}
	return "--" + o.long
}

// shortOptions maps the letters rsync clients send to long option names.
var shortOptions = map[byte]string{
	'v': "verbose", 'q': "quiet", 'l': "links", 'L': "copy-links", 'p': "perms",
	'E': "executability", 'o': "owner", 'g': "group", 'D': "devices", 't': "times",
	'O': "omit-dir-times", 'J': "omit-link-times", 'S': "sparse", 'c': "checksum",
	'r': "recursive", 'd': "dirs", 'x': "one-file-system", 'n': "dry-run",
	'W': "whole-file", 'I': "ignore-times", 'u': "update", 'b': "backup",
	'm': "prune-empty-dirs", 'K': "keep-dirlinks", 'k': "copy-dirlinks",
	'C': "cvs-exclude", 'i': "itemize-changes", '8': "8-bit-output", 'z': "compress",
	'H': "hard-links", 'A': "acls", 'X': "xattrs", 'U': "atimes", 'N': "crtimes",
	'y': "fuzzy", 'R': "relative", 's': "secluded-args", 'P': "partial",
	'h': "human-readable", 'T': "temp-dir", 'B': "block-size", 'e': "rsh",
}

// unsupported are options whose wire format or semantics this server does
// not implement; they are refused with rsync's own message. The daemon
// refuses the device and log-file ones in stock rsync too.
var unsupported = map[string]bool{
	"compress": true, "hard-links": true, "acls": true, "xattrs": true, "atimes": true,
	"crtimes": true, "fuzzy": true, "relative": true, "files-from": true, "iconv": true,
	"append": true, "append-verify": true, "copy-devices": true, "write-devices": true,
	"log-file": true, "log-file-format": true, "compress-choice": true, "compress-level": true,
	"old-compress": true, "new-compress": true, "remove-source-files": true,
	"remove-sent-files": true, "only-write-batch": true, "write-batch": true, "read-batch": true,
	"delete": true, "delete-before": true, "delete-during": true, "delete-delay": true,
	"delete-after": true, "delete-excluded": true, "delete-missing-args": true, "del": true,
}

// parseServerArgs parses the argument list the client sent after
// `@RSYNCD: OK` (rsync: options.c parse_arguments, server side).
func parseServerArgs(args []string) (*serverArgs, error) {
	if len(args) == 0 || args[0] != "--server" {
		return nil, fmt.Errorf("%w: arguments must start with --server", ErrProtocol)
	}
	a := &serverArgs{}
	for i := 1; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == ".":
			a.paths = args[i+1:]
			return a, nil
		case arg == "--sender":
			a.sender = true
		case strings.HasPrefix(arg, "--"):
			a.long(arg[2:])
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			if err := a.short(arg[1:]); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("%w: unexpected argument %q before \".\"", ErrProtocol, arg)
		}
	}
	if a.secluded && a.paths == nil {
		return a, nil // the paths follow in a second list
	}
	return nil, fmt.Errorf("%w: argument list lacks \".\"", ErrProtocol)
}

func (a *serverArgs) long(s string) {
	name, value, _ := strings.Cut(s, "=")
	switch name {
	case "numeric-ids":
		a.numericIDs = true
	case "checksum-choice", "cc":
		a.csumChoice = value
	case "compress-choice", "zc":
		name = "compress-choice"
	case "compress-level", "zl":
		name = "compress-level"
	}
	a.used = append(a.used, option{long: name})
}

func (a *serverArgs) short(cluster string) error {
	for j := 0; j < len(cluster); j++ {
		c := cluster[j]
		if c == 'e' {
			// rsync: "-e.xyz" carries the capability letters.
			a.caps = strings.TrimPrefix(cluster[j+1:], ".")
			return nil
		}
		name, ok := shortOptions[c]
		if !ok {
			return fmt.Errorf("%w: unknown option -%c", ErrProtocol, c)
		}
		a.used = append(a.used, option{long: name, short: c})
		a.setShort(c)
	}
	return nil
}

func (a *serverArgs) setShort(c byte) {
	switch c {
	case 'r':
		a.recursive = true
	case 'd':
		a.dirs = true
	case 'l':
		a.links = true
	case 'o':
		a.owner = true
	case 'g':
		a.group = true
	case 'D':
		a.devices = true
	case 't':
		a.times = true
	case 'c':
		a.checksum = true
	case 'n':
		a.dryRun = true
	case 's':
		a.secluded = true
	}
}

func (a *serverArgs) hasCap(c byte) bool { return strings.IndexByte(a.caps, c) >= 0 }

// refusal returns the first option that is refused, either because the
// server does not implement it or by the module's `refuse options`
// (rsync: options.c set_refuse_options: wildcards, `!` negation).
func (a *serverArgs) refusal(refuse []string) (option, bool) {
	for _, o := range a.used {
		if unsupported[o.long] || refusedBy(refuse, o) {
			return o, true
		}
	}
	return option{}, false
}

func refusedBy(patterns []string, o option) bool {
	refused := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		if matchOption(p, o) {
			refused = !neg
		}
	}
	return refused
}

func matchOption(p string, o option) bool {
	if len(p) == 1 {
		return o.short == p[0]
	}
	if p == "delete" && strings.HasPrefix(o.long, "delete") {
		return true
	}
	ok, err := path.Match(p, o.long)
	return err == nil && ok
}
