package runtime

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "kill": unix.SIGKILL, "9": unix.SIGKILL,
		"TERM": unix.SIGTERM, "15": unix.SIGTERM, "sigusr1": unix.SIGUSR1, "HUP": unix.SIGHUP,
		"RTMIN": 34, "SIGRTMIN+3": 37, "RTMAX-1": 63, "64": 64, "WINCH": unix.SIGWINCH,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "NOPE", "SIGFOO", "0", "-1", "65", "RTMIN+40", "9x"} {
		if sig, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) = %v, want an error", bad, sig)
		}
	}
}
