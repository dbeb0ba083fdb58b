// Package runspec turns `corral run` flags into an OCI runtime spec. The
// spec then goes through the same create/start path as `corral create
// --bundle`: `corral run` is only a friendlier way to write config.json.
package runspec

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/corral-dev/corral/runtime"
)

// DefaultPath is the PATH of a container that sets none (Docker's).
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Default returns the spec every `corral run` without --bundle starts from:
// what `corral spec` writes (Docker's default capabilities, runc's mounts,
// masked and read-only paths, every namespace but the user one, a time
// namespace included), running args in rootfs, without a terminal and with
// a writable root unless the flags say otherwise.
func Default(rootfs string, args []string) *specs.Spec {
	s := runtime.DefaultSpec()
	s.Root = &specs.Root{Path: rootfs}
	s.Process.Terminal = false
	s.Process.Args = append([]string(nil), args...)
	// TERM comes back with --tty (finishEnv); HOME and HOSTNAME too.
	s.Process.Env = []string{DefaultPath}
	return s
}
