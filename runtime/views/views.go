// Package views knows which corralfs files a container gets and where they
// go: each view file is bind-mounted read-only over its twin under /proc or
// /sys inside the container. `corral run` adds these mounts to the OCI spec
// it builds; the OCI hook (`corral hook`) binds exactly the same list into
// containers that other runtimes start, so both paths stay in step by
// construction.
package views

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/fusefs/facts"
)

// View is one view file or directory and where it is bound: its kernel
// twin. The list and the layout are package facts', which corralfs serves
// from, so what the daemon serves and what containers get bound cannot
// drift apart.
type View = facts.View

// List is every view a container can get, in mount order. The directory
// entry binds the whole LXCFS-style sys/devices/system/cpu tree over its
// twin, as LXCFS recipes do.
var List = facts.Binds

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

// PSI is what the host offers of pressure stall information.
type PSI struct {
	// Host: the kernel has PSI (PressureDir exists).
	Host bool
	// Containers: a container's cgroup can have pressure of its own
	// (ContainersHavePSI).
	Containers bool
}

// HostPSI probes this machine.
func HostPSI() PSI {
	_, err := os.Stat(PressureDir)
	return PSI{Host: err == nil, Containers: ContainersHavePSI()}
}

// Present returns the views of List that exist below dir (and whose host
// gate exists, and for pressure, that can be the container's own), with
// Source set to their absolute path under dir.
func Present(dir string) []Bound { return PresentWith(dir, HostPSI()) }

// PresentWith is Present on a host with psi (runspec.Build gets it from
// its Host).
func PresentWith(dir string, psi PSI) []Bound {
	var out []Bound
	for _, v := range List {
		if v.PSI {
			// Binding /proc/pressure/* into a container on a kernel
			// without PSI would create files the kernel itself does not
			// have; and where the container's cgroup has no pressure of
			// its own, the view would show the host's.
			if !psi.Host || !psi.Containers {
				continue
			}
			if _, err := os.Stat(v.Kernel); err != nil {
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
func PressureMask(bound []Bound) bool { return HostPSI().Mask(bound) }

// Mask is PressureMask on a host with psi.
func (psi PSI) Mask(bound []Bound) bool {
	if !psi.Host {
		return false
	}
	for _, b := range bound {
		if b.PSI {
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
func Mounts(dir string) ([]specs.Mount, error) { return MountsWith(dir, HostPSI()) }

// MountsWith is Mounts on a host with psi.
func MountsWith(dir string, psi PSI) ([]specs.Mount, error) { return MountsFor(dir, psi, "") }

// MountsFor is MountsWith for the container whose bound-view key is key
// (facts.BoundKeyOf): its own files (Own) where the daemon offers them.
func MountsFor(dir string, psi PSI, key string) ([]specs.Mount, error) {
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
	present := PresentWith(dir, psi)
	if len(present) == 0 {
		return nil, fmt.Errorf("views: no view files below %s (expected e.g. %s)", dir, filepath.Join(dir, List[0].Rel))
	}
	present = Own(dir, present, key)
	ms := make([]specs.Mount, 0, len(present))
	for _, b := range present {
		ms = append(ms, specs.Mount{
			Destination: b.Kernel,
			Type:        "bind",
			Source:      b.Source,
			Options:     append([]string(nil), MountOptions...),
		})
	}
	return ms, nil
}

// Own returns present with each file view's source replaced by the
// container's own copy, dir/BOUND/key/REL, when the daemon at dir offers
// bound views (a corralfs with BOUND; an older one or LXCFS has none, and
// present is returned as it is). The container's own files are what its
// reads can be served from the page cache for (docs/design.md decision
// 600); the CPU directory stays the shared one. key "" (no key: a
// container whose controllers are at different paths) keeps the shared
// files too.
func Own(dir string, present []Bound, key string) []Bound {
	if key == "" {
		return present
	}
	if fi, err := os.Stat(filepath.Join(dir, facts.BoundDir)); err != nil || !fi.IsDir() {
		return present
	}
	out := make([]Bound, 0, len(present))
	for _, b := range present {
		if !b.Dir {
			b.Source = filepath.Join(dir, facts.BoundDir, key, b.Rel)
		}
		out = append(out, b)
	}
	return out
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
	ms, err := mountinfo.GetMountsFromReader(r, func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != dir, false
	})
	if err != nil || len(ms) == 0 {
		return false, err
	}
	top := ms[len(ms)-1]
	return top.FSType == facts.FSType || (strings.HasPrefix(top.FSType, "fuse") && top.Source == facts.FSName), nil
}
