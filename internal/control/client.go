package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/walrus-archive/walrus/store"
)

// ErrNoServer means no server answers on the data directory's socket.
var ErrNoServer = errors.New("control: no server running")

// Client talks to a running server.
type Client struct {
	hc *http.Client
}

// Dial connects to the server owning dataDir, or returns ErrNoServer.
func Dial(dataDir string) (*Client, error) {
	path := filepath.Join(dataDir, SocketName)
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoServer, err)
	}
	c.Close()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{hc: &http.Client{Transport: tr}}, nil
}

func (c *Client) do(method, path string, q url.Values, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequest(method, "http://walrus"+path+"?"+q.Encode(), body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb errorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil {
			return nil, fmt.Errorf("control: %s %s: %s", method, path, resp.Status)
		}
		return nil, &remoteError{msg: eb.Error, kind: errOfKind(eb.Kind)}
	}
	return resp, nil
}

func (c *Client) decode(method, path string, q url.Values, body io.Reader, size int64, v any) error {
	resp, err := c.do(method, path, q, body, size)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

// Put archives r (size bytes, or -1 if unknown) as name.
func (c *Client) Put(name string, r io.Reader, size int64, meta store.FileMeta) error {
	q := url.Values{"name": {name}, "mode": {strconv.FormatUint(uint64(meta.Mode.Perm()), 8)}, "mtime": {strconv.FormatInt(meta.MTime.UnixNano(), 10)}}
	if size >= 0 {
		q.Set("size", strconv.FormatInt(size, 10))
	}
	var fi store.FileInfo
	return c.decode("POST", "/put", q, r, size, &fi)
}

// Get streams name to w and returns its info.
func (c *Client) Get(name string, w io.Writer) (store.FileInfo, error) {
	var fi store.FileInfo
	resp, err := c.do("GET", "/get", url.Values{"name": {name}}, nil, -1)
	if err != nil {
		return fi, err
	}
	defer resp.Body.Close()
	json.Unmarshal([]byte(resp.Header.Get("Walrus-Info")), &fi)
	n, err := io.Copy(w, resp.Body)
	if err == nil && n != fi.Size {
		err = fmt.Errorf("%w: %s: server sent %d of %d bytes (see the server log)", store.ErrCorrupt, name, n, fi.Size)
	}
	return fi, err
}

// List lists dir.
func (c *Client) List(dir string) (Listing, error) {
	var l Listing
	err := c.decode("GET", "/ls", url.Values{"dir": {dir}}, nil, -1, &l)
	return l, err
}

// Remove removes name.
func (c *Client) Remove(name string) error {
	var v struct{}
	return c.decode("POST", "/rm", url.Values{"name": {name}}, nil, -1, &v)
}

// Status returns the totals.
func (c *Client) Status() (store.Status, error) {
	var st store.Status
	err := c.decode("GET", "/status", nil, nil, -1, &st)
	return st, err
}

// Verify runs verify on the server.
func (c *Client) Verify(dir string) (store.VerifyReport, error) {
	var rep store.VerifyReport
	err := c.decode("POST", "/verify", url.Values{"dir": {dir}}, nil, -1, &rep)
	return rep, err
}
