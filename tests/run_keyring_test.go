package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// keyringSession is a caller of corral with a login-like session keyring
// of its own: a fresh session keyring holding a secret, with host root's
// user keyring linked in (as pam_keyinit does), and a secret in that user
// keyring. Its commands run on one locked thread whose credentials carry
// the session keyring (keyrings are per thread), so corral inherits it.
type keyringSession struct {
	cmds    chan func()
	sesKey  int    // a key in the session keyring
	userKey int    // a key in host root's user keyring
	planted string // the description a container tries to plant
}

// newKeyringSession starts the locked thread; the user-keyring key is
// invalidated and the thread (with its session keyring) ends with the test.
func newKeyringSession(t *testing.T) *keyringSession {
	t.Helper()
	ks := &keyringSession{cmds: make(chan func()), planted: fmt.Sprintf("corral-test-planted-%d", os.Getpid())}
	ready := make(chan error, 1)
	go func() {
		// Never unlocked: the thread exits with the goroutine, so its
		// changed credentials never serve another goroutine.
		goruntime.LockOSThread()
		ready <- ks.setup()
		for f := range ks.cmds {
			f()
		}
		if ks.userKey > 0 {
			unix.KeyctlInt(unix.KEYCTL_INVALIDATE, ks.userKey, 0, 0, 0)
		}
	}()
	if err := <-ready; err != nil {
		close(ks.cmds)
		if errors.Is(err, unix.ENOSYS) {
			t.Skip("this kernel has no keyrings")
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { close(ks.cmds) })
	return ks
}

func (ks *keyringSession) setup() error {
	// A NULL name: a new anonymous session keyring.
	if _, _, e := unix.RawSyscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); e != 0 {
		return fmt.Errorf("new session keyring: %w", e)
	}
	var err error
	if ks.sesKey, err = unix.AddKey("user", "corral-test-session-secret", []byte("session-secret"), unix.KEY_SPEC_SESSION_KEYRING); err != nil {
		return fmt.Errorf("add session key: %w", err)
	}
	desc := fmt.Sprintf("corral-test-user-secret-%d", os.Getpid())
	if ks.userKey, err = unix.AddKey("user", desc, []byte("user-secret"), unix.KEY_SPEC_USER_KEYRING); err != nil {
		return fmt.Errorf("add user key: %w", err)
	}
	if _, err := unix.KeyctlInt(unix.KEYCTL_LINK, unix.KEY_SPEC_USER_KEYRING, unix.KEY_SPEC_SESSION_KEYRING, 0, 0); err != nil {
		return fmt.Errorf("link the user keyring into the session: %w", err)
	}
	return nil
}

// corral runs bin/corral ARGS from the session's thread.
func (ks *keyringSession) corral(e *runEnv, args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	var err error
	done := make(chan struct{})
	ks.cmds <- func() {
		defer close(done)
		cmd := exec.Command(e.corral, append([]string{"--root", e.root}, args...)...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		err = cmd.Run()
	}
	<-done
	return out.String(), errb.String(), err
}

// hasPlanted reports whether the session keyring got the planted key.
func (ks *keyringSession) hasPlanted() bool {
	found := false
	done := make(chan struct{})
	ks.cmds <- func() {
		defer close(done)
		_, err := unix.KeyctlSearch(unix.KEY_SPEC_SESSION_KEYRING, "user", ks.planted, 0)
		found = err == nil
	}
	<-done
	return found
}

// TestRunSessionKeyring: a container gets a session keyring of its own
// (_ses.<id>, runc's), so it cannot read the caller's session keys, nor
// host root's user keyring that the caller's session links, nor plant
// keys in the caller's session. seccomp=unconfined, since the default
// profile refuses keyctl outright. --no-new-keyring keeps the caller's
// keyring: then all three work, which is what the test would see without
// the fix.
func TestRunSessionKeyring(t *testing.T) {
	e := runNewEnv(t, false)
	ks := newKeyringSession(t)
	probeDir := secProbeDir(t)
	script := fmt.Sprintf("/probe/secprobe keyring; /probe/secprobe keyread %d | sed s/^read/ses/; /probe/secprobe keyread %d | sed s/^read/user/; /probe/secprobe plant %s",
		ks.sesKey, ks.userKey, ks.planted)
	run := func(extra ...string) map[string]string {
		name := runName("keyring")
		args := append(e.runFlags(), "--name", name, "--security-opt", "seccomp=unconfined", "-v", probeDir+":/probe:ro")
		args = append(append(args, extra...), "--", "sh", "-c", script)
		out, errOut, err := ks.corral(e, args...)
		if err != nil {
			t.Fatalf("corral %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		got := probeLines(out)
		got["name"] = name
		return got
	}

	got := run()
	if want := "_ses." + got["name"]; !strings.HasSuffix(got["keyring"], ";"+want) {
		t.Errorf("the container's session keyring is %q, want %s", got["keyring"], want)
	}
	if got["ses"] != "EACCES" && got["ses"] != "ENOKEY" {
		t.Errorf("the container read the caller's session key: %q", got["ses"])
	}
	if got["user"] != "EACCES" && got["user"] != "ENOKEY" {
		t.Errorf("the container read host root's user key: %q", got["user"])
	}
	if ks.hasPlanted() {
		t.Errorf("the container planted a key in the caller's session keyring")
	}

	got = run("--no-new-keyring")
	if got["ses"] != "ok session-secret" || got["user"] != "ok user-secret" || !ks.hasPlanted() {
		t.Errorf("--no-new-keyring: the container should share the caller's session: %v, planted %v", got, ks.hasPlanted())
	}
}

// TestExecJoinsSessionKeyring: `corral exec` joins the container's
// _ses.<id> keyring by name (runc's setns init), not the caller's.
func TestExecJoinsSessionKeyring(t *testing.T) {
	e := runNewEnv(t, false)
	probe := secProbeDir(t)
	name := e.detached(t, "keyexec", "--security-opt", "seccomp=unconfined", "-v", probe+":/probe:ro", "--", "sleep", "1000")
	r := e.run(t, "exec", name, "/probe/secprobe", "keyring")
	if want := ";_ses." + name; r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Fatalf("exec: the session keyring is %q (exit %d, %s), want one ending %s", r.stdout, r.code, r.stderr, want)
	}
}

// detached starts `corral run -d` (no --rm: the test deletes it, and a
// reaper would race that) and deletes the container and its log when the
// test ends. It returns the container's name.
func (e *runEnv) detached(t *testing.T, what string, args ...string) string {
	t.Helper()
	name := runName(what)
	r := e.run(t, append([]string{"run", "-d", "--views", "none", "--sysinfo", "off", "--name", name}, args...)...)
	if r.code != 0 {
		t.Fatalf("run -d: %d %s", r.code, r.stderr)
	}
	t.Cleanup(func() {
		if r := e.run(t, "delete", "--force", name); r.code != 0 {
			t.Errorf("delete --force %s: %d %s", name, r.code, r.stderr)
		}
		os.Remove(filepath.Join(e.root, name+".log"))
	})
	return name
}
