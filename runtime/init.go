package runtime

import (
	"os"
	goruntime "runtime"
)

// initEnv marks a re-executed copy of this binary as a container init (or
// exec init); its value says which.
const initEnv = "_CORRAL_INIT"

func init() {
	// The init does all its work on the main thread and execs from it:
	// namespace, credential and capability changes made with raw syscalls
	// are per thread, so nothing may migrate the main goroutine elsewhere.
	// Locking here, in a package init, happens before main() starts.
	if os.Getenv(initEnv) != "" {
		goruntime.LockOSThread()
	}
}

// MaybeInit must be the first call in main() of any binary linking this
// package (and in TestMain of tests that create containers): when this
// process is a re-executed container init it becomes the container's
// process and never returns; otherwise it returns at once.
func MaybeInit() {
	switch os.Getenv(initEnv) {
	case "":
		return
	default:
		os.Stderr.WriteString("corral: container init not implemented yet\n")
		os.Exit(1)
	}
}
