package tests

// The habits of docker users that corral run used to trip (issue 18):
// ^C to a PID 1 without handlers, --init, --env-file, -it on a pipe,
// --read-only=false, exec -it and TERM.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/corral-dev/corral/tests/testutil"
)

// interruptRun starts `corral run ARGS`, waits until the container runs,
// sends SIGINT to corral (a ^C without a terminal) and returns corral's
// exit status, stderr and how long it took to end after the signal.
func interruptRun(t *testing.T, e *runEnv, name string, args ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(e.corral, append(append([]string{"--root", e.root}, e.runFlags()...), append([]string{"--name", name}, args...)...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	runWaitStatus(t, e, name, "running")
	// With --init, wait for the command too (two processes): a signal
	// before the init's handlers are set would end the init itself.
	if slices.Contains(args, "--init") {
		testutil.WaitFor(t, 20*time.Second, "the command under --init", func() bool {
			var pids []int
			r := e.run(t, "ps", "--format", "json", name)
			return r.code == 0 && json.Unmarshal([]byte(r.stdout), &pids) == nil && len(pids) >= 2
		})
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("corral run did not end within 20 s of SIGINT; stderr %q", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String(), time.Since(start)
}

func TestRunInterruptAndInit(t *testing.T) {
	e := runNewEnv(t, false)
	// sleep is PID 1 and has no SIGINT handler: the kernel would drop
	// the forwarded signal; corral kills it instead and says why.
	code, stderr, _ := interruptRun(t, e, runName("int"), "--", "sleep", "100")
	if code != 137 || !strings.Contains(stderr, "no handler for SIGINT") {
		t.Errorf("^C to corral run -- sleep 100: exit %d, stderr %q; want 137 and the reason", code, stderr)
	}
	// With --init, sleep is not PID 1 and dies of the SIGINT itself.
	code, stderr, _ = interruptRun(t, e, runName("initint"), "--init", "--", "sleep", "100")
	if code != 130 {
		t.Errorf("^C to corral run --init -- sleep 100: exit %d (%s), want 130", code, stderr)
	}
}

// TestRunInitReapsOrphans: an orphan that exits is reaped by --init; a
// PID 1 that never waits (sleep) leaves it a zombie.
func TestRunInitReapsOrphans(t *testing.T) {
	e := runNewEnv(t, false)
	orphan := []string{"--", "sh", "-c", "(sleep 0.2 &); exec sleep 600"}
	zombies := func(name string) string {
		var out string
		// Until the orphan's sleep has ended: then it is gone or a zombie.
		testutil.WaitFor(t, 20*time.Second, "the orphan of "+name+" to end", func() bool {
			r := e.run(t, "exec", name, "ps", "-eo", "stat=,args=")
			out = r.stdout
			return r.code == 0 && !slices.ContainsFunc(strings.Split(out, "\n"), func(l string) bool {
				f := strings.Fields(l)
				return len(f) > 1 && strings.Join(f[1:], " ") == "sleep 0.2"
			})
		})
		var z []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "Z") {
				z = append(z, l)
			}
		}
		return strings.Join(z, "\n")
	}
	if z := zombies(e.detached(t, "noinit", orphan...)); z == "" {
		t.Errorf("without --init no zombie stayed: the test cannot tell a reaper from none")
	}
	// With --init the zombie is reaped, soon (on the init's SIGCHLD).
	name := e.detached(t, "init", append([]string{"--init"}, orphan...)...)
	testutil.WaitFor(t, 10*time.Second, "no zombie under --init", func() bool { return zombies(name) == "" })
}

func TestRunEnvFileAndChecks(t *testing.T) {
	e := runNewEnv(t, false)
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("# settings\nA=from-file\nB=two words\n\nFROM_HOST\n"), 0o600)
	t.Setenv("FROM_HOST", "passed")
	out := e.sh(t, []string{"--env-file", envFile, "-e", "A=from-flag"}, `echo "$A|$B|$FROM_HOST"`)
	if out != "from-flag|two words|passed" {
		t.Errorf("--env-file: %q, want from-flag|two words|passed (-e wins)", out)
	}
	if r := e.run(t, append(e.runFlags(), "--env-file", filepath.Join(t.TempDir(), "missing"), "--", "true")...); r.code != 125 {
		t.Errorf("a missing --env-file: exit %d, want 125", r.code)
	}

	// -it with a pipe for stdin: refused at once, not a shell that never
	// sees the pipe's end.
	r := e.runStdin(t, []byte("echo x\n"), append(e.runFlags(), "--name", runName("itpipe"), "-it", "--", "sh")...)
	if r.code != 125 || !strings.Contains(r.stderr, "not a terminal") || r.took > 20*time.Second {
		t.Errorf("echo x | corral run -it -- sh: exit %d after %v, stderr %q; want 125 and why", r.code, r.took, r.stderr)
	}

	// --read-only=false: refused on the shared default root, honoured on
	// a bundle whose config.json says read only.
	if r := e.run(t, append(e.runFlags(), "--read-only=false", "--", "true")...); r.code != 125 || !strings.Contains(r.stderr, "always read only") {
		t.Errorf("--read-only=false on the default root: exit %d, %q; want a clear refusal", r.code, r.stderr)
	}
	bundle := readOnlyBundle(t, e)
	write := []string{"--bundle", bundle, "--name", runName("ro"), "--", "sh", "-c", "touch /written && echo wrote"}
	if r := e.run(t, append(e.runFlags(), write...)...); r.code == 0 {
		t.Fatalf("the read-only bundle was writable: %q", r.stdout)
	}
	if r := e.run(t, append(append(e.runFlags(), "--read-only=false"), write...)...); r.code != 0 || !strings.Contains(r.stdout, "wrote") {
		t.Errorf("--read-only=false on a read-only bundle: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// readOnlyBundle is a bundle (corral spec) of a busybox root with
// root.readonly true.
func readOnlyBundle(t *testing.T, e *runEnv) string {
	t.Helper()
	dir := t.TempDir()
	if r := e.run(t, "spec", "--bundle", dir); r.code != 0 {
		t.Fatalf("spec: %s", r.stderr)
	}
	var spec map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec["root"] = map[string]any{"path": runBusybox(t), "readonly": true}
	data, _ = json.Marshal(spec)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestExecTTYTerm: docker's `exec -it` is accepted and a terminal process
// gets a TERM (htop, vi and less need one).
func TestExecTTYTerm(t *testing.T) {
	e := runNewEnv(t, false)
	name := e.detached(t, "term", "--", "sleep", "600")
	cmd := exec.Command(e.corral, "--root", e.root, "exec", "-it", name, "sh", "-c", `echo "term=$TERM"`)
	cmd.Env = append(os.Environ(), "TERM=vt220")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "term=vt220") {
		t.Errorf("exec -it: %v, %q; want TERM=vt220 passed on", err, out)
	}
}
