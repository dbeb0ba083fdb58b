// Package keepercmd is the seccomp keeper's command line, shared by the
// small corralfs-keeper binary (what corralfs starts, and the systemd unit
// runs) and `corralfs seccomp-keeper` (installs whose unit still names it).
// A binary of its own because the keeper is one of the three processes of
// a corralfs host and does little: started from corralfs's 15 MB binary it
// was 10 MiB resident, mostly that binary's pages; on its own, 3.5 MiB.
package keepercmd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/cmd/internal/slogfmt"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/sysinfoagent"
)

// Binary is the keeper's own binary, installed next to corralfs.
const Binary = "corralfs-keeper"

// Run is the seccomp keeper, the small process that
// owns the seccomp listener socket and every container's listener fd, so
// that sysinfo(2) in running containers never fails while corralfs is
// stopped, killed or restarting (the kernel answers ENOSYS once no process
// holds a listener). Under systemd it is its own unit
// (corralfs-seccomp-keeper.service), so stopping or restarting corralfs never
// touches it; elsewhere corralfs starts it when none is running. It is not
// meant to be started by hand. name is the command it runs as, for
// messages: the corralfs-keeper binary, or `corralfs seccomp-keeper`.
func Run(name string, args []string) int {
	fl := pflag.NewFlagSet(name, pflag.ContinueOnError)
	socket := fl.String("socket", facts.SeccompSocket, "the OCI seccomp listener socket to own")
	idle := fl.Duration("idle-exit", 30*time.Second, "exit after this long with no agent attached and no listener held (0: never)")
	stall := fl.Duration("stall-timeout", sysinfoagent.DefaultStallTimeout, "let the real syscall run when the agent has not answered a sysinfo call by then")
	level := fl.String("log-level", "info", "debug, info, warn or error")
	format := fl.String("log-format", "text", "text or json")
	logFile := fl.String("log-file", "", "append the log to this file (default: SOCKET.log; \"-\": stderr)")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "%s: --log-level: %v\n", name, err)
		return 2
	}
	if *logFile == "" {
		*logFile = *socket + ".log"
	}
	w, err := openKeeperLog(*logFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(os.Stderr, "%s: --log-format %q: want text or json\n", name, *format)
		return 2
	}
	log := slog.New(slogfmt.Handler(*format, w, lv))
	// SIGHUP/SIGPIPE must not end the process that keeps containers'
	// syscalls working; SIGTERM/SIGINT stop it deliberately.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	stop := make(chan struct{})
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; close(stop) }()
	ready := func() {
		_, _ = daemon.SdNotify(false, daemon.SdNotifyReady+"\nSTATUS=holding the seccomp listeners of "+*socket)
	}
	err = sysinfoagent.RunKeeper(sysinfoagent.KeeperConfig{SocketPath: *socket, IdleExit: *idle, StallTimeout: *stall, Log: log, Ready: ready}, stop)
	switch {
	case errors.Is(err, sysinfoagent.ErrKeeperRunning):
		return 0 // another keeper serves the socket: nothing to do
	case err != nil:
		log.Error("seccomp keeper failed", "err", err)
		return 1
	}
	return 0
}

// openKeeperLog opens the keeper's log for appending. The keeper is
// started without stdio (it outlives whoever started it), so its few lines
// (agents attaching and leaving, slow answers) go to a file next to its
// socket, restarted when it grew past 1 MiB.
func openKeeperLog(path string) (io.Writer, error) {
	if path == "-" {
		return os.Stderr, nil
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > 1<<20 {
		_ = os.Truncate(path, 0)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}
