package runtime

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// timeOffsets are a time namespace's clock offsets (CLOCK_MONOTONIC and
// CLOCK_BOOTTIME; the only two the kernel offsets).
type timeOffsets struct {
	MonoSec, BootSec   int64
	MonoNsec, BootNsec int64 // 0..999999999
}

// bootNowOffsets makes both clocks read (about) zero in the new namespace:
// the container "just booted", so /proc/uptime, sysinfo(2).uptime and ps
// start times agree. The kernel refuses offsets that make a clock
// negative, and the clocks move on between now and the write, so
// -(now) is always accepted.
func bootNowOffsets() (timeOffsets, error) {
	var mono, boot unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return timeOffsets{}, err
	}
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot); err != nil {
		return timeOffsets{}, err
	}
	o := timeOffsets{}
	o.MonoSec, o.MonoNsec = negate(mono.Sec, mono.Nsec)
	o.BootSec, o.BootNsec = negate(boot.Sec, boot.Nsec)
	return o, nil
}

// negate returns -(sec + nsec/1e9) as seconds and non-negative nanoseconds.
func negate(sec, nsec int64) (int64, int64) {
	if nsec == 0 {
		return -sec, 0
	}
	return -sec - 1, 1e9 - nsec
}

// specTimeOffsets takes linux.timeOffsets from the spec when present; else
// the container boots now.
func specTimeOffsets(l *specs.Linux) (timeOffsets, error) {
	if l == nil || len(l.TimeOffsets) == 0 {
		return bootNowOffsets()
	}
	var o timeOffsets
	for clock, v := range l.TimeOffsets {
		switch clock {
		case "monotonic":
			o.MonoSec, o.MonoNsec = v.Secs, int64(v.Nanosecs)
		case "boottime":
			o.BootSec, o.BootNsec = v.Secs, int64(v.Nanosecs)
		default:
			return o, fmt.Errorf("config: linux.timeOffsets: unknown clock %q (monotonic or boottime)", clock)
		}
	}
	return o, nil
}

// write sets the offsets of the calling thread's time_for_children
// namespace (it must not have had a process yet). The file exists only in
// /proc/PID, not /proc/PID/task/TID, and acts on that pid's task: the
// thread is addressed as /proc/TID (lookups of thread ids work there).
// text is what timens_offsets takes.
func (o timeOffsets) text() string {
	return fmt.Sprintf("monotonic %d %d\nboottime %d %d\n", o.MonoSec, o.MonoNsec, o.BootSec, o.BootNsec)
}

func (o timeOffsets) write() error {
	data := o.text()
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/timens_offsets", unix.Gettid()), os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("time namespace offsets: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(data); err != nil {
		return fmt.Errorf("time namespace offsets %q: %w", data, err)
	}
	return nil
}

// readTimeOffsets reads a process's time namespace offsets (an exec joins
// the container's clocks by copying them, see exec.go).
func readTimeOffsets(pid int) (timeOffsets, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", pid))
	if err != nil {
		return timeOffsets{}, err
	}
	var o timeOffsets
	var name string
	var s, ns int64
	rest := string(data)
	for rest != "" {
		var line string
		line, rest, _ = cut(rest, '\n')
		if line == "" {
			continue
		}
		if _, err := fmt.Sscanf(line, "%s %d %d", &name, &s, &ns); err != nil {
			return o, fmt.Errorf("parse timens_offsets %q: %w", line, err)
		}
		switch name {
		case "monotonic":
			o.MonoSec, o.MonoNsec = s, ns
		case "boottime":
			o.BootSec, o.BootNsec = s, ns
		}
	}
	return o, nil
}

func cut(s string, sep byte) (before, after string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
