package cgroupreader

// Reader reads cgroup state for processes. One implementation per cgroup
// version (v1 covers the hybrid layout too), picked by New from the detected
// mode; tests point it at a fixture tree.
type Reader interface {
	// Mode is the layout this reader serves.
	Mode() Mode
	// PathsOf parses PROCROOT/PID/cgroup.
	PathsOf(pid int) (Paths, error)
	// Snapshot reads limits and usage of the cgroup at p (and its
	// ancestors, for effective limits). Partial failures are recorded in
	// Snapshot.Missing; an error is returned only when nothing could be read
	// (e.g. the cgroup vanished).
	Snapshot(p Paths, opt Options) (Snapshot, error)
}

// Options select the optional, more expensive parts of a Snapshot.
type Options struct {
	Tasks bool // fill Snapshot.Tasks (walks cgroup.procs of the subtree)
	PSI   bool // read the *.pressure files
	IO    bool // read blkio / io.stat
}

// Config says where the hierarchies are. Zero values mean the real host.
type Config struct {
	CgroupRoot string // default /sys/fs/cgroup
	ProcRoot   string // default /proc
}
