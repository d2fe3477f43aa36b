package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The S3 client library is minio-go v7, not aws-sdk-go-v2. aws-sdk-go-v2
// (since early 2025) adds CRC32 "flexible checksums" to every PutObject
// by default, and several S3-compatible servers reject or mishandle those
// headers and the aws-chunked trailer encoding that carries them; one
// would have to find and turn off that default per call. minio-go sends
// no checksum headers on a single PUT unless asked (Options.TrailingHeaders
// stays false here), speaks plain SigV4 with path-style addressing to any
// endpoint, and is what restic and kopia use against the same servers.
// Its own retry loop is disabled (MaxRetries 1): retries belong to the
// Retry decorator (Stack), which knows which errors are worth retrying.

// maxSinglePut is the largest object sent as one PUT (S3's limit): larger
// objects would need a multipart upload, and conditional create through
// minio-go's multipart path is not enforced by versitygw (doc.go); packs
// are far smaller.
const maxSinglePut = 5 << 30

// S3Config configures an S3 backend.
type S3Config struct {
	Endpoint  string // host[:port] of the S3 API, without scheme (TLS says which)
	Bucket    string // an existing bucket
	Prefix    string // key prefix all objects live under: "" or ending in "/" ("walrus/")
	AccessKey string
	SecretKey string
	Region    string // default us-east-1
	TLS       bool   // https (true) or http
	// ListPageSize is the number of keys asked for per LIST request
	// (MaxKeys); 0 means the server's default, 1000 on AWS.
	ListPageSize int
	// Transport, if set, replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate checks cfg and returns a one-line error saying what is wrong
// and what to do.
func (c S3Config) Validate() error {
	switch {
	case c.Endpoint == "":
		return errors.New("backend: s3 endpoint is empty: give host:port of the S3 API (e.g. s3.eu-west-1.amazonaws.com)")
	case strings.Contains(c.Endpoint, "://"):
		return fmt.Errorf("backend: s3 endpoint %q has a scheme: give host:port only, and set tls for https", c.Endpoint)
	case strings.ContainsAny(c.Endpoint, "/?# "):
		return fmt.Errorf("backend: s3 endpoint %q has a path: give host:port only, and put the path in the prefix", c.Endpoint)
	case !bucketName.MatchString(c.Bucket) || strings.Contains(c.Bucket, ".."):
		return fmt.Errorf("backend: s3 bucket %q is not a valid bucket name: use 3-63 lowercase letters, digits, '.' and '-'", c.Bucket)
	case c.Prefix != "" && !strings.HasSuffix(c.Prefix, "/"):
		return fmt.Errorf("backend: s3 prefix %q does not end in '/': add it (%q)", c.Prefix, c.Prefix+"/")
	case c.Prefix != "" && ValidName(strings.TrimSuffix(c.Prefix, "/")) != nil:
		return fmt.Errorf("backend: s3 prefix %q is invalid: use letters, digits and ._- between slashes", c.Prefix)
	case c.AccessKey == "" || c.SecretKey == "":
		return errors.New("backend: s3 credentials are incomplete: give both the access key and the secret key")
	case c.ListPageSize < 0 || c.ListPageSize > 1000:
		return fmt.Errorf("backend: s3 list page size %d is out of range: use 1 to 1000, or 0 for the server's default", c.ListPageSize)
	}
	return nil
}

// S3 is a Backend on a bucket of an S3-compatible server. Object name n
// is key Prefix+n.
type S3 struct {
	cfg    S3Config
	client *minio.Client
}

var _ Backend = (*S3)(nil)

// NewS3 validates cfg and returns an S3 backend. It makes no request; use
// Check to find out whether the endpoint, credentials and bucket work.
func NewS3(cfg S3Config) (*S3, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	opts := &minio.Options{
		Creds:      credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:     cfg.TLS,
		Region:     cfg.Region,
		MaxRetries: 1,
		Transport:  cfg.Transport,
	}
	cl, err := minio.New(cfg.Endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("backend: s3 endpoint %q: %v: give host:port of the S3 API", cfg.Endpoint, err)
	}
	return &S3{cfg: cfg, client: cl}, nil
}

// Location implements Backend.
func (s *S3) Location() string {
	scheme := "http"
	if s.cfg.TLS {
		scheme = "https"
	}
	return "s3:" + scheme + "://" + s.cfg.Endpoint + "/" + s.cfg.Bucket + "/" + s.cfg.Prefix
}

// Check makes one request to see that the endpoint answers, the
// credentials are accepted and the bucket exists.
func (s *S3) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return fmt.Errorf("backend: %s: %w", s.Location(), s.classify(err))
	}
	if !ok {
		return fmt.Errorf("backend: s3 bucket %q does not exist at %s: create it, or fix the bucket name", s.cfg.Bucket, s.cfg.Endpoint)
	}
	return nil
}

