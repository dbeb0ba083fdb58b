// Package runspec turns `corral run` flags into an OCI runtime spec. The
// spec then goes through the same create/start path as `corral create
// --bundle`: `corral run` is only a friendlier way to write config.json.
package runspec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultPath is the PATH of a container that sets none (Docker's).
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// DefaultCaps is Docker's default capability set: what most programs need
// as root in a container, without the ones that reach the host (no
// SYS_ADMIN, SYS_MODULE, SYS_PTRACE, NET_ADMIN, SYS_TIME, ...).
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// MaskedPaths hide host information and knobs under /proc and /sys
// (runc's and Docker's default list).
var MaskedPaths = []string{
	"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
	"/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

// ReadonlyPaths are remounted read-only: a root container could otherwise
// change host-wide settings through them.
var ReadonlyPaths = []string{
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
}

// Default returns the spec every `corral run` starts from (when no --bundle
// is given): a root process running args in rootfs with Docker's defaults
// for capabilities, mounts, masked and read-only paths and devices, in new
// pid, mount, ipc, uts, network, cgroup and time namespaces.
func Default(rootfs string, args []string) *specs.Spec {
	caps := append([]string(nil), DefaultCaps...)
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: append([]string(nil), args...),
			Env:  []string{DefaultPath},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  caps,
				Effective: append([]string(nil), caps...),
				Permitted: append([]string(nil), caps...),
			},
			Rlimits: []specs.POSIXRlimit{
				{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024},
			},
			// Set-uid binaries cannot gain privileges in the container.
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rootfs},
		Hostname: "corral",
		Mounts:   DefaultMounts(),
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
				{Type: specs.CgroupNamespace},
				// The container's clocks start at its own boot, so
				// /proc/uptime, sysinfo(2) and ps agree it just started.
				{Type: specs.TimeNamespace},
			},
			Resources: &specs.LinuxResources{
				Devices: DefaultDeviceRules(),
			},
			MaskedPaths:   append([]string(nil), MaskedPaths...),
			ReadonlyPaths: append([]string(nil), ReadonlyPaths...),
		},
	}
}

// DefaultMounts are the kernel filesystems every container gets.
func DefaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// Read-only, so the JVM's container support and Go's GOMAXPROCS
		// read the container's own limits and nothing can change them.
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// DefaultDeviceRules deny every device except the standard nodes the
// runtime creates in /dev (and mknod of any, which is harmless when
// opening is denied), as Docker does.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup {
	i := func(v int64) *int64 { return &v }
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		{Allow: true, Type: "c", Major: i(1), Minor: i(3), Access: "rwm"},  // null
		{Allow: true, Type: "c", Major: i(1), Minor: i(5), Access: "rwm"},  // zero
		{Allow: true, Type: "c", Major: i(1), Minor: i(7), Access: "rwm"},  // full
		{Allow: true, Type: "c", Major: i(1), Minor: i(8), Access: "rwm"},  // random
		{Allow: true, Type: "c", Major: i(1), Minor: i(9), Access: "rwm"},  // urandom
		{Allow: true, Type: "c", Major: i(5), Minor: i(0), Access: "rwm"},  // tty
		{Allow: true, Type: "c", Major: i(5), Minor: i(1), Access: "rwm"},  // console
		{Allow: true, Type: "c", Major: i(5), Minor: i(2), Access: "rwm"},  // ptmx
		{Allow: true, Type: "c", Major: i(136), Minor: nil, Access: "rwm"}, // pts/*
	}
}
