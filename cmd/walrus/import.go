package main

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"

	"github.com/walrus-archive/walrus/internal/wal"
	"github.com/walrus-archive/walrus/store"
)

// importCmd ingests an existing archive: a plain directory (what an rsync
// daemon or cp filled) or a pgBackRest repository's archive. Every file
// goes through the same commit as a push (validated, fsynced, indexed), so
// a re-run is idempotent (identical files succeed without storing anything)
// and an interrupted import is resumed by running it again.
type importCmd struct {
	Src string `arg:"" help:"Archive to import: a plain WAL directory, or a pgBackRest repository (its root, archive/STANZA or archive/STANZA/VER-ID)." type:"existingdir"`
	Dir string `arg:"" optional:"" help:"walrus directory to import into (one per cluster); the archive root if omitted."`
}

// importItem is one file to import.
type importItem struct {
	name   string // name in walrus
	path   string // source file
	codec  string // "", "gz", "zst", "lz4", "bz2": how the source is compressed
	sha1   string // expected SHA-1 of the uncompressed content (pgBackRest), or ""
	size   int64  // source bytes
	mode   os.FileMode
	mtime  time.Time
	origin string // what the source calls it, for messages
}

var compressedExt = map[string]string{".gz": "gz", ".zst": "zst", ".lz4": "lz4", ".bz2": "bz2"}

func (c *importCmd) Run(ctx context.Context, g *globals) error {
	items, kind, err := importItems(c.Src, g.stderr)
	if err != nil {
		return err
	}
	a, err := g.openArchive()
	if err != nil {
		return err
	}
	defer a.Close()
	var total int64
	for _, it := range items {
		total += it.size
	}
	p := newProgress(g.stderr, "import", total)
	var done, sent int64
	var refused []string
	var firstErr error
	lastLine := time.Now()
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			p.done()
			return fmt.Errorf("import interrupted after %d of %d files; run the same command again to resume: %w", done, len(items), err)
		}
		if err := importOne(a, c.Dir, it); err != nil {
			p.done()
			if !isRefusal(err) {
				return fmt.Errorf("import stopped at %s after %d of %d files (run the same command again to resume): %w", it.origin, done, len(items), err)
			}
			fmt.Fprintf(g.stderr, "walrus: import: %s refused: %v\n", it.origin, err)
			refused = append(refused, it.origin)
			if firstErr == nil {
				firstErr = err
			}
		}
		done++
		sent += it.size
		p.update(done, sent)
		if p.w == nil && time.Since(lastLine) >= 10*time.Second {
			lastLine = time.Now()
			fmt.Fprintf(g.stderr, "walrus: import: %d of %d files, %s of %s\n", done, len(items), humanBytes(sent), humanBytes(total))
		}
	}
	p.done()
	fmt.Fprintf(g.stdout, "imported %d files (%s read) from %s %s into /%s; %d refused\n",
		len(items)-len(refused), humanBytes(total), kind, c.Src, c.Dir, len(refused))
	if firstErr != nil {
		return fmt.Errorf("%d files were refused (listed above; everything else is archived): %w", len(refused), firstErr)
	}
	return a.Close()
}

// isRefusal reports whether err is about one file (import goes on) rather
// than the archive (import stops).
func isRefusal(err error) bool {
	return errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrInvalidWAL) ||
		errors.Is(err, store.ErrClusterMismatch) || errors.Is(err, errChecksum) || errors.Is(err, errSource) ||
		errors.Is(err, store.ErrTooLarge)
}

// maxWALFile is the largest WAL segment (initdb --wal-segsize=1024).
const maxWALFile = 1 << 30

var (
	errChecksum = errors.New("content does not match the repository's SHA-1 (the repository copy is damaged)")
	errSource   = errors.New("cannot read the source file")
)

