package runtime

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// initExec is the exec init: started by `corral exec` already inside the
// container's pid, time, net, ipc, uts and cgroup namespaces (entered or
// copied by the parent's spawning thread) and cgroup, it joins the mount
// namespace itself, becomes the process and execs.
func initExec(conn *syncConn) error {
	m, _, err := conn.expect(msgConfig)
	if err != nil {
		return err
	}
	cfg := m.Config
	if cfg.Process == nil {
		return fmt.Errorf("exec: no process in config")
	}
	// The container's session keyring, not the caller's (runc joins it by
	// name too; the init made it searchable).
	if !cfg.NoNewKeyring {
		if _, err := joinSessionKeyring(sessionKeyringName(cfg.ID)); err != nil {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	// Our parent put us in the container's cgroup; now its namespace.
	if cfg.CgroupNsFd >= 0 {
		if err := unix.Setns(cfg.CgroupNsFd, unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("join cgroup namespace: %w", err)
		}
		unix.Close(cfg.CgroupNsFd)
	}
	if err := joinMountNS(cfg.MntNsFd); err != nil {
		return err
	}
	if cfg.ExecRoot != "" {
		if err := unix.Chroot(cfg.ExecRoot); err != nil {
			return fmt.Errorf("enter the container's root: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
	}
	// setns put us at the namespace's root: the container's "/".
	var seccomp = cfg.Spec.Linux.Seccomp
	ps := &processSetup{p: cfg.Process, conn: conn, seccomp: seccomp}
	if cfg.Process.Terminal {
		if ps.console, err = newConsole(conn, cfg.Process.ConsoleSize); err != nil {
			return err
		}
	}
	if err := ps.prepare(); err != nil {
		return err
	}
	if err := ps.finish(conn, cfg.NumExtraFiles); err != nil {
		return err
	}
	if err := conn.send(&syncMsg{Type: msgReady, Warnings: ps.warnings}); err != nil {
		return err
	}
	if _, _, err := conn.expect(msgGo); err != nil {
		return err
	}
	conn.Close()
	return ps.exec()
}
