package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// userHZ is the unit of /proc/stat times (USER_HZ, 100 on every Linux ABI).
const userHZ = 100

const nsPerTick = uint64(time.Second / userHZ)

// cpuTicks is one cpu line of /proc/stat, in USER_HZ ticks. The columns we
// do not know for a cgroup (nice, iowait, irq, softirq, steal, guest,
// guest_nice) are 0: cgroups account user and system time only.
type cpuTicks struct {
	User, System, Idle uint64
}

var errNoCPUAcct = errors.New("cpu accounting unavailable")

// containerCPUTimes splits the container's CPU time over its visible CPUs
// (renumbered from 0) and derives each one's idle time, so that top's
// percentages are the container's own:
//
//	idle(cpu i) = elapsed - used(cpu i), never below 0
//
// where elapsed is the container's age (the host's uptime for callers in
// the host pid namespace). Usage on host CPUs the container cannot see
// (outside its cpuset now, or cut by the quota view) is spread evenly over
// the visible ones, so the cpu lines always add up to the cgroup's total.
// The returned total is the exact sum of the per-CPU lines.
//
// perCPU is reused when it has room; pass nil to allocate.
func containerCPUTimes(in *Input, visible []int, perCPU []cpuTicks) (total cpuTicks, _ []cpuTicks, _ error) {
	// Only the usage counters matter here; an unreadable quota ("cpu")
	// or cpuset just means no cut, handled by VisibleCPUs.
	if err, missing := in.Snap.Missing[cgroupreader.GroupCPUAcct]; missing {
		return total, nil, fmt.Errorf("%w: %v", errNoCPUAcct, err)
	}
	c := &in.Snap.CPU
	n := len(visible)
	perCPU = append(perCPU[:0], make([]cpuTicks, n)...)

	userTotal, sysTotal := c.UsageUser/nsPerTick, c.UsageSystem/nsPerTick
	var userSeen, sysSeen uint64
	if c.PerCPU != nil {
		for i, h := range visible {
			if h < len(c.PerCPU) {
				perCPU[i].User = c.PerCPU[h].User / nsPerTick
				perCPU[i].System = c.PerCPU[h].System / nsPerTick
				userSeen += perCPU[i].User
				sysSeen += perCPU[i].System
			}
		}
	}
	// The rest (all of it without per-CPU data, as on cgroup v2) is
	// spread evenly; the first CPUs take the remainder so sums are exact.
	spread(perCPU, userTotal-min(userSeen, userTotal), func(t *cpuTicks) *uint64 { return &t.User })
	spread(perCPU, sysTotal-min(sysSeen, sysTotal), func(t *cpuTicks) *uint64 { return &t.System })

	elapsed := uint64(ContainerUptime(&in.Container)) / nsPerTick
	for i := range perCPU {
		t := &perCPU[i]
		used := t.User + t.System
		t.Idle = elapsed - min(used, elapsed)
		total.User += t.User
		total.System += t.System
		total.Idle += t.Idle
	}
	return total, perCPU, nil
}

func spread(cpus []cpuTicks, amount uint64, col func(*cpuTicks) *uint64) {
	n := uint64(len(cpus))
	if n == 0 || amount == 0 {
		return
	}
	each, extra := amount/n, amount%n
	for i := range cpus {
		add := each
		if uint64(i) < extra {
			add++
		}
		*col(&cpus[i]) += add
	}
}

// ContainerUptime is the uptime the container sees (proc/uptime's first
// number; the sysinfo agent's uptime): the age of its init, or the host's
// uptime for callers in the host pid namespace. Never negative.
func ContainerUptime(c *Container) time.Duration {
	if c.HostNamespace {
		return max(c.Now, 0)
	}
	return max(c.Now-c.InitStart, 0)
}

// Stat renders proc/stat: a "cpu" line and one "cpuN" line per visible CPU
// (renumbered from 0) from the container's own CPU time, then the host's
// other lines with the container's where the kernel makes that possible:
//
//   - procs_running / procs_blocked: the sampler's counts for the
//     container when it has seen the container (else the host's).
//   - btime stays the host's: ps computes process start times as btime +
//     starttime from /proc/PID/stat, which is counted from host boot, so
//     a container btime would make every start time wrong.
//   - processes (forks since boot) stays the host's: the kernel keeps no
//     per-cgroup fork count, and vmstat only uses its rate.
//   - intr, ctxt, softirq stay the host's: not accounted per cgroup.
func Stat(dst []byte, in *Input) ([]byte, error) {
	visible := VisibleCPUs(in)
	var buf [64]cpuTicks
	total, perCPU, err := containerCPUTimes(in, visible, buf[:0])
	if err != nil {
		return nil, err
	}
	host := in.Host.Stat
	out := slices.Grow(dst, len(host)+64*(len(visible)+1))
	out = appendCPULine(out, -1, total)
	for i, t := range perCPU {
		out = appendCPULine(out, i, t)
	}
	load := &in.Container.Load
	for len(host) > 0 {
		var line []byte
		line, host = facts.NextLine(host)
		switch {
		case bytes.HasPrefix(line, []byte("cpu")):
			continue // replaced above
		case load.Known && bytes.HasPrefix(line, []byte("procs_running ")):
			out = append(out, "procs_running "...)
			out = strconv.AppendInt(out, int64(max(load.Running, 0)), 10)
		case load.Known && bytes.HasPrefix(line, []byte("procs_blocked ")):
			out = append(out, "procs_blocked "...)
			out = strconv.AppendInt(out, int64(max(load.Blocked, 0)), 10)
		default:
			out = append(out, line...)
		}
		out = append(out, '\n')
	}
	return out, nil
}

// appendCPULine writes "cpu  u n s i w x y z g gn" (n < 0: the aggregate
// line, which the kernel pads with two spaces) or "cpuN ...".
func appendCPULine(b []byte, n int, t cpuTicks) []byte {
	if n < 0 {
		b = append(b, "cpu  "...)
	} else {
		b = append(b, "cpu"...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, ' ')
	}
	b = strconv.AppendUint(b, t.User, 10)
	b = append(b, " 0 "...)
	b = strconv.AppendUint(b, t.System, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, t.Idle, 10)
	return append(b, " 0 0 0 0 0 0\n"...)
}
