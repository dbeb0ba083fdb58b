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
	raw := err == nil && cur.SetRaw() == nil
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
