package main

import (
	"strconv"
	"time"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
)

// The worker protocol itself (descriptors, handshake, restarts) is
// fusefs/survival's; what corralfs tells its workers about the daemon
// travels in its EnvInfo variable as this JSON.

// workerInfo is what the supervisor tells a worker about the daemon, for
// `corralfs status`.
type workerInfo struct {
	SupervisorPid     int       `json:"supervisor_pid"`
	SupervisorStarted time.Time `json:"supervisor_started"`
	Mountpoint        string    `json:"mountpoint"`
	Restarts          int       `json:"restarts"`
	Upgrades          int       `json:"upgrades"`
	Unresponsive      int       `json:"unresponsive"` // workers the liveness check replaced
	Resend            string    `json:"resend"`
	Relay             bool      `json:"relay"`
	Control           bool      `json:"control"`
	// SupervisorBuild: the supervisor's own build (it is not upgraded by a
	// reload; only workers are).
	SupervisorBuild buildinfo.Info `json:"supervisor_build"`
}

func itoa(i int) string { return strconv.Itoa(i) }
