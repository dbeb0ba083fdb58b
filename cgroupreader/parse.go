package cgroupreader

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/corral-dev/corral/fusefs/facts"
)

// Hand-written parsers over the bytes of cgroup files: no regexp, no Sscanf,
// no string conversions, so a Snapshot costs syscalls and little else.

// ErrMalformed marks a cgroup file whose content could not be parsed.
var ErrMalformed = errors.New("malformed cgroup file")

// ErrUnavailable marks a controller (or file) the cgroup does not have:
// the controller is not mounted (v1) or not enabled for it (v2). It does not
// wrap fs.ErrNotExist: that error means the cgroup itself is gone.
var ErrUnavailable = errors.New("controller not available for this cgroup")

// ErrRootPSI is recorded for PSI when the cgroup is its hierarchy's root:
// the root's pressure is the host's (/proc/pressure), not a container's.
var ErrRootPSI = errors.New("cgroup is the hierarchy root: its pressure is the host's")

func malformed(s *scratch, data []byte) error {
	if len(data) > 64 {
		data = data[:64]
	}
	return fmt.Errorf("%s: %w: %q", s.pathString(), ErrMalformed, data)
}

// nextField skips blanks and splits off the next blank-separated field.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && facts.IsSpace(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !facts.IsSpace(b[j]) {
		j++
	}
	return b[i:j], b[j:]
}

// parseInt parses a decimal int64 with an optional '-'.
func parseInt(b []byte) (int64, bool) {
	b = facts.TrimSpace(b)
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	u, ok := facts.ParseUint(b)
	if !ok || u > 1<<63 || (!neg && u == 1<<63) {
		return 0, false
	}
	if neg {
		return -int64(u), true
	}
	return int64(u), true
}

// v1Unlimited: cgroup v1 shows "no limit" as PAGE_COUNTER_MAX pages in bytes
// (9223372036854771712 on x86-64, other values with other page sizes), so
// anything from 2^62 up means unset. No host has 4 EiB of memory.
const v1Unlimited = 1 << 62

// parseV1Limit parses memory.limit_in_bytes and friends.
func parseV1Limit(b []byte) (Limit, bool) {
	v, ok := facts.ParseUint(b)
	if !ok {
		// -1 is what a user writes; some kernels echo it back.
		if i, ok := parseInt(b); ok && i == -1 {
			return Limit{}, true
		}
		return Limit{}, false
	}
	if v >= v1Unlimited {
		return Limit{}, true
	}
	return Limit{Value: v, Set: true}, true
}

// parseMax parses a v2 limit: "max" or a number.
func parseMax(b []byte) (Limit, bool) {
	b = facts.TrimSpace(b)
	if string(b) == "max" {
		return Limit{}, true
	}
	v, ok := facts.ParseUint(b)
	return Limit{Value: v, Set: ok}, ok
}

// maxCPUs bounds CPU numbers read from per-CPU accounting files, as
// facts.ParseCPUList bounds lists.
const maxCPUs = facts.MaxCPUs

// parseDev parses "MAJ:MIN".
func parseDev(b []byte) (major, minor uint32, ok bool) {
	a, z := facts.Cut(b, ':')
	if z == nil {
		return 0, 0, false
	}
	ma, ok1 := facts.ParseUint(a)
	mi, ok2 := facts.ParseUint(z)
	if !ok1 || !ok2 || ma > 1<<32-1 || mi > 1<<32-1 {
		return 0, 0, false
	}
	return uint32(ma), uint32(mi), true
}

// parentPath is the parent of a cgroup path ("/a/b" -> "/a", "/a" -> "/").
func parentPath(cg string) string {
	for i := len(cg) - 1; i > 0; i-- {
		if cg[i] == '/' {
			return cg[:i]
		}
	}
	return "/"
}

// validCgroupPath accepts what /proc/PID/cgroup shows for a cgroup inside
// our hierarchy: absolute, no "." or ".." elements (a process outside the
// reader's cgroup namespace shows "/../.."; following that would escape the
// hierarchy root).
func validCgroupPath(p string) bool {
	if len(p) == 0 || p[0] != '/' {
		return false
	}
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			seg := p[start:i]
			if seg == "." || seg == ".." || (seg == "" && i != len(p)) {
				return false
			}
			start = i + 1
		} else if p[i] == 0 {
			return false
		}
	}
	return true
}

// lessRatio reports q1/p1 < q2/p2 without division or overflow.
func lessRatio(q1, p1, q2, p2 uint64) bool {
	ah, al := bits.Mul64(q1, p2)
	bh, bl := bits.Mul64(q2, p1)
	return ah < bh || (ah == bh && al < bl)
}
