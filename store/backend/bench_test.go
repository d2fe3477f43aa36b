package backend_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/walrus-archive/walrus/store/backend"
	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// BenchmarkBackend compares, in one run, a 16 MiB Put (a WAL segment's
// worth) and 1 MiB ReadAt (a block) on Local and on S3 (versitygw), each
// raw and under Encrypted: the ratio encrypted/raw is the cost of
// encryption at rest, S3/Local the cost of the protocol on one host.
func BenchmarkBackend(b *testing.B) {
	gw := backendtest.StartVersityGW(b)
	s3, err := backend.NewS3(backend.S3Config{Endpoint: gw.Endpoint, Bucket: gw.NewBucket(b), AccessKey: gw.AccessKey, SecretKey: gw.Secret})
	if err != nil {
		b.Fatal(err)
	}
	local, err := backend.NewLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	data := backendtest.Data(1, 16<<20)
	for _, c := range []struct {
		name string
		be   backend.Backend
	}{
		{"local", local}, {"local-encrypted", backend.NewEncrypted(local, testKey)},
		{"s3", s3}, {"s3-encrypted", backend.NewEncrypted(s3, testKey)},
	} {
		ctx := context.Background()
		b.Run("put16MiB/"+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := range b.N {
				if err := c.be.Put(ctx, fmt.Sprintf("put-%d", i%4), bytes.NewReader(data), int64(len(data))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("read1MiB/"+c.name, func(b *testing.B) {
			backendtest.Put(b, c.be, "read", data)
			p := make([]byte, 1<<20)
			b.SetBytes(int64(len(p)))
			b.ResetTimer()
			for i := range b.N {
				off := int64(i%15)<<20 + 12345 // unaligned: touches 17 chunks
				if err := c.be.ReadAt(ctx, "read", p, off); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
