package fusefs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// go-fuse's own messages (a reply the kernel refused, an unknown opcode)
// are the only trace of failures our handlers never see: they must reach
// the log at warning level, without flooding it.
func TestGoFuseMessagesAreWarningsAndBounded(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gl := goFuseLogger(l, false)
	for range fuseLogBurst + 5 {
		gl.Printf("writer: Write/Writev failed, err: %v. opcode: %v", "invalid argument", "READ")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != fuseLogBurst {
		t.Fatalf("%d lines logged for %d messages, want %d", len(lines), fuseLogBurst+5, fuseLogBurst)
	}
	if !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "go-fuse: writer: Write/Writev failed") {
		t.Errorf("logged %q", lines[0])
	}
	w := gl.Writer().(*fuseLogWriter)
	if w.dropped != 5 {
		t.Errorf("dropped %d, want 5", w.dropped)
	}
	w.window = w.window.Add(-2 * time.Minute) // the minute is over
	buf.Reset()
	gl.Print("next")
	if got := buf.String(); !strings.Contains(got, "dropped=5") || !strings.Contains(got, "go-fuse: next") {
		t.Errorf("after the minute: %q", got)
	}

	// With the request trace asked for, every line shows at info level.
	buf.Reset()
	dl := goFuseLogger(l, true)
	for range fuseLogBurst + 5 {
		dl.Print("rx 2: OPEN n5")
	}
	if n := strings.Count(buf.String(), "level=INFO msg=\"go-fuse: rx 2: OPEN n5\""); n != fuseLogBurst+5 {
		t.Errorf("debug trace: %d of %d lines logged:\n%s", n, fuseLogBurst+5, buf.String())
	}
}
