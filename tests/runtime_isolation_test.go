package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// rtIsolationScript prints KEY=VALUE lines about what the container sees.
const rtIsolationScript = `
echo "pids=$(ps -o pid | sed 1d | tr '\n' ' ')"
echo "first=$(ps -o pid | sed -n 2p | tr -d ' ')"
echo "hostname=$(hostname)"
echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"
echo "ifaces=$(sed 1,2d /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo "lo=$(cat /sys/class/net/lo/operstate 2>/dev/null; grep -c . /proc/net/if_inet6 2>/dev/null)"
echo "mounts=$(wc -l < /proc/self/mountinfo)"
echo "hostmount=$(cut -d' ' -f5 /proc/self/mountinfo | grep -c -e ^/work -e ^/root -e ^/home -e ^/var -e ^/tmp/ -e ^/run/)"
if echo x > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys=writable; else echo procsys=readonly; fi
if mount -t tmpfs none /mnt 2>/dev/null; then echo mount=allowed; else echo mount=denied; fi
for f in kcore keys timer_list; do echo "masked_$f=$(if [ -e /proc/$f ]; then wc -c < /proc/$f; else echo absent; fi)"; done
echo "uptime=$(cut -d. -f1 /proc/uptime)"
echo "cgroup=$(grep -m1 memory /proc/self/cgroup || sed -n 1p /proc/self/cgroup)"
echo "cgfs=$(ls /sys/fs/cgroup | tr '\n' ' ')"
if touch /sys/x 2>/dev/null; then echo sys=writable; else echo sys=readonly; fi
echo "caps=$(grep CapEff /proc/self/status | cut -f2)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | cut -f2)"
echo "devs=$(ls /dev | tr '\n' ' ')"
echo "ptmx=$(readlink /dev/ptmx)"
echo "uid=$(id -u):$(id -g):$(id -G)"
echo "nofile=$(ulimit -n)"
echo "pwd=$(pwd)"
echo "env=$(env | grep -c CORRAL)"
echo "sigblk=$(grep SigBlk /proc/self/status | cut -f2)"
`

// TestRuntimeIsolation checks what a process inside a default container
// sees: only its own processes (PID 1 first), its hostname, no host mounts
// or interfaces, a read-only /proc/sys and /sys, no mount(2), a masked
// /proc/kcore, only fds 0-2, a fresh uptime, its own cgroup as "/",
// Docker's capabilities and no_new_privs.
func TestRuntimeIsolation(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("iso")
	spec := rtSpec(id, "sh", "-c", rtIsolationScript)
	spec.Hostname = "rt-box"
	spec.Process.Cwd = "/tmp"
	spec.Process.User.AdditionalGids = []uint32{5}
	spec.Process.Env = append(spec.Process.Env, "FOO=bar")
	// An inherited non-CLOEXEC fd of the caller must not reach the container.
	leak, err := os.Open("/etc/hostname")
	if err != nil {
		leak, _ = os.Open("/etc/passwd")
	}
	defer leak.Close()
	began := time.Now()
	out := e.runWithExtraFile(id, spec, leak)
	elapsed := time.Since(began).Seconds()
	m := rtLines(out)
	t.Logf("container saw:\n%s", out)
	want := map[string]string{
		"pids":              "1 ", // sh itself (its children are ps's subshell, so count below)
		"first":             "1",
		"hostname":          "rt-box",
		"fds":               "0 1 2 3 ",
		"ifaces":            "lo ",
		"hostmount":         "0",
		"procsys":           "readonly",
		"mount":             "denied",
		"masked_keys":       "0",
		"masked_timer_list": "0",
		"sys":               "readonly",
		"caps":              "00000000a80425fb", // Docker's default set
		"nnp":               "1",
		"ptmx":              "pts/ptmx",
		"uid":               "0:0:0 5",
		"nofile":            "1024",
		"pwd":               "/tmp",
		"env":               "0",
	}
	for k, v := range want {
		got := m[k]
		if k == "pids" {
			if f := strings.Fields(got); len(f) == 0 || f[0] != "1" {
				t.Errorf("ps inside: pids %q, want PID 1 first", got)
			}
			for _, p := range strings.Fields(got) {
				if n, _ := strconv.Atoi(p); n > 100 {
					t.Errorf("ps inside sees pid %d: host processes leak in", n)
				}
			}
			continue
		}
		if got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// /proc/kcore exists only with CONFIG_PROC_KCORE (not on this kernel).
	if _, err := os.Stat("/proc/kcore"); err == nil && m["masked_kcore"] != "0" {
		t.Errorf("/proc/kcore inside has %q bytes, want 0 (masked)", m["masked_kcore"])
	}
	// The container's clock starts at create: its uptime cannot exceed the
	// time since we called create (under 5 s here; a slow emulated VM
	// takes longer, hence relative).
	if up, err := strconv.Atoi(m["uptime"]); err != nil || float64(up) > elapsed+1 {
		t.Errorf("uptime %q after %.1f s: want the container's own (time namespace)", m["uptime"], elapsed)
	}
	if !strings.HasSuffix(m["cgroup"], ":/") {
		t.Errorf("/proc/self/cgroup %q: the cgroup namespace should root it at /", m["cgroup"])
	}
	if !strings.Contains(m["cgfs"], "memory") && !strings.Contains(m["cgfs"], "cgroup.controllers") {
		t.Errorf("/sys/fs/cgroup lists %q: the cgroup filesystem is missing", m["cgfs"])
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue", "fd", "stdin", "stdout", "stderr", "ptmx"} {
		if !strings.Contains(" "+m["devs"], " "+d+" ") {
			t.Errorf("/dev lacks %s: %q", d, m["devs"])
		}
	}
	if n, _ := strconv.Atoi(m["mounts"]); n < 10 || n > 60 {
		t.Errorf("%d mounts inside: want the container's own (about 25)", n)
	}
}

// runWithExtraFile is run, with f inherited (not CLOEXEC) as fd 7 by
// `corral create`, as a careless caller would leak it.
func (e *rtEnv) runWithExtraFile(id string, spec *specs.Spec, f *os.File) string {
	e.t.Helper()
	b := e.bundle(id, spec)
	out := filepath.Join(e.t.TempDir(), "out")
	of, err := os.Create(out)
	if err != nil {
		e.t.Fatal(err)
	}
	defer of.Close()
	r := e.corralWith(func(c *exec.Cmd) {
		c.Stdout, c.Stderr = of, of
		c.ExtraFiles = []*os.File{nil, nil, nil, nil, f}
	}, "create", "--bundle", b, id)
	if r.code != 0 {
		data, _ := os.ReadFile(out)
		e.t.Fatalf("create: %v %s", r, data)
	}
	e.must("start", id)
	e.waitStatus(id, "stopped", 30*time.Second)
	e.must("delete", id)
	data, _ := os.ReadFile(out)
	return string(data)
}
