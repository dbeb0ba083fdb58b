package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// runReload is `corralfs reload`: an in-place upgrade that returns only
// once it is done. It asks the daemon who serves now, sends its supervisor
// SIGHUP and waits until a new worker answers the control socket. This is
// the unit's ExecReload: `kill -HUP` alone returns at once, so
// `systemctl reload corralfs && corralfs status` raced the upgrade (and
// Type=notify-reload needs systemd 253, newer than Debian 12's).
func runReload(args []string) int {
	fl := pflag.NewFlagSet("corralfs reload", pflag.ContinueOnError)
	sock := fl.String("control-socket", defaultControlSocket, "the running daemon's control socket")
	timeout := fl.Duration("timeout", 60*time.Second, "fail when no new worker serves by then (the old one keeps serving)")
	fl.Usage = func() {
		fmt.Fprintf(os.Stdout, `Usage: corralfs reload [flags]

Upgrades the running corralfs in place: a worker started from the binary now
installed at the daemon's path takes over the mount, without failing a read.
Returns once the new worker serves; exits 1 if it does not within --timeout
(the old worker then keeps serving; the daemon's log says why).

Flags:
%s`, fl.FlagUsages())
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "corralfs reload: %v\n", err)
		return 2
	}
	path := controlSocket(*sock, fl.Changed("control-socket"))
	before, err := statusOf(path, "/status")
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs reload: %v\n", err)
		return 1
	}
	if err := syscall.Kill(before.Pid, syscall.SIGHUP); err != nil {
		fmt.Fprintf(os.Stderr, "corralfs reload: signal supervisor %d: %v\n", before.Pid, err)
		return 1
	}
	after, err := waitUpgraded(path, before, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs reload: %v\n", err)
		return 1
	}
	fmt.Printf("corralfs reloaded: worker %d (%s) replaced worker %d (%s)\n",
		after.WorkerPid, after.WorkerBuild, before.WorkerPid, before.WorkerBuild)
	return 0
}

// waitUpgraded polls the control socket until a worker started by an
// upgrade after `before` answers.
func waitUpgraded(path string, before daemonStatus, timeout time.Duration) (daemonStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := statusOf(path, "/status")
		if err == nil && st.Pid != before.Pid {
			return st, fmt.Errorf("the daemon was restarted meanwhile (supervisor %d, was %d)", st.Pid, before.Pid)
		}
		if err == nil && st.Upgrades > before.Upgrades && st.WorkerPid != before.WorkerPid {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("worker %d still serves", st.WorkerPid)
			}
			return st, fmt.Errorf("no new worker after %v (the old one keeps serving; see the daemon's log): %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusOf asks the daemon at the control socket path for its status.
func statusOf(path, query string) (daemonStatus, error) {
	var st daemonStatus
	raw, err := askStatus(path, query)
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("bad answer from %s: %w", path, err)
	}
	return st, nil
}
