package main

import (
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// The liveness check (issue 11, fusefs/survival/liveness.go): the
// supervisor reads a view through the mount itself, the way a container
// does; a read left unanswered for --liveness-timeout gets the worker
// killed and replaced.

const defaultLivenessTimeout = 10 * time.Second

// probeView is what the probe reads: small, and computed by the same path
// as every view.
const probeView = "proc/uptime"

// probeMount reads probeView through the mount; it returns once the
// worker answered (an error is an answer too: the worker is alive).
func (s *supervisor) probeMount() {
	fd, err := unix.Open(filepath.Join(s.mp, probeView), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var buf [256]byte
	_, _ = unix.Read(fd, buf[:])
	unix.Close(fd)
}
