package fs

import (
	"os"
	"strings"
	"testing"
)

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/db/pg_archived`:      "/db/pg_archived",
		`/tmp/a\040b`:          "/tmp/a b",
		`/tmp/back\134slash`:   `/tmp/back\slash`,
		`/tmp/trailing\04`:     `/tmp/trailing\04`,
		`/tmp/not\999octal\01`: `/tmp/not\999octal\01`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMountReadAhead checks that a mount gets the read-ahead it asks for
// (root only: the bdi's read_ahead_kb is writable by root).
func TestMountReadAhead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("setting the read-ahead of a mount needs root")
	}
	e := mountTest(t)
	dev, err := mountDevice(e.mnt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/sys/class/bdi/" + dev + "/read_ahead_kb")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), "1024"; got != want {
		t.Errorf("read_ahead_kb of the mount = %s, want %s", got, want)
	}
}
