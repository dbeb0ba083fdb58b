package runspec

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// passwdEntry is the part of an /etc/passwd line we use.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// applyUser resolves UID[:GID] or NAME[:GROUP] against the rootfs's own
// /etc/passwd and /etc/group, as Docker does: a numeric uid needs no
// entry; a name must have one. Without a group, the user's primary group
// from passwd (or 0), plus the groups that list the user.
func applyUser(p *specs.Process, spec, rootfs string) error {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	if userPart == "" || (hasGroup && groupPart == "") {
		return fmt.Errorf("--user %q: want UID[:GID] or NAME[:GROUP]", spec)
	}
	var u passwdEntry
	if n, err := strconv.ParseUint(userPart, 10, 32); err == nil {
		u = passwdEntry{uid: uint32(n)}
		if e, ok := lookupPasswdUID(rootfs, u.uid); ok {
			u = e
		}
	} else {
		e, ok := lookupPasswdName(rootfs, userPart)
		if !ok {
			return fmt.Errorf("--user %q: no user %q in the container's /etc/passwd", spec, userPart)
		}
		u = e
	}
	gid := u.gid
	var extra []uint32
	if hasGroup {
		if n, err := strconv.ParseUint(groupPart, 10, 32); err == nil {
			gid = uint32(n)
		} else {
			g, ok := lookupGroupName(rootfs, groupPart)
			if !ok {
				return fmt.Errorf("--user %q: no group %q in the container's /etc/group", spec, groupPart)
			}
			gid = g
		}
	} else if u.name != "" {
		extra = supplementaryGroups(rootfs, u.name, gid)
	}
	p.User = specs.User{UID: u.uid, GID: gid, AdditionalGids: extra}
	return nil
}

// readColonFile calls fn with the fields of each line of ROOTFS/rel until
// fn returns true. A missing file is an empty one.
func readColonFile(rootfs, rel string, fn func(f []string) bool) {
	if rootfs == "" {
		return
	}
	f, err := os.Open(filepath.Join(rootfs, rel))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if fn(strings.Split(line, ":")) {
			return
		}
	}
}

func parsePasswd(f []string) (passwdEntry, bool) {
	if len(f) < 6 {
		return passwdEntry{}, false
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		return passwdEntry{}, false
	}
	return passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid), home: f[5]}, true
}

func lookupPasswdName(rootfs, name string) (passwdEntry, bool) {
	var out passwdEntry
	found := false
	readColonFile(rootfs, "etc/passwd", func(f []string) bool {
		if e, ok := parsePasswd(f); ok && e.name == name {
			out, found = e, true
		}
		return found
	})
	return out, found
}

func lookupPasswdUID(rootfs string, uid uint32) (passwdEntry, bool) {
	var out passwdEntry
	found := false
	readColonFile(rootfs, "etc/passwd", func(f []string) bool {
		if e, ok := parsePasswd(f); ok && e.uid == uid {
			out, found = e, true
		}
		return found
	})
	return out, found
}

func lookupGroupName(rootfs, name string) (uint32, bool) {
	var gid uint32
	found := false
	readColonFile(rootfs, "etc/group", func(f []string) bool {
		if len(f) >= 3 && f[0] == name {
			if n, err := strconv.ParseUint(f[2], 10, 32); err == nil {
				gid, found = uint32(n), true
			}
		}
		return found
	})
	return gid, found
}

// supplementaryGroups lists the gids of the groups naming user as a member
// (other than its primary group).
func supplementaryGroups(rootfs, user string, primary uint32) []uint32 {
	var out []uint32
	readColonFile(rootfs, "etc/group", func(f []string) bool {
		if len(f) < 4 {
			return false
		}
		n, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || uint32(n) == primary {
			return false
		}
		for _, m := range strings.Split(f[3], ",") {
			if m == user {
				out = append(out, uint32(n))
				break
			}
		}
		return false
	})
	return out
}
