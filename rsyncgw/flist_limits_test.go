package rsyncgw

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// A hostile peer's file list: names no stock client sends are refused
// with a protocol error (an entry named "." used to panic the session in
// sortKey), and a list with more name bytes than maxListNameBytes is
// refused before it is held.
func TestReceivedFileListNamesAndBound(t *testing.T) {
	codec := func() *flistCodec {
		return &flistCodec{protocol: 31, varint: true, owner: true, group: true}
	}
	for _, name := range []string{".", "..", "a/../b", "/etc/passwd", "a//b", "a/.", "x\x00y"} {
		e := &fileEntry{name: name, size: 1, mtime: 1700000000, mode: sIFREG | 0o600}
		b := codec().appendEntry(nil, e, true)
		_, _, err := codec().readEntry(bytes.NewReader(b))
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("entry %q: %v, want a protocol error", name, err)
		}
		sortEntries([]*fileEntry{e, {name: "x", mode: sIFREG}}) // must not panic
	}
	top := &fileEntry{name: ".", mode: sIFDIR | 0o755, mtime: 1}
	if _, _, err := codec().readEntry(bytes.NewReader(codec().appendEntry(nil, top, true))); err != nil {
		t.Errorf("top directory \".\": %v", err)
	}

	c := codec()
	long := strings.Repeat("n", 4000)
	var err error
	for i := 0; err == nil && i < maxListNameBytes/3990+100; i++ {
		e := &fileEntry{name: long[:3990] + string(rune('a'+i%26)) + strings.Repeat("x", i%9), size: 1, mtime: 1, mode: sIFREG | 0o600}
		_, _, err = c.readEntry(bytes.NewReader(codec().appendEntry(nil, e, true)))
	}
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "push fewer files") {
		t.Errorf("list of %d name bytes: %v", c.nameBytes, err)
	}
}
