package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"

	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

// containerInfo is what `corral inspect` prints of a container, and what
// `corral list` draws its columns from.
type containerInfo struct {
	ID         string        `json:"id"`
	Status     string        `json:"status"`
	Pid        int           `json:"pid,omitempty"`
	Image      string        `json:"image,omitempty"`
	Rootfs     string        `json:"rootfs"`
	Bundle     string        `json:"bundle"`
	Command    []string      `json:"command"`
	Env        []string      `json:"env"`
	WorkingDir string        `json:"workingDir"`
	User       string        `json:"user"`
	Hostname   string        `json:"hostname,omitempty"`
	Limits     limitsInfo    `json:"limits"`
	Created    time.Time     `json:"created"`
	Started    *time.Time    `json:"started,omitempty"`
	Finished   *time.Time    `json:"finished,omitempty"`
	ExitCode   *int          `json:"exitCode,omitempty"`
	OOMKilled  bool          `json:"oomKilled"`
	CgroupPath string        `json:"cgroupPath"`
	Log        string        `json:"log,omitempty"`
	Mounts     []specs.Mount `json:"mounts"`
}

// limitsInfo is the container's resource limits as the user gave them.
type limitsInfo struct {
	MemoryBytes int64   `json:"memoryBytes,omitempty"`
	SwapBytes   int64   `json:"memorySwapBytes,omitempty"` // memory+swap, as --memory-swap
	CPUs        float64 `json:"cpus,omitempty"`
	CpusetCPUs  string  `json:"cpusetCpus,omitempty"`
	PidsLimit   int64   `json:"pidsLimit,omitempty"`
}

func limitsOf(s *specs.Spec) limitsInfo {
	var l limitsInfo
	if s.Linux == nil || s.Linux.Resources == nil {
		return l
	}
	r := s.Linux.Resources
	if m := r.Memory; m != nil {
		if m.Limit != nil && *m.Limit > 0 {
			l.MemoryBytes = *m.Limit
		}
		if m.Swap != nil && *m.Swap > 0 {
			l.SwapBytes = *m.Swap
		}
	}
	if c := r.CPU; c != nil {
		if c.Quota != nil && *c.Quota > 0 && c.Period != nil && *c.Period > 0 {
			l.CPUs = float64(*c.Quota) / float64(*c.Period)
		}
		l.CpusetCPUs = c.Cpus
	}
	if r.Pids != nil && r.Pids.Limit != nil && *r.Pids.Limit > 0 {
		l.PidsLimit = *r.Pids.Limit
	}
	return l
}

// String is the LIMITS column of list: "mem=256MiB cpus=0.5 pids=100".
func (l limitsInfo) String() string {
	var parts []string
	if l.MemoryBytes > 0 {
		parts = append(parts, "mem="+binarySize(uint64(l.MemoryBytes)))
	}
	if l.CPUs > 0 {
		parts = append(parts, "cpus="+strconv.FormatFloat(l.CPUs, 'f', -1, 64))
	}
	if l.CpusetCPUs != "" {
		parts = append(parts, "cpuset="+l.CpusetCPUs)
	}
	if l.PidsLimit > 0 {
		parts = append(parts, "pids="+strconv.FormatInt(l.PidsLimit, 10))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

// memoryLimitNote is " (memory limit 256MiB)" for messages, "" without one.
func memoryLimitNote(s *specs.Spec) string {
	if l := limitsOf(s); l.MemoryBytes > 0 {
		return " (memory limit " + binarySize(uint64(l.MemoryBytes)) + ")"
	}
	return ""
}

func inspectContainer(rt *runtime.Runtime, c *runtime.Container) (*containerInfo, error) {
	st, err := c.State()
	if err != nil {
		return nil, err
	}
	s := c.Spec()
	info := &containerInfo{
		ID: c.ID(), Status: string(st.Status), Pid: st.Pid, Rootfs: c.Rootfs(), Bundle: c.Bundle(),
		Hostname: s.Hostname, Limits: limitsOf(s), Created: c.Created(), Started: st.Started,
		OOMKilled: st.OOMKilled, CgroupPath: c.CgroupPath(), Mounts: s.Mounts, Command: []string{}, Env: []string{},
	}
	if s.Annotations != nil {
		info.Image = s.Annotations[runspec.ImageAnnotation]
	}
	if p := s.Process; p != nil {
		info.Command, info.Env, info.WorkingDir = p.Args, p.Env, p.Cwd
		info.User = strconv.FormatUint(uint64(p.User.UID), 10) + ":" + strconv.FormatUint(uint64(p.User.GID), 10)
	}
	if e := st.Exit; e != nil {
		code, fin := e.Code, e.Finished
		info.ExitCode, info.Finished = &code, &fin
	}
	if _, err := os.Stat(detachLogPath(rt, c.ID())); err == nil {
		info.Log = detachLogPath(rt, c.ID())
	}
	return info, nil
}

func init() {
	rootCmd.AddCommand(&cobra.Command{
		Use:   "inspect ID...",
		Short: "print a container's state, configuration, limits and how it ended, as JSON",
		Long: `Print, as a JSON array with one object per container: status and pid,
the image (or root) and bundle, command, environment, working directory,
user, limits, creation, start and end times, the exit code and whether
the kernel's OOM killer struck (recorded for 'corral run' containers,
detached ones included), the cgroup, the log of a detached container and
the mounts.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt := newRuntime()
			out := []*containerInfo{}
			var errs []error
			for _, id := range args {
				c, err := rt.Load(id)
				if err == nil {
					var info *containerInfo
					if info, err = inspectContainer(rt, c); err == nil {
						out = append(out, info)
						continue
					}
				}
				errs = append(errs, err)
			}
			if err := printJSON(out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	})
}

// statusColumn is list's STATUS: "running", "exited (137, OOM killed)".
func statusColumn(info *containerInfo) string {
	if info.Status != string(runtime.Stopped) || info.ExitCode == nil {
		return info.Status
	}
	s := fmt.Sprintf("exited (%d", *info.ExitCode)
	if info.OOMKilled {
		s += ", OOM killed"
	}
	return s + ")"
}
