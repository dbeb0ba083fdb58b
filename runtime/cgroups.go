package runtime

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CgroupRoot is where the cgroup hierarchies are mounted: the v2 tree, or
// one directory per v1 hierarchy.
const CgroupRoot = "/sys/fs/cgroup"

const v1Root, v2Root = CgroupRoot, CgroupRoot

// CgroupManager is what the lifecycle verbs need from a container's cgroup,
// whatever the hierarchy: v1 (this includes hybrid hosts, whose
// controllers are all v1) or v2. A CgroupDriver makes them.
type CgroupManager interface {
	// Path is the cgroup, absolute from the hierarchy root (/corral/ID).
	Path() string
	// Join moves pid into the cgroup (in every v1 hierarchy).
	Join(pid int) error
	// CloneFD opens the cgroup directory for clone3(CLONE_INTO_CGROUP), so
	// the child starts inside it; nil, nil on v1, where Join is used.
	CloneFD() (*os.File, error)
	Update(r *specs.LinuxResources) error
	Freeze() error
	Thaw() error
	Frozen() (bool, error)
	// Pids lists every process in the cgroup (and below).
	Pids() ([]int, error)
	// OOMKills is the kernel's count of OOM kills inside the cgroup.
	OOMKills() (uint64, error)
	// Delete removes the cgroup; it must be empty.
	Delete() error
}

// CgroupDriver creates (New, with res applied) and opens (Load) the cgroup
// at cgPath, absolute from the hierarchy root, in the v2 tree or in every
// v1 hierarchy. Package runtime/cgroupdriver (containerd/cgroups) is the
// one there is; it registers itself when imported. Package runtime does
// not import it, so that the container init binary, which never makes a
// cgroup, does not link containerd/cgroups (see cgroupdriver's doc).
type CgroupDriver interface {
	New(cgPath string, res *specs.LinuxResources, v2 bool) (CgroupManager, error)
	Load(cgPath string, v2 bool) (CgroupManager, error)
}

var cgroupDriver CgroupDriver

// UseCgroupDriver registers the driver that makes containers' cgroups.
func UseCgroupDriver(d CgroupDriver) { cgroupDriver = d }

// errNoCgroupDriver is a program built without runtime/cgroupdriver trying
// to make or open a cgroup: a build mistake, said plainly.
var errNoCgroupDriver = errors.New("this program was built without a cgroup driver (import github.com/corral-dev/corral/runtime/cgroupdriver)")

func driverNew(cgPath string, res *specs.LinuxResources) (CgroupManager, error) {
	if cgroupDriver == nil {
		return nil, errNoCgroupDriver
	}
	return cgroupDriver.New(cgPath, res, cgroupsV2())
}

var cgroupMode struct {
	once    sync.Once
	unified bool
}

// cgroupsV2 says whether this host's controllers live in a pure cgroup v2
// tree. Hybrid hosts (v1 controllers plus an empty cgroup2 at
// /sys/fs/cgroup/unified, like this machine) are driven as v1. The test
// is containerd/cgroups' Mode() == Unified, without linking it.
func cgroupsV2() bool {
	cgroupMode.once.Do(func() {
		var st unix.Statfs_t
		cgroupMode.unified = unix.Statfs(CgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
	})
	return cgroupMode.unified
}

// cgroupPathFor turns spec.linux.cgroupsPath into the absolute cgroup path.
// Relative paths are taken from the hierarchy ROOT, never from the caller's
// own cgroup (runc nests them below the caller's, which here would put
// containers inside the agent's /process_api/... memory cgroup).
// CgroupPathFor is the cgroup (from the hierarchy root) a container with
// this id and spec gets: what `corral run` names its bound views by.
func CgroupPathFor(id string, spec *specs.Spec) (string, error) { return cgroupPathFor(id, spec) }

func cgroupPathFor(id string, spec *specs.Spec) (string, error) {
	p := ""
	if spec.Linux != nil {
		p = spec.Linux.CgroupsPath
	}
	if p == "" {
		return path.Join(DefaultCgroupParent, id), nil
	}
	if strings.Count(p, ":") == 2 && !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("cgroupsPath %q is in systemd slice:prefix:name form, but corral uses the cgroupfs driver (absolute paths such as /corral/%s)", p, id)
	}
	clean := path.Clean("/" + p)
	if clean == "/" {
		return "", fmt.Errorf("cgroupsPath %q names the root cgroup: a container needs its own", p)
	}
	return clean, nil
}

