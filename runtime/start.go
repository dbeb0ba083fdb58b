package runtime

// Start lets a created container's init exec the user's process.
func (c *Container) Start() error {
	if _, err := c.checkStatus(OpStart); err != nil {
		return err
	}
	return errNotImplemented
}