// importOne decompresses it (checking pgBackRest's SHA-1 before anything
// is stored) and puts it.
func importOne(a archive, dir string, it importItem) error {
	f, err := os.Open(it.path)
	if err != nil {
		return fmt.Errorf("%w: %v", errSource, err)
	}
	defer f.Close()
	r, err := decompressor(it.codec, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", errSource, it.codec, err)
	}
	var in io.Reader = r
	size := int64(-1)
	if it.codec == "" {
		size = it.size
	}
	if it.sha1 != "" || it.codec != "" {
		// Whole in memory (a segment is 16 MiB; at most the store's
		// largest file): a damaged source is refused before it is stored.
		b, err := io.ReadAll(io.LimitReader(r, maxWALFile+1))
		if err != nil {
			return fmt.Errorf("%w: %v", errSource, err)
		}
		if it.sha1 != "" {
			if sum := sha1.Sum(b); hex.EncodeToString(sum[:]) != it.sha1 {
				return errChecksum
			}
		}
		in, size = bytes.NewReader(b), int64(len(b))
	}
	path := it.name
	if dir != "" {
		path = dir + "/" + it.name
	}
	return a.Put(path, in, size, store.FileMeta{Mode: it.mode, MTime: it.mtime})
}

func decompressor(codec string, r io.Reader) (io.Reader, error) {
	switch codec {
	case "":
		return r, nil
	case "gz":
		return gzip.NewReader(r)
	case "zst":
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case "lz4":
		return lz4.NewReader(r), nil
	case "bz2":
		return bzip2.NewReader(r), nil
	}
	return nil, fmt.Errorf("unknown compression %q", codec)
}

// importItems finds what to import in src and names its layout.
func importItems(src string, warn io.Writer) ([]importItem, string, error) {
	if verDir, err := pgbackrestArchive(src); err != nil {
		return nil, "", err
	} else if verDir != "" {
		items, err := pgbackrestItems(verDir)
		return items, "pgBackRest archive", err
	}
	items, err := plainItems(src, warn)
	return items, "directory", err
}

