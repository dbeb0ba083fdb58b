package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Update changes the container's cgroup limits. Only the sections set in r
// change (memory, cpu, pids, blockIO, ...); the stored spec is updated to
// match, so `state` and later updates see the new values.
func (c *Container) Update(r *specs.LinuxResources) error {
	if _, err := c.checkStatus(OpUpdate); err != nil {
		return err
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	// Device rules end with the defaults, as at create (withDefaultDevices).
	if err := cg.Update(withDefaultDevices(r, nil)); err != nil {
		return err
	}
	spec := c.st.Spec
	if spec.Linux.Resources == nil {
		spec.Linux.Resources = &specs.LinuxResources{}
	}
	cur := spec.Linux.Resources
	if r.Memory != nil {
		cur.Memory = r.Memory
	}
	if r.CPU != nil {
		cur.CPU = r.CPU
	}
	if r.Pids != nil {
		cur.Pids = r.Pids
	}
	if r.BlockIO != nil {
		cur.BlockIO = r.BlockIO
	}
	if len(r.Devices) > 0 {
		cur.Devices = r.Devices
	}
	if r.HugepageLimits != nil {
		cur.HugepageLimits = r.HugepageLimits
	}
	if r.Unified != nil {
		cur.Unified = r.Unified
	}
	return writeState(c.dir, c.st)
}
