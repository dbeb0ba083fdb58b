package runtime

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Update changes the container's cgroup limits. Only the fields set in r
// change; the stored spec is updated to match.
func (c *Container) Update(r *specs.LinuxResources) error {
	if _, err := c.checkStatus(OpUpdate); err != nil {
		return err
	}
	return errNotImplemented
}
