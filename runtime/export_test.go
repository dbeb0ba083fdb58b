package runtime

// Internals the external tests (package runtime_test, which imports
// runtime/cgroupdriver: that package imports runtime) look at.

var (
	CgroupExists  = cgroupExists
	RawForkForced = &rawForkForced
)
