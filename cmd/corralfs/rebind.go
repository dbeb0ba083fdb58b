package main

import (
	"github.com/corral-dev/corral/runtime/views"
)

// rebindDead gives running containers whose views died with an earlier
// corralfs (mounted at our mount point, killed without systemd's fd store)
// this daemon's views instead: without it they would read "Transport
// endpoint is not connected" until restarted, as with LXCFS.
func (s *supervisor) rebindDead() {
	if len(s.dead) == 0 {
		return
	}
	rep := views.RebindDead(s.mp, s.dead)
	for _, err := range rep.Errors {
		s.log.Warn("a dead view could not be replaced", "err", err)
	}
	if rep.Views > 0 || len(rep.Errors) > 0 {
		s.log.Info("replaced the views a dead corralfs left in running containers",
			"views", rep.Views, "mount_namespaces", rep.Namespaces, "failed", len(rep.Errors))
	}
	s.dead = nil
}
