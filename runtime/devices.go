package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are created in every container's /dev (runc's list; the
// device cgroup allows them, see defaultDeviceRules).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devSymlinks point the usual names at /proc and the container's devpts.
var devSymlinks = [][2]string{
	{"/proc/self/fd", "/dev/fd"},
	{"/proc/self/fd/0", "/dev/stdin"},
	{"/proc/self/fd/1", "/dev/stdout"},
	{"/proc/self/fd/2", "/dev/stderr"},
	{"pts/ptmx", "/dev/ptmx"},
}

// createDevices fills /dev, unless the spec binds /dev from elsewhere (then
// it is the caller's /dev and left alone).
func (rc *rootfsCtx) createDevices() error {
	for _, m := range rc.spec.Mounts {
		if filepath.Clean(m.Destination) == "/dev" && (m.Type == "bind" || parseMountOptions(m.Options).flags&unix.MS_BIND != 0) {
			return nil
		}
	}
	devs := append([]specs.LinuxDevice(nil), rc.spec.Linux.Devices...)
	listed := map[string]bool{}
	for _, d := range devs {
		listed[filepath.Clean(d.Path)] = true
	}
	for _, d := range defaultDevices {
		if !listed[d.Path] {
			devs = append(devs, d)
		}
	}
	// One handle on /dev serves every node directly in it; only nodes in
	// subdirectories (/dev/net/tun) resolve their own directory.
	devDir, err := pathrs.MkdirAllHandle(rc.root, "/dev", 0o755)
	if err != nil {
		return err
	}
	defer devDir.Close()
	for _, d := range devs {
		if err := rc.createDevice(d, devDir); err != nil {
			return fmt.Errorf("%s: %w", d.Path, err)
		}
	}
	for _, l := range devSymlinks {
		err := unix.Symlinkat(l[0], int(devDir.Fd()), filepath.Base(l[1]))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	return nil
}

func (rc *rootfsCtx) createDevice(d specs.LinuxDevice, devDir *os.File) error {
	if !filepath.IsAbs(d.Path) || filepath.Clean(d.Path) == "/dev" {
		return fmt.Errorf("invalid device path")
	}
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		mode = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	dir := devDir
	if filepath.Dir(filepath.Clean(d.Path)) != "/dev" {
		var err error
		if dir, err = pathrs.MkdirAllHandle(rc.root, filepath.Dir(d.Path), 0o755); err != nil {
			return err
		}
		defer dir.Close()
	}
	name := filepath.Base(d.Path)
	unix.Unlinkat(int(dir.Fd()), name, 0) // a stale file from the image would shadow the node
	dev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	if err := unix.Mknodat(int(dir.Fd()), name, mode|perm, dev); err != nil {
		if !errors.Is(err, unix.EPERM) {
			return err
		}
		// No mknod here (a device cgroup or sandbox above ours refuses
		// it): bind the host's node, as runc does, if the host has this
		// very device at the same path.
		if herr := hostHasDevice(d, mode); herr != nil {
			return fmt.Errorf("mknod: %v, and no host node to bind instead: %w", err, herr)
		}
		return rc.bindHostDevice(d, int(dir.Fd()), name)
	}
	uid, gid := -1, -1
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if uid >= 0 || gid >= 0 {
		if err := unix.Fchownat(int(dir.Fd()), name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// hostHasDevice says why the host's node at d.Path is not the device d
// (nil when it is): binding another device, or a missing path, must fail
// with a clear error.
func hostHasDevice(d specs.LinuxDevice, mode uint32) error {
	var st unix.Stat_t
	if err := unix.Stat(d.Path, &st); err != nil {
		return fmt.Errorf("host %s: %w", d.Path, err)
	}
	if st.Mode&unix.S_IFMT != mode {
		return fmt.Errorf("host %s is not a %q device", d.Path, d.Type)
	}
	if mode != unix.S_IFIFO && (int64(unix.Major(st.Rdev)) != d.Major || int64(unix.Minor(st.Rdev)) != d.Minor) {
		return fmt.Errorf("host %s is device %d:%d, not %d:%d", d.Path, unix.Major(st.Rdev), unix.Minor(st.Rdev), d.Major, d.Minor)
	}
	return nil
}

func (rc *rootfsCtx) bindHostDevice(d specs.LinuxDevice, dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	unix.Close(fd)
	target, err := pathrs.OpenatInRoot(rc.root, d.Path)
	if err != nil {
		return err
	}
	defer target.Close()
	return unix.Mount(d.Path, procFdPath(target), "", unix.MS_BIND, "")
}

// setupConsole makes the container's pty (terminal: true) and binds its
// slave at /dev/console.
func (rc *rootfsCtx) setupConsole() error {
	if !rc.spec.Process.Terminal {
		return nil
	}
	slave, err := newConsole(rc.conn, rc.spec.Process.ConsoleSize)
	if err != nil {
		return err
	}
	rc.consoleSlave = slave
	if fd, err := unix.Open("/dev/console", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600); err == nil {
		unix.Close(fd)
		if err := unix.Mount(slave.Name(), "/dev/console", "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/console: %w", err)
		}
	}
	return nil
}

// newConsole opens a pty from the container's own devpts instance (so the
// slave belongs to the container), sends the master to the parent in
// msgConsole and returns the slave, which becomes the process's stdio and
// controlling terminal.
func newConsole(conn *syncConn, size *specs.Box) (*os.File, error) {
	master, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/ptmx: %w", err)
	}
	defer unix.Close(master)
	if err := unix.IoctlSetPointerInt(master, unix.TIOCSPTLCK, 0); err != nil {
		return nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(master, unix.TIOCGPTN)
	if err != nil {
		return nil, fmt.Errorf("pty number: %w", err)
	}
	// TIOCGPTPEER opens the slave through the master: no path lookup race.
	slave, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(master), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		return nil, fmt.Errorf("open pty slave: %w", errno)
	}
	sf := os.NewFile(slave, fmt.Sprintf("/dev/pts/%d", n))
	if size != nil {
		unix.IoctlSetWinsize(master, unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(size.Height), Col: uint16(size.Width)})
	}
	if err := conn.send(&syncMsg{Type: msgConsole}, master); err != nil {
		sf.Close()
		return nil, err
	}
	return sf, nil
}
