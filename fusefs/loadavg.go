package fusefs

import "errors"

// Loadavg renders proc/loadavg. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Loadavg(in *Input) ([]byte, error) { return nil, errors.New("proc/loadavg: not implemented yet") }
