package render

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
)

// Sysinfo computes struct sysinfo from a view Input (pure, like the
// render functions):
//
//   - totalram, freeram, sharedram, bufferram: MemTotal, MemFree, Shmem and
//     Buffers of the container's /proc/meminfo (ComputeMemory), except that
//     totalram is one page more than a memory limit (see LimitedTotalRAM);
//     totalswap and freeswap: its SwapTotal and SwapFree (= /proc/swaps);
//   - mem_unit 1, values in bytes: what the kernel itself does on 64-bit
//     whenever the byte counts fit, i.e. always;
//   - uptime: the age of the container's init in seconds, rounded up as
//     the kernel rounds its own;
//   - loads: the sampler's averages (those of its /proc/loadavg), in the
//     kernel's fixed point (<<16), chosen so that both conventions of
//     printing them with two decimals (truncating LOAD_FRAC as busybox
//     does, or rounding printf) give exactly /proc/loadavg's digits;
//   - procs: the tasks (threads, as the kernel counts) in the container's
//     cgroup, from pids.current; the sampler's count without the pids
//     controller.
func Sysinfo(in *Input) (unix.Sysinfo_t, error) {
	var si unix.Sysinfo_t
	v, err := ComputeMemory(in)
	if err != nil {
		return si, err
	}
	si.Totalram = v.Total
	if v.Limited {
		si.Totalram = LimitedTotalRAM(v.Total)
	}
	si.Freeram = v.Free
	si.Sharedram = v.Shared
	si.Bufferram = v.Buffers
	si.Totalswap = v.SwapTotal
	si.Freeswap = v.SwapFree
	si.Unit = 1
	up := ContainerUptime(&in.Container)
	si.Uptime = int64((up + time.Second - 1) / time.Second)
	if l := in.Container.Load; l.Known {
		for i, a := range l.Avg {
			si.Loads[i] = LoadFixed(a)
		}
	}
	procs := uint64(in.Snap.Pids.Current)
	if _, missing := in.Snap.Missing[cgroupreader.GroupPids]; missing || procs == 0 {
		procs = uint64(max(in.Container.Load.Total, 1))
	}
	si.Procs = uint16(min(procs, 0xffff))
	return si, nil
}

// LimitedTotalRAM is sysinfo's totalram for a container whose memory limit
// is below the host's RAM: the limit plus one page. The JDK (the VM's
// os::physical_memory and the launcher's CgroupMetrics) takes the
// machine's memory from sysinfo, through glibc's _SC_PHYS_PAGES, and
// treats a cgroup limit at or above it as no limit: with totalram = limit,
// `java -XshowSettings:system` said "Memory Limit: Unlimited" and sized
// its heap from "physical" memory. Physical memory must stay above the
// limit, as on a real machine; one page is the least that does, and every
// size derived from it (busybox free -m, an unaware JVM's heap: a quarter,
// then aligned) stays the limit's. /proc/meminfo's MemTotal stays the
// limit itself: that is the number people and tools compare with the
// limit they set. docs/design.md decision 29.
func LimitedTotalRAM(limit uint64) uint64 { return limit + uint64(unix.Getpagesize()) }

// LoadFixed converts a load average to sysinfo's fixed point (1<<16 =
// 1.0): the smallest value not below LoadCentis(avg)/100. Truncating to
// hundredths then gives LoadCentis back, and so does rounding (the excess
// is below 1/65536).
func LoadFixed(avg float64) uint64 {
	c := LoadCentis(avg)
	return (c<<16 + 99) / 100
}
