package runtime

import (
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// mountFlag is one fstab-style option: set or clear a MS_* flag.
type mountFlag struct {
	clear bool
	flag  uintptr
}

// mountFlagTable holds the options that are mount(2) flags; every other
// option is filesystem data ("mode=755", "size=64k", "newinstance").
var mountFlagTable = map[string]mountFlag{
	"async": {true, unix.MS_SYNCHRONOUS}, "atime": {true, unix.MS_NOATIME},
	"bind": {false, unix.MS_BIND}, "defaults": {false, 0},
	"dev": {true, unix.MS_NODEV}, "diratime": {true, unix.MS_NODIRATIME},
	"dirsync": {false, unix.MS_DIRSYNC}, "exec": {true, unix.MS_NOEXEC},
	"mand": {false, unix.MS_MANDLOCK}, "noatime": {false, unix.MS_NOATIME},
	"nodev": {false, unix.MS_NODEV}, "nodiratime": {false, unix.MS_NODIRATIME},
	"noexec": {false, unix.MS_NOEXEC}, "nomand": {true, unix.MS_MANDLOCK},
	"norelatime": {true, unix.MS_RELATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid": {false, unix.MS_NOSUID}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
	"relatime": {false, unix.MS_RELATIME}, "remount": {false, unix.MS_REMOUNT},
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"strictatime": {false, unix.MS_STRICTATIME}, "suid": {true, unix.MS_NOSUID},
	"sync": {false, unix.MS_SYNCHRONOUS},
}

// propagationTable holds the propagation options, applied after the mount.
var propagationTable = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parsedMount is an OCI mount's options split the way mount(2) wants them.
type parsedMount struct {
	flags       uintptr
	propagation []uintptr
	data        string
	rro         bool // "rro": recursively read-only (mount_setattr)
	// idmap: "idmap" or "ridmap": a bind shown through the container's
	// user namespace mappings (userns.go); recursive with rbind/ridmap.
	idmap, ridmap bool
}

func parseMountOptions(opts []string) parsedMount {
	var p parsedMount
	var data []string
	for _, o := range opts {
		if f, ok := mountFlagTable[o]; ok {
			if f.clear {
				p.flags &^= f.flag
			} else {
				p.flags |= f.flag
			}
			continue
		}
		if f, ok := propagationTable[o]; ok {
			p.propagation = append(p.propagation, f)
			continue
		}
		if o == "rro" {
			p.rro = true
			p.flags |= unix.MS_RDONLY
			continue
		}
		if o == "idmap" || o == "ridmap" {
			p.idmap, p.ridmap = true, p.ridmap || o == "ridmap"
			continue
		}
		if o == "tmpcopyup" {
			continue // TODO: not implemented (a crun extension); ignored like runc ignores unknown ones
		}
		data = append(data, o)
	}
	p.data = strings.Join(data, ",")
	return p
}

func mountOptionNames() []string {
	var out []string
	for k := range mountFlagTable {
		out = append(out, k)
	}
	for k := range propagationTable {
		out = append(out, k)
	}
	out = append(out, "rro", "idmap", "ridmap")
	sort.Strings(out)
	return out
}
