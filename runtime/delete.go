package runtime

// Delete removes a stopped (or created) container: its processes, cgroup
// and state directory. force kills a running or paused container first.
func (c *Container) Delete(force bool) error {
	op := OpDelete
	if force {
		op = OpForce
	}
	if _, err := c.checkStatus(op); err != nil {
		return err
	}
	return errNotImplemented
}
