package fs

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// setReadAhead sets the kernel read-ahead of the FUSE mount at mount to kb
// KiB. The kernel starts a FUSE mount at the default bdi read_ahead_kb (128
// KiB) and sends READs of twice that; a restore of a 16 MiB segment then
// costs 64 round trips instead of 16 at the 1 MiB READs the mount allows
// (maxWrite). The mount's bdi is named by its device number, which comes
// from /proc/self/mountinfo, not from a stat of the mount: the serving
// process never touches its own mount (see "Deadlocks" in doc.go).
func setReadAhead(mount string, kb int) error {
	dev, err := mountDevice(mount)
	if err != nil {
		return err
	}
	p := filepath.Join("/sys/class/bdi", dev, "read_ahead_kb")
	if err := os.WriteFile(p, []byte(strconv.Itoa(kb)+"\n"), 0); err != nil {
		return fmt.Errorf("fs: set read-ahead: %w", err)
	}
	return nil
}

// mountDevice returns the MAJ:MIN device number of the newest mount at
// mount, from /proc/self/mountinfo (proc(5): field 3 is the device, field
// 5 the mount point, octal-escaped).
func mountDevice(mount string) (string, error) {
	abs, err := filepath.Abs(mount)
	if err != nil {
		return "", err
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("fs: read-ahead: %w", err)
	}
	defer f.Close()
	dev := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		if unescapeMountinfo(fields[4]) == abs {
			dev = fields[2] // later lines are newer mounts on top
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("fs: read-ahead: %w", err)
	}
	if dev == "" {
		return "", fmt.Errorf("fs: read-ahead: %s is not in /proc/self/mountinfo", abs)
	}
	return dev, nil
}

// unescapeMountinfo undoes the kernel's \ooo escapes of space, tab,
// newline and backslash in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
