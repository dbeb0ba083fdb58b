package facts

import "math/bits"

// The building blocks of kernel text (/proc, /sys and cgroup files), shared
// by every parser of both binaries. They work on []byte in place and never
// allocate: corralfs calls them on every read.

// ParseUint parses a decimal uint64, surrounding white space allowed;
// overflow and anything but digits are refused.
func ParseUint(b []byte) (uint64, bool) {
	b = TrimSpace(b)
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		hi, lo := bits.Mul64(v, 10)
		lo, carry := bits.Add64(lo, uint64(c-'0'), 0)
		if hi != 0 || carry != 0 {
			return 0, false
		}
		v = lo
	}
	return v, true
}

// NextLine splits b at the first '\n': line excludes the newline, rest
// starts after it (nil when there is none). A last line without a newline
// is returned whole.
func NextLine(b []byte) (line, rest []byte) { return Cut(b, '\n') }

// Cut splits b at the first sep; after is nil when sep is absent.
func Cut(b []byte, sep byte) (before, after []byte) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}

// IsSpace is the white space of kernel text: blanks, tabs and line ends.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// TrimSpace drops white space at both ends.
func TrimSpace(b []byte) []byte {
	for len(b) > 0 && IsSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && IsSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
