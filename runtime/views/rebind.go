package views

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// Recovery after corralfs lost its connection (its supervisor died
// without systemd's fd store): every running container's view mounts are
// binds of the dead connection's superblock, and answer "Transport
// endpoint is not connected" for good. LXCFS users restart their
// containers. corralfs, once mounted again, binds its fresh files over
// the dead ones instead: it knows the dead superblock's device number
// (PrepareMountpoint found it at the mount point), finds its binds in
// every mount namespace through /proc/PID/mountinfo, and replaces each
// with the same file of the new mount.

// RebindReport says what RebindDead did.
type RebindReport struct {
	Namespaces int     // mount namespaces that held binds of a dead superblock
	Views      int     // binds replaced
	Errors     []error // what could not be replaced (the rest went on)
}

// deadBind is one bind of a dead superblock in one mount namespace.
type deadBind struct {
	target string // where it is mounted, as the namespace's root sees it
	root   string // which file or directory of the file system, e.g. "/proc/meminfo"
}

// RebindDead replaces, in every mount namespace on the host, each mount
// whose superblock is one of dead (unix.Mkdev of mountinfo's major:minor)
// with the file at the same path below dir, the live corralfs mount.
func RebindDead(dir string, dead []uint64) RebindReport {
	var rep RebindReport
	if len(dead) == 0 {
		return rep
	}
	byNS, err := findDeadBinds("/proc", dead)
	if err != nil {
		rep.Errors = append(rep.Errors, err)
	}
	for nsPath, binds := range byNS {
		rep.Namespaces++
		done := make(chan rebindResult, 1)
		// A goroutine of its own: its thread enters the namespace and
		// dies with it (EnterMountNS).
		go func() { done <- rebindIn(nsPath, dir, binds) }()
		r := <-done
		rep.Views += r.views
		rep.Errors = append(rep.Errors, r.errs...)
	}
	return rep
}

// findDeadBinds reads every process's mountinfo once per mount namespace
// and returns the binds of dead superblocks by a /proc/PID/ns/mnt path of
// their namespace. Processes that vanish meanwhile are skipped.
func findDeadBinds(proc string, dead []uint64) (map[string][]deadBind, error) {
	isDead := map[uint64]bool{}
	for _, d := range dead {
		isDead[d] = true
	}
	entries, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := map[string][]deadBind{}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		nsPath := filepath.Join(proc, e.Name(), "ns", "mnt")
		ns, err := os.Readlink(nsPath)
		if err != nil || seen[ns] {
			continue
		}
		seen[ns] = true
		f, err := os.Open(filepath.Join(proc, e.Name(), "mountinfo"))
		if err != nil {
			continue
		}
		ms, err := mountinfo.GetMountsFromReader(f, func(i *mountinfo.Info) (bool, bool) {
			return !isDead[unix.Mkdev(uint32(i.Major), uint32(i.Minor))], false
		})
		f.Close()
		if err != nil {
			continue
		}
		for _, m := range ms {
			// Only views: binds of a file or directory below the file
			// system's root. A mount of its root is a mount point of
			// the daemon itself (another copy of the stale mount, e.g.
			// propagated to a peer), never a container's view: replacing
			// it would detach what the new daemon just mounted there.
			if m.Root == "/" {
				continue
			}
			out[nsPath] = append(out[nsPath], deadBind{target: m.Mountpoint, root: m.Root})
		}
	}
	return out, nil
}

type rebindResult struct {
	views int
	errs  []error
}

// rebindIn replaces binds in the namespace at nsPath. It locks its OS
// thread for good (EnterMountNS): run it on a goroutine of its own.
func rebindIn(nsPath, dir string, binds []deadBind) (r rebindResult) {
	goruntime.LockOSThread() // never unlocked: the thread ends in the container's namespace
	fail := func(err error) { r.errs = append(r.errs, fmt.Errorf("%s: %w", nsPath, err)) }
	// Clone the fresh views here, before leaving our namespace.
	trees := make([]int, len(binds))
	dirs := make([]bool, len(binds))
	for i, b := range binds {
		trees[i] = -1
		src := filepath.Join(dir, b.root)
		fi, err := os.Stat(src)
		if err != nil {
			fail(fmt.Errorf("the live view %s: %w", src, err))
			continue
		}
		dirs[i] = fi.IsDir()
		if trees[i], err = CloneView(src); err != nil {
			fail(err)
		}
	}
	defer func() {
		for _, fd := range trees {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}()
	if err := EnterMountNS(nsPath); err != nil {
		fail(err)
		return r
	}
	for i, b := range binds {
		if trees[i] < 0 {
			continue
		}
		// The dead mount first: its own root cannot be opened (ENOTCONN),
		// and what it covered (the namespace's own /proc file) is what
		// Attach checks the view's kind against.
		if err := unix.Unmount(b.target, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			fail(fmt.Errorf("detaching the dead view at %s: %w", b.target, err))
			continue
		}
		if err := Attach(trees[i], "/", b.target, dirs[i]); err != nil {
			fail(err)
			continue
		}
		r.views++
	}
	return r
}
