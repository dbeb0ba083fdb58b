package tests

import (
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeSpecDevicesAllowed: a linux.devices node is created with
// mknod and usable although linux.resources.devices denies everything: the
// runtime allows the spec's own nodes in the device cgroup (as runc does).
// The host has no node at that path, so a bind of the host's node (the
// fallback when mknod is refused) could not stand in for it.
func TestRuntimeSpecDevicesAllowed(t *testing.T) {
	e := rtNewEnv(t)
	const path = "/dev/corral-test-fuse" // /dev/fuse's numbers, a path the host lacks
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists on the host: the test needs a path the host lacks", path)
	}
	id := rtID("devices")
	s := rtSpec(id, "sh", "-c", "ls -l "+path+"; : <>"+path+" && echo opened=yes")
	mode := os.FileMode(0o600)
	s.Linux.Devices = []specs.LinuxDevice{{Path: path, Type: "c", Major: 10, Minor: 229, FileMode: &mode}}
	if len(s.Linux.Resources.Devices) == 0 || s.Linux.Resources.Devices[0].Allow {
		t.Fatalf("the default spec's device cgroup does not start with deny-all: %+v", s.Linux.Resources.Devices)
	}
	out := e.run(id, s)
	if !strings.Contains(out, "crw-------") || !strings.Contains(out, "10, 229") {
		t.Errorf("device node in the container: %q, want a 0600 character device 10, 229", out)
	}
	if !strings.Contains(out, "opened=yes") {
		t.Errorf("opening the spec's device in the container: %q", out)
	}
}
