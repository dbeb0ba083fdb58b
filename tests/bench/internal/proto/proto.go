// Package proto is what the bench driver and the reader program running
// inside each benchmark container say to each other (one JSON object per
// line: a Job on the reader's stdin, a Result on its stdout), and the
// latency histogram both sides merge.
package proto

// Job tells a reader what to do. Exactly one of Paths or Syscall is set.
type Job struct {
	// Paths are opened, read to EOF and closed in turn, each thread
	// cycling through the list (starting at a different entry per
	// thread, so two files are read side by side).
	Paths []string `json:"paths,omitempty"`
	// Pread, with Paths: each thread opens its path once and reads it
	// again and again from offset 0 with pread(2) on the same descriptor
	// (top, vmstat, agents keeping the file open), timing each pread loop
	// to EOF.
	Pread bool `json:"pread,omitempty"`
	// Syscall is "sysinfo" or "getpid": call it in a loop instead.
	Syscall string `json:"syscall,omitempty"`
	// Threads is the number of concurrent readers (OS threads).
	Threads int `json:"threads"`
	// DurationMs bounds the job by time; MaxOps by the number of
	// operations over all threads (0: no bound). At least one is set.
	DurationMs int   `json:"duration_ms"`
	MaxOps     int64 `json:"max_ops,omitempty"`
	// Check, when set, verifies answers: every answer when CheckAll,
	// otherwise the first one of each path.
	Check    *Check `json:"check,omitempty"`
	CheckAll bool   `json:"check_all,omitempty"`
	// Start, when set, is a wall clock time (Unix ns) to wait for before
	// starting, so many readers in many containers start together.
	StartUnixNs int64 `json:"start_unix_ns,omitempty"`
}

// Check is what a container's view must say.
type Check struct {
	// MemTotalKB is the expected MemTotal of meminfo (0: not checked).
	MemTotalKB uint64 `json:"memtotal_kb,omitempty"`
	// CPUs is the expected number of cpuN lines in stat (0: not checked).
	CPUs int `json:"cpus,omitempty"`
}

// Result is a reader's answer to one Job.
type Result struct {
	Ops       int64  `json:"ops"`
	Errors    int64  `json:"errors"`
	Checked   int64  `json:"checked"`
	Wrong     int64  `json:"wrong"`
	FirstErr  string `json:"first_error,omitempty"`
	FirstBad  string `json:"first_wrong,omitempty"`
	ElapsedNs int64  `json:"elapsed_ns"`
	Bytes     int64  `json:"bytes"`
	Hist      Hist   `json:"hist"`
}
