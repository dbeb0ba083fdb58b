package runtime

import (
	"os"
	"path/filepath"
	"strconv"
)

// Rootless: corral run by an unprivileged user. Its state cannot live in
// /run/corral (root's); like runc ($XDG_RUNTIME_DIR/runc) it lives in the
// user's runtime directory, which systemd-logind makes private (0700) and
// removes at logout, so nothing outlives the session by accident.

// Rootless reports whether corral runs without root on the host.
func Rootless() bool { return os.Geteuid() != 0 }

// DefaultRootFor is the state root to use when --root is not given:
// DefaultRoot for root, $XDG_RUNTIME_DIR/corral for anyone else, and
// /tmp/corral-UID without a runtime directory (a bare `su` session),
// which Create makes 0711 and owned by the user.
func DefaultRootFor() string {
	if !Rootless() {
		return DefaultRoot
	}
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "corral")
	}
	return filepath.Join(os.TempDir(), "corral-"+strconv.Itoa(os.Geteuid()))
}

// StateDir is the directory that holds container id's state while it
// exists (--userns=auto keys its id blocks on it: runtime/subid).
func (r *Runtime) StateDir(id string) string { return r.stateDir(id) }
