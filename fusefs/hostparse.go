package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Small, allocation-free helpers for the host's /proc text. They run on
// every read, so they work on []byte in place instead of splitting into
// strings.

// nextLine splits b at the first '\n': line excludes the newline, rest
// starts after it. A last line without a newline is returned whole.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i], b[i+1:]
	}
	return b, nil
}

// parseUint parses a decimal number, ignoring leading and trailing blanks.
func parseUint(b []byte) (uint64, bool) {
	b = trimBlanks(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // overflow
		}
		v = v*10 + d
	}
	return v, true
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func trimBlanks(b []byte) []byte {
	for len(b) > 0 && isBlank(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// field returns the i-th (0-based) blank-separated field of line, or nil.
func field(line []byte, i int) []byte {
	start, end := fieldBounds(line, i)
	if start < 0 {
		return nil
	}
	return line[start:end]
}

// fieldBounds returns the byte offsets of the i-th (0-based)
// blank-separated field of line, or -1, -1 when there is none.
func fieldBounds(line []byte, i int) (start, end int) {
	p := 0
	for {
		for p < len(line) && isBlank(line[p]) {
			p++
		}
		if p == len(line) {
			return -1, -1
		}
		start = p
		for p < len(line) && !isBlank(line[p]) {
			p++
		}
		if i == 0 {
			return start, p
		}
		i--
	}
}

// countFields counts the blank-separated fields of line.
func countFields(line []byte) int {
	n, in := 0, false
	for _, c := range line {
		if isBlank(c) {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}

// meminfoKB parses the value of a "Name:   123 kB" line (the " kB" suffix
// is optional, as in HugePages_Total) into a number of kB.
func meminfoKB(value []byte) (uint64, bool) {
	value = trimBlanks(value)
	value = bytes.TrimSuffix(value, []byte("kB"))
	return parseUint(value)
}

// hostMemory is what the memory views need from the host's /proc/meminfo,
// in bytes.
type hostMemory struct {
	Total, SwapTotal, SwapFree uint64
}

var errHostMeminfo = errors.New("host /proc/meminfo has no MemTotal")

// parseHostMemory reads MemTotal, SwapTotal and SwapFree from the host's
// /proc/meminfo text.
func parseHostMemory(b []byte) (hostMemory, error) {
	var h hostMemory
	var haveTotal bool
	found := 0
	for len(b) > 0 && found < 3 { // the three come early in the file: stop there
		var line []byte
		line, b = nextLine(b)
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		var dst *uint64
		switch string(line[:colon]) {
		case "MemTotal":
			dst, haveTotal = &h.Total, true
		case "SwapTotal":
			dst = &h.SwapTotal
		case "SwapFree":
			dst = &h.SwapFree
		default:
			continue
		}
		v, ok := meminfoKB(line[colon+1:])
		if !ok {
			return hostMemory{}, fmt.Errorf("host /proc/meminfo: bad line %q", line)
		}
		*dst = v * 1024
		found++
	}
	if !haveTotal {
		return hostMemory{}, errHostMeminfo
	}
	return h, nil
}

// ParseCPUList parses a kernel CPU list such as "0-3,5,7-8\n" (the format
// of /sys/devices/system/cpu/online and cpuset.cpus) into sorted,
// de-duplicated CPU numbers. An empty list gives nil.
func ParseCPUList(b []byte) ([]int, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	var cpus []int
	for _, part := range bytes.Split(b, []byte(",")) {
		lo, hi, isRange := bytes.Cut(part, []byte("-"))
		a, err := strconv.Atoi(string(lo))
		if err != nil || a < 0 {
			return nil, fmt.Errorf("cpu list %q: bad number %q", b, lo)
		}
		z := a
		if isRange {
			z, err = strconv.Atoi(string(hi))
			if err != nil || z < a {
				return nil, fmt.Errorf("cpu list %q: bad range %q", b, part)
			}
		}
		if z-a > 1<<16 {
			return nil, fmt.Errorf("cpu list %q: range %q too large", b, part)
		}
		for c := a; c <= z; c++ {
			cpus = append(cpus, c)
		}
	}
	return sortUniqueInts(cpus), nil
}

// sortUniqueInts sorts in place (insertion sort: lists are short and
// usually already sorted) and drops duplicates.
func sortUniqueInts(s []int) []int {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	out := s[:0]
	for _, v := range s {
		if len(out) == 0 || v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// appendPadded appends v right-aligned in a field of width characters
// (like "%*d"); wider numbers are never truncated.
func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	digits := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(digits); i < width; i++ {
		b = append(b, ' ')
	}
	return append(b, digits...)
}

// appendSpaces appends n spaces.
func appendSpaces(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, ' ')
	}
	return b
}

// appendCentis appends v/100 with two decimals ("%d.%02d"), as the kernel
// prints uptime and load averages.
func appendCentis(b []byte, v uint64) []byte {
	b = strconv.AppendUint(b, v/100, 10)
	b = append(b, '.')
	f := v % 100
	return append(b, byte('0'+f/10), byte('0'+f%10))
}
