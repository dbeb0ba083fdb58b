package runtime

import "golang.org/x/sys/unix"

// Signal sends sig to the container's init, or with all to every process in
// its cgroup.
func (c *Container) Signal(sig unix.Signal, all bool) error {
	if _, err := c.checkStatus(OpKill); err != nil {
		return err
	}
	return errNotImplemented
}
