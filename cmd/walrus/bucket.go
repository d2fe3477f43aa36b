package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/walrus-archive/walrus/internal/metrics"
	"github.com/walrus-archive/walrus/store/backend"
)

// bucketFlags configure the S3-compatible bucket packs are copied to
// (walrus serve) and rebuilt from (walrus repair --from-bucket). No
// --bucket: no bucket, and nothing else here is used. The secret key is
// never a flag (it would show in ps and in --check-config): it comes from
// WALRUS_BUCKET_SECRET_KEY or from --bucket-secret-key-file.
type bucketFlags struct {
	Bucket          string        `name:"bucket" help:"Copy sealed packs to this S3 bucket (it must exist) in the background; empty: no bucket. Pushes are acknowledged locally as before (local-ack) unless --ack remote. See README \"Packs in a bucket\"." placeholder:"NAME"`
	BucketEndpoint  string        `name:"bucket-endpoint" help:"host:port of the S3 API (no scheme; --bucket-tls says https)." placeholder:"HOST:PORT"`
	BucketPrefix    string        `name:"bucket-prefix" help:"Key prefix of walrus's objects in the bucket, ending in / (e.g. walrus/)."`
	BucketRegion    string        `name:"bucket-region" help:"Region of the bucket (default us-east-1)."`
	BucketAccessKey string        `name:"bucket-access-key" help:"S3 access key id." env:"WALRUS_BUCKET_ACCESS_KEY"`
	BucketSecretKey string        `name:"bucket-secret-key-file" help:"File holding the S3 secret key (one line). Or set WALRUS_BUCKET_SECRET_KEY; never given on the command line." type:"path"`
	BucketTLS       bool          `name:"bucket-tls" help:"Speak https to the endpoint; --no-bucket-tls: http." default:"true" negatable:""`
	BucketKeyFile   string        `name:"bucket-key-file" help:"Encrypt objects in the bucket (XChaCha20-Poly1305) with the 32-byte key in this file (walrus keeps it local; losing it loses the bucket's copy)." type:"path"`
	BucketRollAge   time.Duration `name:"bucket-roll-age" help:"Seal the active pack once its first record is this old, so the bucket lags by about this much." default:"60s"`
	// BucketSnapshotInterval: store.Config.SnapshotInterval.
	BucketSnapshotInterval time.Duration `name:"bucket-snapshot-interval" help:"Write an index snapshot to the bucket at most this often, and only once the packs uploaded since the last one hold --bucket-snapshot-bytes (or the last snapshot's own size, if larger): a new front-end rebuilds from the newest one plus the packs written after it (repair --from-bucket)." default:"5m"`
	BucketSnapshotBytes    int64         `name:"bucket-snapshot-bytes" help:"See --bucket-snapshot-interval." default:"67108864" placeholder:"BYTES"`
	// BucketCacheSize bounds DATA/packs (store.Config.PackCacheBytes).
	BucketCacheSize int64 `name:"bucket-cache-size" help:"Keep at most this many bytes of packs in DATA/packs: packs already in the bucket beyond it lose their local copy (least recently read first) and are read from the bucket by range; packs not yet uploaded are always kept. 0: keep every pack." default:"0" placeholder:"BYTES"`
	// BucketClaimsPrefix: store.Config.Claims (store/claims.go), serve only.
	BucketClaimsPrefix string `name:"bucket-claims-prefix" help:"walrus serve: claim every name in this key prefix of --bucket (ending in /) before committing it. Give every front-end serving one archive the same claims prefix (and each its own --bucket-prefix): no two of them ever commit different content under one name. See README \"Packs in a bucket\"." placeholder:"PREFIX"`
}

// enabled reports whether a bucket is configured.
func (b *bucketFlags) enabled() bool { return b.Bucket != "" }

// check refuses bucket settings given without a bucket (they would be
// ignored silently).
func (b *bucketFlags) check() error {
	if b.enabled() {
		if b.BucketClaimsPrefix != "" && strings.Trim(b.BucketClaimsPrefix, "/") == strings.Trim(b.BucketPrefix, "/") {
			return fmt.Errorf("bucket: --bucket-claims-prefix %q is the --bucket-prefix: the claims prefix is shared by the front-ends, each front-end's packs prefix is its own", b.BucketClaimsPrefix)
		}
		return nil
	}
	if b.BucketCacheSize != 0 {
		return errors.New("bucket: --bucket-cache-size given without --bucket: add --bucket NAME, or drop it")
	}
	for name, v := range map[string]string{"bucket-endpoint": b.BucketEndpoint, "bucket-prefix": b.BucketPrefix, "bucket-claims-prefix": b.BucketClaimsPrefix,
		"bucket-key-file": b.BucketKeyFile, "bucket-secret-key-file": b.BucketSecretKey} {
		if v != "" {
			return fmt.Errorf("bucket: --%s given without --bucket: add --bucket NAME, or drop it", name)
		}
	}
	return nil
}

// open builds the packs backend (--bucket-prefix); see openPrefixes.
func (b *bucketFlags) open(met *metrics.Metrics) (backend.Backend, error) {
	bs, err := b.openPrefixes(met, b.BucketPrefix)
	if err != nil {
		return nil, err
	}
	return bs[0], nil
}

