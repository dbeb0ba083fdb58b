package render

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/facts"
)

// MemoryView is the container's memory as its /proc/meminfo shows it, in
// bytes. Meminfo renders from it and the sysinfo(2) agent answers from it,
// so `free` (reads /proc/meminfo) and busybox free / an unaware JVM (call
// sysinfo) always agree.
type MemoryView struct {
	Total     uint64 // MemTotal: effective limit, capped at host RAM
	Limited   bool   // Total is a limit below the host's RAM
	Free      uint64 // MemFree: Total - usage, never below 0
	Available uint64 // MemAvailable: Free + reclaimable file cache + SReclaimable, <= Total
	Shared    uint64 // Shmem (sysinfo sharedram)
	Buffers   uint64 // Buffers: always 0; cgroups do not account buffer heads apart
	Cached    uint64 // Cached: page cache (memory.stat file / total_cache)

	SwapTotal uint64
	SwapFree  uint64

	SwapCached    uint64 // 0: not in the Snapshot; the host's number would be wrong here
	Active        uint64 // ActiveAnon + ActiveFile
	Inactive      uint64 // InactiveAnon + InactiveFile
	ActiveAnon    uint64
	InactiveAnon  uint64
	ActiveFile    uint64
	InactiveFile  uint64
	Unevictable   uint64
	Dirty         uint64
	Writeback     uint64
	AnonPages     uint64
	Mapped        uint64
	KReclaimable  uint64 // = SReclaimable: the only reclaimable kernel memory a cgroup reports
	Slab          uint64
	SReclaimable  uint64
	SUnreclaim    uint64
	AnonHugePages uint64

	// KernelStack and PageTables are the cgroup's own on cgroup v2 only
	// (v1 memory.stat has no such counters); HasKernel says whether they
	// are meaningful. Without them the host's lines are kept.
	KernelStack uint64
	PageTables  uint64
	HasKernel   bool
}

// errNoMemory: the memory controller could not be read for this container.
var errNoMemory = errors.New("memory controller unavailable")

// ComputeMemory derives the container's memory view from its cgroup
// snapshot and the host's /proc/meminfo (for the host caps). It fails when
// the memory controller is missing from the snapshot or the host meminfo
// cannot be parsed; callers then show the host's values.
func ComputeMemory(in *Input) (MemoryView, error) {
	if err, missing := in.Snap.Missing[cgroupreader.GroupMemory]; missing {
		return MemoryView{}, fmt.Errorf("%w: %v", errNoMemory, err)
	}
	host, err := facts.ParseHostMemory(in.Host.Meminfo)
	if err != nil {
		return MemoryView{}, err
	}
	m := in.Snap.Memory
	st := m.Stat
	var v MemoryView
	v.Total = m.Limit.Cap(host.Total)
	v.Limited = v.Total < host.Total
	// Usage above the limit happens (limit lowered below usage, kernel
	// memory on v1 charged past it): Free is then 0, never an underflow.
	v.Free = v.Total - min(m.Usage, v.Total)

	// Every counter is capped at MemTotal so no line claims more memory
	// than the container has (counters and the limit are read at
	// slightly different moments).
	c := func(x uint64) uint64 { return min(x, v.Total) }
	v.Cached = c(st.File)
	v.Shared = c(st.Shmem)
	v.ActiveAnon = c(st.ActiveAnon)
	v.InactiveAnon = c(st.InactiveAnon)
	v.ActiveFile = c(st.ActiveFile)
	v.InactiveFile = c(st.InactiveFile)
	v.Active = c(st.ActiveAnon + st.ActiveFile)
	v.Inactive = c(st.InactiveAnon + st.InactiveFile)
	v.Unevictable = c(st.Unevictable)
	v.Dirty = c(st.FileDirty)
	v.Writeback = c(st.FileWriteback)
	v.AnonPages = c(st.Anon)
	v.Mapped = c(st.FileMapped)
	v.AnonHugePages = c(st.AnonTHP)
	// TODO: cgroup v1 memory.stat has no slab counters (kernel memory is
	// only in memory.kmem.*, which says nothing about reclaimability), so
	// Slab/SReclaimable/SUnreclaim read 0 there rather than the host's
	// numbers, which would dwarf a small container.
	v.SReclaimable = c(st.SlabReclaimable)
	v.SUnreclaim = c(st.SlabUnreclaimable)
	v.Slab = c(max(st.Slab, st.SlabReclaimable+st.SlabUnreclaimable))
	v.KReclaimable = v.SReclaimable
	if in.Snap.Mode == cgroupreader.ModeV2 {
		v.KernelStack = c(st.KernelStack)
		v.PageTables = c(st.PageTables)
		v.HasKernel = true
	}

	// MemAvailable: what could be allocated without swapping. Like the
	// kernel's si_mem_available, count the file LRU (active_file +
	// inactive_file) rather than all of Cached: Cached (v1 total_cache,
	// v2 file) includes shmem/tmpfs pages, which cannot be dropped, so
	// LXCFS's older "free + total_cache" overstates it for containers
	// with tmpfs data. Plus reclaimable slab (v2 only; v1 reports none).
	// Unlike the kernel we do not subtract watermark reserves: a cgroup
	// has none of its own.
	v.Available = min(v.Free+v.ActiveFile+v.InactiveFile+v.SReclaimable, v.Total)

	v.SwapTotal, v.SwapFree = computeSwap(in, m, host)
	return v, nil
}

