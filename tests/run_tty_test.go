package tests

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
)

// TestRunTTYWithoutHostTerminal: -t alone gives the container a pty of its
// own devpts even when corral's own output is a pipe.
func TestRunTTYWithoutHostTerminal(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	r := e.run(t, append(e.runFlags(), "--rootfs", root, "--name", runName("tty"), "-t", "--", "tty")...)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "/dev/pts/0" {
		t.Errorf("tty: exit %d stdout %q stderr %q; want /dev/pts/0", r.code, r.stdout, r.stderr)
	}
}

// TestRunInteractiveShell: `corral run -it -- sh` driven through a real
// pty pair, as a user's terminal: the shell reads our keys, its window
// follows ours (SIGWINCH), and its exit status comes back.
func TestRunInteractiveShell(t *testing.T) {
	e := runNewEnv(t, false)
	root := runBusybox(t)
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	if err := master.Resize(console.WinSize{Height: 33, Width: 101}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"--root", e.root}, e.runFlags()...), "--rootfs", root, "--name", runName("it"), "-it", "--", "sh")
	cmd := exec.Command(e.corral, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// corral owns the terminal as a login shell would: its own session
	// with the pty as controlling terminal, so it gets SIGWINCH.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}()
	out := &runTerm{}
	go out.readFrom(master)

	master.Write([]byte("tty; stty size\n"))
	out.waitFor(t, "/dev/pts/0")
	out.waitFor(t, "33 101")
	// Raw as docker's: the container's pty makes "\r\n" of "\n", ours
	// must not do it again.
	if strings.Contains(out.String(), "\r\r\n") {
		t.Errorf("the caller's terminal still translates newlines (OPOST): %q", out.String())
	}
	if err := master.Resize(console.WinSize{Height: 40, Width: 120}); err != nil {
		t.Fatal(err)
	}
	// The resize reaches the container asynchronously (SIGWINCH to
	// corral, then TIOCSWINSZ on the container's pty): ask until it shows.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "40 120") {
		if time.Now().After(deadline) {
			t.Fatalf("the container's window never became 40x120:\n%s", out.String())
		}
		master.Write([]byte("stty size\n"))
		time.Sleep(200 * time.Millisecond)
	}
	master.Write([]byte("exit 5\n"))
	select {
	case err := <-done:
		done <- err
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Errorf("shell exit: %v, want status 5\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("corral run -it did not return after exit:\n%s", out.String())
	}
}

// runTerm collects what a terminal shows.
type runTerm struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *runTerm) readFrom(f console.Console) {
	b := make([]byte, 4096)
	for {
		n, err := f.Read(b)
		r.mu.Lock()
		r.buf.Write(b[:n])
		r.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (r *runTerm) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func (r *runTerm) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(r.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("terminal never showed %q:\n%s", s, r.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