func (s *S3) key(name string) (string, error) {
	if err := ValidName(name); err != nil {
		return "", err
	}
	return s.cfg.Prefix + name, nil
}

// Put implements Backend: one PUT, which S3 makes visible only when
// complete.
func (s *S3) Put(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return s.put(ctx, name, r, size, false)
}

// PutIfAbsent implements Backend: a PUT with "If-None-Match: *", which the
// server refuses with 412 Precondition Failed when the key exists.
func (s *S3) PutIfAbsent(ctx context.Context, name string, r io.ReaderAt, size int64) error {
	return s.put(ctx, name, r, size, true)
}

func (s *S3) put(ctx context.Context, name string, r io.ReaderAt, size int64, exclusive bool) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if size < 0 || size > maxSinglePut {
		return fmt.Errorf("backend: put %q: size %d out of range: objects are 0 to 5 GiB", name, size)
	}
	opts := minio.PutObjectOptions{DisableMultipart: true, ContentType: "application/octet-stream"}
	if exclusive {
		opts.SetMatchETagExcept("*")
	}
	body := &ctxReader{ctx: ctx, SectionReader: io.NewSectionReader(r, 0, size)}
	_, err = s.client.PutObject(ctx, s.cfg.Bucket, key, body, size, opts)
	if err != nil {
		err = s.classify(err)
		if exclusive && errors.Is(err, errPrecondition) {
			return fmt.Errorf("%w: %q", ErrExist, name)
		}
		return fmt.Errorf("backend: put %q: %w", name, err)
	}
	return nil
}

// ctxReader is a request body that stops delivering bytes once ctx is
// done. net/http aborts a cancelled request asynchronously, and a body
// that kept flowing could still reach the server whole and be committed
// after Put returned the cancellation; with this, a Put cancelled before
// its last byte was read never completes. (Cancelled after that, the
// server may or may not have committed it: the caller cannot know.)
type ctxReader struct {
	ctx context.Context
	*io.SectionReader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.SectionReader.Read(p)
	if cerr := c.ctx.Err(); cerr != nil {
		return 0, cerr
	}
	return n, err
}

func (c *ctxReader) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.SectionReader.ReadAt(p, off)
	if cerr := c.ctx.Err(); cerr != nil {
		return 0, cerr
	}
	return n, err
}

// ReadAt implements Backend: one ranged GET. S3 answers a range that
// starts inside the object but ends past it with the bytes it has (206),
// so the length is checked here; a range starting at or past the end is
// 416 InvalidRange.
func (s *S3) ReadAt(ctx context.Context, name string, p []byte, off int64) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if off < 0 {
		return shortError(name, off, int64(len(p)), -1)
	}
	if len(p) == 0 {
		info, err := s.Stat(ctx, name)
		if err == nil && off > info.Size {
			err = shortError(name, off, 0, info.Size)
		}
		return err
	}
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return fmt.Errorf("backend: read %q: %w", name, err)
	}
	core := minio.Core{Client: s.client}
	body, _, hdr, err := core.GetObject(ctx, s.cfg.Bucket, key, opts)
	if err != nil {
		err = s.classify(err)
		if errors.Is(err, errInvalidRange) {
			return s.short(ctx, name, off, len(p))
		}
		return fmt.Errorf("backend: read %q: %w", name, err)
	}
	defer body.Close()
	n, err := io.ReadFull(body, p)
	if n < len(p) {
		if total := rangeTotal(hdr.Get("Content-Range")); total >= 0 && off+int64(len(p)) > total {
			return shortError(name, off, int64(len(p)), total)
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return s.short(ctx, name, off, len(p))
		}
		return fmt.Errorf("backend: read %q: %w", name, s.classify(err))
	}
	return nil
}