// computeSwap returns SwapTotal and SwapFree in bytes.
//   - swap reporting off: 0, 0 (the daemon was told to hide swap).
//   - no swap accounting, or no swap limit anywhere up the tree: the
//     container may use any of the host's swap, so it sees the host's
//     swap (what LXCFS shows too).
//   - a swap limit: the limit capped at host swap, minus the container's
//     swap usage.
func computeSwap(in *Input, m cgroupreader.Memory, host facts.HostMemory) (total, free uint64) {
	switch {
	case !in.Opts.SwapReporting:
		return 0, 0
	case !m.SwapAccounting || !m.SwapLimit.Set:
		return host.SwapTotal, min(host.SwapFree, host.SwapTotal)
	}
	total = m.SwapLimit.Cap(host.SwapTotal)
	return total, total - min(m.SwapUsage, total)
}

// Meminfo renders proc/meminfo: the host's file, line by line in the
// host's order, with the lines the cgroup knows about replaced and every
// other line (Committed_AS, Vmalloc*, HugePages_*, ...) kept as the host's.
func Meminfo(dst []byte, in *Input) ([]byte, error) {
	v, err := ComputeMemory(in)
	if err != nil {
		return nil, err
	}
	host := in.Host.Meminfo
	out := slices.Grow(dst, len(host)+64)
	// Unchanged stretches of the host's text are copied in one piece.
	copied := 0 // host[:copied] is already in out
	for pos := 0; pos < len(host); {
		end := bytes.IndexByte(host[pos:], '\n')
		if end < 0 {
			end = len(host)
		} else {
			end += pos
		}
		line, lineStart := host[pos:end], pos
		pos = end + 1
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		val, ok := v.line(line[:colon])
		if !ok {
			continue
		}
		out = append(out, host[copied:lineStart]...)
		out = appendMeminfoLine(out, line[:colon+1], val/1024)
		copied = min(pos, len(host))
	}
	out = append(out, host[copied:]...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return out, nil
}

// line returns the value (bytes) of the meminfo line called name, and
// whether the container has its own value for it.
func (v *MemoryView) line(name []byte) (uint64, bool) {
	switch string(name) { // no allocation: the compiler switches on the bytes
	case "MemTotal":
		return v.Total, true
	case "MemFree":
		return v.Free, true
	case "MemAvailable":
		return v.Available, true
	case "Buffers":
		return v.Buffers, true
	case "Cached":
		return v.Cached, true
	case "SwapCached":
		return v.SwapCached, true
	case "Active":
		return v.Active, true
	case "Inactive":
		return v.Inactive, true
	case "Active(anon)":
		return v.ActiveAnon, true
	case "Inactive(anon)":
		return v.InactiveAnon, true
	case "Active(file)":
		return v.ActiveFile, true
	case "Inactive(file)":
		return v.InactiveFile, true
	case "Unevictable":
		return v.Unevictable, true
	case "SwapTotal":
		return v.SwapTotal, true
	case "SwapFree":
		return v.SwapFree, true
	case "Dirty":
		return v.Dirty, true
	case "Writeback":
		return v.Writeback, true
	case "AnonPages":
		return v.AnonPages, true
	case "Mapped":
		return v.Mapped, true
	case "Shmem":
		return v.Shared, true
	case "KReclaimable":
		return v.KReclaimable, true
	case "Slab":
		return v.Slab, true
	case "SReclaimable":
		return v.SReclaimable, true
	case "SUnreclaim":
		return v.SUnreclaim, true
	case "AnonHugePages":
		return v.AnonHugePages, true
	case "KernelStack":
		return v.KernelStack, v.HasKernel
	case "PageTables":
		return v.PageTables, v.HasKernel
	}
	return 0, false
}

// appendMeminfoLine writes one line in the kernel's show_val_kb format:
// the name with its colon padded to 16 columns, the value right-aligned in
// 8 (wider values push the line out, as in the kernel), then " kB".
func appendMeminfoLine(b, nameColon []byte, kb uint64) []byte {
	b = append(b, nameColon...)
	b = appendSpaces(b, 16-len(nameColon))
	b = appendPadded(b, kb, 8)
	return append(b, " kB\n"...)
}
