package runtime

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// sendConsole sends the pty master to a --console-socket listener
// (SCM_RIGHTS, with the master's name as the message, like runc); podman's
// conmon and containerd's shim take it from there.
func sendConsole(socketPath string, master *os.File) error {
	conn, err := net.Dial("unix", socketPath)
	if err != nil {
		return fmt.Errorf("console socket %s: %w", socketPath, err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("console socket %s: not a unix socket", socketPath)
	}
	name := master.Name()
	if name == "" {
		name = "/dev/ptmx"
	}
	if _, _, err := uc.WriteMsgUnix([]byte(name), unix.UnixRights(int(master.Fd())), nil); err != nil {
		return fmt.Errorf("console socket %s: send pty: %w", socketPath, err)
	}
	return nil
}
