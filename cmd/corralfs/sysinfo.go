package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cmd/internal/keepercmd"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/facts"
	"github.com/corral-dev/corral/fusefs/sysinfoagent"
)

// The sysinfo(2) agent: serve wires it in with addSysinfoFlags and
// startSysinfo; the keeper that holds the containers' listener fds is the
// corralfs-keeper binary next to ours, or else the hidden subcommand
// `corralfs seccomp-keeper` (cmd/internal/keepercmd).

var sysinfoConfig struct {
	socket string
	stall  time.Duration
}

func init() {
	subcommands["seccomp-keeper"] = func(args []string) int { return keepercmd.Run("corralfs seccomp-keeper", args) }
}

func addSysinfoFlags(fl *pflag.FlagSet) {
	fl.StringVar(&sysinfoConfig.socket, "seccomp-socket", facts.SeccompSocket,
		"answer sysinfo(2) for containers whose seccomp listenerPath is this socket (OCI seccomp notify; corral run uses it when it exists). "+
			"A small keeper process owns the socket and the containers' listeners, so they outlive corralfs. Empty: no sysinfo agent")
	fl.DurationVar(&sysinfoConfig.stall, "seccomp-stall-timeout", sysinfoagent.DefaultStallTimeout,
		"when the agent has not answered a sysinfo call by then, the keeper lets the real syscall run (passed to a keeper this corralfs starts)")
}

// startSysinfo starts the agent answering from fs; the returned func stops
// it (the keeper stays: running containers keep their listeners). The
// agent is nil when there is none (--seccomp-socket=).
func startSysinfo(fs *fusefs.FS, logFormat string, log *slog.Logger) (agent *sysinfoagent.Agent, stop func(), err error) {
	socket := sysinfoConfig.socket
	if socket == "" {
		return nil, func() {}, nil
	}
	if !strings.HasPrefix(socket, "/") {
		return nil, nil, fmt.Errorf("--seccomp-socket %q: want an absolute path", socket)
	}
	if sysinfoConfig.stall <= 0 {
		return nil, nil, fmt.Errorf("--seccomp-stall-timeout %v: want a positive duration", sysinfoConfig.stall)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("sysinfo agent: own binary: %w", err)
	}
	agent, err = sysinfoagent.NewAgent(sysinfoagent.AgentConfig{
		SocketPath:    socket,
		Answerer:      fs,
		KeeperCommand: append(keeperCommand(exe), "--socket", socket, "--stall-timeout", sysinfoConfig.stall.String(), "--log-format", logFormat),
		Log:           log,
	})
	if err != nil {
		return nil, nil, err
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := agent.Run(quit); err != nil && !errors.Is(err, sysinfoagent.ErrReplaced) {
			log.Error("sysinfo agent stopped", "err", err)
		}
	}()
	log.Info("sysinfo agent started", "socket", socket)
	return agent, func() {
		close(quit)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			log.Warn("sysinfo agent did not stop in time")
		}
	}, nil
}

// keeperCommand is how to start a keeper: the corralfs-keeper binary
// installed next to exe (a small process of its own), or, without one (a
// corralfs copied alone), exe's own `seccomp-keeper` subcommand.
func keeperCommand(exe string) []string {
	k := filepath.Join(filepath.Dir(exe), keepercmd.Binary)
	if unix.Access(k, unix.X_OK) == nil {
		return []string{k}
	}
	return []string{exe, "seccomp-keeper"}
}
