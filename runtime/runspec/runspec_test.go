package runspec

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func noEnv(string) (string, bool) { return "", false }

// testHost is a two-CPU host with swap accounting and an empty
// environment: Apply and Build read nothing of the machine they run on.
var testHost = Host{LookupEnv: noEnv, SwapAccounting: true, OnlineCPUs: []int{0, 1}}

func TestDefaultSpecShape(t *testing.T) {
	s := Default("/r", []string{"sh"})
	if !s.Process.NoNewPrivileges || len(s.Process.Capabilities.Bounding) != 14 {
		t.Errorf("process defaults wrong: nnp=%v caps=%v", s.Process.NoNewPrivileges, s.Process.Capabilities.Bounding)
	}
	var ns []string
	for _, n := range s.Linux.Namespaces {
		ns = append(ns, string(n.Type))
	}
	if got := strings.Join(ns, ","); got != "pid,network,ipc,uts,mount,cgroup,time" {
		t.Errorf("namespaces %s", got)
	}
	var dests []string
	for _, m := range s.Mounts {
		dests = append(dests, m.Destination)
	}
	if got := strings.Join(dests, " "); got != "/proc /dev /dev/pts /dev/shm /dev/mqueue /sys /sys/fs/cgroup" {
		t.Errorf("mounts %s", got)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Error("masked/readonly paths missing")
	}
}

func TestApplyResources(t *testing.T) {
	s := Default("/r", []string{"true"})
	o := Options{Memory: "256m", MemorySwap: "256m", CPUs: "0.5", CpusetCPUs: "0", PidsLimit: 20}
	if err := Apply(s, o, "", testHost); err != nil {
		t.Fatal(err)
	}
	r := s.Linux.Resources
	if *r.Memory.Limit != 256<<20 {
		t.Errorf("memory %d", *r.Memory.Limit)
	}
	if r.Memory.Swap == nil || *r.Memory.Swap != 256<<20 {
		t.Errorf("swap = memory means no swap: memory+swap total must equal memory, got %v", r.Memory.Swap)
	}
	if *r.CPU.Quota != 50000 || *r.CPU.Period != 100000 || r.CPU.Cpus != "0" {
		t.Errorf("cpu %+v", r.CPU)
	}
	if *r.Pids.Limit != 20 {
		t.Errorf("pids %d", *r.Pids.Limit)
	}
}

func TestApplyMemorySwapSemantics(t *testing.T) {
	m := int64(256 << 20)
	cases := []struct {
		mem, swap string
		acct      bool
		want      *int64 // nil: no swap field
		err       string
	}{
		{"256m", "", true, ptr(2 * m), ""},
		{"256m", "", false, nil, ""},
		{"256m", "256m", true, ptr(m), ""},
		{"256m", "256m", false, nil, ""},
		{"256m", "-1", true, ptr(-1), ""},
		{"256m", "1g", true, ptr(1 << 30), ""},
		{"256m", "128m", true, nil, "below --memory"},
		{"", "1g", true, nil, "needs --memory"},
		{"256m", "1g", false, nil, "does not account swap"},
		{"1m", "", true, nil, "minimum"},
		{"lots", "", true, nil, "invalid size"},
	}
	for _, c := range cases {
		r := &specs.LinuxResources{}
		err := applyMemory(r, c.mem, c.swap, c.acct)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%+v: err %v, want %q", c, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		switch {
		case c.want == nil && r.Memory.Swap != nil:
			t.Errorf("%+v: swap %d, want unset", c, *r.Memory.Swap)
		case c.want != nil && (r.Memory.Swap == nil || *r.Memory.Swap != *c.want):
			t.Errorf("%+v: swap %v, want %d", c, r.Memory.Swap, *c.want)
		}
	}
}

func ptr(v int64) *int64 { return &v }

