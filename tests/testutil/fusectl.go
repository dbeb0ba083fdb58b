package testutil

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fusectlMagic is FUSE_CTL_SUPER_MAGIC (linux/magic.h), which x/sys lacks.
const fusectlMagic = 0x65735543

// FusectlDir is where the kernel's FUSE connections are shown
// (/sys/fs/fuse/connections/N/{waiting,abort,max_background,...}),
// mounting fusectl there first when it is not (hosts without systemd do
// not mount it). One helper for every test that looks into a connection.
func FusectlDir() (string, error) {
	const dir = "/sys/fs/fuse/connections"
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil && st.Type == fusectlMagic {
		return dir, nil
	}
	if err := unix.Mount("fusectl", dir, "fusectl", 0, ""); err != nil {
		return "", fmt.Errorf("mounting fusectl at %s: %w", dir, err)
	}
	return dir, nil
}

// FuseConnOf is the fusectl name (the device minor) of the FUSE
// connection mounted at mp, read from mountinfo: stat(2) of a hung mount
// would hang too. "" when nothing is mounted there.
func FuseConnOf(mp string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && fields[4] == mp {
			if _, minor, ok := strings.Cut(fields[2], ":"); ok {
				return minor
			}
		}
	}
	return ""
}

// FuseConnFile reads one fusectl file of the connection mounted at mp
// (e.g. "waiting", "max_background").
func FuseConnFile(mp, name string) (string, error) {
	conn := FuseConnOf(mp)
	if conn == "" {
		return "", fmt.Errorf("no FUSE mount at %s", mp)
	}
	dir, err := FusectlDir()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, conn, name))
	return strings.TrimSpace(string(b)), err
}
