package rsyncgw

import (
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
)

// compressChoices are the compressions we negotiate, in stock rsync's
// order of preference (rsync: compat.c valid_compressions_items); a
// server lists "none" too.
var compressChoices = []string{"zstd", "lz4", "zlibx", "zlib", "none"}

// compression is what a session's file data travels with: the algorithm
// ("" for none) and its level.
type compression struct {
	name  string
	level int
}

func (c compression) String() string {
	if c.name == "" {
		return "none"
	}
	return fmt.Sprintf("%s (level %d)", c.name, c.level)
}

// chooseCompression picks the first name in the client's list that we
// support; the client, picking its own most preferred name among ours,
// arrives at the same (rsync: compat.c parse_negotiate_str).
func chooseCompression(clientList string) (string, bool) {
	for _, name := range strings.Fields(clientList) {
		if slices.Contains(compressChoices, name) {
			return name, true
		}
	}
	return "", false
}

// knownCompression reports whether name is one rsync knows (a client
// naming another is refused as rsync does: "unknown compress name").
func knownCompression(name string) bool { return slices.Contains(compressChoices, name) }

// compressionLevel settles the level as both sides compute it, which
// can turn compression off: zlib's level 0 means none (rsync: token.c
// init_compression_level). Out-of-range levels are clamped.
func compressionLevel(name string, level int) compression {
	switch name {
	case "zlib", "zlibx":
		switch level {
		case levelUnset, -1: // Z_DEFAULT_COMPRESSION
			level = 6
		case 0: // Z_NO_COMPRESSION is the "off" level
			return compression{}
		}
		return compression{name, min(max(level, 1), 9)}
	case "zstd":
		if level == levelUnset || level == 0 {
			level = 3 // ZSTD_CLEVEL_DEFAULT
		}
		return compression{name, min(max(level, -131072), 22)} // ZSTD_minCLevel, ZSTD_maxCLevel
	case "lz4":
		return compression{name, 0}
	}
	return compression{}
}

// newTokenReader returns the decoder of a session's token streams.
func newTokenReader(c compression, in byteReader) tokenReader {
	switch c.name {
	case "zlib", "zlibx":
		return newDeflateTokenReader(in)
	case "zstd":
		return newZstdTokenReader(in)
	case "lz4":
		return newLz4TokenReader(in)
	}
	return newSimpleTokenReader(in)
}

// newTokenWriter returns the encoder of a session's token streams.
func newTokenWriter(c compression, out io.Writer, dont *compressFilter) tokenWriter {
	switch c.name {
	case "zlib", "zlibx":
		return newDeflateTokenWriter(out, c.level, dont)
	case "zstd":
		return newZstdTokenWriter(out, c.level)
	case "lz4":
		return newLz4TokenWriter(out, dont)
	}
	return &simpleTokenWriter{out: out}
}

// DefaultDontCompress is rsync 3.5.0's default `dont compress` list
// (rsync: rsync.1.md, the --skip-compress suffix list).
var DefaultDontCompress = suffixPatterns("3g2 3gp 7z aac ace apk avi bz2 deb dmg ear f4v flac flv gpg gz iso jar jpeg jpg " +
	"lrz lz lz4 lzma lzo m1a m1v m2a m2ts m2v m4a m4b m4p m4r m4v mka mkv mov mp1 mp2 mp3 mp4 mpa mpeg mpg mpv mts " +
	"odb odf odg odi odm odp ods odt oga ogg ogm ogv ogx opus otg oth otp ots ott oxt png qt rar rpm rz rzip spx " +
	"squashfs sxc sxd sxg sxm sxw sz tbz tbz2 tgz tlz ts txz tzo vob war webm webp xz z zip zst")

func suffixPatterns(list string) []string {
	var out []string
	for _, s := range strings.FieldsFunc(list, func(r rune) bool { return r == ' ' || r == '/' }) {
		out = append(out, "*."+strings.ToLower(s))
	}
	return out
}

// compressFilter decides which files a pull sends without compressing:
// the module's `dont compress` wildcards and the client's
// --skip-compress suffixes, matched case-insensitively against the
// file's base name (rsync: token.c set_compression).
type compressFilter struct {
	patterns []string
}

func newCompressFilter(dontCompress []string, skipCompress string) *compressFilter {
	f := &compressFilter{}
	for _, p := range dontCompress {
		f.patterns = append(f.patterns, strings.ToLower(p))
	}
	f.patterns = append(f.patterns, suffixPatterns(skipCompress)...)
	return f
}

func (f *compressFilter) matches(name string) bool {
	if f == nil {
		return false
	}
	base := strings.ToLower(path.Base(name))
	for _, p := range f.patterns {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}
