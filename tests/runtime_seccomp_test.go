package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestRuntimeSeccompProfile: the spec's seccomp profile is enforced on the
// container's process and on exec'd ones.
func TestRuntimeSeccompProfile(t *testing.T) {
	e := rtNewEnv(t)
	id := rtID("seccomp")
	s := rtSpec(id, "sh", "-c", "mkdir /x 2>&1; echo rc=$?; sleep 1000")
	eperm := uint(unix.EPERM)
	s.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm}},
	}
	b := e.bundle(id, s)
	out := e.create(id, b)
	e.must("start", id)
	rtWaitFile(t, out, "rc=")
	if data, _ := os.ReadFile(out); !strings.Contains(string(data), "Operation not permitted") || !strings.Contains(string(data), "rc=1") {
		t.Errorf("mkdir under the profile: %q", data)
	}
	if r := e.corral("exec", id, "mkdir", "/y"); r.code == 0 || !strings.Contains(r.stderr, "Operation not permitted") {
		t.Errorf("mkdir in an exec under the profile: %v", r)
	}
	if r := e.corral("exec", id, "true"); r.code != 0 {
		t.Errorf("exec under the profile: %v", r)
	}
	e.must("delete", "--force", id)
}

// TestRuntimeSeccompListener: with SCMP_ACT_NOTIFY rules, the listener fd
// and the container state reach linux.seccomp.listenerPath before the
// container's process runs (the OCI protocol corralfs's agent speaks).
func TestRuntimeSeccompListener(t *testing.T) {
	e := rtNewEnv(t)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type got struct {
		st   specs.ContainerProcessState
		kind string
		err  error
	}
	gotc := make(chan got, 1)
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			gotc <- got{err: err}
			return
		}
		defer c.Close()
		buf, oob := make([]byte, 1<<16), make([]byte, unix.CmsgSpace(4))
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if err != nil {
			gotc <- got{err: err}
			return
		}
		var g got
		g.err = json.Unmarshal(buf[:n], &g.st)
		if msgs, _ := unix.ParseSocketControlMessage(oob[:oobn]); len(msgs) == 1 {
			if fds, _ := unix.ParseUnixRights(&msgs[0]); len(fds) == 1 {
				g.kind, _ = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fds[0]))
				unix.Close(fds[0]) // the trapped syscall then fails with ENOSYS
			}
		}
		gotc <- g
	}()
	id := rtID("listener")
	s := rtSpec(id, "true")
	s.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow, ListenerPath: sock, ListenerMetadata: "meta",
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"sysinfo"}, Action: specs.ActNotify}},
	}
	b := e.bundle(id, s)
	e.create(id, b)
	var g got
	select {
	case g = <-gotc:
	case <-time.After(10 * time.Second):
		t.Fatal("nothing arrived on the listener socket")
	}
	if g.err != nil {
		t.Fatal(g.err)
	}
	if g.st.State.ID != id || g.st.State.Status != specs.StateCreating || g.st.Pid != e.state(id).Pid ||
		g.st.Metadata != "meta" || len(g.st.Fds) != 1 || g.st.Fds[0] != specs.SeccompFdName {
		t.Errorf("listener got %+v", g.st)
	}
	if g.kind != "anon_inode:seccomp notify" {
		t.Errorf("listener fd is %q", g.kind)
	}
	e.must("delete", id)
	// A notify rule without a listenerPath is refused before anything exists.
	id2 := rtID("nolistener")
	s2 := rtSpec(id2, "true")
	s2.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"sysinfo"}, Action: specs.ActNotify}}}
	if r := e.corral("create", "--bundle", e.bundle(id2, s2), id2); r.code == 0 || !strings.Contains(r.stderr, "listenerPath") {
		t.Errorf("notify without listenerPath: %v", r)
	}
}

// TestRuntimeSeccompBlocksCloseRange: a profile that refuses close_range
// (older default profiles; podman --security-opt seccomp=PROFILE) with EPERM
// or ENOSYS still starts, with no_new_privs off so the filter is in place
// before the runtime marks its fds close-on-exec; the fallback walk of
// /proc/self/fd must still keep every runtime fd out of the program, for
// the init and for an exec.
func TestRuntimeSeccompBlocksCloseRange(t *testing.T) {
	for _, errno := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
		t.Run(errno.Error(), func(t *testing.T) {
			e := rtNewEnv(t)
			id := rtID("closerange")
			s := rtSpec(id, "sh", "-c", "echo fds=$(ls /proc/self/fd | tr '\\n' ' '); sleep 1000")
			s.Process.NoNewPrivileges = false
			ret := uint(errno)
			s.Linux.Seccomp = &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Architectures: []specs.Arch{specs.ArchX86_64},
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"close_range"}, Action: specs.ActErrno, ErrnoRet: &ret}},
			}
			out := e.create(id, e.bundle(id, s))
			e.must("start", id)
			rtWaitFile(t, out, "fds=")
			// ls lists its own directory fd as 3: nothing else may be open.
			if got := rtLines(rtRead(t, out))["fds"]; strings.TrimSpace(got) != "0 1 2 3" {
				t.Errorf("fds open in the container's process: %q, want 0 1 2 3", got)
			}
			r := e.corral("exec", id, "sh", "-c", "ls /proc/self/fd | tr '\\n' ' '")
			if r.code != 0 || strings.TrimSpace(r.stdout) != "0 1 2 3" {
				t.Errorf("exec under the profile: %v, want fds 0 1 2 3", r)
			}
			e.must("delete", "--force", id)
		})
	}
}
