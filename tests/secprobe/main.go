// Command secprobe tries, from inside a container, what a container must
// not be able to do (issue 11), and prints one "NAME RESULT" line per try
// (RESULT is "ok" or the errno's name). It is static (CGO_ENABLED=0) so it
// runs in any rootfs. See probe.Main for the commands.
package main

import (
	"os"

	"github.com/corral-dev/corral/tests/secprobe/probe"
)

func main() { os.Exit(probe.Main(os.Args[1:])) }
