package rsyncgw

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// serverArgs are the options a client passes to the daemon side, as
// rsync: options.c server_options writes them and parse_arguments reads
// them back.
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
	prune      bool // -m: a push sends a filter list
	verbose    int  // -v count

	caps       string // the capability letters after -e.
	csumChoice string // --checksum-choice

	// Compression (rsync: options.c do_compression, compress_choice,
	// do_compression_level).
	compress      int    // -z count
	compressName  string // --compress-choice, --old-compress, --new-compress
	compressLevel int    // --compress-level; levelUnset when not given
	skipCompress  string // --skip-compress (slash-separated suffixes)

	// Push skip rules (rsync: generator.c recv_generator).
	existing       bool  // --existing
	ignoreExisting bool  // --ignore-existing
	update         bool  // -u
	sizeOnly       bool  // --size-only
	maxSize        int64 // --max-size, -1 when unset
	minSize        int64 // --min-size, -1 when unset

	ignoreMissing bool  // --ignore-missing-args (pull)
	timeout       int   // --timeout seconds, 0 unset
	bwlimit       int64 // --bwlimit bytes per second, 0 unset
	checksumSeed  int32 // --checksum-seed, 0 unset

	used  []option // every option given, in order, for refusals
	paths []string // the arguments after "."
}

// levelUnset is rsync's CLVL_NOT_SPECIFIED.
const levelUnset = -1 << 31

// optUse is how the gateway treats an option.
type optUse int

const (
	// optSupported options change what the gateway does.
	optSupported optUse = iota
	// optNoop options are accepted and mean nothing for the store
	// (README: "rsync options").
	optNoop
	// optRefused options are refused with stock rsync's text, as if the
	// module's `refuse options` named them.
	optRefused
)

// optSpec is one row of rsync's option table (rsync: options.c
// long_options).
type optSpec struct {
	long  string
	short byte
	value bool // takes an argument
	use   optUse
	// exact options are matched by `refuse options` only when named
	// exactly, never by a wildcard (rsync: options.c set_refuse_options).
	exact bool
	// pushOnly options are refused only when the gateway receives: on a
	// pull they concern the client's side and the gateway ignores them,
	// as a stock daemon's sender does.
	pushOnly bool
}

// option is one option the client used.
type option struct {
	spec  *optSpec
	value string
}

// String is how rsync names an option in messages: "--name (-x)".
func (o option) String() string {
	if o.spec.short != 0 {
		return fmt.Sprintf("--%s (-%c)", o.spec.long, o.spec.short)
	}
	return "--" + o.spec.long
}

