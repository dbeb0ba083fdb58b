package fusefs

import "errors"

// Stat renders proc/stat. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Stat(in *Input) ([]byte, error) { return nil, errors.New("proc/stat: not implemented yet") }
