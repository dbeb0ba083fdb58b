package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// openInitPidfd opens a pidfd on the container's init and checks it is still
// the process we created (same start time), so signals and waits can never
// reach a recycled pid.
func (c *Container) openInitPidfd() (int, error) {
	pid := c.st.Pid
	if pid <= 0 {
		return -1, fmt.Errorf("container %q has no init process", c.st.ID)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, fmt.Errorf("container %q: init process %d: %w", c.st.ID, pid, err)
	}
	if state, start, err := procStat(pid); err != nil || start != c.st.PidStartTime || state == 'Z' {
		unix.Close(fd)
		return -1, fmt.Errorf("container %q: init process %d is gone", c.st.ID, pid)
	}
	return fd, nil
}