// optionTable lists every option rsync 3.5.0 parses (rsync: options.c
// long_options). Options a client never sends to a daemon are accepted as
// no-ops, as a stock daemon would parse and then not use them.
var optionTable = []optSpec{
	{long: "verbose", short: 'v'}, {long: "no-verbose", use: optNoop}, {long: "no-v", use: optNoop},
	{long: "info", value: true, use: optNoop}, {long: "debug", value: true, use: optNoop},
	{long: "stderr", value: true, use: optNoop}, {long: "msgs2stderr", use: optNoop},
	{long: "no-msgs2stderr", use: optNoop}, {long: "quiet", short: 'q', use: optNoop},
	{long: "motd", use: optNoop}, {long: "no-motd", use: optNoop}, {long: "stats", use: optNoop},
	{long: "human-readable", short: 'h', use: optNoop}, {long: "no-human-readable", use: optNoop},
	{long: "no-h", use: optNoop}, {long: "dry-run", short: 'n', exact: true},
	{long: "archive", short: 'a'}, {long: "recursive", short: 'r'}, {long: "no-recursive"}, {long: "no-r"},
	{long: "inc-recursive", use: optNoop}, {long: "no-inc-recursive", use: optNoop},
	{long: "i-r", use: optNoop}, {long: "no-i-r", use: optNoop},
	{long: "dirs", short: 'd'}, {long: "no-dirs"}, {long: "no-d"}, {long: "old-dirs"}, {long: "old-d"},
	{long: "perms", short: 'p', use: optNoop}, {long: "no-perms", use: optNoop}, {long: "no-p", use: optNoop},
	{long: "executability", short: 'E', use: optNoop},
	{long: "acls", short: 'A', use: optRefused}, {long: "no-acls", use: optNoop}, {long: "no-A", use: optNoop},
	{long: "xattrs", short: 'X', use: optRefused}, {long: "no-xattrs", use: optNoop}, {long: "no-X", use: optNoop},
	{long: "times", short: 't'}, {long: "no-times"}, {long: "no-t"},
	{long: "atimes", short: 'U', use: optRefused}, {long: "no-atimes", use: optNoop}, {long: "no-U", use: optNoop},
	{long: "open-noatime", use: optNoop}, {long: "no-open-noatime", use: optNoop},
	{long: "crtimes", short: 'N', use: optRefused}, {long: "no-crtimes", use: optNoop}, {long: "no-N", use: optNoop},
	{long: "omit-dir-times", short: 'O', use: optNoop}, {long: "no-omit-dir-times", use: optNoop},
	{long: "no-O", use: optNoop}, {long: "omit-link-times", short: 'J', use: optNoop},
	{long: "no-omit-link-times", use: optNoop}, {long: "no-J", use: optNoop},
	{long: "modify-window", short: '@', value: true, use: optNoop},
	{long: "super", use: optNoop}, {long: "no-super", use: optNoop}, {long: "fake-super", use: optNoop},
	{long: "owner", short: 'o'}, {long: "no-owner"}, {long: "no-o"},
	{long: "group", short: 'g'}, {long: "no-group"}, {long: "no-g"},
	{long: "devices", short: 'D'}, {long: "no-D"}, {long: "no-devices"}, {long: "specials", use: optNoop},
	{long: "no-specials", use: optNoop}, {long: "drop-D", use: optNoop}, {long: "no-drop-D", use: optNoop},
	{long: "copy-devices", use: optRefused, exact: true}, {long: "write-devices", use: optRefused, exact: true},
	{long: "no-write-devices", use: optNoop}, {long: "confine-root", value: true, use: optNoop},
	{long: "links", short: 'l'}, {long: "no-links"}, {long: "no-l"},
	{long: "copy-links", short: 'L', use: optNoop}, {long: "copy-unsafe-links", use: optNoop},
	{long: "safe-links", use: optNoop}, {long: "insecure-links", use: optRefused},
	{long: "no-insecure-links", use: optNoop}, {long: "munge-links", use: optNoop},
	{long: "no-munge-links", use: optNoop}, {long: "copy-dirlinks", short: 'k', use: optNoop},
	{long: "keep-dirlinks", short: 'K', use: optNoop},
	{long: "hard-links", short: 'H', use: optRefused}, {long: "no-hard-links", use: optNoop}, {long: "no-H", use: optNoop},
	{long: "relative", short: 'R', use: optRefused}, {long: "no-relative", use: optNoop}, {long: "no-R", use: optNoop},
	{long: "implied-dirs", use: optNoop}, {long: "no-implied-dirs", use: optNoop},
	{long: "i-d", use: optNoop}, {long: "no-i-d", use: optNoop}, {long: "chmod", value: true, use: optNoop},
	{long: "ignore-times", short: 'I', use: optNoop}, {long: "size-only"},
	{long: "one-file-system", short: 'x', use: optNoop}, {long: "no-one-file-system", use: optNoop},
	{long: "no-x", use: optNoop}, {long: "update", short: 'u'}, {long: "existing"},
	{long: "ignore-non-existing"}, {long: "ignore-existing"},
	{long: "max-size", value: true}, {long: "min-size", value: true},
	{long: "max-alloc", value: true, use: optNoop},
	{long: "sparse", short: 'S', use: optNoop}, {long: "no-sparse", use: optNoop}, {long: "no-S", use: optNoop},
	{long: "preallocate", use: optNoop}, {long: "inplace", use: optNoop}, {long: "no-inplace", use: optNoop},
	{long: "append", use: optRefused}, {long: "append-verify", use: optRefused}, {long: "no-append", use: optNoop},
	{long: "del", use: optRefused, pushOnly: true}, {long: "delete", use: optRefused, pushOnly: true}, {long: "delete-before", use: optRefused, pushOnly: true},
	{long: "delete-during", use: optRefused, pushOnly: true}, {long: "delete-delay", use: optRefused, pushOnly: true},
	{long: "delete-after", use: optRefused, pushOnly: true}, {long: "delete-excluded", use: optRefused, pushOnly: true},
	{long: "delete-missing-args", use: optRefused}, {long: "ignore-missing-args"},
	{long: "remove-sent-files", use: optRefused}, {long: "remove-source-files", use: optRefused},
	{long: "force", use: optNoop}, {long: "no-force", use: optNoop},
	{long: "ignore-errors", use: optNoop}, {long: "no-ignore-errors", use: optNoop},
	{long: "max-delete", value: true, use: optNoop}, {short: 'F', use: optNoop},
	{long: "filter", short: 'f', value: true, use: optNoop}, {long: "exclude", value: true, use: optNoop},
	{long: "include", value: true, use: optNoop}, {long: "exclude-from", value: true, use: optNoop},
	{long: "include-from", value: true, use: optNoop}, {long: "cvs-exclude", short: 'C', use: optNoop},
	{long: "whole-file", short: 'W', use: optNoop}, {long: "no-whole-file", use: optNoop}, {long: "no-W", use: optNoop},
	{long: "checksum", short: 'c'}, {long: "no-checksum"}, {long: "no-c"},
	{long: "checksum-choice", value: true}, {long: "cc", value: true},
	{long: "block-size", short: 'B', value: true, use: optNoop},
	{long: "compare-dest", value: true, use: optRefused, pushOnly: true}, {long: "copy-dest", value: true, use: optRefused, pushOnly: true},
	{long: "link-dest", value: true, use: optRefused, pushOnly: true},
	{long: "fuzzy", short: 'y', use: optNoop}, {long: "no-fuzzy", use: optNoop}, {long: "no-y", use: optNoop},
	{long: "compress", short: 'z'}, {long: "old-compress"}, {long: "new-compress"},
	{long: "no-compress"}, {long: "no-z"}, {long: "compress-choice", value: true}, {long: "zc", value: true},
	{long: "skip-compress", value: true}, {long: "compress-level", value: true}, {long: "zl", value: true},
	{long: "compress-threads", value: true, use: optNoop}, {long: "zt", value: true, use: optNoop},
	{short: 'P', use: optNoop}, {long: "progress", use: optNoop}, {long: "no-progress", use: optNoop},
	{long: "partial", use: optNoop}, {long: "no-partial", use: optNoop},
	{long: "partial-dir", value: true, use: optNoop}, {long: "delay-updates", use: optNoop},
	{long: "no-delay-updates", use: optNoop}, {long: "prune-empty-dirs", short: 'm'},
	{long: "no-prune-empty-dirs"}, {long: "no-m"},
	{long: "log-file", value: true, use: optRefused}, {long: "log-file-format", value: true, use: optRefused},
	{long: "out-format", value: true, use: optNoop}, {long: "log-format", value: true, use: optNoop, exact: true},
	{long: "itemize-changes", short: 'i', use: optNoop}, {long: "no-itemize-changes", use: optNoop},
	{long: "no-i", use: optNoop}, {long: "bwlimit", value: true}, {long: "no-bwlimit"},
	{long: "backup", short: 'b', use: optNoop}, {long: "no-backup", use: optNoop},
	{long: "backup-dir", value: true, use: optRefused, pushOnly: true}, {long: "suffix", value: true, use: optNoop},
	{long: "list-only", use: optNoop}, {long: "read-batch", value: true, use: optRefused},
	{long: "write-batch", value: true, use: optRefused}, {long: "only-write-batch", value: true, use: optRefused},
	{long: "files-from", value: true, use: optRefused},
	{long: "from0", short: '0', use: optNoop, exact: true}, {long: "no-from0", use: optNoop},
	{long: "old-args", use: optNoop}, {long: "no-old-args", use: optNoop},
	{long: "secluded-args", short: 's', exact: true}, {long: "no-secluded-args"}, {long: "protect-args"},
	{long: "no-protect-args"}, {long: "no-s"}, {long: "trust-sender", use: optNoop},
	{long: "numeric-ids"}, {long: "no-numeric-ids"},
	{long: "usermap", value: true, use: optNoop}, {long: "groupmap", value: true, use: optNoop},
	{long: "chown", value: true, use: optNoop}, {long: "timeout", value: true}, {long: "no-timeout"},
	{long: "contimeout", value: true, use: optNoop}, {long: "no-contimeout", use: optNoop},
	{long: "fsync", use: optNoop}, {long: "stop-after", value: true, use: optNoop},
	{long: "time-limit", value: true, use: optNoop}, {long: "stop-at", value: true, use: optNoop},
	{long: "rsh", short: 'e', value: true, exact: true}, {long: "rsync-path", value: true, use: optNoop},
	{long: "temp-dir", short: 'T', value: true, use: optNoop},
	{long: "iconv", value: true, use: optRefused, exact: true}, {long: "no-iconv", use: optNoop, exact: true},
	{long: "ipv4", short: '4', use: optNoop}, {long: "ipv6", short: '6', use: optNoop},
	{long: "8-bit-output", short: '8', use: optNoop}, {long: "no-8-bit-output", use: optNoop},
	{long: "no-8", use: optNoop}, {long: "mkpath", use: optNoop}, {long: "no-mkpath", use: optNoop},
	{long: "qsort", use: optNoop}, {long: "use-qsort", use: optNoop}, {long: "copy-as", value: true, use: optNoop},
	{long: "address", value: true, use: optNoop}, {long: "port", value: true, use: optNoop},
	{long: "sockopts", value: true, use: optNoop}, {long: "password-file", value: true, use: optNoop},
	{long: "early-input", value: true, use: optNoop}, {long: "blocking-io", use: optNoop},
	{long: "no-blocking-io", use: optNoop}, {long: "outbuf", value: true, use: optNoop},
	{long: "remote-option", short: 'M', value: true, use: optNoop},
	{long: "protocol", value: true, use: optNoop}, {long: "checksum-seed", value: true, exact: true},
	{long: "server", exact: true}, {long: "sender", exact: true},
	{long: "config", value: true, use: optRefused}, {long: "daemon", use: optRefused},
	{long: "dparam", value: true, use: optRefused}, {long: "detach", use: optRefused},
	{long: "no-detach", use: optRefused}, {long: "version", short: 'V', use: optNoop},
	{long: "help", use: optNoop},
}

