package rsyncgw

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/binary"
	"hash"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/zeebo/xxh3"
)

// Compatibility flags (rsync: compat.c CF_*).
const (
	cfIncRecurse       = 0x01
	cfSymlinkTimes     = 0x02
	cfSymlinkIconv     = 0x04
	cfSafeFlist        = 0x08
	cfAvoidXattrOptim  = 0x10
	cfChksumSeedFix    = 0x20
	cfInplacePartial   = 0x40
	cfVarintFlistFlags = 0x80
	cfID0Names         = 0x100
)

// xferChecksums are the transfer checksums we negotiate, in the order
// stock rsync prefers them (rsync: checksum.c valid_checksums).
var xferChecksums = []string{"xxh128", "xxh3", "xxh64", "md5", "md4", "sha1"}

// chooseChecksum picks the first name in the client's list that we
// support. Our list has the same relative order as stock rsync's, so the
// client, applying its own rule to our list, arrives at the same choice.
func chooseChecksum(clientList string) (string, bool) {
	for _, name := range strings.Fields(clientList) {
		if slices.Contains(xferChecksums, name) {
			return name, true
		}
	}
	return "", false
}

// knownChecksum returns name if we implement it ("none" included), else
// md5.
func knownChecksum(name string) string {
	if name == "none" || slices.Contains(xferChecksums, name) {
		return name
	}
	return "md5"
}

// fileSum is the whole-file checksum a sender appends after a file's
// tokens (rsync: checksum.c sum_init/sum_update/sum_end). Protocol 30 and
// later never seed it.
type fileSum struct {
	name string
	h    hash.Hash
	x3   *xxh3.Hasher
	x64  *xxhash.Digest
}

func newFileSum(name string) *fileSum {
	s := &fileSum{name: name}
	switch name {
	case "xxh128", "xxh3":
		s.x3 = xxh3.New()
	case "xxh64":
		s.x64 = xxhash.New()
	case "md4":
		s.h = newMD4()
	case "sha1":
		s.h = sha1.New()
	case "none":
	default:
		s.name, s.h = "md5", md5.New()
	}
	return s
}

func (s *fileSum) Write(p []byte) {
	switch {
	case s.name == "none":
	case s.x3 != nil:
		s.x3.Write(p)
	case s.x64 != nil:
		s.x64.Write(p)
	default:
		s.h.Write(p)
	}
}

// Len is the digest length on the wire.
func (s *fileSum) Len() int { return checksumLen(s.name) }

func checksumLen(name string) int {
	switch name {
	case "xxh3", "xxh64":
		return 8
	case "sha1":
		return 20
	case "none":
		return 1 // rsync: checksum.c csum_len_for_type, CSUM_NONE
	}
	return 16
}

// Sum returns the digest in rsync's byte order: xxh values little-endian,
// xxh128 low half first (rsync: checksum.c sum_end).
func (s *fileSum) Sum() []byte {
	switch s.name {
	case "xxh128":
		v := s.x3.Sum128()
		b := binary.LittleEndian.AppendUint64(nil, v.Lo)
		return binary.LittleEndian.AppendUint64(b, v.Hi)
	case "xxh3":
		return binary.LittleEndian.AppendUint64(nil, s.x3.Sum64())
	case "xxh64":
		return binary.LittleEndian.AppendUint64(nil, s.x64.Sum64())
	case "none":
		return []byte{0}
	}
	return s.h.Sum(nil)
}
