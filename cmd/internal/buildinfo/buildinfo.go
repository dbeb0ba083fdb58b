// Package buildinfo says which build of corral and corralfs is running:
// the version and commit `make build` stamps in with -ldflags -X, else
// what the Go toolchain recorded (a `go build` with VCS stamping), and
// the Go version. Both binaries print it for --version, and corralfs
// status reports the serving worker's, so an operator can tell after a
// reload which build answers.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the Makefile: -X github.com/corral-dev/corral/cmd/internal/buildinfo.version=...
var (
	version = ""
	commit  = ""
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
}

// Get returns this binary's build identity. Fields nobody recorded read
// "unknown" rather than empty, so output never looks truncated.
func Get() Info {
	i := Info{Version: version, Commit: commit, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			i.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && i.Commit == "" {
				i.Commit = s.Value
			}
		}
	}
	if i.Version == "" {
		i.Version = "dev"
	}
	if i.Commit == "" {
		i.Commit = "unknown"
	}
	return i
}

// String is the one-line form both binaries print after their name.
func (i Info) String() string {
	return fmt.Sprintf("version %s, commit %s, %s", i.Version, i.Commit, i.GoVersion)
}
