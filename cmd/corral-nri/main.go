// Command corral-nri is an NRI plugin (containerd 1.7+/2.x, CRI-O 1.26+)
// that gives every container the runtime creates corralfs's views: binds
// of /var/lib/corralfs/proc/meminfo, ... over the container's own files,
// and sysinfo(2) answered by corralfs's seccomp agent. It is the per-node
// replacement for the LXCFS admission-webhook pattern: no per-pod YAML.
//
//	corral-nri [--views DIR] [--opt-in] [--seccomp-socket PATH] [--nri-socket PATH]
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/spf13/pflag"

	"github.com/corral-dev/corral/cmd/internal/buildinfo"
	"github.com/corral-dev/corral/fusefs/facts"
)

// plugin answers the runtime's CreateContainer requests.
type plugin struct {
	cfg config
	log *log.Logger
}

// Configure says which runtime connected (the log line tells an operator
// the plugin is live) and subscribes to CreateContainer only.
func (p *plugin) Configure(_ context.Context, _, runtime, version string) (api.EventMask, error) {
	p.log.Printf("configured by %s %s", runtime, version)
	return api.MustParseEventMask("CreateContainer"), nil
}

// CreateContainer is the one event the plugin subscribes to: adjustments
// are only possible before the container exists.
func (p *plugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	d := p.cfg.decide(pod, ctr)
	verb := "added"
	if d.adjust == nil {
		verb = "skipped"
	}
	p.log.Printf("%s %s/%s container %s: %s", verb, pod.GetNamespace(), pod.GetName(), ctr.GetName(), d.reason)
	return d.adjust, nil, nil
}

func main() {
	var cfg config
	var nriSocket, name, idx string
	var version bool
	fl := pflag.NewFlagSet("corral-nri", pflag.ContinueOnError)
	fl.StringVar(&cfg.views, "views", facts.DefaultDir, "where corralfs serves its views on the node")
	fl.BoolVar(&cfg.optIn, "opt-in", false, "only pods annotated "+ViewsAnnotation+"=on get the views (default: every pod except those annotated "+ViewsAnnotation+"=off)")
	fl.StringVar(&cfg.sysinfo, "seccomp-socket", facts.SeccompSocket, "corralfs's sysinfo agent socket; \"\" leaves sysinfo(2) alone")
	fl.StringVar(&nriSocket, "nri-socket", "/var/run/nri/nri.sock", "the runtime's NRI socket")
	fl.StringVar(&name, "name", "corral", "plugin name the runtime logs")
	fl.StringVar(&idx, "idx", "50", "plugin index: order among NRI plugins (two digits)")
	fl.BoolVar(&version, "version", false, "print the version and exit")
	if err := fl.Parse(os.Args[1:]); err != nil {
		if err == pflag.ErrHelp {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if version {
		bi := buildinfo.Get()
		fmt.Printf("corral-nri version %s\ncommit: %s\ngo: %s\n", bi.Version, bi.Commit, bi.GoVersion)
		return
	}
	if fl.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "corral-nri: unexpected argument %q\n", fl.Arg(0))
		os.Exit(2)
	}
	abs, err := filepath.Abs(cfg.views)
	if err != nil {
		fmt.Fprintf(os.Stderr, "corral-nri: --views: %v\n", err)
		os.Exit(2)
	}
	cfg.views = abs
	p := &plugin{cfg: cfg, log: log.New(os.Stderr, "corral-nri: ", log.LstdFlags)}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(p.serve(ctx, nriSocket, name, idx))
}

// serve connects to the runtime and, whenever the connection ends (the
// runtime restarted or is not up yet), connects again: a DaemonSet pod
// that exited would leave containers created meanwhile without views
// until the kubelet's back-off restarted it.
func (p *plugin) serve(ctx context.Context, socket, name, idx string) int {
	// The wait doubles up to 30 s while the runtime is not there (a
	// runtime without NRI enabled: no socket), so such a node's log gets
	// two lines a minute, not one a second.
	wait := time.Second
	for {
		s, err := stub.New(p, stub.WithSocketPath(socket), stub.WithPluginName(name), stub.WithPluginIdx(idx))
		if err != nil {
			p.log.Printf("creating the NRI stub: %v", err)
			return 1
		}
		p.log.Printf("connecting to %s (views %s, opt-in %v, sysinfo agent %q)", socket, p.cfg.views, p.cfg.optIn, p.cfg.sysinfo)
		began := time.Now()
		err = s.Run(ctx)
		if ctx.Err() != nil {
			return 0
		}
		if time.Since(began) > time.Minute {
			wait = time.Second // it was connected: the runtime restarted
		}
		p.log.Printf("NRI connection ended (%v); connecting again in %v", err, wait)
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}
