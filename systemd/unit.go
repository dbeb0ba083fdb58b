// Package systemd carries the systemd units of corral, embedded so that
// tests (and installers) have them without the source tree.
package systemd

import _ "embed"

// CorralfsService is systemd/corralfs.service.
//
//go:embed corralfs.service
var CorralfsService string

// KeeperService is systemd/corralfs-seccomp-keeper.service.
//
//go:embed corralfs-seccomp-keeper.service
var KeeperService string
