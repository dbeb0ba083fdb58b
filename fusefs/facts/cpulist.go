package facts

import (
	"fmt"
	"slices"
	"strconv"
)

// MaxCPUs bounds the CPU numbers a list may name, so a corrupt or hostile
// "0-4294967295" cannot make a reader allocate gigabytes (the kernel's
// NR_CPUS limit is 8192).
const MaxCPUs = 1 << 16

// ParseCPUList parses a kernel CPU list such as "0-3,5,7-8\n" (the format
// of /sys/devices/system/cpu/online, cpuset.cpus and --cpuset-cpus) into
// ascending, de-duplicated CPU numbers. Blank or empty input gives nil:
// an empty cpuset file is valid and means "inherit". Callers for which
// empty is an error (a command-line flag) check for nil themselves.
//
// It runs on every read of several views, so it allocates the result once
// and no strings.
func ParseCPUList(b []byte) ([]int, error) {
	b = TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] == ',' {
		return nil, fmt.Errorf("CPU list %q: trailing comma", b)
	}
	n, sorted := 0, true
	last := -1
	for rest := b; len(rest) > 0; {
		var item []byte
		item, rest = Cut(rest, ',')
		lo, hi, err := parseCPURange(b, item)
		if err != nil {
			return nil, err
		}
		if n += hi - lo + 1; n > MaxCPUs {
			return nil, fmt.Errorf("CPU list %q: more than %d CPUs", b, MaxCPUs)
		}
		if lo <= last {
			sorted = false
		}
		last = hi
	}
	out := make([]int, 0, n)
	for rest := b; len(rest) > 0; {
		var item []byte
		item, rest = Cut(rest, ',')
		lo, hi, _ := parseCPURange(b, item)
		for c := lo; c <= hi; c++ {
			out = append(out, c)
		}
	}
	if !sorted { // hand-written lists ("3,0-1,1"); the kernel's are ascending
		out = sortUnique(out)
	}
	return out, nil
}

func parseCPURange(list, item []byte) (lo, hi int, err error) {
	a, z := Cut(item, '-')
	l, ok := atoi(a)
	if !ok {
		return 0, 0, fmt.Errorf("CPU list %q: %q is not a CPU number", list, a)
	}
	h := l
	if z != nil {
		if h, ok = atoi(z); !ok || h < l {
			return 0, 0, fmt.Errorf("CPU list %q: bad range %q", list, item)
		}
	}
	if h >= MaxCPUs {
		return 0, 0, fmt.Errorf("CPU list %q: CPU %d out of range", list, h)
	}
	return l, h, nil
}

// AppendCPUList formats ascending CPU numbers the kernel's way: "0-2,5".
func AppendCPUList(b []byte, cpus []int) []byte {
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(cpus[i]), 10)
		if j > i {
			b = append(b, '-')
			b = strconv.AppendInt(b, int64(cpus[j]), 10)
		}
		i = j + 1
	}
	return b
}

// atoi parses a small non-negative decimal number without allocating.
func atoi(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 9 {
		return 0, false
	}
	v := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

// sortUnique sorts and drops duplicates.
func sortUnique(s []int) []int {
	slices.Sort(s)
	return slices.Compact(s)
}
