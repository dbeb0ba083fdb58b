package main

import (
	"io"
	"os"
	"os/signal"

	"github.com/containerd/console"
	"golang.org/x/sys/unix"
)

// proxyTTY connects this terminal to a container's pty master: our stdin
// in raw mode is copied to the master, the master's output to our stdout,
// and window size changes (SIGWINCH) are passed on. The returned function
// restores the terminal; call it when the process has exited.
func proxyTTY(master *os.File) (restore func()) {
	cur, err := console.ConsoleFromFile(os.Stdin)
	raw := err == nil && setRaw(cur, os.Stdin) == nil
	resize := func() {
		if cur == nil {
			return
		}
		if ws, err := cur.Size(); err == nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ,
				&unix.Winsize{Row: ws.Height, Col: ws.Width})
		}
	}
	resize()
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	go func() {
		for range winch {
			resize()
		}
	}()
	go io.Copy(master, os.Stdin)
	done := make(chan struct{})
	go func() {
		io.Copy(os.Stdout, master) // ends with EIO when the last slave fd closes
		close(done)
	}()
	return func() {
		<-done
		signal.Stop(winch)
		if raw {
			cur.Reset()
		}
		master.Close()
	}
}

// setRaw puts the caller's terminal c (the file f) into raw mode as docker
// and cfmakeraw(3) do, output processing included. console's SetRaw keeps
// OPOST, so the container's pty, which already turned "\n" into "\r\n",
// had each "\n" turned again: "\r\r\n" in every captured session
// (script(1), a terminal's log, a test reading the pty).
func setRaw(c console.Console, f *os.File) error {
	if err := c.SetRaw(); err != nil {
		return err
	}
	t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		return err
	}
	t.Oflag &^= unix.OPOST
	return unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
}
