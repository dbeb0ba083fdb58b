package main

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// ttyProxy joins the caller's terminal to a container's pty master: the
// host terminal goes to raw mode (keys such as ^C and ^D reach the
// container's line discipline, not ours), bytes are copied both ways, and
// the container's window follows ours on SIGWINCH.
//
// The pty lives in the container's own devpts (the runtime allocates it
// there), so `tty` inside prints /dev/pts/0.
type ttyProxy struct {
	master  console.Console
	host    console.Console // nil when our stdin is not a terminal
	winch   chan os.Signal
	outDone chan struct{}
	once    sync.Once
}

// startTTYProxy starts copying between stdin/stdout and master. It owns
// master from now on. stdin == nil: nothing is sent to the container (no -i).
func startTTYProxy(masterFile *os.File, stdin io.Reader, stdout io.Writer) (*ttyProxy, error) {
	master, err := console.ConsoleFromFile(masterFile)
	if err != nil {
		return nil, err
	}
	p := &ttyProxy{master: master, outDone: make(chan struct{}), winch: make(chan os.Signal, 1)}
	if stdin != nil {
		if c, err := console.ConsoleFromFile(os.Stdin); err == nil {
			p.host = c
		}
	}
	if p.host != nil {
		// Size first, then raw mode: a shell that starts now draws for
		// the right width.
		if err := master.ResizeFrom(p.host); err != nil {
			return nil, err
		}
		if err := setRaw(p.host, os.Stdin); err != nil {
			p.host.Reset()
			return nil, err
		}
		signal.Notify(p.winch, unix.SIGWINCH)
		go func() {
			for range p.winch {
				master.ResizeFrom(p.host)
			}
		}()
	} else if c, err := console.ConsoleFromFile(os.Stdout); err == nil {
		// Output to a terminal without input from one: still match its width.
		master.ResizeFrom(c)
	}
	go func() {
		defer close(p.outDone)
		// EIO is how a pty master reports that the last slave closed:
		// the container's process (and its children) exited.
		_, err := io.Copy(stdout, master)
		if err != nil && !errors.Is(err, syscall.EIO) {
			os.Stderr.WriteString("corral: tty: " + err.Error() + "\r\n")
		}
	}()
	if stdin != nil {
		go func() {
			// Ends when stdin ends; the container sees EOF only if it
			// reads ^D (a pty has no half-close).
			io.Copy(master, stdin)
		}()
	}
	return p, nil
}

// finish waits for the container's output to drain, then restores the host
// terminal. Safe to call more than once. The wait is bounded: once the
// container's PID 1 has exited, its pid namespace is gone and with it every
// slave holder, so the drain takes milliseconds; the bound only guards
// against a slave fd leaked somewhere outside the container.
func (p *ttyProxy) finish() {
	p.once.Do(func() {
		select {
		case <-p.outDone:
		case <-time.After(2 * time.Second):
		}
		p.restore()
		p.master.Close()
	})
}

// restore puts the host terminal back the way it was (also on error paths,
// so a failed start never leaves the user's shell in raw mode).
func (p *ttyProxy) restore() {
	if p.host != nil {
		signal.Stop(p.winch)
		p.host.Reset()
	}
}
