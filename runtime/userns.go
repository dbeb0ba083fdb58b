package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// User namespaces. A container with a `user` namespace of its own gets it
// from the same clone(2) as its other new namespaces, so the kernel makes
// the user namespace first and the others are owned by it (the order the
// runtime spec requires): the container's root then has every capability
// over its own mount, pid, net, ipc, uts and cgroup namespaces and none
// over the host's.
//
// The parent writes the id mappings between the clone and the child's
// execve (spawn_rawfork.go holds the child at a barrier): a process whose
// uid is unmapped when it execs loses its capabilities, so the init must
// exec as the mapped root. As root the parent writes /proc/PID/uid_map
// and gid_map itself; an unprivileged caller (rootless) has the setuid
// helpers newuidmap/newgidmap (Debian's uidmap package) write the ranges
// /etc/subuid and /etc/subgid grant it, or, without them, maps only its
// own uid and gid (with setgroups denied, which the kernel requires for
// an unprivileged gid_map).

// specUserNS returns the spec's user namespace entry, if any.
func specUserNS(spec *specs.Spec) (ns specs.LinuxNamespace, ok bool) {
	if spec.Linux == nil {
		return ns, false
	}
	for _, n := range spec.Linux.Namespaces {
		if n.Type == specs.UserNamespace {
			return n, true
		}
	}
	return ns, false
}

// checkUserNS validates the mappings against the namespaces, as runc does:
// a new user namespace needs mappings, a joined one has its own already,
// and mappings without a user namespace would silently not apply.
func checkUserNS(spec *specs.Spec) error {
	ns, has := specUserNS(spec)
	l := spec.Linux
	haveMaps := l != nil && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0)
	switch {
	case !has && haveMaps:
		return errors.New("config: linux.uidMappings/gidMappings given without a user namespace")
	case has && ns.Path == "" && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0):
		return errors.New("config: a new user namespace needs both linux.uidMappings and linux.gidMappings")
	case has && ns.Path != "" && haveMaps:
		return fmt.Errorf("config: user namespace %s is joined by path: it has its mappings already; drop linux.uidMappings/gidMappings", ns.Path)
	case has && ns.Path == "":
		// The init sets up the container as the namespace's root: an
		// unmapped root would exec without capabilities.
		if _, _, ok := hostRootIDs(spec); !ok {
			return errors.New("config: the user namespace must map the container's uid 0 and gid 0 (linux.uidMappings/gidMappings)")
		}
	}
	for i, m := range spec.Mounts {
		po := parseMountOptions(m.Options)
		if po.idmap && (!has || ns.Path != "") {
			return fmt.Errorf("config: mounts[%d] (%s): idmap needs a new user namespace (its mappings are the ones used)", i, m.Destination)
		}
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 {
			return fmt.Errorf("config: mounts[%d] (%s): mappings of a mount's own are not supported; idmap uses the container's", i, m.Destination)
		}
	}
	if has {
		for _, m := range append(append([]specs.LinuxIDMapping(nil), l.UIDMappings...), l.GIDMappings...) {
			if m.Size == 0 || uint64(m.HostID)+uint64(m.Size) > 1<<32 || uint64(m.ContainerID)+uint64(m.Size) > 1<<32 {
				return fmt.Errorf("config: bad id mapping %+v", m)
			}
		}
	}
	return nil
}

// hostRootIDs returns the host uid and gid the container's root (0) maps
// to; ok is false when the spec has no mappings or does not map 0.
func hostRootIDs(spec *specs.Spec) (uid, gid int, ok bool) {
	if spec.Linux == nil {
		return 0, 0, false
	}
	u, ok1 := mapToHost(spec.Linux.UIDMappings, 0)
	g, ok2 := mapToHost(spec.Linux.GIDMappings, 0)
	return u, g, ok1 && ok2
}

// mapToHost returns the host id of container id id.
func mapToHost(maps []specs.LinuxIDMapping, id uint32) (int, bool) {
	for _, m := range maps {
		if id >= m.ContainerID && uint64(id) < uint64(m.ContainerID)+uint64(m.Size) {
			return int(m.HostID + (id - m.ContainerID)), true
		}
	}
	return -1, false
}

// formatIDMap is the text of /proc/PID/uid_map for maps.
func formatIDMap(maps []specs.LinuxIDMapping) []byte {
	var b bytes.Buffer
	for _, m := range maps {
		fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b.Bytes()
}

// writeIDMaps gives the user namespace of pid its mappings.
func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	if os.Geteuid() == 0 {
		if err := writeProcFile(pid, "uid_map", formatIDMap(uids)); err != nil {
			return err
		}
		return writeProcFile(pid, "gid_map", formatIDMap(gids))
	}
	return writeIDMapsRootless(pid, uids, gids)
}

