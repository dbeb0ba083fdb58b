package runtime

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Signal sends sig to the container's init (through a pidfd: never to a
// recycled pid), or with all to every process in its cgroup. A SIGKILL to a
// paused container also thaws it, or the processes could not die.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	status, err := c.checkStatus(OpKill)
	if err != nil {
		return err
	}
	if all {
		if err := c.signalAll(sig); err != nil {
			return err
		}
	} else {
		pidfd, err := c.openInitPidfd()
		if err != nil {
			return err
		}
		err = unix.PidfdSendSignal(pidfd, sig, nil, 0)
		unix.Close(pidfd)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %v: %w", sig, err)
		}
	}
	if status == Paused && sig == unix.SIGKILL {
		if cg, err := c.cgroup(); err == nil {
			return cg.Thaw()
		}
	}
	return nil
}

// signalAll signals every process in the container's cgroup.
func (c *Container) signalAll(sig unix.Signal) error {
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	pids, err := cg.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signal %v to %d: %w", sig, pid, err)
		}
	}
	return nil
}
