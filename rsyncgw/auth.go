package rsyncgw

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"hash"
	"os"
	"os/user"
	"path"
	"slices"
	"strings"
)

// authDigests are the daemon-auth digests we offer, strongest first; the
// greeting lists them (rsync: compat.c valid_auth_checksums).
var authDigests = []string{"sha512", "sha256", "sha1", "md5", "md4"}

func newAuthHash(name string) hash.Hash {
	switch name {
	case "sha512":
		return sha512.New()
	case "sha256":
		return sha256.New()
	case "sha1":
		return sha1.New()
	case "md5":
		return md5.New()
	case "md4":
		return newMD4()
	}
	return nil
}

// chooseAuthDigest picks the first digest of the client's greeting list
// that we support; a client that listed none gets md5, the protocol-30
// default (rsync: compat.c negotiate_daemon_auth).
func chooseAuthDigest(clientList []string) string {
	for _, name := range clientList {
		if slices.Contains(authDigests, name) {
			return name
		}
	}
	return "md5"
}

// newChallenge returns a random challenge (rsync: authenticate.c
// gen_challenge): base64 without padding.
func newChallenge() string {
	var b [18]byte
	rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

// authResponse is base64(DIGEST(password ‖ challenge)) without padding
// (rsync: authenticate.c generate_hash).
func authResponse(digest, password, challenge string) string {
	h := newAuthHash(digest)
	h.Write([]byte(password))
	h.Write([]byte(challenge))
	return base64.RawStdEncoding.EncodeToString(h.Sum(nil))
}

// Access a user is granted by an `auth users` entry.
type accessMode int

const (
	accessDefault accessMode = iota // the module's read only / write only
	accessRO
	accessRW
	accessDeny
)

// parseAuthUser splits "name[:ro|:rw|:deny]".
func parseAuthUser(s string) (name string, mode accessMode, err error) {
	name, opt, ok := strings.Cut(s, ":")
	if name == "" {
		return "", 0, fmt.Errorf("empty user in auth users entry %q", s)
	}
	if !ok {
		return name, accessDefault, nil
	}
	switch strings.ToLower(opt) {
	case "ro":
		return name, accessRO, nil
	case "rw":
		return name, accessRW, nil
	case "deny":
		return name, accessDeny, nil
	}
	return "", 0, fmt.Errorf("auth users entry %q: unknown option %q (use ro, rw or deny)", s, opt)
}

// userGroups returns the names of the groups the system user belongs to.
func userGroups(name string) []string {
	u, err := user.Lookup(name)
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []string
	for _, id := range ids {
		if g, err := user.LookupGroupId(id); err == nil {
			out = append(out, g.Name)
		}
	}
	return out
}

// authMatch finds the first `auth users` entry that matches user
// (rsync: authenticate.c auth_server).
func authMatch(entries []string, name string, groups func() []string) (accessMode, bool) {
	for _, e := range entries {
		pat, mode, err := parseAuthUser(e)
		if err != nil {
			continue
		}
		if g, ok := strings.CutPrefix(pat, "@"); ok {
			for _, have := range groups() {
				if globMatch(g, have) {
					return mode, true
				}
			}
			continue
		}
		if globMatch(pat, name) {
			return mode, true
		}
	}
	return 0, false
}

func globMatch(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// secrets reads the passwords that may authenticate user: its own line and
// those of its groups (rsync: authenticate.c check_secret). With strict
// modes the file must not be accessible by others, and must be owned by
// root when we run as root.
func secrets(file string, strict bool, name string, groups []string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strict {
		if err := checkSecretsMode(f); err != nil {
			return nil, err
		}
	}
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		who, pass, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if who == name {
			out = append(out, pass)
		} else if g, isGroup := strings.CutPrefix(who, "@"); isGroup && slices.Contains(groups, g) {
			out = append(out, pass)
		}
	}
	return out, sc.Err()
}

func checkSecretsMode(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o006 != 0 {
		return fmt.Errorf("secrets file %s must not be other-accessible (see strict modes option)", f.Name())
	}
	if os.Geteuid() == 0 && fileUID(st) != 0 {
		return fmt.Errorf("secrets file %s must be owned by root when running as root (see strict modes)", f.Name())
	}
	return nil
}

// checkResponse compares in constant time against every candidate.
func checkResponse(digest, challenge, response string, passwords []string) bool {
	ok := 0
	for _, p := range passwords {
		want := authResponse(digest, p, challenge)
		ok |= subtle.ConstantTimeCompare([]byte(want), []byte(response))
	}
	return ok == 1
}
