package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// nsFlags maps the namespaces corral supports to their clone flags.
var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsProcName is the name of each namespace under /proc/PID/ns/.
var nsProcName = map[specs.LinuxNamespaceType]string{
	specs.UserNamespace:    "user",
	specs.PIDNamespace:     "pid",
	specs.NetworkNamespace: "net",
	specs.MountNamespace:   "mnt",
	specs.IPCNamespace:     "ipc",
	specs.UTSNamespace:     "uts",
	specs.CgroupNamespace:  "cgroup",
	specs.TimeNamespace:    "time",
}
