// Command sysinfoprobe calls sysinfo(2) and prints what it got as JSON, for
// the sysinfo agent's integration tests. It is static (CGO_ENABLED=0) so it
// runs in any rootfs.
//
//	sysinfoprobe [-views DIR]                   one call, with the container's
//	                                            /proc/uptime and /proc/loadavg
//	                                            (or DIR/proc/...) around it
//	sysinfoprobe -n N -threads T -expect-total B
//	                                            N calls on each of T threads;
//	                                            counts answers whose RAM is not B
//	sysinfoprobe -serve                         one call (one JSON line) per
//	                                            line read from stdin
//	sysinfoprobe -wrap SOCKET [-wait-file F] -- CMD ARG...
//	                                            a minimal runtime: install the
//	                                            sysinfo filter (runtime/seccomp),
//	                                            send its listener to SOCKET (OCI
//	                                            protocol), wait for F, exec CMD
package main

import (
	"os"

	"github.com/corral-dev/corral/tests/sysinfoprobe/probe"
)

func main() { os.Exit(probe.Main(os.Args[1:])) }
