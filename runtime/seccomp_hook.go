package runtime

import (
	"errors"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// SECCOMP HOOK POINT. Helper F's package runtime/seccomp provides
//
//	seccomp.Install(cfg *specs.LinuxSeccomp) (listenerFd int, err error)
//	seccomp.SendToListener(listenerPath string, state specs.State, metadata string, fd int) error
//
// Until it is wired here, a spec with linux.seccomp is refused clearly.
// The wiring: installSeccomp (called in the init on its locked thread, as
// late as possible before exec) sends a listener fd to the parent in
// msgSeccomp; the parent's sendSeccompListener forwards it with the state
// ("creating") to linux.seccomp.listenerPath and closes it.

var errSeccompUnsupported = errors.New("config: linux.seccomp is set, but seccomp is not supported yet")

func checkSeccompSupported(spec *specs.Spec) error {
	if spec.Linux != nil && spec.Linux.Seccomp != nil {
		return errSeccompUnsupported
	}
	return nil
}

// installSeccomp runs in the init; it returns the notify listener fd, or -1.
func installSeccomp(cfg *specs.LinuxSeccomp) (int, error) {
	if cfg == nil {
		return -1, nil
	}
	return -1, errSeccompUnsupported
}

// sendSeccompListener runs in the parent with the fd from msgSeccomp.
func (c *Container) sendSeccompListener(files []*os.File) error {
	return errSeccompUnsupported
}
