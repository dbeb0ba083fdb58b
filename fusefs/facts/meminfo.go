package facts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

// HostMemory is what readers need of the host's /proc/meminfo, in bytes.
type HostMemory struct {
	Total, SwapTotal, SwapFree uint64
}

// ErrNoMemTotal says a meminfo text has no MemTotal line.
var ErrNoMemTotal = errors.New("host /proc/meminfo has no MemTotal")

// ParseHostMemory reads MemTotal, SwapTotal and SwapFree from /proc/meminfo
// text. The three come early in the file, so it stops there; it works on
// the bytes in place because corralfs calls it on every memory view read.
func ParseHostMemory(b []byte) (HostMemory, error) {
	var h HostMemory
	var haveTotal bool
	found := 0
	for len(b) > 0 && found < 3 {
		var line []byte
		line, b = NextLine(b)
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
		v, ok := MeminfoKB(line[colon+1:])
		if !ok {
			return HostMemory{}, fmt.Errorf("host /proc/meminfo: bad line %q", line)
		}
		*dst = v * 1024
		found++
	}
	if !haveTotal {
		return HostMemory{}, ErrNoMemTotal
	}
	return h, nil
}

// ReadHostMemory reads the host's /proc/meminfo. Call it outside any
// container whose /proc/meminfo is a view.
func ReadHostMemory() (HostMemory, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return HostMemory{}, err
	}
	return ParseHostMemory(b)
}

// MeminfoKB parses the value of a "Name:   123 kB" line (the " kB" suffix
// is optional, as in HugePages_Total) into a number of kB.
func MeminfoKB(value []byte) (uint64, bool) {
	return ParseUint(bytes.TrimSuffix(TrimSpace(value), []byte("kB")))
}
