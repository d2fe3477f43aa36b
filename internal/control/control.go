// Package control is the admin API of a running `walrus serve`: HTTP over a
// unix socket in the data directory (only root and the server's user can
// reach it; the socket is mode 0600). The store is single-process (badger
// holds a directory lock), so while the server runs, `walrus put/get/ls/rm/
// status/verify` talk to it here instead of opening the store.
//
// Errors cross the socket as {"error": text, "kind": k}; the client turns
// kind back into the store's sentinel errors, so exit codes are the same
// whether the CLI went through the server or opened the store itself.
package control

import (
	"errors"
	"net/http"

	"github.com/walrus-archive/walrus/store"
)

// SocketName is the control socket's file name inside the data directory.
const SocketName = "walrus.sock"

// error kinds on the wire, one per store sentinel the CLI distinguishes.
var kinds = []struct {
	kind   string
	err    error
	status int
}{
	{"not_found", store.ErrNotFound, http.StatusNotFound},
	{"exists", store.ErrExists, http.StatusConflict},
	{"invalid_wal", store.ErrInvalidWAL, http.StatusUnprocessableEntity},
	{"cluster_mismatch", store.ErrClusterMismatch, http.StatusUnprocessableEntity},
	{"invalid_name", store.ErrInvalidName, http.StatusBadRequest},
	{"corrupt", store.ErrCorrupt, http.StatusInternalServerError},
	{"not_empty", store.ErrNotEmpty, http.StatusConflict},
	{"too_large", store.ErrTooLarge, http.StatusRequestEntityTooLarge},
	{"is_dir", store.ErrIsDir, http.StatusConflict},
	{"retry", store.ErrRetry, http.StatusServiceUnavailable},
	{"closed", store.ErrClosed, http.StatusServiceUnavailable},
	{"no_space", store.ErrNoSpace, http.StatusInsufficientStorage},
	{"bucket", store.ErrBucket, http.StatusServiceUnavailable},
	{"claims", store.ErrClaims, http.StatusServiceUnavailable},
}

func kindOf(err error) (string, int) {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind, k.status
		}
	}
	return "other", http.StatusInternalServerError
}

func errOfKind(kind string) error {
	for _, k := range kinds {
		if k.kind == kind {
			return k.err
		}
	}
	return nil
}

type errorBody struct {
	Error string `json:"error"`
	Kind  string `json:"kind"`
}

// remoteError is an error reported by the server; it unwraps to the store
// sentinel of its kind.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }
