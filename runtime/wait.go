package runtime

// Wait waits for a foreground container's init (its PID 1) to exit and
// returns its exit status the way shells report it: the exit code, or
// 128+N when killed by signal N (so 137 after an OOM kill; State().OOMKilled
// tells an OOM kill from a plain SIGKILL). Only for Create(Foreground: true).
func (c *Container) Wait() (int, error) {
	return -1, errNotImplemented
}