var (
	longOptions  = map[string]*optSpec{}
	shortOptions = map[byte]*optSpec{}
)

func init() {
	for i := range optionTable {
		o := &optionTable[i]
		if o.long != "" {
			longOptions[o.long] = o
		}
		if o.short != 0 {
			shortOptions[o.short] = o
		}
	}
}

// argError is a parse failure reported to the client like popt's:
// "on remote machine: --foo: unknown option" (rsync: options.c
// parse_arguments).
type argError struct{ opt, why string }

func (e *argError) Error() string { return fmt.Sprintf("on remote machine: %s: %s", e.opt, e.why) }

// parseServerArgs parses the argument list the client sent after
// `@RSYNCD: OK`. Options are those of rsync: options.c server_options:
// short letters clustered in one argument ("-logDtpre.iLsfxCIvu", where
// 'e' takes the rest of the cluster), a letter that takes a value takes
// the rest of its cluster or the next argument ("-B1024"), a long option
// takes "=value" or the next argument ("--temp-dir" "DIR"). "." ends the
// options; the paths follow.
func parseServerArgs(args []string) (*serverArgs, error) {
	if len(args) == 0 || args[0] != "--server" {
		return nil, fmt.Errorf("%w: arguments must start with --server", ErrProtocol)
	}
	a := &serverArgs{compressLevel: levelUnset, maxSize: -1, minSize: -1}
	for i := 1; i < len(args); i++ {
		arg := args[i]
		var err error
		switch {
		case arg == ".":
			a.paths = args[i+1:]
			return a, nil
		case strings.HasPrefix(arg, "--"):
			i, err = a.long(args, i)
		case strings.HasPrefix(arg, "-") && len(arg) > 1:
			i, err = a.shortCluster(args, i)
		default:
			err = fmt.Errorf("%w: unexpected argument %q before \".\"", ErrProtocol, arg)
		}
		if err != nil {
			return nil, err
		}
	}
	if a.secluded && a.paths == nil {
		return a, nil // the paths follow in a second list
	}
	return nil, fmt.Errorf("%w: argument list lacks \".\"", ErrProtocol)
}

