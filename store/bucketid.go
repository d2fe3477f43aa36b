package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/index"
	"github.com/walrus-archive/walrus/store/backend"
)

// One bucket prefix belongs to one store: pack ids are only unique within
// a store, so a second store uploading under the same prefix would replace
// the first one's packs. The store's bucket identity is a random id kept
// in DATA/bucket.id and, under the prefix, in the object store.id. Before
// its first upload the uploader claims the prefix (claimBucket):
//
//   - neither exists: write DATA/bucket.id durably first, then
//     PutIfAbsent store.id (a crash in between is the next case);
//   - only DATA/bucket.id: PutIfAbsent store.id with it. The bucket was
//     emptied or is another one, so the Uploaded marks say nothing about
//     it: they are cleared (forgetUploadsOp) and every pack is uploaded;
//   - only store.id: the prefix holds another store's packs (or this
//     store's, and DATA/bucket.id was lost): refused, uploads stop, the
//     status says why; rebuild with repair --from-bucket (FetchPacks
//     copies the id) or give this store its own prefix;
//   - both: they must be equal, else refused likewise.
//
// A PutIfAbsent that finds the object (a race, or its own first attempt
// whose reply was lost) reads it back and compares.

const (
	bucketIDFile   = "bucket.id"
	bucketIDObject = "store.id"
)

var errBucketOwned = errors.New("store: the bucket prefix holds another store's packs")

func newBucketID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

func readLocalBucketID(dir string) (string, error) { return readIDFile(dir, bucketIDFile) }

// readIDFile reads a random id (32 hex digits) kept in DATA/file
// (bucket.id; claimant.id, claims.go): "" if the file does not exist.
func readIDFile(dir, file string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, file))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if len(id) != 32 {
		return "", fmt.Errorf("store: %s does not hold an id (32 hex digits): restore it or remove it", filepath.Join(dir, file))
	}
	return id, nil
}

func writeLocalBucketID(dir, id string) error { return writeIDFile(dir, bucketIDFile, id) }

// writeIDFile writes DATA/file: temporary file, fsync, rename, fsync of
// the directory.
func writeIDFile(dir, file, id string) error {
	tmp := filepath.Join(dir, file+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, file))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("store: write %s: %w", file, err)
	}
	return syncDir(dir)
}

func readRemoteBucketID(ctx context.Context, b backend.Backend) (string, error) {
	info, err := b.Stat(ctx, bucketIDObject)
	if backend.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if info.Size < 32 || info.Size > 64 {
		return "", fmt.Errorf("store: %s in the bucket is %d bytes, not a store id", bucketIDObject, info.Size)
	}
	p := make([]byte, info.Size)
	if err := b.ReadAt(ctx, bucketIDObject, p, 0); err != nil {
		return "", err
	}
	return strings.TrimSpace(string(p)), nil
}

// claimBucket makes sure the bucket prefix is this store's (see above).
func (u *uploader) claimBucket(ctx context.Context) error {
	s := u.s
	local, err := readLocalBucketID(s.cfg.Dir)
	if err != nil {
		return err
	}
	remote, err := readRemoteBucketID(ctx, u.b)
	if err != nil {
		return fmt.Errorf("read %s: %w", bucketIDObject, err)
	}
	switch {
	case remote != "" && remote == local:
		u.gc.sameStore = true // its objects are this store's (alreadyInBucket)
		return nil
	case remote != "":
		return fmt.Errorf("%w (%s holds id %s, %s/%s holds %q): give this store its own --bucket-prefix, or rebuild a store from that bucket with walrus repair --from-bucket",
			errBucketOwned, bucketIDObject, remote, s.cfg.Dir, bucketIDFile, local)
	}
	if local == "" {
		if local, err = newBucketID(); err != nil {
			return err
		}
		if err := writeLocalBucketID(s.cfg.Dir, local); err != nil {
			return err
		}
	} else {
		// The bucket does not know this store: whatever the marks say,
		// nothing of it is there.
		s.log.Warn("the bucket holds no copy of this store (emptied, or another bucket): uploading every pack again", "bucket", u.b.Location())
		if err := s.submit(forgetUploadsOp{}); err != nil {
			return err
		}
	}
	err = u.b.PutIfAbsent(ctx, bucketIDObject, strings.NewReader(local+"\n"), int64(len(local)+1))
	if backend.IsExist(err) {
		got, rerr := readRemoteBucketID(ctx, u.b)
		if rerr != nil {
			return rerr
		}
		if got != local {
			return fmt.Errorf("%w (%s was just created with id %s)", errBucketOwned, bucketIDObject, got)
		}
		return nil
	}
	return err
}

// forgetUploadsOp clears every pack's Uploaded mark.
type forgetUploadsOp struct{}

func (forgetUploadsOp) apply(x *index.Txn, _ time.Time) error {
	// Packs that live in the bucket only (packcache.go) cannot be sent
	// again: say so and change nothing.
	if lost, err := evictedPacks(x); err != nil || len(lost) > 0 {
		if err != nil {
			return err
		}
		return refuse(fmt.Errorf("%w: %d packs of this store lived only in it (evicted from the local pack cache, first %08d.pack): "+
			"restore the bucket's objects, or point --bucket at the bucket that holds them", errBucketLost, len(lost), lost[0]))
	}
	var marked []*index.Pack
	if err := x.Packs(func(p *index.Pack) error {
		if p.Uploaded {
			marked = append(marked, p)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, p := range marked {
		p.Uploaded = false
		if err := x.PutPack(p); err != nil {
			return err
		}
	}
	return nil
}
