package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/corral-dev/corral/runtime/image/containerroot"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Delete removes a stopped (or created, never started) container: any
// process left in its cgroup, the cgroup, and the state directory. force
// also deletes a running or paused one, killing it first. Mounts need no
// cleanup: they live in the container's mount namespace, which goes away
// with its last process (without one, they are below the runtime's bind
// of the rootfs, detached here).
func (c *Container) Delete(force bool) error {
	op := OpDelete
	if force {
		op = OpForce
	}
	status, err := c.checkStatus(op)
	if err != nil {
		return err
	}
	cg, cgErr := c.cgroup()
	if status == Paused && cgErr == nil {
		cg.Thaw() // frozen processes cannot die
	}
	if status != Stopped {
		if pidfd, err := c.openInitPidfd(); err == nil {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			waitPidfd(pidfd)
			unix.Close(pidfd)
		}
	}
	if c.proc != nil && !c.waited {
		c.Wait() // we are the init's parent: reap it
	}
	if cgErr == nil {
		if err := c.emptyCgroup(cg); err != nil {
			return err
		}
		if err := deleteCgroup(cg); err != nil {
			return err
		}
	}
	// Before RemoveAll: it must never descend into a bound rootfs.
	if err := releaseSharedRootfs(c.dir); err != nil {
		return err
	}
	// The image root goes before the state: a failure here leaves the
	// container listed, so a second delete can finish the job.
	if c.st.ImageRoot != "" {
		if err := containerroot.Release(c.st.ImageRoot); err != nil {
			return fmt.Errorf("container %q: release the image root: %w", c.st.ID, err)
		}
	}
	if err := removeStateDir(c.dir, c.st.ID); err != nil {
		return err
	}
	if h := c.st.Spec.Hooks; h != nil {
		if err := runHooks("poststop", h.Poststop, c.hookState(specs.StateStopped)); err != nil {
			c.rt.log().Warn(err.Error(), "id", c.st.ID)
		}
	}
	return nil
}

// removeStateDir moves the state directory aside before removing it: a
// detached container's monitor records the exit (writeState, by path)
// the moment delete --force kills the init, and a file it created
// midway would make the removal fail or bring the container back. After
// the rename its writes find no directory. The name is no valid id, so
// List never sees it.
func removeStateDir(dir, id string) error {
	tomb := filepath.Join(filepath.Dir(dir), "~deleting-"+id)
	os.RemoveAll(tomb) // an earlier delete that failed midway
	if err := os.Rename(dir, tomb); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove state: %w", err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

// RemoveStale is `delete --force` for an id whose state directory exists
// but holds no readable state: what a create killed between the mkdir that
// claims the id and the first state write leaves (issue 11: the name then
// stayed taken). Nothing else can exist yet at that point: the state is
// written before any cgroup or process is made, so the directory is all
// there is. It reports whether there was such a directory.
func (r *Runtime) RemoveStale(id string) (bool, error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	dir := r.stateDir(id)
	if _, err := os.Lstat(dir); err != nil {
		return false, nil
	}
	if _, err := readState(dir); err == nil {
		return false, nil // a real container: Load + Delete handle it
	}
	if err := os.RemoveAll(dir); err != nil {
		return true, fmt.Errorf("remove stale state of %q: %w", id, err)
	}
	return true, nil
}

// waitPidfd waits (bounded) for the process to exit.
func waitPidfd(pidfd int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, 10000)
		if err != unix.EINTR {
			return
		}
	}
}

// emptyCgroup SIGKILLs whatever is left in the cgroup (processes that were
// outside the container's pid namespace, or not yet reaped) until it is
// empty.
func (c *Container) emptyCgroup(cg CgroupManager) error {
	deadline := time.Now().Add(10 * time.Second)
	delay := 100 * time.Microsecond
	for {
		pids, err := cg.Pids()
		if err != nil || len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("container %q: processes %v survive SIGKILL", c.st.ID, pids)
		}
		time.Sleep(delay)
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}

// deleteCgroup removes the cgroup, retrying briefly: the kernel may still
// be tearing down the last exited task (EBUSY).
func deleteCgroup(cg CgroupManager) error {
	delay := 100 * time.Microsecond
	for i := 0; ; i++ {
		err := cg.Delete()
		if err == nil || !errors.Is(err, unix.EBUSY) || i > 50 {
			return err
		}
		time.Sleep(delay)
		if delay < 20*time.Millisecond {
			delay *= 2
		}
	}
}
