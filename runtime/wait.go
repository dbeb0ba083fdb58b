package runtime

import "errors"

// Wait waits for a foreground container's init (its PID 1) to exit and
// returns its exit status the way shells report it: the exit code, or
// 128+N when killed by signal N (so 137 after an OOM kill; State().OOMKilled
// tells an OOM kill from a plain SIGKILL). Only for Create(Foreground: true);
// calling it again returns the same status.
func (c *Container) Wait() (int, error) {
	if c.proc == nil {
		return -1, errors.New("wait: only a container created in the foreground can be waited for")
	}
	if c.waited {
		return c.exit, nil
	}
	code, err := waitStatus(c.proc)
	if err != nil && code < 0 {
		return -1, err
	}
	c.waited, c.exit = true, code
	return code, nil
}
