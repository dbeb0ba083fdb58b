package runtime

// Pause freezes every process of the container (cgroup freezer).
func (c *Container) Pause() error {
	if _, err := c.checkStatus(OpPause); err != nil {
		return err
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if _, err := c.checkStatus(OpResume); err != nil {
		return err
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Thaw()
}
