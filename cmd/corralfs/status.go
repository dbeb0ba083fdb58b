package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs"
	"github.com/corral-dev/corral/fusefs/survival"
)

// daemonStatus is what the control socket answers to GET /status
// (control.go). The supervisor owns the socket; its current worker answers
// (connections wait in the backlog while a worker restarts).
type daemonStatus struct {
	Pid           int       `json:"pid"` // the supervisor: the pidfile's pid, systemd's main pid
	WorkerPid     int       `json:"worker_pid"`
	Mountpoint    string    `json:"mountpoint"`
	Started       time.Time `json:"started"`
	Uptime        string    `json:"uptime"`
	WorkerStarted time.Time `json:"worker_started"`
	WorkerUptime  string    `json:"worker_uptime"`
	WorkerBinary  string    `json:"worker_binary"` // the worker's executable as "dev:inode" (changes with an upgrade)
	// WorkerBuild is the build serving now (a reload changes it);
	// SupervisorBuild the one that owns the mount (only a restart does).
	WorkerBuild     buildinfo.Info `json:"worker_build"`
	SupervisorBuild buildinfo.Info `json:"supervisor_build"`
	Restarts        int            `json:"restarts"`     // workers started because one died
	Upgrades        int            `json:"upgrades"`     // workers started by SIGHUP
	Unresponsive    int            `json:"unresponsive"` // workers replaced because they answered no read (liveness check)
	Resend          string         `json:"resend"`       // "yes": a dead worker's requests are re-queued by the kernel (Linux 6.9+)
	Relay           bool           `json:"relay"`        // the supervisor reads and keeps the requests (--relay)
	Requests        uint64         `json:"requests"`     // opens and reads served by this worker
	// Daemon totals (survival.Counters): they survive worker deaths and
	// upgrades, unlike the worker's own counts in FS and Requests.
	Totals daemonTotals `json:"totals"`
	Keeper keeperStatus `json:"seccomp_keeper"`
	// Containers is filled on request (GET /status?containers=1).
	Containers []fusefs.ContainerInfo `json:"containers,omitempty"`
	Goroutines int                    `json:"goroutines"`
	RSSBytes   uint64                 `json:"rss_bytes"`
	FS         fusefs.Status          `json:"fs"`
}

// daemonTotals are the daemon-total counts status shows.
type daemonTotals struct {
	Opens     uint64 `json:"opens"`
	Reads     uint64 `json:"reads"`
	Errors    uint64 `json:"errors"` // opens and reads that failed
	Fallbacks uint64 `json:"fallbacks"`
	Restarts  uint64 `json:"restarts"`
	Upgrades  uint64 `json:"upgrades"`
}

// keeperStatus is the seccomp keeper as the serving worker sees it.
type keeperStatus struct {
	Socket    string `json:"socket,omitempty"` // "" without a sysinfo agent
	Pid       int    `json:"pid"`              // 0: not running
	Listeners int    `json:"listeners"`        // containers' sysinfo listeners the agent answers
	Answered  uint64 `json:"answered"`         // by this worker's agent
}

// workerStatus is the answer of a worker.
func workerStatus(info workerInfo, started time.Time, d *daemonCollector) daemonStatus {
	fs := d.fs
	st := fs.Status()
	opens, openErrs := d.counters.Totals(fusefs.OpOpen)
	reads, readErrs := d.counters.Totals(fusefs.OpRead)
	restarts, upgrades, unresponsive := info.Restarts, info.Upgrades, info.Unresponsive
	if d.counters != nil {
		restarts = int(d.counters.Daemon(survival.CounterWorkerRestarts))
		upgrades = int(d.counters.Daemon(survival.CounterWorkerUpgrades))
		unresponsive = int(d.counters.Daemon(survival.CounterWorkerUnresponsive))
	}
	keeper := keeperStatus{Socket: d.socket}
	if d.socket != "" {
		keeper.Pid = keeperAlive(d.socket)
	}
	if d.agent != nil {
		as := d.agent.Stats()
		keeper.Listeners, keeper.Answered = as.Listeners, as.Answered
	}
	return daemonStatus{
		Totals: daemonTotals{Opens: opens, Reads: reads, Errors: openErrs + readErrs, Fallbacks: d.counters.TotalFallbacks(),
			Restarts: uint64(restarts), Upgrades: uint64(upgrades)},
		Keeper: keeper,
		Pid:    info.SupervisorPid, WorkerPid: os.Getpid(), Mountpoint: info.Mountpoint,
		Started: info.SupervisorStarted, Uptime: time.Since(info.SupervisorStarted).Round(time.Second).String(),
		WorkerStarted: started, WorkerUptime: time.Since(started).Round(time.Second).String(),
		WorkerBinary: selfBinaryID(), WorkerBuild: buildinfo.Get(), SupervisorBuild: info.SupervisorBuild, Restarts: restarts, Upgrades: upgrades, Unresponsive: unresponsive, Resend: info.Resend, Relay: info.Relay,
		Requests: st.Opens + st.Reads, Goroutines: runtime.NumGoroutine(), RSSBytes: selfRSS(), FS: st,
	}
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

// controlGet fetches path from the daemon's control socket (HTTP).
func controlGet(sock, path string) ([]byte, error) {
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("is corralfs running? %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: corralfs\r\n\r\n", path); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, nil // the answering worker was retired or killed: ask again
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", path, resp.Status)
	}
	return body, err
}

