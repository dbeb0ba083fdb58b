// corralfs-keeper holds the seccomp listeners of every container whose
// sysinfo(2) corralfs answers, so that the call keeps working while
// corralfs is stopped, killed or upgraded. corralfs starts it when none
// runs (or systemd does: corralfs-seccomp-keeper.service); it is not meant
// to be started by hand. See docs/operations.md.
package main

import (
	"os"

	"github.com/corral-dev/corral/cmd/internal/keepercmd"
)

func main() {
	os.Exit(keepercmd.Run(keepercmd.Binary, os.Args[1:]))
}
