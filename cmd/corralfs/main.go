// Command corralfs serves per-container views of /proc and /sys files over
// FUSE (an LXCFS-compatible layout computed from each reading container's
// cgroups).
//
//	corralfs [flags] [MOUNTPOINT]     serve (default mountpoint /var/lib/corralfs)
//	corralfs status [flags]           ask the running daemon how it is doing
//	corralfs reload [flags]           upgrade in place and wait until it is done
//	corralfs version                  print the build (also --version)
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs/facts"
)

// subcommands are dispatched on the first argument; anything else is the
// serve command's flags or mount point.
var subcommands = map[string]func(args []string) int{
	"status":       runStatus,
	"reload":       runReload,    // reload.go
	"serve-worker": runWorker,    // worker.go: started by the supervisor only
	"probe-read":   runProbeRead, // supervisor_liveness.go: started by the supervisor only
	"help":         func([]string) int { usage(os.Stdout, serveFlags(&serveConfig{})); return 0 },
	"version":      runVersion,
	"--version":    runVersion,
}

// runVersion prints the build in runc's --version layout.
func runVersion([]string) int {
	bi := buildinfo.Get()
	fmt.Printf("corralfs version %s\ncommit: %s\ngo: %s\n", bi.Version, bi.Commit, bi.GoVersion)
	return 0
}

func main() {
	args := os.Args[1:]
	if len(args) > 0 {
		if cmd, ok := subcommands[args[0]]; ok {
			os.Exit(cmd(args[1:]))
		}
	}
	os.Exit(runServe(args))
}

func usage(w *os.File, fl *pflag.FlagSet) {
	fmt.Fprintf(w, `Usage: corralfs [flags] [MOUNTPOINT]
       corralfs status [--control-socket PATH] [--json]
       corralfs reload [--control-socket PATH] [--timeout D]
       corralfs version

corralfs mounts a read-only FUSE file system at MOUNTPOINT (default
%s) whose files are the host's /proc and /sys files as the READING
container should see them: meminfo from its memory limit, cpuinfo, stat and
sys/devices/system/cpu from its cpuset and CPU quota, uptime from the age of
its init, loadavg from its own tasks, swaps, diskstats and pressure/* from
its own swap, I/O and PSI (pressure/* does not exist for a container without
PSI of its own, as on cgroup v1 and hybrid hosts). A read from the start of
a file computes it afresh, as the kernel does, so tools that keep it open
(top, free -s, vmstat) see live numbers. Bind-mount them over a container's
/proc/meminfo etc. (the layout is LXCFS's: MOUNTPOINT/proc/meminfo, ...).

It runs in the foreground (systemd Type=notify: READY=1 is sent once the
mount answers) and unmounts on SIGTERM or SIGINT. This process (the pid in
--pidfile) owns the mount; a worker process serves it and is restarted on
the same connection if it dies, without failing a read (Linux 6.9+).
SIGHUP upgrades in place: a worker from the binary now at this path takes
over. "corralfs reload" sends it and returns once the new worker serves
(systemctl reload corralfs runs it). See docs/operations.md.

Flags:
%s`, facts.DefaultDir, fl.FlagUsages())
}

// logLevels maps --log-level to slog levels.
var logLevels = []string{"debug", "info", "warn", "error"}

func validLogLevel(s string) bool {
	for _, l := range logLevels {
		if strings.EqualFold(s, l) {
			return true
		}
	}
	return false
}
