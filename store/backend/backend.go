package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Backend stores named, immutable-by-convention objects: the one contract
// walrus's packs (and later index snapshots) are written to and read from,
// whether they live in a local directory or in an S3-compatible bucket.
//
// Every method takes a context and must return once it is done: an
// implementation passes ctx to every network request it makes, so a
// deadline set by the Timeout decorator (Stack) bounds the call. Errors are
// classified with errors.Is against the sentinels below (ErrNotExist,
// ErrExist, ErrShort, ErrInvalidName) and IsTransient; implementations wrap
// their own errors so that these hold through %w chains.
//
// Names are relative slash-separated paths of ASCII letters, digits and
// "._-" (ValidName); a component never starts with ".", which keeps
// implementation-private files (Local's temporary files) out of the name
// space.
type Backend interface {
	// Location describes where the objects live, for messages
	// ("local:/var/lib/walrus/packs", "s3:http://host:9000/bucket/prefix/").
	Location() string

	// Put stores size bytes read from r (r.ReadAt in [0, size)) as object
	// name, replacing an existing object of that name. The object appears
	// whole or not at all: a reader, a Stat or a List never sees a partial
	// object under name. A Put that fails or is cancelled before its
	// source was read to the end leaves the previous object (or none) in
	// place; one cancelled or failing after that (the reply lost) may have
	// taken effect, whole: the caller cannot know, and must read back or
	// retry. When Put returns nil the object is durable
	// (Local: fsynced, directory included; S3: acknowledged by the server).
	// r may be read more than once (a retry re-reads it) and must not
	// change during the call.
	Put(ctx context.Context, name string, r io.ReaderAt, size int64) error

	// PutIfAbsent is Put that fails with an error matching ErrExist, and
	// changes nothing, when an object of that name already exists. Of
	// several concurrent PutIfAbsent calls on one name at most one
	// succeeds, as far as the implementation's storage guarantees it (the
	// package doc states what versitygw guarantees). It is the primitive
	// for claiming a name.
	PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error

	// ReadAt reads exactly len(p) bytes of object name starting at off
	// into p. It returns nil only when p is filled. A missing object is
	// ErrNotExist; a range that ends past the object's end (off+len(p) >
	// size) is ErrShort, with the object's size in the message, and p's
	// contents are then unspecified. len(p) == 0 checks only that the
	// object exists and off <= size.
	ReadAt(ctx context.Context, name string, p []byte, off int64) error

	// Stat returns the object's size. A missing object is ErrNotExist.
	Stat(ctx context.Context, name string) (Info, error)

	// List calls fn once for every object whose name starts with prefix,
	// in an unspecified order, without buffering the whole listing (S3:
	// one page at a time). fn runs in List's goroutine; when fn returns an
	// error List stops and returns it. Objects created or deleted during
	// List may or may not be reported.
	List(ctx context.Context, prefix string, fn func(Info) error) error

	// ListAfter is List in ascending byte order of names, reporting only
	// the objects whose names sort strictly after after: the listing
	// that resumes where an earlier one stopped, or that skips objects
	// known from one, without listing them again (S3: LIST requests
	// start there, so skipped objects cost no page). after need not
	// name an object, or start with prefix; "" reports every object
	// under prefix. The rest is List's contract: fn runs in ListAfter's
	// goroutine, an error from fn stops it, objects created or deleted
	// during it may or may not be reported (those reported are still in
	// order).
	ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error

	// Delete removes object name. It is idempotent: deleting a missing
	// object returns nil. When it returns nil the object is gone for every
	// later Stat, ReadAt and List (S3: as strongly as the server is
	// consistent; AWS S3 is read-after-delete consistent since 2020).
	Delete(ctx context.Context, name string) error
}

// Info describes a stored object.
type Info struct {
	Name string
	Size int64
}

var (
	// ErrNotExist: the object does not exist.
	ErrNotExist = errors.New("backend: object does not exist")
	// ErrExist: PutIfAbsent found an object of that name.
	ErrExist = errors.New("backend: object already exists")
	// ErrShort: a range read ends past the end of the object.
	ErrShort = errors.New("backend: object is shorter than the range read")
	// ErrInvalidName: the name is not a valid object name (ValidName).
	ErrInvalidName = errors.New("backend: invalid object name")
	// ErrTampered: an encrypted object failed authentication (Encrypted):
	// it was modified, truncated, swapped or renamed, or written with
	// another key. No byte of it is returned.
	ErrTampered = errors.New("backend: object failed authentication")
	// ErrTimeout: one attempt of a call exceeded the Timeout decorator's
	// deadline (the caller's own context was still live). It is transient.
	ErrTimeout error = transientError{errors.New("backend: call timed out")}
)

// IsNotExist reports whether err says the object does not exist.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }

// IsExist reports whether err is a PutIfAbsent conflict.
func IsExist(err error) bool { return errors.Is(err, ErrExist) }

// IsTransient reports whether err may succeed when the call is repeated:
// a network failure, a server error (5xx), throttling, an attempt that
// timed out. Only errors that say so (a Transient() bool method true
// somewhere in the chain) are transient; a conflict, a missing object, a
// short read, a tampered object, a refused credential never are.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, ErrExist) || errors.Is(err, ErrNotExist) ||
		errors.Is(err, ErrShort) || errors.Is(err, ErrTampered) || errors.Is(err, ErrInvalidName) {
		return false
	}
	var t interface{ Transient() bool }
	return errors.As(err, &t) && t.Transient()
}

type transientError struct{ error }

func (transientError) Transient() bool { return true }
func (e transientError) Unwrap() error { return e.error }

// Transient marks err as transient for IsTransient (and the Retry
// decorator).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// ValidName reports whether name is a valid object name: non-empty, at
// most 512 bytes, slash-separated components of [A-Za-z0-9._-], no empty
// component, no component starting with ".".
func ValidName(name string) error {
	if name == "" || len(name) > 512 {
		return fmt.Errorf("%w %q: use 1 to 512 bytes", ErrInvalidName, name)
	}
	for _, comp := range strings.Split(name, "/") {
		if comp == "" || comp[0] == '.' {
			return fmt.Errorf("%w %q: components must be non-empty and must not start with '.'", ErrInvalidName, name)
		}
		for i := 0; i < len(comp); i++ {
			c := comp[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("%w %q: use only letters, digits and ._- between slashes", ErrInvalidName, name)
			}
		}
	}
	return nil
}

// validPrefix checks a List prefix: "" or a name prefix (it may end in
// "/" or in the middle of a component).
func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidName(strings.TrimSuffix(prefix, "/"))
}

// shortError reports a range read past an object's end.
func shortError(name string, off, n, size int64) error {
	return fmt.Errorf("%w: %q is %d bytes, read of %d at %d ends at %d", ErrShort, name, size, n, off, off+n)
}

// ListAfterFromList is ListAfter for a Backend whose List has no order
// (test doubles, decorators that add objects): it buffers the names
// after after that list reports and calls fn with them in ascending
// order. A real store asks its server instead.
func ListAfterFromList(ctx context.Context, list func(context.Context, string, func(Info) error) error, prefix, after string, fn func(Info) error) error {
	var infos []Info
	if err := list(ctx, prefix, func(in Info) error {
		if in.Name > after {
			infos = append(infos, in)
		}
		return nil
	}); err != nil {
		return err
	}
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return ctx.Err()
}
