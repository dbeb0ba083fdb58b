package runtime

import (
	"time"
)

// ExitRecord is how a container's init ended, kept in its state so that
// `corral inspect` and `list` can tell it after the fact. Only the init's
// parent can learn the exit status (wait(2)), so whoever waited records
// it: `corral run` in the foreground, the monitor of a detached one.
type ExitRecord struct {
	Code      int       `json:"code"`                // as shells report it: 128+N for signal N
	OOMKilled bool      `json:"oomKilled,omitempty"` // the cgroup saw an OOM kill
	Finished  time.Time `json:"finished"`
}

// RecordExit stores the init's exit status (as Wait returns it) with
// whether the kernel's OOM killer struck in the container's cgroup, and
// returns the record. Call it before Delete: the cgroup holds the count.
func (c *Container) RecordExit(code int) (*ExitRecord, error) {
	rec := &ExitRecord{Code: code, Finished: time.Now().UTC()}
	if cg, err := c.cgroup(); err == nil {
		if n, err := cg.OOMKills(); err == nil && n > 0 {
			rec.OOMKilled = true
		}
	}
	c.st.Exit = rec
	return rec, writeState(c.dir, c.st)
}

// Exit is the recorded end of the container's init, nil while it runs or
// when nobody waited for it.
func (c *Container) Exit() *ExitRecord { return c.st.Exit }

// Started is when Start let the container's process run (zero before).
func (c *Container) Started() time.Time { return c.st.Started }
