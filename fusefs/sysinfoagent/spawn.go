package sysinfoagent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// startKeeper starts a keeper process in its own session, so that neither
// the agent's death nor a signal to the agent's process group reaches it.
// A keeper that finds another one running exits at once; that race is
// harmless.
func startKeeper(argv []string, log *slog.Logger) error {
	if len(argv) == 0 {
		return errors.New("no keeper command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// No stdio from the agent: the keeper outlives it and must not keep
	// its pipes open (whoever waits for the agent's output would wait
	// for the keeper too). It logs to a file next to its socket.
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %q: %w", strings.Join(argv, " "), err)
	}
	log.Info("started a seccomp keeper", "pid", cmd.Process.Pid)
	go func() { _ = cmd.Wait() }() // reap it if it exits before we do
	return nil
}

// KeeperPid returns the pid of the keeper serving socket, from its pidfile.
func KeeperPid(socket string) (int, error) {
	b, err := os.ReadFile(PidPath(socket))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
