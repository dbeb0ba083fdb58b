package tests

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/corral-dev/corral/runtime"
)

// TestRuntimeInvalidTransitions puts a real container in each status and
// runs every verb that the transition table forbids there: each must fail
// with an error naming the verb and the status, and leave the container as
// it was. (runtime's TestTransitionTable covers the table itself.)
func TestRuntimeInvalidTransitions(t *testing.T) {
	e := rtNewEnv(t)
	verbs := map[runtime.Op]func(id string) []string{
		runtime.OpStart:  func(id string) []string { return []string{"start", id} },
		runtime.OpKill:   func(id string) []string { return []string{"kill", id, "KILL"} },
		runtime.OpDelete: func(id string) []string { return []string{"delete", id} },
		runtime.OpExec:   func(id string) []string { return []string{"exec", id, "true"} },
		runtime.OpPause:  func(id string) []string { return []string{"pause", id} },
		runtime.OpResume: func(id string) []string { return []string{"resume", id} },
		runtime.OpUpdate: func(id string) []string { return []string{"update", "--pids-limit", "99", id} },
	}
	setups := map[runtime.Status]func(id string){
		runtime.Created: func(id string) {},
		runtime.Running: func(id string) { e.must("start", id) },
		runtime.Paused:  func(id string) { e.must("start", id); e.must("pause", id) },
		runtime.Stopped: func(id string) {
			e.must("start", id)
			e.must("kill", id, "KILL")
			e.waitStatus(id, "stopped", 10*time.Second)
		},
	}
	for status, setup := range setups {
		id := rtID("trans-" + string(status))
		b := e.bundle(id, rtSpec(id, "sleep", "1000"))
		e.create(id, b)
		setup(id)
		for op, argv := range verbs {
			err := runtime.CheckTransition(id, status, op)
			var te *runtime.TransitionError
			if !errors.As(err, &te) {
				continue // allowed here: the lifecycle tests cover it
			}
			r := e.corral(argv(id)...)
			if r.code == 0 {
				t.Errorf("%s on a %s container succeeded", op, status)
				continue
			}
			if !strings.Contains(r.stderr, "cannot "+string(op)) || !strings.Contains(r.stderr, string(status)) {
				t.Errorf("%s on a %s container: unclear error %q", op, status, r.stderr)
			}
			if got := e.state(id).Status; string(got) != string(status) {
				t.Errorf("%s on a %s container changed it to %s", op, status, got)
			}
		}
		e.must("delete", "--force", id)
	}
}
