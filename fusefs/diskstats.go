package fusefs

import "errors"

// Diskstats renders proc/diskstats. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Diskstats(in *Input) ([]byte, error) { return nil, errors.New("proc/diskstats: not implemented yet") }
