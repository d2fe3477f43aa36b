package backendtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/walrus-archive/walrus/internal/testenv"
)

// VersityGW is a versitygw S3 gateway on a posix directory, started for
// one test.
type VersityGW struct {
	Endpoint          string // 127.0.0.1:port
	AccessKey, Secret string
	Root              string // the posix directory: bucket b's object k is Root/b/k

	bin       string
	posixArgs []string
	global    []string // options before the backend name (TLS, access log)
	tls       bool
	cmd       *exec.Cmd  // nil while stopped
	exited    chan error // cmd.Wait's result
}

// FindVersityGW returns the versitygw binary's path: on PATH, in $GOBIN,
// or in ~/go/bin ("" if none). .ci/run installs it into /usr/local/bin.
func FindVersityGW() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if d := os.Getenv("GOPATH"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "versitygw")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// StartVersityGW starts versitygw on a new posix directory and a free
// port on 127.0.0.1, waits until it answers, and stops it at cleanup.
// posixArgs are extra options of the posix backend. Without the binary
// the test skips (fails under CI=true).
func StartVersityGW(t testing.TB, posixArgs ...string) *VersityGW {
	t.Helper()
	return StartVersityGWOn(t, t.TempDir(), posixArgs...)
}

// StartVersityGWOn is StartVersityGW on the posix directory root (two
// gateways may share one, as several gateway processes would).
func StartVersityGWOn(t testing.TB, root string, posixArgs ...string) *VersityGW {
	t.Helper()
	bin := FindVersityGW()
	if bin == "" {
		testenv.Require(t, "versitygw (GOBIN=/usr/local/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	g := &VersityGW{AccessKey: "walrustest", Secret: "walrustestsecret", Root: root, bin: bin, posixArgs: posixArgs}
	t.Cleanup(g.Stop)
	for attempt := 0; ; attempt++ {
		g.Endpoint = freePort(t)
		err := g.start()
		if err == nil {
			return g
		}
		if attempt == 3 { // before that: the free port may have been taken in between
			t.Fatal(err)
		}
	}
}

// GatewayOptions are the settings StartVersityGWWith varies.
type GatewayOptions struct {
	// TLS serves HTTPS with a self-signed certificate for 127.0.0.1
	// (clients that verify certificates must be told not to): pgBackRest
	// speaks S3 only over TLS.
	TLS bool
	// AccessLog is a file the gateway writes one line per request to
	// (the S3 action as s3_PutObject, s3_GetObject, ...): requests can
	// be counted.
	AccessLog string
}

// StartVersityGWWith is StartVersityGW with options.
func StartVersityGWWith(t testing.TB, o GatewayOptions) *VersityGW {
	t.Helper()
	bin := FindVersityGW()
	if bin == "" {
		testenv.Require(t, "versitygw (GOBIN=/usr/local/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	}
	g := &VersityGW{AccessKey: "walrustest", Secret: "walrustestsecret", Root: t.TempDir(), bin: bin, tls: o.TLS}
	if o.TLS {
		cert, key := selfSigned(t, t.TempDir())
		g.global = append(g.global, "--cert", cert, "--key", key)
	}
	if o.AccessLog != "" {
		g.global = append(g.global, "--access-log", o.AccessLog)
	}
	t.Cleanup(g.Stop)
	for attempt := 0; ; attempt++ {
		g.Endpoint = freePort(t)
		err := g.start()
		if err == nil {
			return g
		}
		if attempt == 3 {
			t.Fatal(err)
		}
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t testing.TB, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// start runs the gateway on g.Endpoint and waits until it answers.
func (g *VersityGW) start() error {
	args := append([]string{"--access", g.AccessKey, "--secret", g.Secret, "--port", g.Endpoint, "--quiet"}, g.global...)
	args = append(append(append(args, "posix"), g.posixArgs...), g.Root)
	cmd := exec.Command(g.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting versitygw: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	if err := g.waitReady(exited); err != nil {
		cmd.Process.Kill()
		<-exited
		return fmt.Errorf("versitygw did not start: %v\n%s", err, out.String())
	}
	g.cmd, g.exited = cmd, exited
	return nil
}

// Stop kills the gateway (an outage); Restart brings it back on the same
// address and directory.
func (g *VersityGW) Stop() {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Kill()
	<-g.exited
	g.cmd = nil
}

// Restart starts a stopped gateway again on its address.
func (g *VersityGW) Restart(t testing.TB) {
	t.Helper()
	if err := g.start(); err != nil {
		t.Fatal(err)
	}
}

// waitReady polls until the gateway answers a ListBuckets, it exits, or
// 30 s pass.
func (g *VersityGW) waitReady(exited <-chan error) error {
	cl, err := g.client()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cl.ListBuckets(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited: %v (last request: %v)", werr, err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer after 30s: %v", err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func (g *VersityGW) client() (*minio.Client, error) {
	o := &minio.Options{Creds: credentials.NewStaticV4(g.AccessKey, g.Secret, ""), MaxRetries: 1}
	if g.tls {
		o.Secure = true
		o.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // its own self-signed certificate
	}
	return minio.New(g.Endpoint, o)
}

// NewBucket creates a bucket of a new name and returns the name.
func (g *VersityGW) NewBucket(t testing.TB) string {
	t.Helper()
	cl, err := g.client()
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("bucket-%03d", bucketSeq.Add(1))
	if err := cl.MakeBucket(context.Background(), name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("creating bucket %s: %v", name, err)
	}
	return name
}

var bucketSeq atomic.Int64

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