// systemdRunning is sd_booted(3): /run/systemd/system exists only when
// systemd is PID 1.
func systemdRunning() bool {
	fi, err := os.Lstat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// cgroupExists says whether cgPath exists already (in the memory
// hierarchy on v1: every container cgroup has one).
func cgroupExists(cgPath string) bool {
	dir := filepath.Join(v2Root, cgPath)
	if !cgroupsV2() {
		dir = filepath.Join(v1Root, "memory", cgPath)
	}
	_, err := os.Stat(dir)
	return err == nil
}

// newCgroup creates the container's cgroup with its resources applied;
// devs (linux.devices) are allowed in the device cgroup, so the init can
// mknod them.
func newCgroup(cgPath string, res *specs.LinuxResources, devs []specs.LinuxDevice) (CgroupManager, error) {
	if res == nil {
		res = &specs.LinuxResources{}
	}
	res = withDefaultDevices(res, devs)
	cg, err := driverNew(cgPath, res)
	if err != nil && errors.Is(err, os.ErrNotExist) {
		// A parent removed under us (another runtime or test deleting an
		// empty parent between our mkdirs): once more.
		cg, err = driverNew(cgPath, res)
	}
	return cg, err
}

// loadCgroup opens an existing container cgroup.
func loadCgroup(cgPath string) (CgroupManager, error) {
	if cgroupDriver == nil {
		return nil, errNoCgroupDriver
	}
	return cgroupDriver.Load(cgPath, cgroupsV2())
}

// cgroup returns the container's cgroup manager, loaded once per Container
// (loading parses the host's mount table).
func (c *Container) cgroup() (CgroupManager, error) {
	if c.cg != nil {
		return c.cg, nil
	}
	if c.st.CgroupPath == "" {
		// Rootless without a delegated cgroup (rootless.go).
		return noCgroup{}, nil
	}
	cg, err := loadCgroup(c.st.CgroupPath)
	if err != nil {
		return nil, err
	}
	c.cg = cg
	return cg, nil
}

// defaultDeviceRules are the devices every container gets as nodes in its
// /dev (devices.go) and so must be allowed to use whatever the spec's device
// cgroup list says first (runc adds the same list).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},    // null
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"},    // zero
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"},    // full
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"},    // random
	{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"},    // urandom
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"},    // tty
	{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"},    // ptmx
	{Allow: true, Type: "c", Major: i64(136), Minor: i64(-1), Access: "rwm"}, // /dev/pts/*
}

func i64(v int64) *int64 { return &v }

// withDefaultDevices returns a copy of res whose device rules end with the
// default allow rules and an "rwm" rule for each of the spec's own device
// nodes (devs), when the spec restricts devices at all. runc appends the
// same: a node the spec asks for must be creatable (mknod) and usable.
func withDefaultDevices(res *specs.LinuxResources, devs []specs.LinuxDevice) *specs.LinuxResources {
	if len(res.Devices) == 0 {
		return res
	}
	cp := *res
	cp.Devices = append(append([]specs.LinuxDeviceCgroup(nil), res.Devices...), defaultDeviceRules...)
	for _, d := range devs {
		typ := d.Type
		if typ == "u" {
			typ = "c" // unbuffered character device: a "c" to the kernel
		}
		if typ != "c" && typ != "b" {
			continue // a fifo needs no device rule
		}
		cp.Devices = append(cp.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: i64(d.Major), Minor: i64(d.Minor), Access: "rwm"})
	}
	return &cp
}
