package render

import (
	"slices"
	"strconv"
)

// swapsHeader is the kernel's /proc/swaps header, byte for byte.
const swapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

// Swaps renders proc/swaps: the header only when the container has no
// swap, else one virtual line "none ... virtual SIZE USED 0" (LXCFS's
// filename and type) in the kernel's column layout, sizes in kB. The
// numbers are meminfo's SwapTotal and SwapTotal-SwapFree, so `swapon`,
// `free` and sysinfo(2) agree.
func Swaps(dst []byte, in *Input) ([]byte, error) {
	v, err := ComputeMemory(in)
	if err != nil {
		return nil, err
	}
	out := slices.Grow(dst, len(swapsHeader)+80)
	out = append(out, swapsHeader...)
	if v.SwapTotal == 0 {
		return out, nil
	}
	size := v.SwapTotal / 1024
	used := (v.SwapTotal - v.SwapFree) / 1024
	// Kernel: "%-40s%s\t%lu\t%s%lu\t%s%d\n" with an extra tab after
	// numbers below 10000000 to keep the columns.
	out = append(out, "none"...)
	out = appendSpaces(out, 40-len("none"))
	out = append(out, "virtual\t"...)
	out = strconv.AppendUint(out, size, 10)
	out = append(out, '\t')
	if size < 10000000 {
		out = append(out, '\t')
	}
	out = strconv.AppendUint(out, used, 10)
	out = append(out, '\t')
	if used < 10000000 {
		out = append(out, '\t')
	}
	return append(out, "0\n"...), nil
}
