package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/image/containerroot"
	"github.com/corral-dev/corral/runtime/runspec"
)

// runSpec is runspec.Build's result plus what `corral run` made for it
// before: the overlay root of an image's container, which the runtime
// releases on delete and release() when no container took it over.
type runSpec struct {
	*runspec.Result
	imageRoot string
}

func (rs *runSpec) release() {
	if rs.imageRoot != "" {
		containerroot.Release(rs.imageRoot)
	}
}

// buildRunSpec is runspec.Build on this machine: the flags as a
// runspec.Config (with an image's root mounted first), the host probed
// once, the warnings printed on warn.
func buildRunSpec(rt *runtime.Runtime, f *runFlags, id string, warn io.Writer) (*runSpec, error) {
	cfg, err := f.specConfig(id)
	if err != nil {
		return nil, err
	}
	rs := &runSpec{}
	if f.image != nil {
		if cfg.Image, rs.imageRoot, err = mountImage(f.image, id); err != nil {
			return nil, err
		}
	}
	sock := facts.SeccompSocket
	if filepath.IsAbs(f.sysinfo) {
		sock = f.sysinfo // --sysinfo SOCKET
	}
	res, err := runspec.Build(cfg, runspec.ProbeHost(sock, rootInUse(rt)))
	if err != nil {
		rs.release()
		return nil, err
	}
	if err := applyUserNS(rt, res.Spec, f.userns, id); err != nil {
		rs.release()
		return nil, err
	}
	if runtime.Rootless() && !runtime.ExecEntersTimeNS() && dropTimeNS(res.Spec) {
		fmt.Fprintln(warn, "corral: rootless on Linux before 6.3: the container shares the host's clocks (no time namespace)")
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(warn, "corral: %s\n", w)
	}
	rs.Result = res
	return rs, nil
}

// specConfig is the part of the flags that makes the spec.
func (f *runFlags) specConfig(id string) (runspec.Config, error) {
	cfg := runspec.Config{
		Bundle: f.bundle, Rootfs: f.rootfs, ID: id, Name: f.name, Options: f.opts,
		SecurityOpt: f.securityOpt, Views: f.views, Sysinfo: f.sysinfo,
		Entrypoint: f.entrypoint, ReadOnlyGiven: f.extras.readOnlyGiven,
	}
	if f.extras.init {
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("--init: %w", err)
		}
		cfg.Init = exe
	}
	return cfg, nil
}

// rootInUse tells the default-root builder whether a container of this
// runtime still uses an old generation, so it is not removed from under it.
func rootInUse(rt *runtime.Runtime) func(string) bool {
	return func(path string) bool {
		cs, err := rt.List()
		if err != nil {
			return true // unsure: keep it
		}
		for _, c := range cs {
			if c.Rootfs() == path {
				return true
			}
		}
		return false
	}
}
