package runspec

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime/seccomp"
)

// applySecurityOpts applies `corral run --security-opt` (Docker's syntax):
// seccomp=unconfined drops the spec's seccomp policy, seccomp=FILE replaces
// it with FILE resolved for the process's bounding capabilities;
// no-new-privileges is accepted (corral always sets it). Anything else is
// refused rather than silently ignored: a user asking for a confinement
// corral does not implement must not believe they have it.
func applySecurityOpts(s *specs.Spec, opts []string) error {
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		if !hasVal {
			key, val, hasVal = strings.Cut(o, ":") // Docker's old form
		}
		switch {
		case key == "seccomp" && hasVal && val == "unconfined":
			s.Linux.Seccomp = nil
		case key == "seccomp" && hasVal && val != "":
			p, err := seccomp.LoadProfile(val)
			if err != nil {
				return fmt.Errorf("--security-opt seccomp=%s: %w", val, err)
			}
			var caps []string
			if c := s.Process.Capabilities; c != nil {
				caps = c.Bounding
			}
			policy, err := p.Resolve(caps)
			if err != nil {
				return fmt.Errorf("--security-opt seccomp=%s: %w", val, err)
			}
			s.Linux.Seccomp = policy
		case key == "no-new-privileges" && (!hasVal || val == "true"):
			s.Process.NoNewPrivileges = true
		default:
			return fmt.Errorf("--security-opt %q: want seccomp=unconfined, seccomp=FILE or no-new-privileges", o)
		}
	}
	return nil
}
