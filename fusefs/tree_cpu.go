package fusefs

import (
	"bytes"
	"slices"
	"strconv"
	"syscall"

	"github.com/corral-dev/corral/fusefs/facts"
)

// Translating the host's per-CPU sysfs files into the container's CPU
// numbering: a container sees its visible host CPUs as 0..N-1 (in
// ascending host order, like cpuinfo and stat), so a sibling list such as
// thread_siblings_list "2-3" on host CPU 2 becomes "0-1" when the
// container's CPUs are host CPUs 2 and 3, and "0" when only host CPU 2 is
// visible. CPUs the container cannot see are left out.

// renumberCPUList translates a host CPU list (formatList) or CPU bitmap
// (formatMask) to container numbering.
func renumberCPUList(b []byte, visible []int, format cpuFormat) ([]byte, syscall.Errno) {
	var host []int
	var err error
	if format == formatMask {
		host, err = parseCPUMask(b)
	} else {
		host, err = facts.ParseCPUList(b)
	}
	if err != nil {
		return nil, syscall.EIO
	}
	idx := make(map[int]int, len(visible))
	for i, h := range visible {
		idx[h] = i
	}
	var mine []int
	for _, h := range host {
		if i, ok := idx[h]; ok {
			mine = append(mine, i)
		}
	}
	// mine is ascending: visible and host are both ascending.
	if format == formatMask {
		return appendCPUMask(nil, mine, len(visible)), 0
	}
	return append(facts.AppendCPUList(nil, mine), '\n'), 0
}

// parseCPUMask parses a kernel CPU bitmap such as "00000000,00000003\n"
// (32-bit hex groups, most significant first).
func parseCPUMask(b []byte) ([]int, error) {
	b = bytes.TrimSpace(b)
	var cpus []int
	bit := 0
	for i := len(b) - 1; i >= 0; i-- {
		c := b[i]
		if c == ',' {
			continue
		}
		v, err := strconv.ParseUint(string(c), 16, 8)
		if err != nil {
			return nil, err
		}
		for k := 0; k < 4; k++ {
			if v&(1<<k) != 0 {
				cpus = append(cpus, bit+k)
			}
		}
		bit += 4
	}
	slices.Sort(cpus) // read from the highest group down
	return slices.Compact(cpus), nil
}

// appendCPUMask formats a bitmap of nbits CPUs the way the kernel prints
// cpumasks (bitmap_print_to_pagebuf): 32-bit groups of 8 hex digits
// separated by commas, the first group only as wide as nbits needs.
func appendCPUMask(b []byte, cpus []int, nbits int) []byte {
	nbits = max(nbits, 1)
	words := make([]uint32, (nbits+31)/32)
	for _, c := range cpus {
		if c < nbits {
			words[c/32] |= 1 << (c % 32)
		}
	}
	first := nbits % 32
	if first == 0 {
		first = 32
	}
	for i := len(words) - 1; i >= 0; i-- {
		width := 8
		if i == len(words)-1 {
			width = (first + 3) / 4
		} else {
			b = append(b, ',')
		}
		s := strconv.FormatUint(uint64(words[i]), 16)
		for k := len(s); k < width; k++ {
			b = append(b, '0')
		}
		b = append(b, s...)
	}
	return append(b, '\n')
}
