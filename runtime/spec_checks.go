package runtime

import (
	"encoding/json"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// maxConfigBytes bounds a container's configuration. A real config.json is
// a few KiB (Docker's seccomp profile included, about 15 KiB); the spec is
// copied into the state file and sent to the init in one sync message
// (at most 64 MiB, sync.go), so a 200 MB one used to cost gigabytes of
// memory and end in "broken pipe". Refused up front instead.
const maxConfigBytes = 16 << 20

// checkConfigSize refuses a config.json file over maxConfigBytes before
// reading it.
func checkConfigSize(file string, size int64) error {
	if size > maxConfigBytes {
		return fmt.Errorf("%s is %d bytes: corral refuses configurations over %d MiB (a real one is a few KiB)", file, size, maxConfigBytes>>20)
	}
	return nil
}

// checkSpecSize refuses an in-memory spec whose encoding exceeds
// maxConfigBytes (one built by `corral run`, or passed to Create).
func checkSpecSize(spec *specs.Spec) error {
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(b) > maxConfigBytes {
		return fmt.Errorf("config: %d bytes encoded: corral refuses configurations over %d MiB (a real one is a few KiB)", len(b), maxConfigBytes>>20)
	}
	return nil
}

// checkRlimits refuses unknown and duplicate rlimit types and a soft limit
// above the hard one before anything is created (runc refuses duplicates
// too); the init would otherwise fail late, with the container half set
// up, or silently keep only the last of two values.
func checkRlimits(p *specs.Process) error {
	seen := map[string]bool{}
	for _, l := range p.Rlimits {
		if _, ok := rlimitNames[l.Type]; !ok {
			return fmt.Errorf("config: process.rlimits: unknown type %q", l.Type)
		}
		if seen[l.Type] {
			return fmt.Errorf("config: process.rlimits: %s given more than once", l.Type)
		}
		seen[l.Type] = true
		if l.Soft > l.Hard {
			return fmt.Errorf("config: process.rlimits: %s soft limit %d is above the hard limit %d", l.Type, l.Soft, l.Hard)
		}
	}
	return nil
}
