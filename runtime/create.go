package runtime

import (
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// CreateOpts are the inputs of Create.
type CreateOpts struct {
	// Bundle is the bundle directory: config.json and the base of a
	// relative root.path. With Spec set, only the latter.
	Bundle string
	// Spec, if non-nil, is used instead of Bundle/config.json.
	Spec *specs.Spec
	// PidFile, if set, receives the init's host pid once created.
	PidFile string
	// ConsoleSocket is a unix socket path: with process.terminal the pty
	// master is sent there (SCM_RIGHTS), as runc does for podman/containerd.
	ConsoleSocket string
	// Stdin, Stdout, Stderr become the container process's 0, 1, 2 (when it
	// has no terminal). nil means /dev/null.
	Stdin, Stdout, Stderr *os.File
	// ExtraFiles become fds 3, 4, ... in the container (runc's
	// --preserve-fds, systemd socket activation's LISTEN_FDS).
	ExtraFiles []*os.File
	// Foreground: the caller stays the init's parent and calls Wait. With
	// process.terminal and no ConsoleSocket, Container.Console() returns the
	// pty master.
	Foreground bool
	// NoPivot uses MS_MOVE+chroot instead of pivot_root (runc --no-pivot).
	NoPivot bool
}

// Create sets a container up and leaves its init blocked until Start.
func (r *Runtime) Create(id string, o CreateOpts) (*Container, error) {
	return nil, errNotImplemented
}
