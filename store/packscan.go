package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// packScan is what scanning one pack file found.
type packScan struct {
	ID        uint32
	Size      int64  // bytes scanned (the file's size, or the committed length)
	Version   uint32 // from the header; 0 when the header is unreadable
	HeaderErr string // what is wrong with the header, if anything
	End       int64  // end of the last valid record (packHeaderLen if none)
	Blocks    int    // valid block records
	Journal   int    // valid journal records
	Damaged   []byteRange
	Tail      int64 // bytes after End that hold no valid record
}

type byteRange struct{ Off, Len int64 }

// scanRecord is called for every valid record (header decoded, CRC
// checked). payload is nil for block records unless the scan reads them.
type scanRecord func(off int64, h recordHeader, payload []byte) error

// scanPack reads pack id's records in r up to size. Every journal record is
// read and CRC-checked; block records are too with allPayloads, else only
// their headers are decoded. A record that fails is skipped up to the next
// offset where a record decodes and checks (counted in Damaged), or, if
// none follows, the rest is the torn or damaged Tail.
func scanPack(r io.ReaderAt, id uint32, size int64, allPayloads bool, fn scanRecord) (packScan, error) {
	return scanPackFrom(r, id, packHeaderLen, size, allPayloads, fn)
}

// scanPackFrom scans from offset from, a record boundary; the header is
// checked only when from is the first record's.
func scanPackFrom(r io.ReaderAt, id uint32, from, size int64, allPayloads bool, fn scanRecord) (packScan, error) {
	ps := packScan{ID: id, Size: size, End: from}
	if from == packHeaderLen {
		ps.Version, ps.HeaderErr = checkPackHeader(r, id, size)
	}
	hdr := make([]byte, recordHeaderLen)
	var payload []byte
	for off := from; off < size; {
		h, p, err := readScanRecord(r, off, size, hdr, &payload, allPayloads)
		if err != nil {
			next := resync(r, off+1, size, hdr, &payload)
			if next < 0 {
				ps.Tail = size - off
				break
			}
			ps.Damaged = append(ps.Damaged, byteRange{off, next - off})
			off = next
			continue
		}
		if h.Codec == codecJournal {
			ps.Journal++
		} else {
			ps.Blocks++
		}
		if err := fn(off, h, p); err != nil {
			return ps, err
		}
		off += int64(recordHeaderLen) + int64(h.StoredLen)
		ps.End = off
	}
	return ps, nil
}

// checkPackHeader returns the header's version and, if the header is not
// one of a walrus pack named id, what is wrong with it.
func checkPackHeader(r io.ReaderAt, id uint32, size int64) (uint32, string) {
	var hdr [packHeaderLen]byte
	if size < packHeaderLen {
		return 0, fmt.Sprintf("%d bytes, shorter than a pack header", size)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return 0, fmt.Sprintf("read header: %v", err)
	}
	v := binary.LittleEndian.Uint32(hdr[8:12])
	switch got := binary.LittleEndian.Uint32(hdr[12:16]); {
	case string(hdr[:8]) != packMagic:
		return 0, "bad pack magic"
	case v != 1 && v != packVersion:
		return v, fmt.Sprintf("unknown pack version %d", v)
	case got != id:
		return v, fmt.Sprintf("header names pack %d", got)
	}
	return v, ""
}

// readScanRecord reads and checks the record at off.
func readScanRecord(r io.ReaderAt, off, size int64, hdr []byte, buf *[]byte, allPayloads bool) (recordHeader, []byte, error) {
	if off+recordHeaderLen > size {
		return recordHeader{}, nil, io.ErrUnexpectedEOF
	}
	if _, err := r.ReadAt(hdr, off); err != nil {
		return recordHeader{}, nil, err
	}
	h, err := decodeRecordHeader(hdr, maxStoredLen)
	if err != nil {
		return h, nil, err
	}
	end := off + recordHeaderLen + int64(h.StoredLen)
	if end > size {
		return h, nil, io.ErrUnexpectedEOF
	}
	if h.Codec != codecJournal && !allPayloads {
		return h, nil, nil
	}
	if cap(*buf) < int(h.StoredLen) {
		*buf = make([]byte, h.StoredLen)
	}
	p := (*buf)[:h.StoredLen]
	if _, err := r.ReadAt(p, off+recordHeaderLen); err != nil {
		return h, nil, err
	}
	if !h.check(hdr, p) {
		return h, nil, fmt.Errorf("record at %d: CRC mismatch", off)
	}
	return h, p, nil
}

// resync returns the first offset at or after from where a whole record
// decodes and checks, or -1.
func resync(r io.ReaderAt, from, size int64, hdr []byte, buf *[]byte) int64 {
	window := min(int64(1<<20), max(0, size-from))
	win := make([]byte, window+int64(len(recordMagic)))
	for base := from; base < size; base += window {
		n, _ := r.ReadAt(win[:min(int64(len(win)), size-base)], base)
		for i := 0; i < n; {
			j := indexMagic(win[i:n])
			if j < 0 {
				break
			}
			off := base + int64(i+j)
			if off-base >= window {
				break // the next window starts there
			}
			if _, _, err := readScanRecord(r, off, size, hdr, buf, true); err == nil {
				return off
			}
			i += j + 1
		}
	}
	return -1
}

// indexMagic returns the first position of a record magic in b, or -1.
func indexMagic(b []byte) int {
	i, j := bytes.Index(b, []byte(recordMagic)), bytes.Index(b, []byte(journalMagic))
	switch {
	case i < 0:
		return j
	case j < 0:
		return i
	}
	return min(i, j)
}
