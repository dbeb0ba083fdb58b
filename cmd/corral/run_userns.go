package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/subid"
)

// --userns: host (no user namespace), auto (a block of 65,536 ids of its
// own) or keep-id (rootless: your uid is the same inside). The default is
// host for root and auto for everyone else; docs/design.md says why.

// autoBlock is the size of an --userns=auto range (podman's default).
const autoBlock = 65536

// subidAllocations records root's --userns=auto blocks for every --root.
const subidAllocations = "/run/corral/subid-allocations.json"

func defaultUserNS() string {
	if runtime.Rootless() {
		return "auto"
	}
	return "host"
}

// applyUserNS gives s the user namespace mode asks for. A --bundle that
// has its own user namespace keeps it unless --userns is given.
func applyUserNS(rt *runtime.Runtime, s *specs.Spec, mode, id string) error {
	if mode == "" {
		if hasUserNS(s) {
			return nil
		}
		mode = defaultUserNS()
	}
	dropUserNS(s)
	switch mode {
	case "host":
		if runtime.Rootless() {
			return errors.New("--userns=host: only root can run a container without a user namespace (use auto or keep-id)")
		}
		return nil
	case "auto":
		if runtime.Rootless() {
			return rootlessMaps(s, false)
		}
		a := &subid.Allocator{SubUIDFile: os.Getenv("CORRAL_SUBUID"), SubGIDFile: os.Getenv("CORRAL_SUBGID"), StateFile: subidAllocations}
		al, err := a.Allocate(rt.StateDir(id), autoBlock)
		if err != nil {
			return err
		}
		setMaps(s, []specs.LinuxIDMapping{{ContainerID: 0, HostID: al.UID.Start, Size: al.UID.Size}},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: al.GID.Start, Size: al.GID.Size}})
		return nil
	case "keep-id":
		if !runtime.Rootless() {
			return errors.New("--userns=keep-id maps your own uid into the container: for rootless use (as root, use auto)")
		}
		return rootlessMaps(s, true)
	}
	return fmt.Errorf("--userns=%s: use auto, host or keep-id", mode)
}

// rootlessMaps maps an unprivileged caller: its own uid as the container's
// root (auto) or as itself (keep-id, and the process runs as it), plus
// its /etc/subuid and /etc/subgid ranges for the other ids. Without
// ranges only its own ids exist inside.
func rootlessMaps(s *specs.Spec, keepID bool) error {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	name := strconv.Itoa(int(uid))
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	subUIDs, _ := subid.Parse(orEnv("CORRAL_SUBUID", "/etc/subuid"), name, int(uid))
	subGIDs, _ := subid.Parse(orEnv("CORRAL_SUBGID", "/etc/subgid"), name, int(uid))
	if keepID && (len(subUIDs) == 0 || len(subGIDs) == 0) {
		// Root inside must come from somewhere: the first subordinate id.
		return fmt.Errorf("--userns=keep-id: the container's root comes from your subordinate ids, and /etc/subuid or /etc/subgid has none for %s (add a range; or use --userns=auto)", name)
	}
	uids := ownPlusRanges(uid, subUIDs, keepID)
	gids := ownPlusRanges(gid, subGIDs, keepID)
	setMaps(s, uids, gids)
	if keepID {
		s.Process.User.UID, s.Process.User.GID = uid, gid
	}
	return nil
}

// ownPlusRanges: id as 0 (or as itself with keepID), the ranges filling
// the container ids around it in order.
func ownPlusRanges(id uint32, ranges []subid.Range, keepID bool) []specs.LinuxIDMapping {
	own := uint32(0)
	if keepID {
		own = id
	}
	maps := []specs.LinuxIDMapping{{ContainerID: own, HostID: id, Size: 1}}
	next := uint32(0)
	for _, r := range ranges {
		for size := r.Size; size > 0; {
			if next == own {
				next++
			}
			// Fill up to own (keep-id) or to the end of the range.
			n := size
			if next < own && uint64(next)+uint64(n) > uint64(own) {
				n = own - next
			}
			maps = append(maps, specs.LinuxIDMapping{ContainerID: next, HostID: r.Start + (r.Size - size), Size: n})
			next += n
			size -= n
		}
	}
	return maps
}

func setMaps(s *specs.Spec, uids, gids []specs.LinuxIDMapping) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings, s.Linux.GIDMappings = uids, gids
}

func hasUserNS(s *specs.Spec) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			return true
		}
	}
	return false
}

func dropUserNS(s *specs.Spec) {
	dropNamespace(s, specs.UserNamespace)
	s.Linux.UIDMappings, s.Linux.GIDMappings = nil, nil
}

// dropNamespace removes the namespace of type typ; it reports whether
// there was one.
func dropNamespace(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	kept := s.Linux.Namespaces[:0]
	for _, ns := range s.Linux.Namespaces {
		if ns.Type != typ {
			kept = append(kept, ns)
		}
	}
	had := len(kept) != len(s.Linux.Namespaces)
	s.Linux.Namespaces = kept
	return had
}

func orEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return filepath.Clean(v)
	}
	return def
}

// dropTimeNS removes the time namespace and its offsets; it reports
// whether there was one.
func dropTimeNS(s *specs.Spec) bool {
	s.Linux.TimeOffsets = nil
	return dropNamespace(s, specs.TimeNamespace)
}
