package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Start lets a created container's init exec the user's process: the init
// is blocked opening the exec fifo for writing; opening it for reading
// releases it, and the byte it writes says it got past the open.
func (c *Container) Start() error {
	if _, err := c.checkStatus(OpStart); err != nil {
		return err
	}
	pidfd, err := c.openInitPidfd()
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	fifoPath := filepath.Join(c.dir, fifoFile)
	// Non-blocking open: a blocking one would hang forever if the init died.
	fd, err := unix.Open(fifoPath, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("container %q was already started", c.st.ID)
		}
		return fmt.Errorf("open exec fifo: %w", err)
	}
	defer unix.Close(fd)
	// Wait for the init's byte, or for the init to die (its pidfd becomes
	// readable). A fifo that never had a writer does not report POLLHUP,
	// so there is no busy loop here.
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("wait for container init: %w", err)
		}
		if fds[0].Revents&(unix.POLLIN|unix.POLLHUP) != 0 {
			break
		}
		if fds[1].Revents != 0 {
			return fmt.Errorf("container %q: init exited before start", c.st.ID)
		}
	}
	buf := make([]byte, 1)
	n, err := unix.Read(fd, buf)
	if err != nil || n != 1 || buf[0] != '0' {
		return fmt.Errorf("container %q: init did not confirm start (read %d bytes: %v)", c.st.ID, n, err)
	}
	// Then for EOF: the init's end closes at its execve (or its death).
	// Until then the container's tasks are our init's threads, and a
	// pause issued right after start could freeze them mid-execve (see
	// init.go).
	waitFifoEOF(fd)
	// Without the fifo the container counts as running.
	if err := os.Remove(fifoPath); err != nil {
		return fmt.Errorf("remove exec fifo: %w", err)
	}
	c.st.Started = time.Now().UTC()
	if err := writeState(c.dir, c.st); err != nil {
		c.rt.log().Warn("record start time", "id", c.st.ID, "err", err)
	}
	if h := c.st.Spec.Hooks; h != nil {
		// The process runs: a failing poststart hook is only reported.
		if err := runHooks("poststart", h.Poststart, c.hookState(specs.StateRunning)); err != nil {
			c.rt.log().Warn(err.Error(), "id", c.st.ID)
		}
	}
	return nil
}

// waitFifoEOF reads the exec fifo (non-blocking) until its writer is gone.
func waitFifoEOF(fd int) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	buf := make([]byte, 16)
	for {
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return
		}
		n, err := unix.Read(fd, buf)
		if n == 0 && err == nil {
			return // EOF
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			return
		}
	}
}
