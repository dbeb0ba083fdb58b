package render

import (
	"slices"
	"strconv"
)

// CPUList renders sys/devices/system/cpu/{online,possible,present}:
// "0-(N-1)\n" for N visible CPUs, "0\n" for one. The visible CPUs are
// renumbered from 0 (as in cpuinfo and stat), so the list is always a
// single range.
func CPUList(dst []byte, in *Input) ([]byte, error) {
	n := len(VisibleCPUs(in))
	b := slices.Grow(dst, 16)
	b = append(b, '0')
	if n > 1 {
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(n-1), 10)
	}
	return append(b, '\n'), nil
}
