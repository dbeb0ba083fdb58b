package runtime

// Processes lists the host pids of every process in the container's cgroup.
func (c *Container) Processes() ([]int, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}
