package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/corral-dev/corral/runtime"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/cobra"
)

func init() {
	var o runtime.ExecOpts
	var processFile, cwd, user string
	var env, caps []string
	var addGids []int64
	var tty, noNewPrivs bool
	var preserveFDs int
	cmd := &cobra.Command{
		Use:   "exec [flags] ID [--] COMMAND [ARG...]",
		Short: "run a new process inside a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// `exec ID -- CMD`: flags stop at ID, so the "--" arrives here.
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1:1], args[2:]...)
			}
			rt := newRuntime()
			c, err := rt.Load(args[0])
			if err != nil {
				return err
			}
			var p *specs.Process
			if processFile != "" {
				if p, err = readProcess(processFile); err != nil {
					return err
				}
			} else {
				if len(args) < 2 {
					return errors.New("exec: give a COMMAND or --process FILE")
				}
				p = processFromContainer(c.Spec().Process)
				p.Args = args[1:]
				p.Terminal = tty
				if tty {
					setTerm(p)
				}
			}
			if len(args) > 1 && processFile != "" {
				return errors.New("exec: give either a COMMAND or --process FILE, not both")
			}
			fl := cmd.Flags()
			p.Env = append(p.Env, env...)
			if cwd != "" {
				p.Cwd = cwd
			}
			if user != "" {
				if p.User, err = parseUser(user); err != nil {
					return err
				}
			}
			for _, g := range addGids {
				p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(g))
			}
			if fl.Changed("no-new-privs") {
				p.NoNewPrivileges = noNewPrivs
			}
			if len(caps) > 0 {
				if p.Capabilities == nil {
					p.Capabilities = &specs.LinuxCapabilities{}
				}
				for _, name := range caps {
					name = strings.ToUpper(name)
					if !strings.HasPrefix(name, "CAP_") {
						name = "CAP_" + name
					}
					pc := p.Capabilities
					pc.Bounding = append(pc.Bounding, name)
					pc.Effective = append(pc.Effective, name)
					pc.Permitted = append(pc.Permitted, name)
				}
			}
			o.Stdin, o.Stdout, o.Stderr = os.Stdin, os.Stdout, os.Stderr
			o.ExtraFiles = preservedFiles(preserveFDs)
			var restore func()
			if p.Terminal && o.ConsoleSocket == "" {
				if o.Detach {
					return errors.New("exec: --tty with --detach needs --console-socket")
				}
				o.OnConsole = func(master *os.File) { restore = proxyTTY(master) }
			}
			code, err := c.Exec(p, o)
			if restore != nil {
				restore()
			}
			if err != nil {
				return err
			}
			if code != 0 {
				return ExitStatus(code)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // flags after ID belong to COMMAND
	f.StringVarP(&processFile, "process", "p", "", "JSON file with the OCI process to run")
	f.BoolVarP(&o.Detach, "detach", "d", false, "do not wait for the process")
	f.StringVar(&o.PidFile, "pid-file", "", "write the process's pid to this file")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-TTY (TERM is set: yours, else xterm)")
	// runc's exec always passes stdin; -i is accepted so that docker's
	// habit `exec -it ID sh` works.
	f.BoolP("interactive", "i", true, "keep stdin connected (always: accepted for docker's exec -it)")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (NAME=VALUE)")
	f.StringVar(&cwd, "cwd", "", "working directory inside the container")
	f.StringVarP(&user, "user", "u", "", "UID[:GID] to run as")
	f.Int64SliceVarP(&addGids, "additional-gids", "g", nil, "additional group ids")
	f.StringArrayVarP(&caps, "cap", "c", nil, "add a capability")
	f.BoolVar(&noNewPrivs, "no-new-privs", false, "set no_new_privs")
	f.IntVar(&preserveFDs, "preserve-fds", 0, "pass this many extra fds (3, 4, ...) into the process")
	f.String("process-label", "", "ignored (no SELinux support)")
	f.String("apparmor", "", "ignored (no AppArmor support)")
	f.Bool("ignore-paused", false, "ignored")
	f.String("cgroup", "", "ignored (the process joins the container's cgroup)")
	rootCmd.AddCommand(cmd)
}

// setTerm gives a terminal process a TERM when the container's
// environment has none (htop, vi and less need it): the caller's, else
// xterm, as docker exec -t does.
func setTerm(p *specs.Process) {
	for _, e := range p.Env {
		if strings.HasPrefix(e, "TERM=") {
			return
		}
	}
	t := os.Getenv("TERM")
	if t == "" || t == "dumb" {
		t = "xterm"
	}
	p.Env = append(p.Env, "TERM="+t)
}

func readProcess(file string) (*specs.Process, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var p specs.Process
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("malformed process file %s: %w", file, err)
	}
	return &p, nil
}

// processFromContainer copies the container's process as the base of an
// exec (user, env, capabilities, rlimits, cwd), as runc does.
func processFromContainer(base *specs.Process) *specs.Process {
	data, _ := json.Marshal(base)
	var p specs.Process
	_ = json.Unmarshal(data, &p)
	p.ConsoleSize = nil
	return &p
}

// parseUser reads UID[:GID] (numbers only: names would need the
// container's /etc/passwd).
func parseUser(s string) (specs.User, error) {
	u, g, hasG := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return specs.User{}, fmt.Errorf("--user %q: want UID[:GID] as numbers", s)
	}
	out := specs.User{UID: uint32(uid)}
	if hasG {
		gid, err := strconv.ParseUint(g, 10, 32)
		if err != nil {
			return specs.User{}, fmt.Errorf("--user %q: want UID[:GID] as numbers", s)
		}
		out.GID = uint32(gid)
	}
	return out, nil
}
