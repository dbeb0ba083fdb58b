// Package views knows which corralfs files a container gets and where they
// go: each view file is bind-mounted read-only over its twin under /proc or
// /sys inside the container. `corral run` adds these mounts to the OCI spec
// it builds; the OCI hook (`corral hook`) binds exactly the same list into
// containers that other runtimes start, so both paths stay in step by
// construction.
package views

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultDir is where the corralfs service mounts its views (the systemd
// unit and the Kubernetes DaemonSet use it). LXCFS's /var/lib/lxcfs has the
// same layout below it.
const DefaultDir = "/var/lib/corralfs"

// FSType is the mountinfo filesystem type of a corralfs mount (go-fuse
// reports "fuse." + the MountOptions.Name the daemon sets).
const FSType = "fuse.corralfs"

// View is one file or directory of the view mount and where it goes.
type View struct {
	Rel  string // relative to the view mount, e.g. "proc/meminfo"
	Dest string // absolute path inside the container, e.g. "/proc/meminfo"
	// HostGate, when set, is a host path that must exist for this view to
	// be bound: binding /proc/pressure/* into a container on a kernel
	// without PSI would create files the kernel itself does not have.
	HostGate string
	// OwnPSI marks the pressure views: bound only where a container's
	// cgroup has pressure files of its own (see ContainersHavePSI).
	OwnPSI bool
}

// List is every view a container can get, in mount order. The directory
// entry binds the whole LXCFS-style sys/devices/system/cpu tree over its
// twin, as LXCFS recipes do.
var List = []View{
	{Rel: "proc/meminfo", Dest: "/proc/meminfo"},
	{Rel: "proc/cpuinfo", Dest: "/proc/cpuinfo"},
	{Rel: "proc/stat", Dest: "/proc/stat"},
	{Rel: "proc/uptime", Dest: "/proc/uptime"},
	{Rel: "proc/loadavg", Dest: "/proc/loadavg"},
	{Rel: "proc/swaps", Dest: "/proc/swaps"},
	{Rel: "proc/diskstats", Dest: "/proc/diskstats"},
	{Rel: "proc/pressure/cpu", Dest: "/proc/pressure/cpu", HostGate: "/proc/pressure/cpu", OwnPSI: true},
	{Rel: "proc/pressure/memory", Dest: "/proc/pressure/memory", HostGate: "/proc/pressure/memory", OwnPSI: true},
	{Rel: "proc/pressure/io", Dest: "/proc/pressure/io", HostGate: "/proc/pressure/io", OwnPSI: true},
	{Rel: "sys/devices/system/cpu", Dest: "/sys/devices/system/cpu"},
}

// MountOptions are the options of every view bind: read-only (a container
// must never write to another's view), and nothing executable, no devices,
// no setuid through it.
var MountOptions = []string{"bind", "ro", "nosuid", "nodev", "noexec"}

// PressureDir is the kernel's PSI directory, which `corral run` masks in
// a container that cannot have pressure of its own (PressureMask).
const PressureDir = "/proc/pressure"

// ContainersHavePSI says whether a container's cgroup can have pressure
// files of its own: on a pure cgroup v2 host. PSI is accounted per cgroup2
// group; on cgroup v1 and hybrid hosts runtimes leave containers at the
// root of the (controller-less) cgroup2 tree, whose pressure is the
// host's. A variable so tests can take either branch.
var ContainersHavePSI = func() bool {
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	return err == nil
}

// Present returns the views of List that exist below dir (and whose host
// gate exists, and for pressure, that can be the container's own), with
// Source set to their absolute path under dir.
func Present(dir string) []Bound {
	var out []Bound
	psi := ContainersHavePSI()
	for _, v := range List {
		if v.OwnPSI && !psi {
			continue
		}
		if v.HostGate != "" {
			if _, err := os.Stat(v.HostGate); err != nil {
				continue
			}
		}
		src := filepath.Join(dir, v.Rel)
		fi, err := os.Stat(src)
		if err != nil {
			continue
		}
		out = append(out, Bound{View: v, Source: src, Dir: fi.IsDir()})
	}
	return out
}

// PressureMask says whether a container given these views must have the
// kernel's /proc/pressure masked: the host has PSI, but the pressure views
// were not bound because the container cannot have its own. The kernel's
// files would show the host's pressure as the container's; an empty
// directory is what a container of a kernel without PSI sees.
func PressureMask(bound []Bound) bool {
	if _, err := os.Stat(PressureDir); err != nil {
		return false
	}
	for _, b := range bound {
		if b.OwnPSI {
			return false
		}
	}
	return true
}

// Bound is a view found in a view mount.
type Bound struct {
	View
	Source string // absolute path of the view file on the host
	Dir    bool
}

// Mounts returns the OCI bind mounts of every view present below dir. It
// fails when dir holds no view at all: a --views DIR that binds nothing is
// a mistake the user wants to hear about.
func Mounts(dir string) ([]specs.Mount, error) {
	if !filepath.IsAbs(dir) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		dir = abs
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("views: %s is not a directory", dir)
	}
	present := Present(dir)
	if len(present) == 0 {
		return nil, fmt.Errorf("views: no view files below %s (expected e.g. %s)", dir, filepath.Join(dir, List[0].Rel))
	}
	ms := make([]specs.Mount, 0, len(present))
	for _, b := range present {
		ms = append(ms, specs.Mount{
			Destination: b.Dest,
			Type:        "bind",
			Source:      b.Source,
			Options:     append([]string(nil), MountOptions...),
		})
	}
	return ms, nil
}

// Answers checks that the view mount at dir serves files: a daemon that
// died without unmounting leaves a mount whose every access fails with
// ENOTCONN, and binding that into a container would break its /proc. A
// daemon that hangs would hang the stat, so it runs with a time limit.
func Answers(dir string, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() {
		_, err := os.Stat(filepath.Join(dir, List[0].Rel))
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("%s: no answer within %v", dir, timeout)
	}
}

// Live reports whether a corralfs is mounted exactly at dir, from
// /proc/self/mountinfo. A directory that merely exists (left behind by a
// stopped daemon) is not live: binding its empty files would hide the
// container's real /proc files behind nothing.
func Live(dir string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	return liveIn(f, dir)
}

// liveIn scans mountinfo text for a corralfs mount at dir. A later mount at
// the same point hides an earlier one, so the last entry wins.
func liveIn(r io.Reader, dir string) (bool, error) {
	dir = filepath.Clean(dir)
	live := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		point, fstype, source, ok := parseMountinfoLine(sc.Text())
		if !ok || point != dir {
			continue
		}
		live = fstype == FSType || (strings.HasPrefix(fstype, "fuse") && source == "corralfs")
	}
	return live, sc.Err()
}

// parseMountinfoLine extracts the mount point, fs type and source of one
// /proc/PID/mountinfo line (proc(5)): fields 5 (mount point), then after
// the "-" separator the fs type and source.
func parseMountinfoLine(line string) (point, fstype, source string, ok bool) {
	fields := strings.Fields(line)
	if len(fields) < 10 {
		return "", "", "", false
	}
	sep := -1
	for i := 6; i < len(fields); i++ {
		if fields[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || sep+2 >= len(fields) {
		return "", "", "", false
	}
	return unescapeMountinfo(fields[4]), fields[sep+1], unescapeMountinfo(fields[sep+2]), true
}

// unescapeMountinfo undoes the octal escapes (\040 for space, ...) the
// kernel writes into mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1:i+4]) {
			v := (s[i+1]-'0')*64 + (s[i+2]-'0')*8 + (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if s[i] < '0' || s[i] > '7' {
			return false
		}
	}
	return true
}
