package main

import (
	"fmt"
	"io"

	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/runtime"
	"github.com/corral-dev/corral/runtime/runspec"
)

// buildRunSpec is runspec.Build on this machine: the flags as a
// runspec.Config, the host probed once, the warnings printed on warn.
func buildRunSpec(rt *runtime.Runtime, f *runFlags, id string, warn io.Writer) (*runspec.Result, error) {
	res, err := runspec.Build(f.specConfig(id), runspec.ProbeHost(facts.SeccompSocket, rootInUse(rt)))
	if err != nil {
		return nil, err
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(warn, "corral: %s\n", w)
	}
	return res, nil
}

// specConfig is the part of the flags that makes the spec.
func (f *runFlags) specConfig(id string) runspec.Config {
	return runspec.Config{
		Bundle: f.bundle, Rootfs: f.rootfs, ID: id, Name: f.name, Options: f.opts,
		SecurityOpt: f.securityOpt, Views: f.views, Sysinfo: f.sysinfo,
	}
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
