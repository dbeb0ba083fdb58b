package runtime

import (
	"errors"
	"strings"
	"testing"
)

// TestTransitionTable walks every (status, op) pair: the valid ones pass,
// every other one fails with a *TransitionError naming the op and status.
func TestTransitionTable(t *testing.T) {
	valid := map[Status]map[Op]bool{
		Creating: {OpForce: true},
		Created:  {OpStart: true, OpKill: true, OpDelete: true, OpForce: true, OpExec: true, OpPause: true, OpUpdate: true},
		Running:  {OpKill: true, OpForce: true, OpExec: true, OpPause: true, OpUpdate: true},
		Paused:   {OpKill: true, OpForce: true, OpResume: true, OpUpdate: true},
		Stopped:  {OpDelete: true, OpForce: true},
	}
	for _, s := range AllStatuses {
		for _, op := range AllOps {
			err := CheckTransition("c1", s, op)
			if valid[s][op] {
				if err != nil {
					t.Errorf("%s in %s: want ok, got %v", op, s, err)
				}
				continue
			}
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Errorf("%s in %s: want a TransitionError, got %v", op, s, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, string(op)) || !strings.Contains(msg, string(s)) || !strings.Contains(msg, `"c1"`) {
				t.Errorf("%s in %s: error %q does not name op, status and id", op, s, msg)
			}
		}
	}
}

func TestTransitionHints(t *testing.T) {
	for _, tc := range []struct {
		s    Status
		op   Op
		hint string
	}{
		{Running, OpDelete, "--force"},
		{Running, OpStart, "only a created container"},
		{Paused, OpExec, "resume it first"},
		// containerd's runc shim matches runc's words (CRI pod stop).
		{Stopped, OpKill, "container not running"},
	} {
		err := CheckTransition("x", tc.s, tc.op)
		if err == nil || !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("%s in %s: %v lacks hint %q", tc.op, tc.s, err, tc.hint)
		}
	}
}
