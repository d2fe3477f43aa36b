package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The sample /etc/walrus/walrus.toml checks clean (with its paths moved
// into a temporary directory), the effective configuration is printed
// with the documented precedence, and every kind of bad file gets one
// line naming what is wrong.
// runArgs runs walrus with exactly args (no --data: the file's must count).
func runArgs(args ...string) result {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, nil, &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestConfigFile(t *testing.T) {
	work := t.TempDir()
	sample, err := os.ReadFile("../../contrib/etc-walrus/walrus.toml")
	if err != nil {
		t.Fatal(err)
	}
	rsyncd, err := os.ReadFile("../../contrib/etc-walrus/rsyncd.conf")
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(work, "pg_archived")
	move := strings.NewReplacer("/var/lib/walrus", filepath.Join(work, "data"), "/db/pg_archived", mnt,
		"/etc/walrus/rsyncd.conf", filepath.Join(work, "rsyncd.conf"), "/var/log/walrus-rsyncd.log", filepath.Join(work, "rsyncd.log"))
	write := func(name, body string) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("rsyncd.conf", move.Replace(string(rsyncd)))
	conf := write("walrus.toml", move.Replace(string(sample)))

	t.Setenv("WALRUS_LOG_LEVEL", "debug") // the file's log_level wins over the environment
	r := runArgs("serve", "--config", conf, "--check-config", "--cache-size", "12345")
	if r.code != 0 || !strings.Contains(r.stdout, "# configuration OK") {
		t.Fatalf("check of the sample configuration: %+v", r)
	}
	for _, want := range []string{`mount = "` + mnt + `"`, `retain_window = "7d"`, `retain_backups = 2`, `log_level = "info"`,
		`cache_size = 12345`, `http = "127.0.0.1:9187"`, `data = "` + filepath.Join(work, "data") + `"`} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("effective configuration lacks %s:\n%s", want, r.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(work, "data")); !os.IsNotExist(err) {
		t.Errorf("--check-config created the data directory: %v", err)
	}

	for _, c := range []struct{ name, body, want string }{
		{"typo", "mout = \"/x\"\n", "unknown key mout"},
		{"syntax", "mount = \"/x\"\nretain_window = 7d\n", "line 2"},
		{"type", "cache_size = \"big\"\nmount = \"" + mnt + "\"\n", "--cache-size: expected a valid 64 bit int"},
		{"retention", "mount = \"" + mnt + "\"\nretain_window = \"a fortnight\"\n", "retain_window"},
		{"nothing", "data = \"" + work + "\"\n", "nothing to serve"},
		{"lease", "mount = \"" + mnt + "\"\nlease_ttl = \"10ms\"\n", "--lease-ttl 10ms (lease_ttl) is too short"},
	} {
		p := write(c.name+".toml", c.body)
		r := runArgs("serve", "--config", p, "--check-config")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %q", c.name, r.code, r.stderr, c.want)
		}
	}
	if r := runArgs("serve", "--config", filepath.Join(work, "missing.toml"), "--check-config"); r.code == 0 || !strings.Contains(r.stderr, "missing.toml") {
		t.Errorf("missing config file: %+v", r)
	}
}

// The bucket settings come from the config file like every flag; the
// check validates them (bucket name, endpoint, secret, key file) with one
// line each, refuses bucket settings without a bucket, and never prints
// the secret.
func TestConfigFileBucket(t *testing.T) {
	work := t.TempDir()
	mnt := filepath.Join(work, "pg_archived")
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(work, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := write("secret", "very-secret-key\n", 0o600)
	key := write("bucket.key", strings.Repeat("ab", 32)+"\n", 0o600)
	base := "data = \"" + filepath.Join(work, "data") + "\"\nmount = \"" + mnt + "\"\n"
	good := base + "bucket = \"wal-archive\"\nbucket_endpoint = \"127.0.0.1:9000\"\nbucket_tls = false\nbucket_access_key = \"AK\"\n" +
		"bucket_secret_key_file = \"" + secret + "\"\nbucket_key_file = \"" + key + "\"\nbucket_roll_age = \"30s\"\n"
	r := runArgs("serve", "--config", write("claims.toml", good+"bucket_prefix = \"fe1/\"\nbucket_claims_prefix = \"group/\"\n", 0o644), "--check-config")
	if r.code != 0 || !strings.Contains(r.stdout, `bucket_claims_prefix = "group/"`+"\n") {
		t.Fatalf("check of a claims configuration: %+v", r)
	}
	r = runArgs("serve", "--config", write("good.toml", good, 0o644), "--check-config")
	if r.code != 0 || !strings.Contains(r.stdout, "# configuration OK") {
		t.Fatalf("check of a bucket configuration: %+v", r)
	}
	for _, want := range []string{`bucket = "wal-archive"`, `bucket_roll_age = 30s`, `bucket_tls = false`, `ack = "local"`, `ack_timeout = 30s`} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("effective configuration lacks %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "very-secret-key") {
		t.Errorf("--check-config printed the secret:\n%s", r.stdout)
	}
	write("open.key", strings.Repeat("ab", 32), 0o644)
	for _, c := range []struct{ name, body, want string }{
		{"no-bucket", base + "bucket_endpoint = \"127.0.0.1:9000\"\n", "--bucket-endpoint given without --bucket"},
		{"bad-name", strings.Replace(good, "wal-archive", "Wal_Archive", 1), "not a valid bucket name"},
		{"scheme", strings.Replace(good, "127.0.0.1:9000", "http://127.0.0.1:9000", 1), "has a scheme"},
		{"no-secret", strings.Replace(good, "bucket_secret_key_file = \""+secret+"\"\n", "", 1), "no secret key"},
		{"open-key", strings.Replace(good, key, filepath.Join(work, "open.key"), 1), "readable by group or others"},
		{"ack-no-bucket", base + "ack = \"remote\"\n", "--ack remote needs --bucket"},
		{"ack-bad", good + "ack = \"bucket\"\n", "ack"},
		{"ack-timeout", good + "ack = \"remote\"\nack_timeout = \"0s\"\n", "ack timeout 0s invalid"},
		{"claims-no-bucket", base + "bucket_claims_prefix = \"group/\"\n", "--bucket-claims-prefix given without --bucket"},
		{"claims-is-packs", good + "bucket_prefix = \"fe1/\"\nbucket_claims_prefix = \"fe1/\"\n", "the claims prefix is shared by the front-ends"},
		{"claims-no-slash", good + "bucket_claims_prefix = \"group\"\n", "does not end in '/'"},
	} {
		r := runArgs("serve", "--config", write(c.name+".toml", c.body, 0o644), "--check-config")
		if r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want a failure naming %q", c.name, r.code, r.stderr, c.want)
		}
	}
	if r := runArgs("--data", work, "repair", "--from-bucket"); r.code == 0 || !strings.Contains(r.stderr, "--from-bucket needs the bucket") {
		t.Errorf("repair --from-bucket without a bucket: %+v", r)
	}
	if r := runArgs("--data", work, "repair", "--from-bucket", "--bucket", "b", "--bucket-claims-prefix", "group/"); r.code == 0 || !strings.Contains(r.stderr, "is a walrus serve setting") {
		t.Errorf("repair --bucket-claims-prefix: %+v", r)
	}
}
