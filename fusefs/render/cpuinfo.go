package render

import (
	"bytes"
	"errors"
	"slices"
	"strconv"

	"github.com/corral-dev/corral/fusefs/facts"
)

// errCpuinfoFormat: the host's cpuinfo has no "processor : N" blocks we
// understand (s390x keeps its processors in one header block, for one);
// the FUSE layer then serves the host's file unchanged.
var errCpuinfoFormat = errors.New("host /proc/cpuinfo: no per-processor blocks recognised")

// errCpuinfoNoVisible: none of the visible CPUs has a block in the host's
// cpuinfo (a CPU went offline between reads); serve the host's file rather
// than an empty one.
var errCpuinfoNoVisible = errors.New("host /proc/cpuinfo: no block for any visible CPU")

// Cpuinfo renders proc/cpuinfo: the host's blocks (blank-line separated,
// one per logical CPU, as on x86, arm64, ppc64le, riscv) for the visible
// CPUs only, renumbered from 0 in the "processor" field. "siblings" and
// "cpu cores" become the visible count so tools that derive the topology
// from them (threads per core = siblings / cpu cores) see one package of
// that many single-thread cores. Every other field (physical id, core id,
// apicid, flags, ...) is the host CPU's own. Blocks without a "processor"
// field (arm32's trailing Hardware/Revision block) are kept as they are.
func Cpuinfo(dst []byte, in *Input) ([]byte, error) {
	visible := VisibleCPUs(in)
	host := in.Host.Cpuinfo
	hostCPUs := max(len(in.Host.CPUs), 1)
	out := slices.Grow(dst, (len(host)/hostCPUs+64)*len(visible)+64)
	var sawProcessor, keptAny bool
	for len(host) > 0 {
		var block []byte
		if i := bytes.Index(host, []byte("\n\n")); i >= 0 {
			block, host = host[:i+1], host[i+2:]
		} else {
			block, host = host, nil
		}
		cpu, ok := blockProcessor(block)
		if !ok {
			if len(bytes.TrimSpace(block)) > 0 {
				out = append(out, block...)
				out = append(out, '\n')
			}
			continue
		}
		sawProcessor = true
		idx := indexSorted(visible, cpu)
		if idx < 0 {
			continue
		}
		keptAny = true
		out = appendCPUBlock(out, block, idx, len(visible))
		out = append(out, '\n')
	}
	if !sawProcessor {
		return nil, errCpuinfoFormat
	}
	if !keptAny {
		return nil, errCpuinfoNoVisible
	}
	return out, nil
}

// cpuinfoKey splits "name\t\t: value" into the trimmed name and the offset
// just past the colon.
func cpuinfoKey(line []byte) (key []byte, afterColon int) {
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return nil, -1
	}
	return trimBlanks(line[:colon]), colon + 1
}

// blockProcessor returns the logical CPU number of a block's "processor"
// field.
func blockProcessor(block []byte) (int, bool) {
	for len(block) > 0 {
		var line []byte
		line, block = facts.NextLine(block)
		key, after := cpuinfoKey(line)
		if string(key) == "processor" {
			v, ok := facts.ParseUint(line[after:])
			return int(v), ok && v < 1<<31
		}
	}
	return 0, false
}

// appendCPUBlock copies one CPU's block with processor renumbered to idx
// and siblings / cpu cores set to count, keeping each line's spacing. The
// unchanged stretches between rewritten lines are copied in one piece: a
// block is ~30 lines of which at most 3 change.
func appendCPUBlock(b, block []byte, idx, count int) []byte {
	copied := 0 // block[:copied] is already in b
	for pos := 0; pos < len(block); {
		end := bytes.IndexByte(block[pos:], '\n')
		if end < 0 {
			end = len(block)
		} else {
			end += pos
		}
		line := block[pos:end]
		lineStart := pos
		pos = end + 1
		// Only "processor", "siblings" and "cpu cores" change: skip the
		// colon search for every other line by its first byte.
		if len(line) == 0 || (line[0] != 'p' && line[0] != 's' && line[0] != 'c') {
			continue
		}
		key, after := cpuinfoKey(line)
		var v int
		switch string(key) {
		case "processor":
			v = idx
		case "siblings", "cpu cores":
			v = count
		default:
			continue
		}
		b = append(b, block[copied:lineStart]...)
		b = append(b, line[:after]...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(v), 10)
		b = append(b, '\n')
		copied = min(pos, len(block))
	}
	b = append(b, block[copied:]...)
	if len(block) > 0 && block[len(block)-1] != '\n' {
		b = append(b, '\n')
	}
	return b
}

// indexSorted returns the position of v in the ascending slice s, or -1.
func indexSorted(s []int, v int) int {
	lo, hi := 0, len(s)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s[m] < v {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(s) && s[lo] == v {
		return lo
	}
	return -1
}
