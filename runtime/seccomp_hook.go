package runtime

import (
	"errors"
	"fmt"
	"os"

	"github.com/corral-dev/corral/runtime/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Seccomp, with runtime/seccomp doing the compiling and loading:
//   - the parent compiles linux.seccomp before creating anything, so a bad
//     profile is a clear error with nothing to roll back (checkSeccomp);
//   - the init (or exec init) loads it on its locked thread as late as
//     possible before exec (processSetup.installSeccomp); a profile with
//     SCMP_ACT_NOTIFY rules yields a listener fd, sent to the parent in
//     msgSeccomp;
//   - the parent hands that fd, with the container state, to
//     linux.seccomp.listenerPath (the OCI protocol corralfs's sysinfo agent
//     speaks) and closes its copy (sendSeccompListener).

// checkSeccomp validates the spec's seccomp section in the parent and
// returns the compiled program (nil: no seccomp), which the init loads as
// it is: compiling Docker's profile took about 4% of a `corral run --rm`'s
// CPU time (perf), and the init did it a second time on the critical path.
func checkSeccomp(spec *specs.Spec) (*seccomp.Program, error) {
	if spec.Linux == nil || spec.Linux.Seccomp == nil {
		return nil, nil
	}
	prog, err := seccomp.Compile(spec.Linux.Seccomp)
	if err != nil {
		return nil, fmt.Errorf("config: linux.seccomp: %w", err)
	}
	if prog.Notify && spec.Linux.Seccomp.ListenerPath == "" {
		return nil, errors.New("config: linux.seccomp has SCMP_ACT_NOTIFY rules but no listenerPath")
	}
	return prog, nil
}

// installSeccomp runs in the init; it returns the notify listener fd, or -1.
// prog is the parent's compilation of cfg when it sent one.
func installSeccomp(cfg *specs.LinuxSeccomp, prog *seccomp.Program) (int, error) {
	if cfg == nil {
		return -1, nil
	}
	if prog != nil {
		return prog.Load()
	}
	return seccomp.Install(cfg)
}

// sendSeccompListener runs in the parent with the fd from msgSeccomp.
func (c *Container) sendSeccompListener(files []*os.File) error {
	if len(files) != 1 {
		return errors.New("sync protocol: seccomp message without a listener fd")
	}
	sc := c.st.Spec.Linux.Seccomp
	if sc == nil || sc.ListenerPath == "" {
		return errors.New("seccomp listener fd received, but the spec has no listenerPath")
	}
	status := specs.StateCreating
	if s, err := c.Status(); err == nil && s != Creating {
		status = specs.ContainerState(s) // an exec into a running container
	}
	state := specs.State{
		Version: specs.Version, ID: c.st.ID, Status: status, Pid: c.st.Pid,
		Bundle: c.st.Bundle, Annotations: c.st.Spec.Annotations,
	}
	return seccomp.SendToListener(sc.ListenerPath, state, sc.ListenerMetadata, int(files[0].Fd()))
}
