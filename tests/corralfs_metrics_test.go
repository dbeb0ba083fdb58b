package tests

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/corral-dev/corral/tests/testutil"
)

// scrape fetches url through c and returns every sample by its series
// (name plus sorted labels), histograms as their _count and _sum.
func scrape(t *testing.T, c *http.Client, url string) map[string]float64 {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape %s: not Prometheus text: %v", url, err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
				out[key+"_sum"] = m.Histogram.GetSampleSum()
			}
		}
	}
	return out
}

// unixClient is an HTTP client that dials the unix socket path, one
// connection per request (no idle connection outlives a request).
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		}}}
}

// The metrics endpoint, scraped before and after the worker is killed with
// SIGKILL while readers keep reading: every counter only grows (they live
// in memory the supervisor keeps, not in the worker), the restart is
// counted, and the same numbers are on the control socket, whose pprof
// serves the worker's heap profile.
func TestCorralfsMetricsSurviveWorkerKill(t *testing.T) {
	testutil.RequireRoot(t)
	metricsSock := filepath.Join(t.TempDir(), "metrics.sock")
	d := startCorralfs(t, corralfsMountpoint(t), "--metrics-listen", "unix:"+metricsSock)
	client := unixClient(metricsSock)
	const url = "http://corralfs/metrics"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var readErrs []error
	var mu sync.Mutex
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil {
					mu.Lock()
					readErrs = append(readErrs, err)
					mu.Unlock()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	meminfoOpens := `corralfs_requests_total{file=proc/meminfo,op=open}`
	testutil.WaitFor(t, 10*time.Second, "meminfo opens counted", func() bool { return scrape(t, client, url)[meminfoOpens] > 100 })
	before := scrape(t, client, url)
	worker := d.status().WorkerPid
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, "a new worker", func() bool {
		st := d.status()
		return st.WorkerPid != worker && st.Restarts == 1
	})
	testutil.WaitFor(t, 10*time.Second, "reads counted by the new worker", func() bool {
		return scrape(t, client, url)[meminfoOpens] > before[meminfoOpens]+100
	})
	after := scrape(t, client, url)
	counters := 0
	for k, v := range before {
		if !strings.Contains(k, "_total{") && !strings.HasSuffix(k, "_count") && !strings.HasSuffix(k, "_sum") {
			continue // gauges may go down
		}
		if strings.HasPrefix(k, "go_") || strings.HasPrefix(k, "process_") || strings.HasPrefix(k, "corralfs_sysinfo_") {
			continue // the worker's own process
		}
		counters++
		if after[k] < v {
			t.Errorf("%s went down across the worker kill: %v -> %v", k, v, after[k])
		}
	}
	if counters < 5 {
		t.Errorf("only %d counters scraped before the kill: %v", counters, before)
	}
	if r := after["corralfs_worker_restarts_total{}"]; r != before["corralfs_worker_restarts_total{}"]+1 {
		t.Errorf("corralfs_worker_restarts_total = %v, want %v", r, before["corralfs_worker_restarts_total{}"]+1)
	}
	build := 0
	for k, v := range after {
		if strings.HasPrefix(k, "corralfs_build_info{") && v == 1 {
			build++
		}
	}
	if build != 1 {
		t.Errorf("want one corralfs_build_info series, have %d", build)
	}
	mu.Lock()
	if len(readErrs) > 0 {
		t.Errorf("%d reads failed across the kill, first: %v", len(readErrs), readErrs[0])
	}
	mu.Unlock()

	// The control socket serves the same counters, the status totals, and pprof.
	ctl := unixClient(d.ctl)
	if viaCtl := scrape(t, ctl, url); viaCtl[meminfoOpens] < after[meminfoOpens] {
		t.Errorf("control socket /metrics: meminfo opens %v < %v", viaCtl[meminfoOpens], after[meminfoOpens])
	}
	resp, err := ctl.Get("http://corralfs/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	heap, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(heap) < 2 || heap[0] != 0x1f || heap[1] != 0x8b {
		t.Errorf("pprof heap: %s, %d bytes, want a gzipped profile", resp.Status, len(heap))
	}
}

// A client of an older build connects and only reads: it still gets the
// JSON status.
func TestCorralfsControlSocketOldClients(t *testing.T) {
	testutil.RequireRoot(t)
	d := startCorralfs(t, corralfsMountpoint(t))
	conn, err := net.Dial("unix", d.ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, fmt.Sprintf(`"worker_pid":%d`, d.status().WorkerPid)) {
		t.Fatalf("silent client got %q, %v", line, err)
	}
}

// `corralfs status --containers` lists the containers being served, with
// their init and cgroup, and how often each was served the host's file.
func TestCorralfsStatusListsContainers(t *testing.T) {
	e := runNewEnv(t, false)
	d := startCorralfs(t, corralfsMountpoint(t))
	e.views = d.mp
	c := &surviveContainer{name: runName("listed"), dir: t.TempDir(), done: make(chan struct{})}
	startContainer(t, e, c, "--memory", "256m", "--", "sh", "-c", `while :; do head -n1 /proc/meminfo; sleep 0.1; done`)
	testutil.WaitFor(t, 30*time.Second, "the container reading its views", func() bool {
		return strings.Contains(c.output("stdout"), "MemTotal:         262144 kB")
	})
	out, err := exec.Command(testutil.Binary(t, "corralfs"), "status", "--containers", "--control-socket", d.ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("corralfs status --containers: %v\n%s", err, out)
	}
	row := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "/corral/"+c.name) {
			row = l
		}
	}
	if f := strings.Fields(row); len(f) < 4 || f[2] != "0" {
		t.Errorf("no row for cgroup /corral/%s with 0 fallbacks in:\n%s", c.name, out)
	}
	if out, err := exec.Command(testutil.Binary(t, "corral"), "--root", e.root, "kill", c.name, "KILL").CombinedOutput(); err != nil {
		t.Fatalf("corral kill: %v\n%s", err, out)
	}
	<-c.done
}