var pgbrVersionDir = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?-[0-9]+$`)

// pgbackrestArchive returns the archive/STANZA/VER-ID directory src names
// (src is the repository root, archive/STANZA, or that directory), or ""
// when src is no pgBackRest repository.
func pgbackrestArchive(src string) (string, error) {
	stanza := ""
	switch {
	case exists(filepath.Join(src, "archive.info")):
		stanza = src
	case pgbrVersionDir.MatchString(filepath.Base(src)) && exists(filepath.Join(filepath.Dir(src), "archive.info")):
		return src, checkUnencrypted(filepath.Dir(src))
	case exists(filepath.Join(src, "archive")):
		stanzas, _ := filepath.Glob(filepath.Join(src, "archive", "*", "archive.info"))
		switch len(stanzas) {
		case 0:
			return "", nil
		case 1:
			stanza = filepath.Dir(stanzas[0])
		default:
			var names []string
			for _, s := range stanzas {
				names = append(names, filepath.Join(src, "archive", filepath.Base(filepath.Dir(s))))
			}
			return "", fmt.Errorf("%s holds several stanzas; import each into its own walrus directory: walrus import %s NAME", src, strings.Join(names, " | "))
		}
	default:
		return "", nil
	}
	if err := checkUnencrypted(stanza); err != nil {
		return "", err
	}
	vers, _ := os.ReadDir(stanza)
	var dirs []string
	for _, v := range vers {
		if v.IsDir() && pgbrVersionDir.MatchString(v.Name()) {
			dirs = append(dirs, filepath.Join(stanza, v.Name()))
		}
	}
	switch len(dirs) {
	case 0:
		return "", fmt.Errorf("%s is a pgBackRest stanza without any archived WAL (no VER-ID directory)", stanza)
	case 1:
		return dirs[0], nil
	}
	return "", fmt.Errorf("%s holds WAL of several database ids (after stanza-upgrade: different clusters or versions); import each into its own walrus directory: walrus import %s NAME", stanza, strings.Join(dirs, " | "))
}

func checkUnencrypted(stanza string) error {
	b, err := os.ReadFile(filepath.Join(stanza, "archive.info"))
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte("[cipher]")) || bytes.Contains(b, []byte("cipher-pass")) {
		return fmt.Errorf("%s is an encrypted pgBackRest repository (repo-cipher-type); walrus cannot decrypt it: restore its WAL with pgbackrest archive-get into a directory and import that", stanza)
	}
	return nil
}

// pgbackrestName is a file name in a pgBackRest archive: the WAL name, the
// SHA-1 of its uncompressed content, and the compression extension.
var pgbackrestName = regexp.MustCompile(`^(.+)-([0-9a-f]{40})(\.gz|\.zst|\.lz4|\.bz2)?$`)

// pgbackrestItems lists VER-ID/*.history and VER-ID/<16 hex>/NAME-SHA1[.EXT].
func pgbackrestItems(verDir string) ([]importItem, error) {
	var items []importItem
	add := func(path string) error {
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			return err
		}
		base := filepath.Base(path)
		it := importItem{name: base, path: path, size: st.Size(), mode: 0o600, mtime: st.ModTime(), origin: path}
		if m := pgbackrestName.FindStringSubmatch(base); m != nil && wal.ParseName(m[1]).Kind != wal.KindOther {
			it.name, it.sha1, it.codec = m[1], m[2], compressedExt[m[3]]
		} else if wal.ParseName(base).Kind == wal.KindOther {
			return nil // not WAL (pgBackRest keeps nothing else here)
		}
		items = append(items, it)
		return nil
	}
	top, err := os.ReadDir(verDir)
	if err != nil {
		return nil, err
	}
	for _, e := range top {
		p := filepath.Join(verDir, e.Name())
		if !e.IsDir() {
			if err := add(p); err != nil {
				return nil, err
			}
			continue
		}
		sub, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		for _, f := range sub {
			if err := add(filepath.Join(p, f.Name())); err != nil {
				return nil, err
			}
		}
	}
	return sortItems(items), nil
}

// plainItems lists the regular files of a plain archive directory. A WAL
// file compressed by the archive_command (SEG.gz, .zst, .lz4, .bz2) is
// imported decompressed under its WAL name (validated and deduplicated like
// any segment); other names are imported as they are. Hidden names (rsync's
// temporary .NAME.XXXXXX) and subdirectories are skipped and named.
func plainItems(dir string, warn io.Writer) ([]importItem, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var items []importItem
	var skipped []string
	for _, e := range ents {
		name := e.Name()
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if st.IsDir() || !st.Mode().IsRegular() || strings.HasPrefix(name, ".") {
			skipped = append(skipped, name)
			continue
		}
		it := importItem{name: name, path: p, size: st.Size(), mode: st.Mode().Perm(), mtime: st.ModTime(), origin: p}
		ext := filepath.Ext(name)
		if codec, ok := compressedExt[ext]; ok {
			if base := strings.TrimSuffix(name, ext); wal.ParseName(base).Kind != wal.KindOther {
				it.name, it.codec = base, codec
			}
		}
		items = append(items, it)
	}
	if len(skipped) > 0 {
		sort.Strings(skipped)
		fmt.Fprintf(warn, "walrus: import: skipping %d entries that are directories, hidden or not regular files in %s: %s\n",
			len(skipped), dir, strings.Join(skipped[:min(len(skipped), 10)], " "))
	}
	return sortItems(items), nil
}

// sortItems orders by name: history files before the segments of their
// timeline, segments in WAL order, so the first segment fixes the cluster.
func sortItems(items []importItem) []importItem {
	sort.Slice(items, func(i, j int) bool {
		if items[i].name != items[j].name {
			return items[i].name < items[j].name
		}
		return items[i].path < items[j].path
	})
	return items
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