// short builds the ErrShort for a range past the end, asking for the size
// to put in the message.
func (s *S3) short(ctx context.Context, name string, off int64, n int) error {
	info, err := s.Stat(ctx, name)
	if err != nil {
		return err
	}
	if off+int64(n) <= info.Size {
		// The object grew (was replaced) between the GET and the HEAD.
		return Transient(fmt.Errorf("backend: read %q: object changed while being read", name))
	}
	return shortError(name, off, int64(n), info.Size)
}

// rangeTotal parses the total size out of "bytes a-b/total" (-1 if
// absent).
func rangeTotal(cr string) int64 {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return -1
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Stat implements Backend: one HEAD.
func (s *S3) Stat(ctx context.Context, name string) (Info, error) {
	key, err := s.key(name)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.cfg.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, fmt.Errorf("backend: stat %q: %w", name, s.classify(err))
	}
	return Info{Name: name, Size: oi.Size}, nil
}

// List implements Backend: ListObjectsV2, ListPageSize keys per request;
// minio-go fetches the next page only when the previous one is consumed.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	return s.list(ctx, prefix, "", fn)
}

// ListAfter implements Backend: List with StartAfter, Prefix+after, on
// the first request (S3 returns keys in binary order; later pages follow
// the continuation token).
func (s *S3) ListAfter(ctx context.Context, prefix, after string, fn func(Info) error) error {
	return s.list(ctx, prefix, after, fn)
}

func (s *S3) list(ctx context.Context, prefix, after string, fn func(Info) error) error {
	if err := validPrefix(prefix); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's lister goroutine if we return early
	opts := minio.ListObjectsOptions{
		Prefix:    s.cfg.Prefix + prefix,
		Recursive: true,
		MaxKeys:   s.cfg.ListPageSize,
	}
	if after != "" {
		opts.StartAfter = s.cfg.Prefix + after
	}
	ch := s.client.ListObjects(ctx, s.cfg.Bucket, opts)
	for oi := range ch {
		if oi.Err != nil {
			return fmt.Errorf("backend: list %q: %w", prefix, s.classify(oi.Err))
		}
		name := strings.TrimPrefix(oi.Key, s.cfg.Prefix)
		if ValidName(name) != nil {
			continue // not ours (written by something else under the prefix)
		}
		if err := fn(Info{Name: name, Size: oi.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Delete implements Backend: one DELETE, which S3 answers 204 whether or
// not the key existed.
func (s *S3) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		err = s.classify(err)
		if errors.Is(err, ErrNotExist) {
			return nil
		}
		return fmt.Errorf("backend: delete %q: %w", name, err)
	}
	return nil
}

var (
	errPrecondition = errors.New("precondition failed")
	errInvalidRange = errors.New("invalid range")
)

// s3Error is an S3 error response, classified.
type s3Error struct {
	resp      minio.ErrorResponse
	kind      error // ErrNotExist, errPrecondition, errInvalidRange or nil
	transient bool
}

func (e *s3Error) Error() string {
	return fmt.Sprintf("s3 %d %s: %s", e.resp.StatusCode, e.resp.Code, e.resp.Message)
}
func (e *s3Error) Unwrap() error   { return e.kind }
func (e *s3Error) Transient() bool { return e.transient }

// classify turns a minio-go error into one the package's sentinels and
// IsTransient understand. An error without an S3 response (connection
// refused or reset, a truncated body) is transient; context errors are
// returned as they are (the Timeout decorator decides about its own).
func (s *S3) classify(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	resp := minio.ToErrorResponse(err)
	if resp.StatusCode == 0 && resp.Code == "" {
		return Transient(err)
	}
	e := &s3Error{resp: resp}
	switch {
	case resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket":
		e.kind = ErrNotExist
	case resp.StatusCode == http.StatusPreconditionFailed:
		e.kind = errPrecondition
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable || resp.Code == "InvalidRange":
		e.kind = errInvalidRange
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusConflict, // AWS: a concurrent conditional write on the key; retry
		resp.Code == "SlowDown", resp.Code == "RequestTimeout", resp.Code == "InternalError":
		e.transient = true
	}
	return e
}