// long parses args[i], a long option, and returns the index of the last
// argument it used.
func (a *serverArgs) long(args []string, i int) (int, error) {
	name, value, hasValue := strings.Cut(args[i][2:], "=")
	spec, ok := longOptions[name]
	if !ok {
		return i, &argError{"--" + name, "unknown option"}
	}
	if !spec.value {
		if hasValue {
			return i, &argError{"--" + name, "option does not take an argument"}
		}
		return i, a.set(spec, "")
	}
	if !hasValue {
		if i+1 >= len(args) || args[i+1] == "." {
			return i, &argError{"--" + name, "missing argument"}
		}
		i++
		value = args[i]
	}
	return i, a.set(spec, value)
}

// shortCluster parses args[i], a cluster of short options.
func (a *serverArgs) shortCluster(args []string, i int) (int, error) {
	cluster := args[i][1:]
	for j := 0; j < len(cluster); j++ {
		spec, ok := shortOptions[cluster[j]]
		if !ok {
			return i, &argError{"-" + cluster[j:j+1], "unknown option"}
		}
		if !spec.value {
			if err := a.set(spec, ""); err != nil {
				return i, err
			}
			continue
		}
		value := cluster[j+1:]
		if value == "" {
			if i+1 >= len(args) || args[i+1] == "." {
				return i, &argError{"-" + cluster[j:j+1], "missing argument"}
			}
			i++
			value = args[i]
		}
		return i, a.set(spec, value)
	}
	return i, nil
}

