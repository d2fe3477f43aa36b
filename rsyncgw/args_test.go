package rsyncgw

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestServerArgs(t *testing.T) {
	a, err := parseServerArgs([]string{"--server", "--sender", "-logDtpre.iLsfxCIvu", "--numeric-ids", ".", "wal_fetch/x"})
	if err != nil {
		t.Fatal(err)
	}
	if !a.sender || !a.recursive || !a.owner || !a.numericIDs || a.caps != "iLsfxCIvu" || a.paths[0] != "wal_fetch/x" {
		t.Errorf("%+v", a)
	}
	if o, bad := a.refusal(nil); bad {
		t.Errorf("refused %v", o)
	}
	if o, bad := a.refusal([]string{"o*"}); !bad || o.spec.long != "owner" {
		t.Errorf("refuse o*: %v %v", o, bad)
	}
	if _, bad := a.refusal([]string{"owner", "!owner"}); bad {
		t.Error("negation did not lift the refusal")
	}
	if o, bad := a.refusal([]string{"archive"}); !bad || o.String() != "--links (-l)" {
		t.Errorf("refuse archive: %v %v", o, bad)
	}
	if _, bad := a.refusal([]string{"se*", "e*", "rsh"}); !bad {
		t.Error("refusing rsh by name did not refuse -e")
	}
	if _, bad := a.refusal([]string{"se*", "e*"}); bad {
		t.Error("a wildcard refused an exact-only option (-e, --server, --sender)")
	}
	for _, bad := range [][]string{{}, {"-a"}, {"--server", "-Q", "."}, {"--server", "x", "."}, {"--server", "-r"}} {
		if _, err := parseServerArgs(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestServerArgsValueForms checks the forms rsync: options.c
// server_options writes options that take a value in: a separate
// argument, "=value", and a value glued to a short letter.
func TestServerArgsValueForms(t *testing.T) {
	for _, c := range []struct {
		args   []string
		check  func(*serverArgs) bool
		refuse string // the refusal text, "" when accepted
	}{
		{args: []string{"--temp-dir", "/var/tmp/x y"}},
		{args: []string{"--partial-dir", ".rsync-partial", "--delay-updates"}},
		{args: []string{"-B2048"}},
		{args: []string{"-B", "2048"}},
		{args: []string{"--block-size=2048"}},
		{args: []string{"-T", "/tmp"}},
		{args: []string{"-@2"}},
		{args: []string{"--modify-window=2"}},
		{args: []string{"--backup-dir", "/old"}, refuse: "--backup-dir"},
		{args: []string{"--compare-dest", "/x"}, refuse: "--compare-dest"},
		{args: []string{"--link-dest", "/x"}, refuse: "--link-dest"},
		{args: []string{"--copy-dest", "/x"}, refuse: "--copy-dest"},
		{args: []string{"--files-from=-", "--from0"}, refuse: "--files-from"},
		{args: []string{"--log-file=/tmp/x"}, refuse: "--log-file"},
		{args: []string{"--max-size=1048576"}, check: func(a *serverArgs) bool { return a.maxSize == 1<<20 }},
		{args: []string{"--min-size=1.5K"}, check: func(a *serverArgs) bool { return a.minSize == 1536 }},
		{args: []string{"--max-size=1kb+1"}, check: func(a *serverArgs) bool { return a.maxSize == 1001 }},
		{args: []string{"--max-size=0"}, check: func(a *serverArgs) bool { return a.maxSize == -1 }},
		{args: []string{"--bwlimit=100"}, check: func(a *serverArgs) bool { return a.bwlimit == 100<<10 }},
		{args: []string{"--timeout=30"}, check: func(a *serverArgs) bool { return a.timeout == 30 }},
		{args: []string{"--checksum-seed=77"}, check: func(a *serverArgs) bool { return a.checksumSeed == 77 }},
		{args: []string{"--compress-level=9"}, check: func(a *serverArgs) bool { return a.compressLevel == 9 && a.compressRequested() }},
		{args: []string{"--compress-choice=lz4"}, check: func(a *serverArgs) bool { return a.compressName == "lz4" }},
		{args: []string{"--new-compress"}, check: func(a *serverArgs) bool { return a.compressName == "zlibx" }},
		{args: []string{"--ignore-existing", "--existing", "--size-only"},
			check: func(a *serverArgs) bool { return a.ignoreExisting && a.existing && a.sizeOnly }},
		{args: []string{"--no-o"}, check: func(a *serverArgs) bool { return !a.owner }},
	} {
		args := append(append([]string{"--server", "-logDtpre.iLsfxCIvu"}, c.args...), ".", "m/x")
		a, err := parseServerArgs(args)
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if !reflect.DeepEqual(a.paths, []string{"m/x"}) {
			t.Errorf("%q: paths %q", c.args, a.paths)
		}
		if c.check != nil && !c.check(a) {
			t.Errorf("%q: parsed %+v", c.args, a)
		}
		o, refused := a.refusal(nil)
		switch {
		case c.refuse == "" && refused:
			t.Errorf("%q refused as %v", c.args, o)
		case c.refuse != "" && (!refused || o.String() != c.refuse):
			t.Errorf("%q: refusal %v %v, want %s", c.args, o, refused, c.refuse)
		}
	}
}

func TestServerArgsErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--foo"}, "on remote machine: --foo: unknown option"},
		{[]string{"-Q"}, "on remote machine: -Q: unknown option"},
		{[]string{"--temp-dir"}, "on remote machine: --temp-dir: missing argument"},
		{[]string{"--timeout=x"}, "on remote machine: --timeout: invalid numeric value"},
		{[]string{"--stats=1"}, "on remote machine: --stats: option does not take an argument"},
	} {
		_, err := parseServerArgs(append(append([]string{"--server"}, c.args...), ".", "m/"))
		var ae *argError
		if !errors.As(err, &ae) || ae.Error() != c.want {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

func TestRefuseCompress(t *testing.T) {
	for _, args := range [][]string{{"-z"}, {"--compress-choice=zstd"}, {"--new-compress"}, {"--compress-level=3"}} {
		a, err := parseServerArgs(append(append([]string{"--server"}, args...), ".", "m/"))
		if err != nil {
			t.Fatal(err)
		}
		for _, refuse := range []string{"compress", "z", "compress*"} {
			if o, bad := a.refusal([]string{refuse}); !bad || o.String() != "--compress (-z)" {
				t.Errorf("%q with refuse %q: %v %v", args, refuse, o, bad)
			}
		}
		if _, bad := a.refusal(nil); bad {
			t.Errorf("%q refused without refuse options", args)
		}
	}
}

func TestOptionTableNames(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range optionTable {
		key := o.long + "/" + string(o.short)
		if seen[key] || strings.HasPrefix(o.long, "-") {
			t.Errorf("bad or duplicate row %+v", o)
		}
		seen[key] = true
		if o.use == optSupported {
			a := &serverArgs{}
			if err := a.set(&o, "1"); errors.Is(err, ErrProtocol) {
				t.Errorf("supported option %+v has no handler", o)
			}
		}
	}
}
