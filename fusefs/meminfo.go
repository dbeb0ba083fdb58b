package fusefs

import "errors"

// Meminfo renders proc/meminfo. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Meminfo(in *Input) ([]byte, error) { return nil, errors.New("proc/meminfo: not implemented yet") }
