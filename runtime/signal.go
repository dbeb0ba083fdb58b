package runtime

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ParseSignal accepts what `kill` users type: "KILL", "SIGKILL", "kill",
// "9", and real-time signals as "RTMIN+3" / "SIGRTMAX-1".
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return 0, fmt.Errorf("empty signal")
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > sigRTMax {
			return 0, fmt.Errorf("unknown signal %q: numbers run from 1 to %d", s, sigRTMax)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	for _, base := range []struct {
		prefix string
		n      int
		dir    int
	}{{"SIGRTMIN+", sigRTMin, 1}, {"SIGRTMAX-", sigRTMax, -1}} {
		if rest, ok := strings.CutPrefix(name, base.prefix); ok {
			off, err := strconv.Atoi(rest)
			n := base.n + base.dir*off
			if err == nil && off >= 0 && n >= sigRTMin && n <= sigRTMax {
				return unix.Signal(n), nil
			}
		}
	}
	switch name {
	case "SIGRTMIN":
		return unix.Signal(sigRTMin), nil
	case "SIGRTMAX":
		return unix.Signal(sigRTMax), nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// Linux real-time signal range as user space sees it (glibc reserves 32-33).
const (
	sigRTMin = 34
	sigRTMax = 64
)