// writeIDMapsRootless maps only the caller's own uid and gid itself (all
// the kernel lets an unprivileged process map; setgroups must be denied
// first), and has newuidmap/newgidmap write anything more: they check the
// ranges against /etc/subuid and /etc/subgid.
func writeIDMapsRootless(pid int, uids, gids []specs.LinuxIDMapping) error {
	ownOnly := len(uids) == 1 && len(gids) == 1 && uids[0].Size == 1 && gids[0].Size == 1 &&
		int(uids[0].HostID) == os.Geteuid() && int(gids[0].HostID) == os.Getegid()
	if ownOnly {
		if err := writeProcFile(pid, "uid_map", formatIDMap(uids)); err != nil {
			return err
		}
		if err := writeProcFile(pid, "setgroups", []byte("deny")); err != nil {
			return err
		}
		return writeProcFile(pid, "gid_map", formatIDMap(gids))
	}
	for _, h := range []struct {
		helper string
		maps   []specs.LinuxIDMapping
	}{{"newuidmap", uids}, {"newgidmap", gids}} {
		path, err := exec.LookPath(h.helper)
		if err != nil {
			return fmt.Errorf("rootless: mapping more than your own uid and gid needs %s (apt-get install uidmap) and ranges for you in /etc/subuid and /etc/subgid", h.helper)
		}
		args := []string{strconv.Itoa(pid)}
		for _, m := range h.maps {
			args = append(args, strconv.FormatUint(uint64(m.ContainerID), 10), strconv.FormatUint(uint64(m.HostID), 10), strconv.FormatUint(uint64(m.Size), 10))
		}
		if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", h.helper, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

func writeProcFile(pid int, name string, data []byte) error {
	path := filepath.Join("/proc", strconv.Itoa(pid), name)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	defer f.Close()
	// One write: the kernel takes a map only whole, in a single write(2).
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("user namespace: write %s %q: %w", path, strings.TrimSpace(string(data)), err)
	}
	return nil
}

// spawnUserNS is how the init enters the spec's user namespace, or nil.
func spawnUserNS(plan *nsPlan, spec *specs.Spec) *rawUserNS {
	switch {
	case plan.newUser:
		return &rawUserNS{mapIDs: func(pid int) error {
			return writeIDMaps(pid, spec.Linux.UIDMappings, spec.Linux.GIDMappings)
		}}
	case plan.joinUser != nil:
		return &rawUserNS{join: plan.joinUser}
	}
	return nil
}

// idmappedRootfs returns a detached, idmapped clone of the rootfs for the
// init (pid, already in its user namespace) to attach in place of the
// plain bind, when the rootfs's files would otherwise show as unmapped
// (nobody): a rootfs owned by a host id outside the mappings, typically
// the host's root. A rootfs already owned by the mapped ids (podman's
// chowned storage, a rootless user's own files) is left alone: mapping it
// again would shift it out of the container's range. Where the file
// system cannot idmap (overlayfs, as of Linux 6.18), the rootfs is bound
// as it is and the warning says what the container will see.
func idmappedRootfs(usernsFd int, spec *specs.Spec, rootfs string) (f *os.File, warning string, err error) {
	var st unix.Stat_t
	if err := unix.Stat(rootfs, &st); err != nil {
		return nil, "", err
	}
	if _, mapped := mapFromHost(spec.Linux.UIDMappings, st.Uid); mapped {
		return nil, "", nil
	}
	if Rootless() {
		return nil, fmt.Sprintf("rootfs %s is owned by uid %d, outside the container's mappings: its files show as nobody inside (idmapped mounts need root)", rootfs, st.Uid), nil
	}
	f, err = idmappedClone(rootfs, usernsFd, true)
	if errors.Is(err, ErrIdmapUnsupported) {
		return nil, fmt.Sprintf("%v: files of ids outside the container's mappings show as nobody inside", err), nil
	}
	return f, "", err
}

// mapFromHost returns the container id of host id id.
func mapFromHost(maps []specs.LinuxIDMapping, id uint32) (uint32, bool) {
	for _, m := range maps {
		if id >= m.HostID && uint64(id) < uint64(m.HostID)+uint64(m.Size) {
			return m.ContainerID + (id - m.HostID), true
		}
	}
	return 0, false
}

// attachRootfsByFd mounts the rootfs on itself through the fd the init
// opened before it became its user namespace's root: the idmapped clone
// from the parent, else a plain recursive clone. From here on the rootfs
// is named by the clone's fd (/proc/self/fd/N resolves to its root
// without walking the host's directories above it, which the container's
// root may not be allowed to).
func (rc *rootfsCtx) attachRootfsByFd() error {
	dir := os.NewFile(uintptr(rc.cfg.RootfsFd), "rootfs")
	defer dir.Close()
	tree := rc.idmappedRoot
	if tree == nil {
		fd, err := unix.OpenTree(int(dir.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
		if err != nil {
			return fmt.Errorf("clone rootfs %s: %w", rc.cfg.Rootfs, err)
		}
		tree = os.NewFile(uintptr(fd), "rootfs-clone")
	}
	if err := unix.MoveMount(int(tree.Fd()), "", int(dir.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		tree.Close()
		return fmt.Errorf("mount rootfs %s: %w", rc.cfg.Rootfs, err)
	}
	// Kept open (no CLOEXEC issue: it is CLOEXEC) until the init execs.
	rc.rootfs = "/proc/self/fd/" + strconv.Itoa(int(tree.Fd()))
	rc.rootfsTree = tree
	return nil
}

// userNSMounts is what the parent prepares for an init in a new user
// namespace, sent with msgConfig: the namespace's root cannot reach bind
// sources below directories only the host's root may traverse (a test's
// 0700 temp dir, /var/lib/...), nor make idmapped mounts. So the parent
// clones each bind source (open_tree, as runc 1.2 does), idmapped for
// "idmap"/"ridmap" mounts, and the rootfs when it needs an idmap.
type userNSMounts struct {
	files        []*os.File
	idmappedRoot bool
	bindFiles    []int // per spec.Mounts: index in files, or -1
	warnings     []string
}

func (u *userNSMounts) close() {
	for _, f := range u.files {
		f.Close()
	}
}

func (u *userNSMounts) fds() []int {
	out := make([]int, len(u.files))
	for i, f := range u.files {
		out[i] = int(f.Fd())
	}
	return out
}

// maxSyncFds stays under the kernel's SCM_MAX_FD (253) per message; binds
// beyond it are made by path, as without a user namespace.
const maxSyncFds = 250

func prepareUserNSMounts(pid int, spec *specs.Spec, rootfs, bundle string) (u *userNSMounts, err error) {
	u = &userNSMounts{}
	defer func() {
		if err != nil {
			u.close()
		}
	}()
	ns, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "ns/user"))
	if err != nil {
		return nil, fmt.Errorf("container user namespace: %w", err)
	}
	defer ns.Close()
	// A joined user namespace's mappings are not in the spec: its rootfs
	// is taken as prepared for it (owned by its ids), as runc does.
	var root *os.File
	var warning string
	if len(spec.Linux.UIDMappings) > 0 {
		if root, warning, err = idmappedRootfs(int(ns.Fd()), spec, rootfs); err != nil {
			return nil, err
		}
	}
	if warning != "" {
		u.warnings = append(u.warnings, warning)
	}
	if root != nil {
		u.files, u.idmappedRoot = append(u.files, root), true
	}
	for _, m := range spec.Mounts {
		po := parseMountOptions(m.Options)
		if m.Type == "bind" {
			po.flags |= unix.MS_BIND
		}
		if po.flags&unix.MS_BIND == 0 || len(u.files) >= maxSyncFds {
			u.bindFiles = append(u.bindFiles, -1)
			continue
		}
		src := m.Source
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		tree, err := cloneBindSource(src, po, int(ns.Fd()))
		if err != nil {
			return nil, fmt.Errorf("%s on %s: %w", m.Source, m.Destination, err)
		}
		u.bindFiles = append(u.bindFiles, len(u.files))
		u.files = append(u.files, tree)
	}
	return u, nil
}

// cloneBindSource clones src as a detached mount, recursively for rbind,
// idmapped for the idmap options.
func cloneBindSource(src string, po parsedMount, usernsFd int) (*os.File, error) {
	recursive := po.flags&unix.MS_REC != 0
	if po.idmap {
		return idmappedClone(src, usernsFd, recursive || po.ridmap)
	}
	flags := uint(unix.OPEN_TREE_CLONE | unix.OPEN_TREE_CLOEXEC)
	if recursive {
		flags |= unix.AT_RECURSIVE
	}
	fd, err := unix.OpenTree(unix.AT_FDCWD, src, flags)
	if err != nil {
		return nil, fmt.Errorf("bind source: %w", err)
	}
	return os.NewFile(uintptr(fd), "bind:"+src), nil
}

// bindTree returns the parent's clone for the mount at hand, if any.
func (rc *rootfsCtx) bindTree() *os.File {
	if rc.mountIndex < len(rc.bindTrees) {
		return rc.bindTrees[rc.mountIndex]
	}
	return nil
}

// attachBind puts the parent's clone of a bind source at its destination
// and applies the bind's flags as a path bind would get them.
func (rc *rootfsCtx) attachBind(m specs.Mount, po parsedMount, tree *os.File) error {
	defer tree.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(tree.Fd()), &st); err != nil {
		return err
	}
	dest, err := rc.openDest(m.Destination, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	err = unix.MoveMount(int(tree.Fd()), "", int(dest.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	dest.Close()
	if err != nil {
		return fmt.Errorf("attach bind: %w", err)
	}
	return rc.finishMount(m.Destination, po, true)
}

// userNSMountFiles sorts msgConfig's fds into the idmapped rootfs and the
// bind clones, per cfg.
func userNSMountFiles(cfg *initConfig, files []*os.File) (root *os.File, binds []*os.File, err error) {
	used := map[int]bool{}
	if cfg.IdmappedRootfs {
		if len(files) == 0 {
			return nil, nil, errors.New("sync protocol: idmapped rootfs without its mount fd")
		}
		root, used[0] = files[0], true
	}
	for _, i := range cfg.BindFiles {
		if i >= len(files) {
			closeAll(files)
			return nil, nil, errors.New("sync protocol: a bind source fd is missing")
		}
		var f *os.File
		if i >= 0 {
			f, used[i] = files[i], true
		}
		binds = append(binds, f)
	}
	for i, f := range files {
		if !used[i] {
			f.Close()
		}
	}
	return root, binds, nil
}

// devptsWithoutUnmappedIDs drops devpts's gid=/uid= options that name ids
// the user namespace does not map (the tty group 5 of every default spec,
// in a rootless container that maps only its user's own ids): the kernel
// refuses the mount (EINVAL) and runc's rootless spec leaves them out.
func devptsWithoutUnmappedIDs(spec *specs.Spec, data string) (string, bool) {
	if _, ok := specUserNS(spec); !ok {
		return "", false
	}
	var kept []string
	dropped := false
	for _, o := range strings.Split(data, ",") {
		k, v, _ := strings.Cut(o, "=")
		if id, err := strconv.ParseUint(v, 10, 32); err == nil && (k == "gid" || k == "uid") {
			maps := spec.Linux.GIDMappings
			if k == "uid" {
				maps = spec.Linux.UIDMappings
			}
			if _, mapped := mapToHost(maps, uint32(id)); !mapped {
				dropped = true
				continue
			}
		}
		kept = append(kept, o)
	}
	return strings.Join(kept, ","), dropped
}

// setgroupsDenied says whether this process's user namespace refuses
// setgroups(2) (rootless, mapping its own ids only).
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}

// ExecEntersTimeNS says whether execve moves a process into the time
// namespace it unshared (Linux 6.3, "fs/exec: switch timens when a task
// gets a new mm"). Before, the process stays outside, and its threads
// cannot even be created (clone with CLONE_VM fails with EINVAL while its
// time namespace for children differs): so only then can the raw child
// make the time namespace inside the user namespace.
func ExecEntersTimeNS() bool {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 3
}

// prlimitFromParent applies the process's rlimits to a child in a user
// namespace from here, as runc does: raising a hard limit needs
// CAP_SYS_RESOURCE in the host's user namespace, which the child's root
// lacks (podman asks for 1048576 open files). The child's own setrlimit of
// the same values is then no raise, and allowed.
func prlimitFromParent(pid int, cfg *initConfig) error {
	p := cfg.Process
	if p == nil && cfg.Spec != nil {
		p = cfg.Spec.Process
	}
	if p == nil {
		return nil
	}
	for _, l := range p.Rlimits {
		res, ok := rlimitNames[l.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", l.Type)
		}
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}, nil); err != nil {
			return fmt.Errorf("rlimit %s=%d:%d: %w", l.Type, l.Soft, l.Hard, err)
		}
	}
	return nil
}

func nsFiles(ns []nsFD) []*os.File {
	var out []*os.File
	for _, n := range ns {
		out = append(out, n.f)
	}
	return out
}

func joinsNS(ns []nsFD, flag uintptr) bool {
	for _, n := range ns {
		if n.flag == flag {
			return true
		}
	}
	return false
}
