package fusefs

import (
	"io"
	"log/slog"
	"testing"

	"github.com/corral-dev/corral/cgroupreader"
)

func newBufLog(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// mustReader is the host's cgroup reader.
func mustReader(t testing.TB) cgroupreader.Reader {
	t.Helper()
	r, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func realReader(t *testing.T) cgroupreader.Reader { return mustReader(t) }
