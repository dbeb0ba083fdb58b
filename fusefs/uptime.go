package fusefs

import "errors"

// Uptime renders proc/uptime. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Uptime(in *Input) ([]byte, error) { return nil, errors.New("proc/uptime: not implemented yet") }