// askStatus reads the answer of the worker serving the control socket.
// An empty answer means the worker that took the connection was retired
// (upgrade) or killed before answering: ask its successor.
func askStatus(sock, query string) ([]byte, error) {
	for try := 0; ; try++ {
		raw, err := controlGet(sock, query)
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
	containers := fl.Bool("containers", false, "also list the containers being served, and which were served the host's numbers (fallbacks) and why")
	fl.Usage = func() {
		fmt.Fprintf(os.Stdout, "Usage: corralfs status [flags]\n\nAsks the running corralfs how it is doing.\n\nFlags:\n%s", fl.FlagUsages())
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		return 2
	}
	path := controlSocket(*sock, fl.Changed("control-socket"))
	query := "/status"
	if *containers {
		query += "?containers=1"
	}
	if *asJSON {
		raw, err := askStatus(path, query)
		if err != nil {
			fmt.Fprintf(os.Stderr, "corralfs status: %v\n", err)
			return 1
		}
		os.Stdout.Write(raw)
		return 0
	}
	st, err := statusOf(path, query)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corralfs status: %v\n", err)
		return 1
	}
	defer printContainers(st.Containers, *containers)
	fmt.Printf("mountpoint:   %s\nsupervisor:   pid %d, up %s, %s\nworker:       pid %d, up %s, %s\n              restarts %d (of them unresponsive %d), upgrades %d, a dead worker's requests: %s\n"+
		"containers:   %d (load sampled: %d)\nrequests:     %d since start (opens %d, reads %d, failed %d); this worker %d\nfallbacks:    %d since start\n"+
		"refused:      %d over the open-file quota, %d out of descriptors or memory (this worker)\nopen handles: %d\nsysinfo:      %s\ngoroutines:   %d\nrss:          %.1f MiB\n",
		st.Mountpoint, st.Pid, st.Uptime, st.SupervisorBuild, st.WorkerPid, st.WorkerUptime, st.WorkerBuild, st.Restarts, st.Unresponsive, st.Upgrades, recoveryName(st),
		st.FS.Containers, st.FS.LoadSampled, st.Totals.Opens+st.Totals.Reads, st.Totals.Opens, st.Totals.Reads, st.Totals.Errors, st.Requests,
		st.Totals.Fallbacks, st.FS.Refused, st.FS.Exhausted, st.FS.OpenHandles, keeperLine(st.Keeper), st.Goroutines, float64(st.RSSBytes)/(1<<20))
	return 0
}

// controlSocket is the socket to ask: the one given, else the default, else
// (a daemon started by an older build) the legacy default.
func controlSocket(path string, given bool) string {
	if !given && path == defaultControlSocket {
		if _, err := os.Stat(path); err != nil {
			if _, err := os.Stat(legacyControlSocket); err == nil {
				return legacyControlSocket
			}
		}
	}
	return path
}

// printContainers prints the --containers table (after the summary).
func printContainers(cs []fusefs.ContainerInfo, asked bool) {
	if !asked {
		return
	}
	fmt.Printf("\n%-12s %-9s %-9s %-40s %s\n", "PIDNS", "INIT", "FALLBACKS", "CGROUP", "LAST FALLBACK")
	for _, c := range cs {
		ns, init := strconv.FormatUint(c.PidNS, 10), strconv.Itoa(c.InitPid)
		if c.PidNS == 0 {
			ns, init = "unknown", "-"
		}
		last := "-"
		if c.Fallbacks > 0 {
			last = fmt.Sprintf("%s %s (%s) %s ago", c.LastFallback, c.LastReason, c.LastError, time.Since(c.LastAt).Round(time.Second))
		}
		fmt.Printf("%-12s %-9s %-9d %-40s %s\n", ns, init, c.Fallbacks, c.Cgroup, last)
	}
}

// keeperLine describes the sysinfo agent and its keeper.
func keeperLine(k keeperStatus) string {
	switch {
	case k.Socket == "":
		return "no agent (--seccomp-socket=)"
	case k.Pid == 0:
		return fmt.Sprintf("agent on %s, keeper NOT running (containers' sysinfo(2) gets ENOSYS)", k.Socket)
	}
	return fmt.Sprintf("agent on %s, keeper pid %d, %d container listeners, %d calls answered", k.Socket, k.Pid, k.Listeners, k.Answered)
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
