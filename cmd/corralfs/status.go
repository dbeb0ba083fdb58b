package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/fusefs"
)

// daemonStatus is what the control socket answers: one JSON object per
// connection, then the daemon closes it. The supervisor owns the socket;
// its current worker answers (connections wait in the backlog while a
// worker restarts).
type daemonStatus struct {
	Pid           int           `json:"pid"` // the supervisor: the pidfile's pid, systemd's main pid
	WorkerPid     int           `json:"worker_pid"`
	Mountpoint    string        `json:"mountpoint"`
	Started       time.Time     `json:"started"`
	Uptime        string        `json:"uptime"`
	WorkerStarted time.Time     `json:"worker_started"`
	WorkerUptime  string        `json:"worker_uptime"`
	WorkerBinary  string        `json:"worker_binary"` // the worker's executable as "dev:inode" (changes with an upgrade)
	Restarts      int           `json:"restarts"`      // workers started because one died
	Upgrades      int           `json:"upgrades"`      // workers started by SIGHUP
	Unresponsive  int           `json:"unresponsive"`  // workers replaced because they answered no read (liveness check)
	Resend        string        `json:"resend"`        // "yes": a dead worker's requests are re-queued by the kernel (Linux 6.9+)
	Relay         bool          `json:"relay"`         // the supervisor reads and keeps the requests (--relay)
	Requests      uint64        `json:"requests"`      // opens and reads served by this worker
	Goroutines    int           `json:"goroutines"`
	RSSBytes      uint64        `json:"rss_bytes"`
	FS            fusefs.Status `json:"fs"`
}

// workerStatus is the answer of a worker.
func workerStatus(info workerInfo, started time.Time, fs *fusefs.FS) daemonStatus {
	st := fs.Status()
	return daemonStatus{
		Pid: info.SupervisorPid, WorkerPid: os.Getpid(), Mountpoint: info.Mountpoint,
		Started: info.SupervisorStarted, Uptime: time.Since(info.SupervisorStarted).Round(time.Second).String(),
		WorkerStarted: started, WorkerUptime: time.Since(started).Round(time.Second).String(),
		WorkerBinary: selfBinaryID(), Restarts: info.Restarts, Upgrades: info.Upgrades, Unresponsive: info.Unresponsive, Resend: info.Resend, Relay: info.Relay,
		Requests: st.Opens + st.Reads, Goroutines: runtime.NumGoroutine(), RSSBytes: selfRSS(), FS: st,
	}
}

// serveControl answers status requests on ln until it is closed.
func serveControl(ln net.Listener, status func() daemonStatus, log *slog.Logger) {
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					log.Warn("control socket", "err", err)
				}
				return
			}
			conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = json.NewEncoder(conn).Encode(status())
			conn.Close()
		}
	}()
}

// selfBinaryID names the file this process runs (it stays the same when
// the path is given a new binary: that is how status shows an upgrade).
func selfBinaryID() string {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}

// selfRSS reads VmRSS from /proc/self/status, in bytes.
func selfRSS() uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// askStatus reads the answer of the worker serving the control socket.
// An empty answer means the worker that took the connection was retired
// (upgrade) or killed before answering: ask its successor.
func askStatus(sock string) ([]byte, error) {
	for try := 0; ; try++ {
		conn, err := net.DialTimeout("unix", sock, 2*time.Second)
		if err != nil {
			return nil, fmt.Errorf("is corralfs running? %w", err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		raw, err := io.ReadAll(conn)
		conn.Close()
		if err != nil || len(raw) > 0 || try == 4 {
			if err == nil && len(raw) == 0 {
				err = errors.New("no answer (the worker keeps dying?)")
			}
			return raw, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runStatus(args []string) int {
	fl := pflag.NewFlagSet("corralfs status", pflag.ContinueOnError)
	sock := fl.String("control-socket", defaultControlSocket, "the running daemon's control socket")
	asJSON := fl.Bool("json", false, "print the raw JSON answer")
	fl.Usage = func() {
		fmt.Fprintf(os.Stdout, "Usage: corralfs status [flags]\n\nAsks the running corralfs how it is doing.\n\nFlags:\n%s", fl.FlagUsages())
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	raw, err := askStatus(*sock)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: %v\n", err)
		return 1
	}
	if *asJSON {
		os.Stdout.Write(raw)
		return 0
	}
	var st daemonStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: bad answer: %v\n", err)
		return 1
	}
	fmt.Printf("mountpoint:   %s\nsupervisor:   pid %d, up %s\nworker:       pid %d, up %s (restarts %d, of them unresponsive %d, upgrades %d, a dead worker's requests: %s)\n"+
		"containers:   %d (load sampled: %d)\nrequests:     %d (opens %d, reads %d)\nfallbacks:    %d\nrefused:      %d over the open-file quota, %d out of descriptors or memory\nopen handles: %d\ngoroutines:   %d\nrss:          %.1f MiB\n",
		st.Mountpoint, st.Pid, st.Uptime, st.WorkerPid, st.WorkerUptime, st.Restarts, st.Unresponsive, st.Upgrades, recoveryName(st),
		st.FS.Containers, st.FS.LoadSampled, st.Requests, st.FS.Opens, st.FS.Reads,
		st.FS.Fallbacks, st.FS.Refused, st.FS.Exhausted, st.FS.OpenHandles, st.Goroutines, float64(st.RSSBytes)/(1<<20))
	return 0
}

// recoveryName says who hands a dead worker's requests to the next one.
func recoveryName(st daemonStatus) string {
	switch {
	case st.Relay:
		return "kept by the supervisor's relay"
	case st.Resend == "yes":
		return "re-queued by the kernel"
	}
	return "lost (no FUSE_NOTIFY_RESEND, --relay=never)"
}
