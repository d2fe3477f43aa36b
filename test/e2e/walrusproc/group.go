package walrusproc

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/walrus-archive/walrus/store/backend/backendtest"
)

// StartFrontEnds starts two `walrus serve` front-ends of one archive on a
// new bucket of gw (packs prefixes fe1/ and fe2/, claims prefix archive/)
// in homes, with the extra flags, and returns them and the bucket. A home
// a PostgreSQL restore_command reads the mount of must be reachable by the
// postgres user (pgcluster.TempDir).
func StartFrontEnds(t testing.TB, gw *backendtest.VersityGW, homes [2]string, extra ...string) ([2]*Server, string) {
	t.Helper()
	bucket := gw.NewBucket(t)
	var fe [2]*Server
	for i, home := range homes {
		secret := filepath.Join(home, "s3.secret")
		if err := os.WriteFile(secret, []byte(gw.Secret+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		args := []string{"--bucket", bucket, "--bucket-endpoint", gw.Endpoint, "--no-bucket-tls",
			"--bucket-prefix", fmt.Sprintf("fe%d/", i+1), "--bucket-claims-prefix", "archive/",
			"--bucket-access-key", gw.AccessKey, "--bucket-secret-key-file", secret}
		fe[i] = Start(t, home, append(args, extra...)...)
	}
	return fe, bucket
}
