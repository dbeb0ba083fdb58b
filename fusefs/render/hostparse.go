package render

import (
	"strconv"
)

// Small, allocation-free helpers for the host's /proc text. They run on
// every read, so they work on []byte in place instead of splitting into
// strings.

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
