package render

import (
	"slices"
	"time"
)

// Uptime renders proc/uptime: "<age of the container's init> <idle>\n",
// both in seconds with two decimals like the kernel. Idle is the sum of
// the per-CPU idle times of proc/stat over the visible CPUs (the kernel's
// idle column is also summed over CPUs, so it may exceed the age), so the
// two files always agree. Callers in the host pid namespace get the
// host's file.
func Uptime(dst []byte, in *Input) ([]byte, error) {
	if in.Container.HostNamespace && len(in.Host.Uptime) > 0 {
		// A copy: outputs never alias the Input, whose buffers the
		// FUSE layer recycles.
		return append(dst, in.Host.Uptime...), nil
	}
	age := uint64(ContainerUptime(&in.Container) / (time.Second / userHZ))
	var idle uint64
	var buf [64]cpuTicks
	visible := VisibleCPUs(in)
	if total, _, err := containerCPUTimes(in, visible, buf[:0]); err == nil {
		idle = total.Idle
	} else {
		// No CPU accounting: the age is still right, and with no usage
		// known every visible CPU counts as idle for the whole age.
		// proc/stat falls back to the host's file in this case.
		// TODO: idle cannot agree with a host-file stat fallback.
		idle = age * uint64(len(visible))
	}
	out := slices.Grow(dst, 48)
	out = appendCentis(out, age)
	out = append(out, ' ')
	out = appendCentis(out, idle)
	return append(out, '\n'), nil
}
