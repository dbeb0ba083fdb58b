package fusefs

import "errors"

// Swaps renders proc/swaps. TODO(helper B): being implemented; until then the
// FUSE layer falls back to the host file.
func Swaps(in *Input) ([]byte, error) { return nil, errors.New("proc/swaps: not implemented yet") }
