package views

// How `corral hook` gets the views into another runtime's container.
//
// Where the hook runs depends on the stage and the runtime, and the hook
// must work out which case it is in:
//
//   - prestart (runc, podman+runc, CRI-O): run by the runtime in the host's
//     namespaces, after the container's mounts are set up and before
//     pivot_root; state.pid is the container init's host pid. The container's
//     mount namespace still shows the host tree, with the rootfs bind-mounted
//     at root.path: the targets are ROOTFS/proc/meminfo, ... seen from
//     inside that namespace, so the hook has to enter it (setns).
//   - createContainer on runc and crun: run by the container's init itself,
//     at the same point, so the hook is ALREADY in the container's mount
//     (and pid, cgroup) namespaces. state.pid is then the init's pid in its
//     own pid namespace (1), which /proc (still the host's procfs) would
//     read as the host's init: the hook detects this case by its own pid
//     disagreeing with /proc/self and stays where it is.
//   - a runtime that runs the hook after pivot_root: the rootfs path no
//     longer exists inside the namespace and the targets are /proc/...
//
// The views are cloned as detached mounts with open_tree(OPEN_TREE_CLONE)
// in the hook's own namespace (where the corralfs mount certainly is),
// made read-only/nosuid/nodev/noexec with mount_setattr, and attached with
// move_mount after setns, onto targets opened O_PATH without following
// symlinks out of the rootfs (bind.go, shared with corralfs's recovery). No path of the host is ever resolved inside the container,
// and nothing is mounted in the host's namespace: the hook refuses a
// target namespace that is the host init's.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// BindIntoContainer binds the present views over their twins in the
// container whose init is statePid (the OCI state's pid) and whose root
// is rootfs, and returns the destinations bound. It gives up after
// timeout: the binding runs on a thread of its own, which a hung FUSE
// lookup may leave stuck; it dies with the process (the hook is a
// short-lived one).
func BindIntoContainer(statePid int, rootfs string, present []Bound, timeout time.Duration) ([]string, error) {
	target, err := findTargetMountNS(statePid)
	if err != nil {
		return nil, err
	}
	type result struct {
		bound []string
		err   error
	}
	done := make(chan result, 1)
	go func() {
		bound, err := bindViewsInto(target, rootfs, present)
		done <- result{bound, err}
	}()
	select {
	case r := <-done:
		return r.bound, r.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("binding the views took longer than %v", timeout)
	}
}

// mountNSTarget is the mount namespace the views go into.
type mountNSTarget struct {
	// nsPath is /proc/PID/ns/mnt to enter, "" when the hook already runs in
	// the container's mount namespace.
	nsPath string
}

// nsInode identifies a namespace by its nsfs device and inode.
type nsInode struct{ dev, ino uint64 }

func statNS(path string) (nsInode, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsInode{}, err
	}
	return nsInode{dev: st.Dev, ino: st.Ino}, nil
}

// findTargetMountNS works out where the container's mount namespace is
// (see the comment at the top of this file).
func findTargetMountNS(statePid int) (mountNSTarget, error) {
	// The host's mount namespace is pid 1's. Reading it needs ptrace
	// access to pid 1, which a sandbox or an LSM may deny: then the checks
	// below that need it refuse instead of guessing.
	hostNS, hostErr := statNS("/proc/1/ns/mnt")
	isHost := func(ns nsInode) bool { return hostErr == nil && ns == hostNS }
	selfNS, err := statNS("/proc/self/ns/mnt")
	if err != nil {
		return mountNSTarget{}, err
	}
	if inChildPidNS() {
		if isHost(selfNS) {
			return mountNSTarget{}, errors.New("the hook runs in a pid namespace but in the host's mount namespace: refusing to mount anything")
		}
		return mountNSTarget{}, nil
	}
	if statePid <= 0 {
		return mountNSTarget{}, fmt.Errorf("the container state has no pid (%d): is the hook configured for createContainer or prestart?", statePid)
	}
	nsPath := "/proc/" + strconv.Itoa(statePid) + "/ns/mnt"
	targetNS, err := statNS(nsPath)
	if err != nil {
		return mountNSTarget{}, fmt.Errorf("the container's mount namespace: %w", err)
	}
	if isHost(targetNS) {
		return mountNSTarget{}, fmt.Errorf("pid %d shares the host's mount namespace: refusing to mount over the host's /proc", statePid)
	}
	if targetNS != selfNS {
		return mountNSTarget{nsPath: nsPath}, nil
	}
	// Already in the container's mount namespace: a runtime that runs the
	// hook inside a container without a pid namespace. Only safe when we
	// know this is not the host's namespace.
	if hostErr != nil {
		return mountNSTarget{}, fmt.Errorf("the hook runs in pid %d's mount namespace and cannot tell whether it is the host's (%v): refusing to mount anything", statePid, hostErr)
	}
	return mountNSTarget{}, nil
}

// inChildPidNS reports whether the hook runs in a pid namespace other than
// the one of the procfs at /proc: its own pid differs from /proc/self.
func inChildPidNS() bool {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return false
	}
	return self != strconv.Itoa(os.Getpid())
}

// bindViewsInto binds every present view over its twin in the container
// and returns the destinations bound. It locks its OS thread for good (see
// the top of this file), so call it on a goroutine of its own.
func bindViewsInto(target mountNSTarget, rootfs string, present []Bound) ([]string, error) {
	goruntime.LockOSThread() // never unlocked: this thread may end up in the container's namespace

	// Clone the view mounts here, in the hook's namespace.
	trees := make([]int, 0, len(present))
	defer func() {
		for _, fd := range trees {
			unix.Close(fd)
		}
	}()
	for _, b := range present {
		fd, err := CloneView(b.Source)
		if err != nil {
			return nil, err
		}
		trees = append(trees, fd)
	}
	if target.nsPath != "" {
		if err := EnterMountNS(target.nsPath); err != nil {
			return nil, err
		}
	}

	base, err := viewTargetBase(rootfs, target.nsPath != "")
	if err != nil {
		return nil, err
	}
	var bound []string
	for i, b := range present {
		if err := Attach(trees[i], base, b.Kernel, b.Dir); err != nil {
			if errors.Is(err, ErrNoTarget) {
				continue
			}
			return bound, err
		}
		bound = append(bound, b.Kernel)
	}
	return bound, nil
}

// viewTargetBase returns the directory the view destinations are relative
// to inside the container's mount namespace: the rootfs before pivot_root
// (its /proc is the container's procfs), "/" after it (the rootfs path is
// gone then; only trusted when the hook entered the namespace itself).
func viewTargetBase(rootfs string, entered bool) (string, error) {
	var st unix.Statfs_t
	err := unix.Statfs(filepath.Join(rootfs, "proc"), &st)
	switch {
	case err == nil && st.Type == unix.PROC_SUPER_MAGIC:
		return rootfs, nil
	case err == nil:
		return "", fmt.Errorf("%s/proc is not a procfs yet: run the hook at createContainer or prestart, after the runtime mounted /proc", rootfs)
	case errors.Is(err, unix.ENOENT) && entered:
		if err := unix.Statfs("/proc", &st); err == nil && st.Type == unix.PROC_SUPER_MAGIC {
			return "/", nil
		}
	}
	return "", fmt.Errorf("cannot find the container's /proc (rootfs %s): %v", rootfs, err)
}
