package main

import (
	"errors"
	"os/user"
	"strconv"
	"syscall"
)

// ownerIDs returns the owner shown in the mount: the given ids, else the
// postgres user's (what a DBA expects on an archive host), else root.
func ownerIDs(uid, gid int) (uint32, uint32) {
	if uid < 0 || gid < 0 {
		pu, gu := 0, 0
		if u, err := user.Lookup("postgres"); err == nil {
			pu, _ = strconv.Atoi(u.Uid)
			gu, _ = strconv.Atoi(u.Gid)
		}
		if uid < 0 {
			uid = pu
		}
		if gid < 0 {
			gid = gu
		}
	}
	return uint32(uid), uint32(gid)
}

func isStaleMountErr(err error) bool { return errors.Is(err, syscall.ENOTCONN) }
