package fusefs

import "errors"

// Cpuinfo renders proc/cpuinfo. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Cpuinfo(in *Input) ([]byte, error) { return nil, errors.New("proc/cpuinfo: not implemented yet") }
