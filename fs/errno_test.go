package fs

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/walrus-archive/walrus/store"
)

// A name another front-end holds (store.ErrElsewhere) or whose claim is
// unreadable is never ENOENT: that would end a PostgreSQL recovery early.
func TestErrnoElsewhereIsNotENOENT(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{fmt.Errorf("x: %w", store.ErrNotFound), syscall.ENOENT},
		{fmt.Errorf("x: %w", store.ErrElsewhere), syscall.EIO},
		{fmt.Errorf("x: %w", store.ErrClaims), syscall.EIO},
	} {
		if got := errnoOf(c.err); got != c.want {
			t.Errorf("errnoOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
