package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cgroupreader"
	"github.com/corral-dev/corral/runtime"
)

const statsUsage = `Show each container's CPU use, memory usage and limit, network and block
I/O and task count, refreshed every second in place (like docker stats).
Without IDs: every running or paused container, including ones started
while watching. The numbers come from the containers' cgroups, through the
same reader as corralfs's views.

CPU % is CPU time over wall time between two readings: 100% is one full
CPU. MEM USAGE excludes the inactive page cache (docker's convention); the
limit is the host's memory when the container has none.`

// statsInterval is the time between two frames (and between the two
// readings of a --no-stream shot, for the CPU %).
const statsInterval = time.Second

func init() {
	var noStream bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [flags] [ID...]",
		Short: "live CPU, memory, I/O and task use of containers (like docker stats)",
		Long:  statsUsage,
		RunE: func(cmd *cobra.Command, args []string) error {
			return statsMain(newRuntime(), args, noStream, format)
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "print one reading and exit")
	cmd.Flags().StringVar(&format, "format", "table", "table or json (one JSON array per reading, one per line)")
	rootCmd.AddCommand(cmd)
}

// statsMain is `corral stats`.
func statsMain(rt *runtime.Runtime, ids []string, noStream bool, format string) error {
	if format != "table" && format != "json" {
		return fmt.Errorf("stats: --format %q: want table or json", format)
	}
	reader, err := cgroupreader.New(cgroupreader.Config{})
	if err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	// Named containers must exist now; a typo should not show an empty table.
	for _, id := range ids {
		if _, err := rt.Load(id); err != nil {
			return fmt.Errorf("stats: %w", err)
		}
	}
	if len(ids) == 0 {
		ids = nil
	}
	st := &statsLoop{rt: rt, reader: reader, ids: ids, hostMem: hostMemTotal(), json: format == "json"}
	if noStream {
		return st.oneShot(os.Stdout)
	}
	return st.stream(os.Stdout)
}

// statsLoop keeps the previous reading of each container between frames.
type statsLoop struct {
	rt      *runtime.Runtime
	reader  cgroupreader.Reader
	ids     []string // nil: every running container
	hostMem uint64
	json    bool
	prev    map[string]statsSample
}

// targets lists the containers to show now.
func (l *statsLoop) targets() []statsTarget {
	var out []statsTarget
	add := func(c *runtime.Container) {
		t := statsTarget{ID: c.ID()}
		if s, err := c.Status(); err == nil && s != runtime.Stopped && s != runtime.Creating {
			t.Pid = c.Pid()
		}
		out = append(out, t)
	}
	if l.ids == nil {
		all, _ := l.rt.List()
		for _, c := range all {
			if s, err := c.Status(); err == nil && (s == runtime.Running || s == runtime.Paused) {
				add(c)
			}
		}
		return out
	}
	for _, id := range l.ids {
		if c, err := l.rt.Load(id); err == nil {
			add(c)
		} else {
			out = append(out, statsTarget{ID: id}) // deleted since: shown as stopped
		}
	}
	return out
}

// frame reads every target and returns the rows, keeping the readings for
// the next frame's CPU %.
func (l *statsLoop) frame() []statsRow {
	now := time.Now()
	next := map[string]statsSample{}
	var rows []statsRow
	for _, t := range l.targets() {
		cur := sampleStats(l.reader, t, l.hostMem, now)
		rows = append(rows, statsRowOf(t, l.prev[t.ID], cur))
		next[t.ID] = cur
	}
	l.prev = next
	return rows
}

func (l *statsLoop) render(w io.Writer, rows []statsRow) error {
	if l.json {
		return renderStatsJSON(w, rows)
	}
	return renderStatsTable(w, rows)
}

// oneShot takes two readings statsInterval apart (CPU % needs a delta) and
// prints the second.
func (l *statsLoop) oneShot(w io.Writer) error {
	l.frame()
	time.Sleep(statsInterval)
	return l.render(w, l.frame())
}

// stream redraws every statsInterval until interrupted. The table clears
// the screen and redraws in place; JSON appends one line per reading.
func (l *statsLoop) stream(out io.Writer) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sig)
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	l.frame()
	for {
		select {
		case <-sig:
			return nil
		case <-tick.C:
		}
		// Render into a buffer and write it at once, so the screen never
		// shows half a frame.
		bw := bufio.NewWriterSize(out, 16<<10)
		if !l.json {
			io.WriteString(bw, ansiClearHome)
		}
		if err := l.render(bw, l.frame()); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return nil // stdout closed (piped into head): done
		}
	}
}
