package render

import (
	"math"
	"slices"
	"strconv"
)

// Loadavg renders proc/loadavg in the kernel's format,
// "1.00 0.50 0.25 running/total lastpid\n", from the sampler's load for the
// container.
//
// Before the sampler has seen the container (!Load.Known: the first read
// starts sampling), the averages are 0.00: that is what a fresh kernel
// shows too, and it is the honest start of an average that has no history
// yet. running/total/lastpid are whatever the sampler already counted,
// with at least "1/1" because the reading process itself is running.
func Loadavg(dst []byte, in *Input) ([]byte, error) {
	l := &in.Container.Load
	out := slices.Grow(dst, 64)
	for i, a := range l.Avg {
		if i > 0 {
			out = append(out, ' ')
		}
		if !l.Known {
			a = 0
		}
		out = appendCentis(out, LoadCentis(a))
	}
	running, total := l.Running, l.Total
	if !l.Known {
		running, total = max(running, 1), max(total, 1)
	}
	total = max(total, running)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(max(running, 0)), 10)
	out = append(out, '/')
	out = strconv.AppendInt(out, int64(max(total, 0)), 10)
	out = append(out, ' ')
	out = strconv.AppendInt(out, int64(max(l.LastPid, 0)), 10)
	return append(out, '\n'), nil
}

// LoadCentis converts a load average to hundredths, rounded to nearest the
// way the kernel does (get_avenrun adds FIXED_1/200 before truncating).
// The sysinfo agent uses the same rounding so both agree to two decimals.
func LoadCentis(avg float64) uint64 {
	if !(avg > 0) || math.IsInf(avg, 0) {
		return 0
	}
	return uint64(avg*100 + 0.5)
}
