package rsyncgw

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walrus-archive/walrus/store"
)

// matrixRow is one rsync command line the option matrix runs with the
// real client, on push and on pull.
type matrixRow struct {
	args []string
	// push and pull are what the client must do: exit code, and for a
	// refusal the message. A push that exits 0 must have stored the
	// file byte for byte, a pull that exits 0 must have written it;
	// anything else must have stored or written nothing.
	push, pull outcome
	dryRun     bool // exit 0 and nothing stored or written
	pullSkips  bool // the client's own rules skip the file: exit 0, nothing written
}

type outcome struct {
	code int
	text string
}

var ok = outcome{}

func refused(opt string) outcome {
	return outcome{exitUnsupported, "rsync: The server is configured to refuse " + opt}
}

// matrixRows are the command lines DBAs write (issue 10), the options
// that take a value in each form the client sends, and every compression.
func matrixRows(tmp string) []matrixRow {
	rows := []matrixRow{
		{args: []string{"-a"}}, {args: []string{"-aq"}}, {args: []string{"-av"}}, {args: []string{"-ac"}},
		{args: []string{"-aW"}}, {args: []string{"-a", "--inplace"}}, {args: []string{"-a", "--partial"}},
		{args: []string{"-aP"}}, {args: []string{"-a", "--bwlimit=100000"}}, {args: []string{"-a", "--timeout=30"}},
		{args: []string{"-a", "--contimeout=10"}}, {args: []string{"-a", "--fsync"}}, {args: []string{"-aS"}},
		{args: []string{"-a", "--preallocate"}}, {args: []string{"-a", "--stats"}}, {args: []string{"-a", "--chmod=F640"}},
		{args: []string{"-as"}}, {args: []string{"-a", "--numeric-ids"}}, {args: []string{"-a", "--delay-updates"}},
		{args: []string{"-a", "--modify-window=2"}}, {args: []string{"-a", "--max-size=100M"}}, {args: []string{"-aL"}},
		{args: []string{"-a", "--min-size=1K"}}, {args: []string{"-a", "-I"}}, {args: []string{"-ab"}},
		{args: []string{"-a", "--ignore-times", "--checksum-seed=12345"}},
		{args: []string{"-a", "--checksum-choice=md5"}}, {args: []string{"-a", "--checksum-choice=md4"}},
		{args: []string{"-a", "--checksum-choice=xxh128"}}, {args: []string{"-a", "--checksum-choice=xxh3"}},
		{args: []string{"-a", "--checksum-choice=xxh64"}}, {args: []string{"-a", "--checksum-choice=sha1"}},
		{args: []string{"-ac", "--cc=xxh3,md5"}}, {args: []string{"-a", "--checksum-choice=none"}},
		// Push skip rules on a new name (skip_test.go has the others);
		// on a pull they are the client's business.
		{args: []string{"-a", "--existing"}, push: outcome{exitPartial, "--existing creates no files"}, pullSkips: true},
		{args: []string{"-a", "--ignore-existing"}}, {args: []string{"-au"}}, {args: []string{"-a", "--size-only"}},
		{args: []string{"-a", "--max-size=1K"}, push: outcome{exitPartial, "it is larger than --max-size=1024"}, pullSkips: true},
		// Options that take a value (rsync: options.c server_options).
		{args: []string{"-a", "-T", tmp}}, {args: []string{"-a", "--temp-dir=" + tmp}},
		{args: []string{"-a", "--partial-dir=.rsync-partial"}}, {args: []string{"-a", "--partial-dir", ".p", "--delay-updates"}},
		{args: []string{"-a", "-B", "2048"}}, {args: []string{"-a", "--block-size=8192"}},
		{args: []string{"-a", "--backup-dir=" + tmp}, push: refused("--backup-dir")},
		{args: []string{"-a", "--compare-dest=" + tmp}, push: refused("--compare-dest")},
		{args: []string{"-a", "--link-dest=" + tmp}, push: refused("--link-dest")},
		{args: []string{"-a", "--copy-dest=" + tmp}, push: refused("--copy-dest")},
		{args: []string{"-aH"}, push: refused("--hard-links (-H)"), pull: refused("--hard-links (-H)")},
		{args: []string{"-a", "--delete"}, push: refused("--delete")},
		{args: []string{"-a", "--remove-source-files"}, push: refused("--remove-source-files"), pull: refused("--remove-source-files")},
		{args: []string{"-a", "--delete-after", "--force"}, push: refused("--delete-after")},
		{args: []string{"-a", "-M--log-file=/tmp/x"}, push: refused("--log-file"), pull: refused("--log-file")},
		{args: []string{"-a", "-M--no-such-option"}, push: outcome{exitUnsupported, "rsync: on remote machine: --no-such-option: unknown option"},
			pull: outcome{exitUnsupported, "rsync: on remote machine: --no-such-option: unknown option"}},
		// Dry run.
		{args: []string{"-an"}, dryRun: true}, {args: []string{"-avn"}, dryRun: true}, {args: []string{"-anz"}, dryRun: true},
		{args: []string{"-ani", "--stats"}, dryRun: true},
	}
	// Compression; each algorithm on protocol 30 too.
	for _, z := range [][]string{{"-az"}, {"-azz"}, {"-a", "--zc=zlib"}, {"-a", "--zc=zstd"}, {"-a", "--zc=lz4"}} {
		rows = append(rows, matrixRow{args: append([]string{"--protocol=30"}, z...)})
	}
	for _, z := range [][]string{
		{"-az"}, {"-avz"}, {"-aqz"}, {"-azz"}, {"-a", "--compress-choice=zstd"}, {"-a", "--compress-choice=lz4"},
		{"-a", "--compress-choice=zlibx"}, {"-a", "--compress-choice=zlib"}, {"-a", "--zc=none"},
		{"-az", "--compress-level=1"}, {"-az", "--compress-level=9"}, {"-a", "--zc=zstd", "--zl=19"},
		{"-a", "--zc=zstd", "--zl=-5"}, {"-a", "--zc=zlib", "--zl=0"}, {"-a", "--zc=zlibx", "--zl=1"},
		{"-a", "--old-compress"}, {"-a", "--new-compress"}, {"-az", "--skip-compress=gz/zst"}, {"-acz"},
	} {
		rows = append(rows, matrixRow{args: z})
	}
	return rows
}

