package tests

import (
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestRuntimeViewStyleMounts: the binds `corral run` adds for corralfs's
// views are ordinary OCI mounts after /proc and /sys in the list: a file
// bound read-only over /proc/meminfo and a directory over
// /sys/devices/system/cpu on the read-only /sys. Both must show our
// content and stay read-only.
func TestRuntimeViewStyleMounts(t *testing.T) {
	e := rtNewEnv(t)
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "meminfo"), []byte("MemTotal: 262144 kB\n"), 0o644)
	cpu := filepath.Join(src, "cpu")
	os.Mkdir(cpu, 0o755)
	os.WriteFile(filepath.Join(cpu, "online"), []byte("0\n"), 0o644)
	id := rtID("views")
	s := rtSpec(id, "sh", "-c", `echo "meminfo=$(cat /proc/meminfo)"; echo "online=$(cat /sys/devices/system/cpu/online)"
if echo x > /proc/meminfo 2>/dev/null; then echo memw=yes; else echo memw=no; fi
if touch /sys/devices/system/cpu/x 2>/dev/null; then echo cpuw=yes; else echo cpuw=no; fi
echo "stat=$(head -c 3 /proc/stat)"`)
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: filepath.Join(src, "meminfo"), Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/sys/devices/system/cpu", Type: "bind", Source: cpu, Options: []string{"rbind", "ro"}},
	)
	m := rtLines(e.run(id, s))
	want := map[string]string{"meminfo": "MemTotal: 262144 kB", "online": "0", "memw": "no", "cpuw": "no", "stat": "cpu"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}

// TestRuntimeDeviceCgroup: the device cgroup forbids a host disk (loop0)
// to the container, whether at mknod (the "m" access) or at open, though
// CAP_MKNOD is in Docker's set; the standard nodes work.
func TestRuntimeDeviceCgroup(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("dev")
	s := rtSpec(id, "sh", "-c", `if mknod /tmp/disk b 7 0 2>/dev/null; then (head -c1 /tmp/disk >/dev/null 2>&1 && echo disk=open || echo disk=denied); else echo disk=denied; fi
head -c4 /dev/zero | wc -c | sed 's/^/zero=/'; echo x > /dev/null && echo null=ok; head -c1 /dev/urandom | wc -c | sed 's/^/urandom=/'`)
	m := rtLines(e.run(id, s))
	want := map[string]string{"disk": "denied", "zero": "4", "null": "ok", "urandom": "1"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %q, want %q", k, m[k], v)
		}
	}
}