// set records an option and applies what the gateway does with it.
func (a *serverArgs) set(spec *optSpec, value string) error {
	a.used = append(a.used, option{spec: spec, value: value})
	if spec.use != optSupported {
		return nil
	}
	if spec.short != 0 && a.setShort(spec.short, value) {
		return nil
	}
	return a.setLong(spec.long, value)
}

// setShort applies a supported option that has a letter; it reports
// whether it did.
func (a *serverArgs) setShort(c byte, value string) bool {
	switch c {
	case 'a': // rsync: options.c, -a is -rlptgoD
		a.recursive, a.links, a.times, a.owner, a.group, a.devices = true, true, true, true, true, true
	case 'v':
		a.verbose++
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
	case 'm':
		a.prune = true
	case 'u':
		a.update = true
	case 'z':
		a.compress++
	case 'e':
		// rsync: "-e.xyz" carries the capability letters
		// (options.c maybe_add_e_option).
		a.caps = strings.TrimPrefix(value, ".")
	default:
		return false
	}
	return true
}

func (a *serverArgs) setLong(name, value string) error {
	var err error
	switch name {
	case "server":
	case "sender":
		a.sender = true
	case "no-recursive", "no-r":
		a.recursive = false
	case "no-dirs", "no-d", "old-dirs", "old-d":
		a.dirs = name == "old-dirs" || name == "old-d"
	case "no-times", "no-t":
		a.times = false
	case "no-owner", "no-o":
		a.owner = false
	case "no-group", "no-g":
		a.group = false
	case "no-D", "no-devices":
		a.devices = false
	case "no-links", "no-l":
		a.links = false
	case "no-checksum", "no-c":
		a.checksum = false
	case "no-prune-empty-dirs", "no-m":
		a.prune = false
	case "no-secluded-args", "no-protect-args", "no-s":
		a.secluded = false
	case "protect-args":
		a.secluded = true
	case "numeric-ids", "no-numeric-ids":
		a.numericIDs = name == "numeric-ids"
	case "checksum-choice", "cc":
		a.csumChoice = value
	case "old-compress":
		a.compressName = "zlib"
	case "new-compress":
		a.compressName = "zlibx"
	case "no-compress", "no-z":
		a.compress, a.compressName = 0, ""
	case "compress-choice", "zc":
		a.compressName = value
	case "compress-level", "zl":
		a.compressLevel, err = intArg(name, value)
	case "skip-compress":
		a.skipCompress = value
	case "existing", "ignore-non-existing":
		a.existing = true
	case "ignore-existing":
		a.ignoreExisting = true
	case "size-only":
		a.sizeOnly = true
	case "max-size":
		a.maxSize, err = sizeArg(name, value, true)
	case "min-size":
		a.minSize, err = sizeArg(name, value, false)
	case "ignore-missing-args":
		a.ignoreMissing = true
	case "timeout":
		a.timeout, err = intArg(name, value)
	case "no-timeout":
		a.timeout = 0
	case "bwlimit":
		a.bwlimit, err = bwlimitArg(value)
	case "no-bwlimit":
		a.bwlimit = 0
	case "checksum-seed":
		var n int
		n, err = intArg(name, value)
		a.checksumSeed = int32(n)
	default:
		return fmt.Errorf("%w: option --%s has no handler", ErrProtocol, name)
	}
	return err
}

func intArg(name, value string) (int, error) {
	n, err := strconv.ParseInt(value, 10, 32)
	if err != nil {
		return 0, &argError{"--" + name, "invalid numeric value"}
	}
	return int(n), nil
}

// sizeArg parses a --max-size/--min-size value (bytes unless a suffix
// says otherwise); a zero --max-size means no limit.
func sizeArg(name, value string, isMax bool) (int64, error) {
	n, ok := parseSizeArg(value, 'b')
	if !ok {
		return 0, &argError{"--" + name, fmt.Sprintf("invalid %s value %q", name, value)}
	}
	if isMax && n == 0 {
		return -1, nil
	}
	return n, nil
}