// openClaims builds the packs backend and the claims backend
// (--bucket-claims-prefix; nil without it): the same bucket, endpoint,
// credentials and encryption, another prefix.
func (b *bucketFlags) openClaims(met *metrics.Metrics) (packs, claims backend.Backend, err error) {
	if b.BucketClaimsPrefix == "" {
		packs, err = b.open(met)
		return packs, nil, err
	}
	bs, err := b.openPrefixes(met, b.BucketPrefix, b.BucketClaimsPrefix)
	if err != nil {
		return nil, nil, err
	}
	return bs[0], bs[1], nil
}

// openFront is openClaims for walrus serve, with the opener of further
// prefixes on the same bucket (store.Config.OpenPrefix; nil without a
// claims prefix): one set of metrics collectors for all of them.
func (b *bucketFlags) openFront(met *metrics.Metrics) (packs, claims backend.Backend, open func(string) (backend.Backend, error), err error) {
	if b.BucketClaimsPrefix == "" {
		packs, err = b.open(met)
		return packs, nil, nil, err
	}
	if open, err = b.opener(met); err != nil {
		return nil, nil, nil, err
	}
	if packs, err = open(b.BucketPrefix); err != nil {
		return nil, nil, nil, err
	}
	if claims, err = open(b.BucketClaimsPrefix); err != nil {
		return nil, nil, nil, err
	}
	return packs, claims, open, nil
}

// openPrefixes builds one backend per key prefix; see opener.
func (b *bucketFlags) openPrefixes(met *metrics.Metrics, prefixes ...string) ([]backend.Backend, error) {
	open, err := b.opener(met)
	if err != nil {
		return nil, err
	}
	var bs []backend.Backend
	for _, prefix := range prefixes {
		be, err := open(prefix)
		if err != nil {
			return nil, err
		}
		bs = append(bs, be)
	}
	return bs, nil
}

// opener checks the flags and returns the function that builds the
// backend of one key prefix: S3 under the Stack decorators (retries,
// timeouts, a connection limit, metrics when met is set: one set of
// collectors for every backend it builds), encrypted over the stack when
// a key file is given. It makes no request. walrus serve keeps it as
// store.Config.OpenPrefix, for the other front-ends' packs prefixes.
func (b *bucketFlags) opener(met *metrics.Metrics) (func(prefix string) (backend.Backend, error), error) {
	secret := os.Getenv("WALRUS_BUCKET_SECRET_KEY")
	if b.BucketSecretKey != "" {
		raw, err := os.ReadFile(b.BucketSecretKey)
		if err != nil {
			return nil, fmt.Errorf("bucket: secret key file: %w", err)
		}
		secret = strings.TrimSpace(string(raw))
	}
	if secret == "" && b.BucketAccessKey != "" {
		return nil, errors.New("bucket: no secret key: set WALRUS_BUCKET_SECRET_KEY or give --bucket-secret-key-file")
	}
	if b.BucketCacheSize < 0 {
		return nil, fmt.Errorf("bucket: cache size %d invalid: use 0 (keep every pack) or a byte count", b.BucketCacheSize)
	}
	if b.BucketSnapshotBytes <= 0 {
		return nil, fmt.Errorf("bucket: snapshot bytes %d invalid: use a positive byte count such as 67108864", b.BucketSnapshotBytes)
	}
	if b.BucketSnapshotInterval <= 0 {
		return nil, fmt.Errorf("bucket: snapshot interval %s invalid: use a positive duration such as 5m", b.BucketSnapshotInterval)
	}
	if b.BucketRollAge <= 0 {
		return nil, fmt.Errorf("bucket: roll age %s invalid: use a positive duration such as 60s", b.BucketRollAge)
	}
	var opts backend.StackOptions
	if met != nil {
		bm, err := backend.NewMetrics(met.Registerer())
		if err != nil {
			return nil, err
		}
		opts.Observer = bm
	}
	var key *backend.Key
	if b.BucketKeyFile != "" {
		k, err := backend.LoadKeyFile(b.BucketKeyFile)
		if err != nil {
			return nil, err
		}
		key = &k
	}
	return func(prefix string) (backend.Backend, error) {
		s3, err := backend.NewS3(backend.S3Config{Endpoint: b.BucketEndpoint, Bucket: b.Bucket, Prefix: prefix,
			Region: b.BucketRegion, AccessKey: b.BucketAccessKey, SecretKey: secret, TLS: b.BucketTLS})
		if err != nil {
			return nil, err
		}
		var be backend.Backend = backend.Stack(s3, opts)
		if key != nil {
			be = backend.NewEncrypted(be, *key)
		}
		return be, nil
	}, nil
}

// checkAck refuses --ack remote without a bucket and a timeout that is
// not positive.
func (c *serveCmd) checkAck() error {
	if c.Ack == "remote" && !c.enabled() {
		return errors.New("bucket: --ack remote needs --bucket (a push is acknowledged once its packs are there): add --bucket NAME, or use --ack local")
	}
	if c.AckTimeout <= 0 {
		return fmt.Errorf("bucket: ack timeout %s invalid: use a positive duration such as 30s", c.AckTimeout)
	}
	if c.LeaseTTL < time.Second {
		return fmt.Errorf("bucket: --lease-ttl %s (lease_ttl) is too short: use 1s or more (default 30s); the holder renews the lease every third of it", c.LeaseTTL)
	}
	return nil
}
