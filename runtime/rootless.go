package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Rootless: corral run by an unprivileged user. Its state cannot live in
// /run/corral (root's); like runc ($XDG_RUNTIME_DIR/runc) it lives in the
// user's runtime directory, which systemd-logind makes private (0700) and
// removes at logout, so nothing outlives the session by accident.

// Rootless reports whether corral runs without root on the host: not as
// uid 0, or as the root of a user namespace other than the host's (runc's
// rule: e.g. inside `unshare -Ur`, next to a corralfs run without root).
func Rootless() bool {
	rootlessOnce.Do(func() { rootless = os.Geteuid() != 0 || !inInitialUserNS() })
	return rootless
}

var (
	rootlessOnce sync.Once
	rootless     bool
)

// inInitialUserNS: the host's user namespace maps every id to itself.
func inInitialUserNS() bool {
	data, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return true // no /proc: assume the host
	}
	return strings.Join(strings.Fields(string(data)), " ") == "0 0 4294967295"
}

// DefaultRootFor is the state root to use when --root is not given:
// DefaultRoot for root, $XDG_RUNTIME_DIR/corral for anyone else, and
// /tmp/corral-UID without a runtime directory (a bare `su` session),
// which Create makes 0711 and owned by the user.
func DefaultRootFor() string {
	if !Rootless() {
		return DefaultRoot
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "corral")
	}
	return filepath.Join(os.TempDir(), "corral-"+strconv.Itoa(os.Geteuid()))
}

// StateDir is the directory that holds container id's state while it
// exists (--userns=auto keys its id blocks on it: runtime/subid).
func (r *Runtime) StateDir(id string) string { return r.stateDir(id) }

// rootlessCgroup is newCgroup for an unprivileged caller. Device rules are
// dropped: a device cgroup (v1) or eBPF program (v2) needs the host's root,
// and a rootless container has no device nodes but the host's own, bound
// in with the caller's access. A cgroup the caller may not create (no
// delegated cgroup v2 subtree: cgroup v1, or a path outside it) is not an
// error, as with runc: the container runs without cgroup limits and the
// warning says so and what to do.
func (r *Runtime) rootlessCgroup(cgPath string, res *specs.LinuxResources) (CgroupManager, error) {
	if res != nil {
		cp := *res
		cp.Devices = nil
		res = &cp
	} else {
		res = &specs.LinuxResources{}
	}
	cg, err := driverNew(cgPath, res)
	if err == nil {
		return cg, nil
	}
	if !errors.Is(err, os.ErrPermission) && !errors.Is(err, unix.EROFS) {
		return nil, err
	}
	how := "delegate a cgroup v2 subtree to this user (systemd: Delegate=yes, e.g. a user@.service session) and give linux.cgroupsPath below it"
	if !cgroupsV2() {
		how = "cgroup v1 has no delegation to users; run rootless on a cgroup v2 host"
	}
	r.log().Warn(fmt.Sprintf("rootless: cannot create cgroup %s (%v): the container runs without cgroup limits; %s", cgPath, err, how))
	return noCgroup{}, nil
}

// noCgroup stands for the cgroup a rootless container could not get.
type noCgroup struct{}

var errNoCgroup = errors.New("the container has no cgroup (rootless, without a delegated cgroup)")

func (noCgroup) Path() string                       { return "" }
func (noCgroup) Join(int) error                     { return nil }
func (noCgroup) CloneFD() (*os.File, error)         { return nil, nil }
func (noCgroup) Update(*specs.LinuxResources) error { return nil }
func (noCgroup) Freeze() error                      { return errNoCgroup }
func (noCgroup) Thaw() error                        { return errNoCgroup }
func (noCgroup) Frozen() (bool, error)              { return false, nil }
func (noCgroup) Pids() ([]int, error)               { return nil, nil }
func (noCgroup) OOMKills() (uint64, error)          { return 0, nil }
func (noCgroup) Delete() error                      { return nil }