// bwlimitArg parses --bwlimit, KiB per second unless a suffix says
// otherwise, into bytes per second; 0 means no limit.
func bwlimitArg(value string) (int64, error) {
	n, ok := parseSizeArg(value, 'k')
	if !ok {
		return 0, &argError{"--bwlimit", fmt.Sprintf("invalid bwlimit value %q", value)}
	}
	return n, nil
}

// parseSizeArg reads "NUMBER[SUFFIX][+1|-1]": a decimal number, a unit
// letter (b k m g t p; defSuffix when absent), then "b" for powers of
// 1000 or "ib"/nothing for powers of 1024 (rsync: options.c
// parse_size_arg).
func parseSizeArg(s string, defSuffix byte) (int64, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		}
	}
	num, rest := s[:i], s[i:]
	suffix := defSuffix
	if rest != "" && rest[0] != '+' && rest[0] != '-' {
		suffix, rest = rest[0]|0x20, rest[1:]
	}
	reps := strings.IndexByte("bkmgtp", suffix)
	if reps < 0 || num == "" || num == "." {
		return 0, false
	}
	mult := 1024.0
	switch {
	case rest != "" && rest[0]|0x20 == 'b':
		mult, rest = 1000, rest[1:]
	case len(rest) >= 2 && strings.EqualFold(rest[:2], "ib"):
		rest = rest[2:]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, false
	}
	for range reps {
		f *= mult
	}
	if f >= 1<<62 {
		return 0, false
	}
	n := int64(f)
	switch rest {
	case "":
	case "+1":
		n++
	case "-1":
		n--
	default:
		return 0, false
	}
	return n, n >= 0
}

func (a *serverArgs) hasCap(c byte) bool { return strings.IndexByte(a.caps, c) >= 0 }

// compressRequested reports whether the client asked for compression in
// any form (rsync: options.c, "do_compression || do_compression_level !=
// CLVL_NOT_SPECIFIED").
func (a *serverArgs) compressRequested() bool {
	return a.compress > 0 || a.compressName != "" || a.compressLevel != levelUnset
}

// refusal returns the first option that is refused: one the gateway does
// not implement, or one the module's `refuse options` names
// (rsync: options.c set_refuse_options, create_refuse_error).
func (a *serverArgs) refusal(refuse []string) (option, bool) {
	for _, o := range a.used {
		if isCompressOption(o.spec) {
			continue // judged as one below, as rsync does
		}
		if (o.spec.use == optRefused && !(o.spec.pushOnly && a.sender)) || refusedBy(refuse, o.spec) || alwaysRefused(o.spec) {
			return o, true
		}
	}
	if a.compressRequested() && (refusedBy(refuse, longOptions["compress"]) || a.compressLevelRefused(refuse)) {
		return option{spec: longOptions["compress"]}, true
	}
	return option{}, false
}

func isCompressOption(s *optSpec) bool {
	switch s.long {
	case "compress", "old-compress", "new-compress", "compress-choice", "zc", "compress-level", "zl":
		return true
	}
	return false
}

// compressLevelRefused: refusing compress-level refuses a client that
// gives one.
func (a *serverArgs) compressLevelRefused(refuse []string) bool {
	return a.compressLevel != levelUnset && refusedBy(refuse, longOptions["compress-level"])
}

// alwaysRefused are refused by every stock daemon whatever `refuse
// options` says: the log-file ones cannot be accepted at all
// (rsync: options.c set_refuse_options).
func alwaysRefused(s *optSpec) bool {
	return s.long == "log-file" || s.long == "log-file-format"
}

// refusedBy applies `refuse options`: each word is an option name or
// letter, a wildcard, or a `!` negation that accepts again; later words
// win. "a" or "archive" stands for the options -a implies.
func refusedBy(patterns []string, s *optSpec) bool {
	refused := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!") && len(p) > 1
		p = strings.TrimPrefix(p, "!")
		if matchOption(p, s) {
			refused = !neg
		}
	}
	return refused
}

func matchOption(p string, s *optSpec) bool {
	if p == "a" || p == "archive" {
		p = "[ardlptgoD]"
	}
	wild := strings.ContainsAny(p, "*?[")
	if wild && s.exact {
		return false
	}
	if p == "delete" && strings.HasPrefix(s.long, "del") {
		return true // rsync: refusing "delete" refuses every --delete* mode
	}
	if s.short != 0 && wildMatchOpt(p, string(s.short)) {
		return true
	}
	return s.long != "" && wildMatchOpt(p, s.long)
}

func wildMatchOpt(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
