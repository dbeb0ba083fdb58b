package runtime

import "fmt"

// Status is a container's lifecycle state. The first four are the OCI
// runtime-spec states; paused is the one runc and every client add.
//
//	create ──► creating ──► created ──start──► running ◄──resume── paused
//	                │          │                  │  └──pause──►  │
//	                ▼          ▼ (kill/exit)      ▼ (exit/kill)    ▼ (kill)
//	             (gone)      stopped ◄────────────┴────────────────┘
//	                           │ delete
//	                           ▼
//	                         (gone)
type Status string

const (
	Creating Status = "creating" // the init is being set up; create has not returned
	Created  Status = "created"  // the init waits on the exec fifo for `start`
	Running  Status = "running"  // the user's process runs (it replaced the init)
	Paused   Status = "paused"   // every process of the container is frozen
	Stopped  Status = "stopped"  // the container's init has exited
)

// Op is a lifecycle operation whose validity depends on the status.
type Op string

const (
	OpStart  Op = "start"
	OpKill   Op = "kill"
	OpDelete Op = "delete" // without --force
	OpForce  Op = "delete --force"
	OpExec   Op = "exec"
	OpPause  Op = "pause"
	OpResume Op = "resume"
	OpUpdate Op = "update"
)

// allowed is THE table of valid transitions: every verb's first line checks
// it, and status_test.go proves every other (status, op) pair is refused.
var allowed = map[Op][]Status{
	OpStart:  {Created},
	OpKill:   {Created, Running, Paused},
	OpDelete: {Created, Stopped},
	OpForce:  {Creating, Created, Running, Paused, Stopped},
	OpExec:   {Created, Running},
	OpPause:  {Created, Running},
	OpResume: {Paused},
	OpUpdate: {Created, Running, Paused},
}

// AllStatuses lists every status, in lifecycle order.
var AllStatuses = []Status{Creating, Created, Running, Paused, Stopped}

// AllOps lists every operation checked by CheckTransition.
var AllOps = []Op{OpStart, OpKill, OpDelete, OpForce, OpExec, OpPause, OpResume, OpUpdate}

// TransitionError says an operation is not valid in the container's status.
type TransitionError struct {
	ID     string
	Op     Op
	Status Status
}

func (e *TransitionError) Error() string {
	hint := ""
	switch {
	case e.Op == OpDelete && (e.Status == Running || e.Status == Paused):
		hint = " (stop it first, or use delete --force)"
	case e.Op == OpStart && e.Status != Created:
		hint = " (only a created container can be started)"
	case e.Op == OpExec && e.Status == Paused:
		hint = " (resume it first)"
	case e.Op == OpKill && e.Status == Stopped:
		// runc's wording, which containerd's runc shim matches to treat
		// the kill of an exited container as done: without it a pod
		// whose container had exited could not be stopped.
		hint = " (container not running)"
	}
	return fmt.Sprintf("cannot %s container %q: it is %s%s", e.Op, e.ID, e.Status, hint)
}

// CheckTransition returns nil when op is valid for a container in status s,
// else a *TransitionError naming both.
func CheckTransition(id string, s Status, op Op) error {
	for _, ok := range allowed[op] {
		if ok == s {
			return nil
		}
	}
	return &TransitionError{ID: id, Op: op, Status: s}
}
