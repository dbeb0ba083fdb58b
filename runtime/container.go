package runtime

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Container is one container in the state root. Values come from Create
// (which also holds the foreground init's process) or Load.
type Container struct {
	rt  *Runtime
	dir string
	st  *persistedState
	cg  CgroupManager // cached by cgroup()

	// Foreground only (Create with Foreground: true): the caller is the
	// init's parent and reaps it in Wait.
	proc    *os.Process
	console *os.File
	waited  bool
	exit    int
}

// ID is the container's id.
func (c *Container) ID() string { return c.st.ID }

// Bundle is the bundle directory given at create time.
func (c *Container) Bundle() string { return c.st.Bundle }

// Rootfs is the absolute host path of the container's root filesystem.
func (c *Container) Rootfs() string { return c.st.Rootfs }

// Spec is the OCI configuration the container was created with (after
// Update, with the updated resources).
func (c *Container) Spec() *specs.Spec { return c.st.Spec }

// Pid is the host pid of the container's init (its PID 1), 0 if unknown.
func (c *Container) Pid() int { return c.st.Pid }

// Created is when Create started.
func (c *Container) Created() time.Time { return c.st.Created }

// CgroupPath is the container's cgroup, absolute from each hierarchy's root
// (the same path in every v1 hierarchy and in the v2 tree), e.g. /corral/ID.
func (c *Container) CgroupPath() string { return c.st.CgroupPath }

// Console is the pty master of a foreground container whose process has
// terminal: true and no console socket; the caller owns it (raw mode,
// copying, resizing, closing). nil otherwise.
func (c *Container) Console() *os.File { return c.console }

// State is the OCI state (what `corral state` prints) plus corral's extras.
type State struct {
	specs.State
	Rootfs     string    `json:"rootfs"`
	Created    time.Time `json:"created"`
	CgroupPath string    `json:"cgroupPath"`
	// OOMKilled: the kernel's OOM killer killed a process of this container
	// (the cgroup's oom_kill counter is non-zero).
	OOMKilled bool `json:"oomKilled,omitempty"`
	// Started is when the process was let run; Exit how it ended, when
	// the process that waited for it recorded that (RecordExit).
	Started *time.Time  `json:"started,omitempty"`
	Exit    *ExitRecord `json:"exit,omitempty"`
}

// Status is the container's live status, derived from the init process
// (alive, and the same process: pid + start time), the exec fifo (present
// until start) and the freezer.
func (c *Container) Status() (Status, error) {
	if !c.initAlive() {
		if c.st.Status == Creating && c.st.Pid == 0 {
			return Creating, nil
		}
		return Stopped, nil
	}
	if c.st.Status == Creating {
		return Creating, nil
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoFile)); err == nil {
		return Created, nil
	}
	cg, err := c.cgroup()
	if err == nil {
		if frozen, err := cg.Frozen(); err == nil && frozen {
			return Paused, nil
		}
	}
	return Running, nil
}

// State returns the OCI state of the container plus corral's extras.
func (c *Container) State() (*State, error) {
	s, err := c.Status()
	if err != nil {
		return nil, err
	}
	out := &State{
		State: specs.State{
			Version:     specs.Version,
			ID:          c.st.ID,
			Status:      specs.ContainerState(s),
			Bundle:      c.st.Bundle,
			Annotations: c.st.Spec.Annotations,
		},
		Rootfs:     c.st.Rootfs,
		Created:    c.st.Created,
		CgroupPath: c.st.CgroupPath,
	}
	if s != Stopped {
		out.Pid = c.st.Pid
	}
	if !c.st.Started.IsZero() {
		t := c.st.Started
		out.Started = &t
	}
	if c.st.Exit != nil {
		out.Exit = c.st.Exit
		out.OOMKilled = out.OOMKilled || c.st.Exit.OOMKilled
	}
	if cg, err := c.cgroup(); err == nil {
		if n, err := cg.OOMKills(); err == nil && n > 0 {
			out.OOMKilled = true
		}
	}
	return out, nil
}

// initAlive says whether the recorded init pid is still the same, living
// process: a zombie is dead, and a recycled pid has another start time.
func (c *Container) initAlive() bool {
	if c.st.Pid <= 0 {
		return false
	}
	if c.proc != nil && c.waited {
		return false
	}
	state, start, err := procStat(c.st.Pid)
	if err != nil {
		return false
	}
	return state != 'Z' && state != 'X' && start == c.st.PidStartTime
}

// procStat reads the state letter and the start time (clock ticks after
// boot, field 22) of /proc/PID/stat. The command name may hold spaces and
// parentheses, so fields are counted from the last ')'.
func procStat(pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 || i+2 >= len(data) {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := bytes.Fields(data[i+2:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(string(fields[19]), 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], start, nil
}

// checkStatus is the first line of every verb: the live status, validated
// against the transition table.
func (c *Container) checkStatus(op Op) (Status, error) {
	s, err := c.Status()
	if err != nil {
		return s, err
	}
	return s, CheckTransition(c.st.ID, s, op)
}

// ShortID keeps a generated 64-hex id readable (docker's 12 characters:
// `corral stats`, and the hostname of `corral run` without --name); a
// name is kept whole.
func ShortID(id string) string {
	if len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return id[:12]
	}
	return id
}
