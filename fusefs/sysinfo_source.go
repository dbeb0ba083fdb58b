package fusefs

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/fusefs/render"
)

// The sysinfo(2) answers of the seccomp agent (fusefs/sysinfoagent), from
// the same caller identification, Snapshot cache, memory view and load
// sampler as the FUSE views, so `free` (reads /proc/meminfo) and busybox
// free or a JVM without container support (call sysinfo) always agree.

// sysinfoSnap is what one answer reads from the cgroups.
var sysinfoSnap = cgroupreader.PartMemory | cgroupreader.PartPids

// Sysinfo answers sysinfo(2) for the task pid (a thread id as the host
// sees it) with its container's numbers. *FS is a sysinfoagent.Answerer.
func (fs *FS) Sysinfo(pid int) (unix.Sysinfo_t, error) {
	c, err := fs.resolver.Resolve(pid)
	if err != nil {
		return unix.Sysinfo_t{}, fmt.Errorf("caller %d: %w", pid, err)
	}
	ib, err := fs.input(&c, render.NeedMeminfo, sysinfoSnap, true, "")
	if err != nil {
		return unix.Sysinfo_t{}, err
	}
	defer fs.putInput(ib)
	return render.Sysinfo(&ib.in)
}