func TestApplyErrors(t *testing.T) {
	cases := map[string]Options{
		"no command given":     {},
		"must be an absolute":  {Args: []string{"x"}, Workdir: "rel"},
		"want KEY=VALUE":       {Args: []string{"x"}, Env: []string{"=x"}},
		"does not exist":       {Args: []string{"x"}, Volumes: []string{"/nonexistent-corral-src:/x"}},
		"want SRC:DST":         {Args: []string{"x"}, Volumes: []string{"/tmp"}},
		"unknown mode":         {Args: []string{"x"}, Volumes: []string{"/tmp:/x:rx"}},
		"other than /":         {Args: []string{"x"}, Volumes: []string{"/tmp:/"}},
		"want none or host":    {Args: []string{"x"}, Net: "bridge"},
		"--cpus":               {Args: []string{"x"}, CPUs: "half"},
		"has only":             {Args: []string{"x"}, CPUs: "100000"},
		"not online":           {Args: []string{"x"}, CpusetCPUs: "4095"},
		"--pids-limit":         {Args: []string{"x"}, PidsLimit: -5},
		"only letters":         {Args: []string{"x"}, Hostname: "a b"},
		"no user":              {Args: []string{"x"}, User: "nosuchuser"},
		"want UID[:GID]":       {Args: []string{"x"}, User: ":5"},
		"no group \"nosuchgrp": {Args: []string{"x"}, User: "0:nosuchgrp"},
	}
	for want, o := range cases {
		err := Apply(Default("/r", nil), o, t.TempDir(), testHost)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: err %v, want %q", o, err, want)
		}
	}
}

func TestApplyEnvUserVolumesNet(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nalice:x:1000:\nwheel:x:10:alice,bob\nstaff:x:50:\n"), 0o644)
	vol := t.TempDir()
	s := Default(root, nil)
	env := func(k string) (string, bool) {
		if k == "FROM_HOST" {
			return "hostval", true
		}
		return "", false
	}
	o := Options{
		Args: []string{"id"}, Env: []string{"A=1", "FROM_HOST", "UNSET_ON_HOST", "PATH=/bin"},
		User: "alice", Hostname: "box", Workdir: "/w", Terminal: true,
		Volumes: []string{vol + ":/data:ro", vol + ":/rw"}, Net: "host", ReadOnly: true,
	}
	if err := Apply(s, o, root, Host{LookupEnv: env}); err != nil {
		t.Fatal(err)
	}
	p := s.Process
	for _, want := range []string{"A=1", "FROM_HOST=hostval", "PATH=/bin", "HOME=/home/alice", "HOSTNAME=box", "TERM=xterm"} {
		if !slices.Contains(p.Env, want) {
			t.Errorf("env %v lacks %s", p.Env, want)
		}
	}
	if slices.ContainsFunc(p.Env, func(e string) bool { return strings.HasPrefix(e, "UNSET_ON_HOST") }) {
		t.Error("a bare KEY unset on the host must be dropped")
	}
	if p.User.UID != 1000 || p.User.GID != 1000 || !slices.Equal(p.User.AdditionalGids, []uint32{10}) {
		t.Errorf("user %+v", p.User)
	}
	if p.Cwd != "/w" || s.Hostname != "box" || !p.Terminal || !s.Root.Readonly {
		t.Errorf("cwd %q host %q tty %v ro %v", p.Cwd, s.Hostname, p.Terminal, s.Root.Readonly)
	}
	n := len(s.Mounts)
	ro, rw := s.Mounts[n-2], s.Mounts[n-1]
	if ro.Destination != "/data" || ro.Source != vol || !slices.Contains(ro.Options, "ro") || !slices.Contains(ro.Options, "rbind") {
		t.Errorf("ro volume %+v", ro)
	}
	if rw.Destination != "/rw" || slices.Contains(rw.Options, "ro") {
		t.Errorf("rw volume %+v", rw)
	}
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			t.Error("--net host must drop the network namespace")
		}
	}

	// Numeric user without an entry, explicit group by name.
	s = Default(root, nil)
	if err := Apply(s, Options{Args: []string{"id"}, User: "4242:staff"}, root, testHost); err != nil {
		t.Fatal(err)
	}
	if s.Process.User.UID != 4242 || s.Process.User.GID != 50 || !slices.Contains(s.Process.Env, "HOME=/") {
		t.Errorf("user %+v env %v", s.Process.User, s.Process.Env)
	}
	// root gets /root as HOME.
	s = Default(root, nil)
	if err := Apply(s, Options{Args: []string{"id"}}, root, testHost); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Process.Env, "HOME=/root") {
		t.Errorf("env %v", s.Process.Env)
	}
}