// TestOptionMatrix runs the real rsync client with every row on push and
// pull against one gateway, and checks exit codes, messages, and the
// bytes stored and pulled.
func TestOptionMatrix(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	tmp := t.TempDir()
	for i, row := range matrixRows(tmp) {
		name := strings.Join(row.args, " ")
		pushSeg, pullSeg := segment(uint64(1000+2*i)), segment(uint64(1001+2*i))
		e.put(pullSeg.Name(), pullSeg.Bytes())
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("push", func(t *testing.T) { matrixPush(t, e, row, pushSeg.Name(), pushSeg.Bytes()) })
			t.Run("pull", func(t *testing.T) { matrixPull(t, e, row, pullSeg.Name(), pullSeg.Bytes()) })
		})
	}
}

func matrixPush(t *testing.T, e *testEnv, row matrixRow, name string, data []byte) {
	e = e.in(t)
	src := e.writeFile("push/"+name, data)
	out, code := e.rsync(with(row.args, src, "rsync://HOST/wal_store/"+name)...)
	expectExit(t, out, code, row.push.code, row.push.text)
	_, err := e.st.Stat(name)
	switch {
	case row.push.code == 0 && !row.dryRun:
		if got := e.stored(name); !bytes.Equal(got, data) {
			t.Errorf("stored %d bytes, want the %d pushed", len(got), len(data))
		}
	case !errors.Is(err, store.ErrNotFound):
		t.Errorf("a push that stored nothing left %s (%v)", name, err)
	}
}

func matrixPull(t *testing.T, e *testEnv, row matrixRow, name string, data []byte) {
	e = e.in(t)
	dst := filepath.Join(e.tmp, "pull", name)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	out, code := e.rsync(with(row.args, "rsync://HOST/wal_fetch/"+name, dst)...)
	expectExit(t, out, code, row.pull.code, row.pull.text)
	got, err := os.ReadFile(dst)
	switch {
	case row.pull.code == 0 && !row.dryRun && !row.pullSkips:
		if !bytes.Equal(got, data) {
			t.Errorf("pulled %d bytes (%v), want %d", len(got), err, len(data))
		}
	case err == nil:
		t.Errorf("a pull that should write nothing wrote %d bytes", len(got))
	}
}

// TestOptionMatrixNames checks that the matrix has no two rows alike, so
// subtest names stay unique.
func TestOptionMatrixNames(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range matrixRows("/tmp") {
		n := fmt.Sprint(r.args)
		if seen[n] {
			t.Errorf("duplicate row %s", n)
		}
		seen[n] = true
	}
}

// TestCompressedTrees pushes and pulls several files in one session with
// each compression: zstd's stream spans them, zlib restarts per file, and
// a name `dont compress` matches is sent at deflate level 0 or as
// literal lz4 blocks in the middle of the others.
func TestCompressedTrees(t *testing.T) {
	e := startServer(t, baseConf, func(o *Options) { o.Logger = quiet })
	files := map[string][]byte{
		"000000010000000000000002.gz": bytes.Repeat([]byte("gzip-looking "), 5000),
		"00000002.history":            []byte("1\t0/3000000\tno recovery target specified\n"),
		"empty.backup":                nil,
	}
	for i := uint64(1); i <= 3; i++ {
		files[segment(i).Name()] = segment(i).Bytes()
	}
	for z, args := range map[string][]string{
		"z": {"-z"}, "zlib": {"--zc=zlib"}, "zlibx": {"--zc=zlibx"}, "lz4": {"--zc=lz4"},
		"zstd9": {"--zc=zstd", "--zl=9"}, "p30": {"--protocol=30", "-z"},
	} {
		t.Run(z, func(t *testing.T) {
			e := e.in(t)
			src := filepath.Join(e.tmp, "src-"+z)
			for name, data := range files {
				e.writeFile("src-"+z+"/"+name, data)
			}
			out, code := e.rsync(with(args, "-a", src+"/", "rsync://HOST/wal_store/"+z+"/")...)
			expectExit(t, out, code, 0)
			for name, data := range files {
				if got := e.stored(z + "/" + name); !bytes.Equal(got, data) {
					t.Errorf("stored %s: %d bytes, want %d", name, len(got), len(data))
				}
			}
			dst := filepath.Join(e.tmp, "dst-"+z) + "/"
			out, code = e.rsync(with(args, "-a", "rsync://HOST/wal_fetch/"+z+"/", dst)...)
			expectExit(t, out, code, 0)
			for name, data := range files {
				if got, err := os.ReadFile(dst + name); err != nil || !bytes.Equal(got, data) {
					t.Errorf("pulled %s: %d bytes (%v), want %d", name, len(got), err, len(data))
				}
			}
		})
	}
}
