package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/corral-dev/corral/runtime"
)

// ANSI sequences for the live table: home the cursor and clear the screen,
// so each frame replaces the previous one (what docker stats does).
const (
	ansiClearHome = "\x1b[H\x1b[2J"
)

// renderStatsTable writes rows as docker stats' table.
func renderStatsTable(w io.Writer, rows []statsRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS")
	for _, r := range rows {
		if r.Stopped {
			fmt.Fprintf(tw, "%s\t--\t-- / --\t--\t--\t--\t--\n", runtime.ShortID(r.ID))
			continue
		}
		pids := fmt.Sprint(r.Pids)
		if r.PidsLimit != nil {
			pids += fmt.Sprintf(" / %d", *r.PidsLimit)
		}
		fmt.Fprintf(tw, "%s\t%.2f%%\t%s / %s\t%.2f%%\t%s / %s\t%s / %s\t%s\n",
			runtime.ShortID(r.ID), r.CPUPercent,
			binarySize(r.MemUsage), binarySize(r.MemLimit), r.MemPercent,
			decimalSize(r.NetRx), decimalSize(r.NetTx),
			decimalSize(r.BlkRead), decimalSize(r.BlkWrite), pids)
	}
	return tw.Flush()
}

// renderStatsJSON writes rows as one JSON array on one line, so a stream
// is one array per line (newline-delimited JSON).
func renderStatsJSON(w io.Writer, rows []statsRow) error {
	if rows == nil {
		rows = []statsRow{}
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// binarySize formats bytes in IEC units (memory, as docker shows it).
func binarySize(b uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	return humanSize(float64(b), 1024, units)
}

// decimalSize formats bytes in SI units (I/O, as docker shows it).
func decimalSize(b uint64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	return humanSize(float64(b), 1000, units)
}

func humanSize(v, base float64, units []string) string {
	i := 0
	for v >= base && i < len(units)-1 {
		v /= base
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f%s", v, units[0])
	}
	return fmt.Sprintf("%.4g%s", v, units[i])
}
