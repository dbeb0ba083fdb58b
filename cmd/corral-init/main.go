// Command corral-init is the first program of every corral container and
// of every `corral exec`: corral starts it in the new namespaces, it sets
// up the root filesystem, credentials and seccomp as the runtime tells it
// over its sync socket, and replaces itself (execve) with the container's
// process. It is package runtime's init (runtime.MaybeInit) in a program
// of its own that links neither containerd/cgroups nor the image store, so
// its Go start costs a few ms less than corral's (docs/design.md).
//
// corral uses it when it is installed next to the corral binary and comes
// from the same build (make build stamps both); otherwise corral runs its
// own binary as the init. It is not a command to run by hand.
package main

import (
	"fmt"
	"os"

	"github.com/corral-dev/corral/runtime"
)

func main() {
	runtime.MaybeInit() // the container's init: never returns
	fmt.Fprintf(os.Stderr, "%s: the container init of corral; corral starts it for each container and exec, it is not run by hand\n", runtime.InitBinaryName)
	os.Exit(2)
}
