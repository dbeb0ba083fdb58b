#!/bin/sh
# make test-oci: the OCI runtime-tools v0.9.0 validation suite against
# bin/corral and, when installed, runc, side by side; the result for corral
# is compared with tests/oci/expectations (a change in either direction
# fails).
#
#   tests/oci/run.sh [CASE...]      default: every case of the suite
#   tests/oci/run.sh --quick        the subset `make test` runs (QUICK_CASES)
#
# Environment:
#   OCI_CASES     cases to run (space separated), same as the arguments
#   OCI_RUNC      runc binary (default: runc from PATH; "none" skips it)
#   OCI_TIMEOUT   seconds per case and runtime (default 120)
#   OCI_KEEP      1: keep the work directory (TAP output of every case)
#
# Each runtime runs in a sandbox: its own state root (--root), and a cgroup
# namespace rooted at /corral-test/oci-RUNTIME-PID in every hierarchy, with
# the cgroup filesystems mounted again inside a private mount namespace.
# The suite puts its containers at fixed cgroup paths (/cgrouptest,
# testdir/cgrouptest/container); in the sandbox those land below
# /corral-test, never at the host's root, and the two runtimes run at once
# without meeting. cgroup v1 (and hybrid) hosts only: runtime-tools v0.9.0
# reads v1 files.
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
oci=$top/tests/oci
build=$oci/build
timeout_s=${OCI_TIMEOUT:-120}
cases=${OCI_CASES:-}
# QUICK_CASES: one or more fast cases of every area the suite covers
# (lifecycle, process, mounts, cgroups, devices, namespaces, seccomp,
# sysctl, LSMs, hooks, user namespaces), 1.5 to 3 minutes; the whole suite
# takes 4 to 6 (README).
QUICK_CASES="create start state kill delete_resources config_updates_without_affect
	default process process_user process_oom_score_adj hostname mounts root_readonly_true
	linux_cgroups_pids linux_cgroups_relative_cpus linux_cgroups_devices linux_cgroups_relative_hugetlb
	linux_cgroups_relative_network linux_devices linux_masked_paths linux_readonly_paths linux_sysctl
	linux_seccomp linux_ns_path linux_ns_path_type linux_mount_label linux_process_apparmor_profile
	prestart linux_uid_mappings"
if [ "${1:-}" = --quick ]; then
	cases=$(echo $QUICK_CASES)
elif [ $# -gt 0 ]; then
	cases="$*"
fi

die() { echo "test-oci: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (containers, cgroups, namespaces)"
[ -x "$top/bin/corral" ] || die "no bin/corral: run make build"
if [ ! -d /sys/fs/cgroup/memory ]; then
	# Not a failure of corral: the suite cannot run here at all. The cgroup
	# v2 paths are covered by the VM run of the integration tests.
	echo "test-oci: skipped: runtime-tools v0.9.0 reads cgroup v1 files; this host is pure cgroup v2"
	exit 0
fi

# Build the suite (static runtimetest: it runs inside the test rootfs).
t0=$(date +%s)
mkdir -p "$build"
(cd "$oci" && CGO_ENABLED=0 go build -o "$build/" github.com/opencontainers/runtime-tools/validation/... &&
	CGO_ENABLED=0 go build -o "$build/runtimetest" github.com/opencontainers/runtime-tools/cmd/runtimetest) ||
	die "building the validation suite failed"
if command -v file >/dev/null; then
	file "$build/runtimetest" | grep -q "statically linked" || die "runtimetest is not static"
fi
rtdir=$(cd "$oci" && go list -m -f '{{.Dir}}' github.com/opencontainers/runtime-tools)
t1=$(date +%s)

# The cases run from a directory holding runtimetest and the rootfs tarball
# (the suite finds both relative to its working directory).
work=$(mktemp -d /tmp/corral-oci.XXXXXX)
cp "$build/runtimetest" "$rtdir/rootfs-amd64.tar.gz" "$work/"
chmod u+w "$work/rootfs-amd64.tar.gz"

[ -n "$cases" ] || cases=$(cd "$build" && ls | grep -v '^runtimetest$' | tr '\n' ' ')

runc=${OCI_RUNC:-$(command -v runc || true)}
[ "$runc" = none ] && runc=""
runtimes="corral"
[ -n "$runc" ] && runtimes="corral runc"

# The RUNTIME the suite calls: a wrapper adding our own state root.
for rt in $runtimes; do
	bin=$top/bin/corral
	[ "$rt" = runc ] && bin=$runc
	mkdir -p "$work/bin"
	printf '#!/bin/sh\nexec %s --root %s "$@"\n' "$bin" "$work/state-$rt" >"$work/bin/$rt"
	chmod +x "$work/bin/$rt"
done

# cgroup hierarchies of this host: "mountpoint type options".
hierarchies() {
	awk '$(NF-2) == "cgroup" || $(NF-2) == "cgroup2" { print $5, $(NF-2), $NF }' /proc/self/mountinfo |
		grep '^/sys/fs/cgroup/'
}

# sandbox_dirs RT: the sandbox cgroup of runtime RT in every hierarchy.
sandbox_dirs() {
	hierarchies | while read -r mp _ _; do echo "$mp/corral-test/oci-$1-$$"; done
}

make_sandbox() {
	for d in $(sandbox_dirs "$1"); do
		mkdir -p "$d"
		case $d in /sys/fs/cgroup/cpuset/*)
			# v1 cpuset: a new cgroup has no CPUs until given some.
			for f in cpuset.cpus cpuset.mems; do
				for c in /sys/fs/cgroup/cpuset/corral-test "$d"; do
					[ -n "$(cat "$c/$f")" ] || cat /sys/fs/cgroup/cpuset/$f >"$c/$f"
				done
			done ;;
		esac
	done
}

# remove_sandbox RT: kill what a failed case left behind (only processes in
# our own sandbox cgroups), delete leftover state, remove the cgroups.
remove_sandbox() {
	for d in $(sandbox_dirs "$1"); do
		[ -d "$d" ] || continue
		find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r p; do kill -9 "$p" 2>/dev/null || true; done
	done
	for d in $(sandbox_dirs "$1"); do
		[ -d "$d" ] || continue
		i=0
		until find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; [ ! -d "$d" ]; do
			i=$((i + 1))
			[ $i -lt 50 ] || { echo "test-oci: cannot remove $d" >&2; break; }
			sleep 0.1
		done
		rmdir "$(dirname "$d")" 2>/dev/null || true
	done
}

# run_suite RT OUT CASES: the cases against runtime RT, inside its
# sandbox; writes OUT/CASE.tap and OUT/CASE.rc.
run_suite() {
	rt=$1 out=$2 list=$3
	mkdir -p "$out"
	make_sandbox "$rt"
	# shellcheck disable=SC2016
	sh -c '
		for d in '"$(sandbox_dirs "$rt" | tr '\n' ' ')"'; do echo $$ >"$d/cgroup.procs"; done
		exec unshare --mount --cgroup --propagation private sh -c "$0" "$@"' '
		# Mount each hierarchy again: inside the cgroup namespace its root
		# is our sandbox cgroup.
		set -e
		'"$(declare_mounts)"'
		set +e
		cd "'"$work"'"
		for c in '"$list"'; do
			s=$(date +%s)
			RUNTIME="'"$work/bin/$rt"'" timeout -k 5 '"$timeout_s"' "'"$build"'/$c" >"'"$out"'/$c.tap" 2>&1 && rc=0 || rc=$?
			echo "$rc $(($(date +%s) - s))" >"'"$out"'/$c.rc"
		done' || echo "test-oci: the $rt runner failed" >&2
	# Always, also after a failed runner (set -e would skip it otherwise).
	remove_sandbox "$rt"
}

# declare_mounts prints the mount commands that mount this host's cgroup
# hierarchies again, with their own options, on a fresh tmpfs at
# /sys/fs/cgroup (the kernel refuses a superblock on a mount point where it
# is already mounted; the host's mounts stay untouched below ours).
declare_mounts() {
	echo "mount -t tmpfs -o mode=755 cgroup-sandbox /sys/fs/cgroup"
	hierarchies | while read -r mp type opts; do
		echo "mkdir -p $mp"
		o=$(echo "$opts" | tr ',' '\n' | grep -v '^rw$' | tr '\n' ',' | sed 's/,$//')
		if [ "$type" = cgroup2 ]; then
			echo "mount -t cgroup2 cgroup2 $mp"
		else
			echo "mount -t cgroup -o $o cgroup $mp"
		fi
	done
}

# Interrupted (^C, a CI timeout): remove the sandboxes anyway; only
# processes in our own sandbox cgroups are killed.
trap 'for rt in $runtimes; do remove_sandbox "$rt"; done' EXIT
trap 'exit 130' INT TERM
for rt in $runtimes; do
	run_suite "$rt" "$work/$rt" "$cases" &
done
wait

# outcome DIR CASE: "pass" when the case exited 0 with a plan of N > 0
# tests and N "ok" lines (skips count as ok), else "fail"; then ok/plan.
outcome() {
	f=$1/$2.tap
	if [ ! -f "$1/$2.rc" ]; then
		echo "missing -"
		return
	fi
	rc=$(cut -d' ' -f1 "$1/$2.rc")
	plan=$(grep -m1 -E '^1\.\.[0-9]+' "$f" | sed 's/^1\.\.\([0-9]*\).*/\1/')
	ok=$(grep -cE '^ok ' "$f" || true)
	nok=$(grep -cE '^not ok' "$f" || true)
	res=fail
	if [ "$rc" = 0 ] && [ -n "$plan" ] && [ "$plan" -gt 0 ] && [ "$nok" = 0 ] && [ "$ok" = "$plan" ]; then
		res=pass
	fi
	echo "$res ${ok}/${plan:-?}"
}

expect_file=$oci/expectations
expected() { awk -v c="$1" '$1 == c { print $2; exit }' "$expect_file"; }

# A case whose result for corral differs from the expectation runs once
# more, alone: the suite has fixed sleeps, and a loaded machine can fail
# a case once. Only a result that holds twice fails the target; a case
# that changes between the runs is shown as flaky.
retry=""
for c in $cases; do
	set -- $(outcome "$work/corral" "$c")
	[ "$1" = "$(expected "$c")" ] || retry="$retry $c"
done
if [ -n "$retry" ]; then
	run_suite corral "$work/corral-retry" "$retry"
fi
t2=$(date +%s)

status=0
printf '%-32s %-14s %-14s %s\n' CASE CORRAL RUNC "EXPECTED FOR CORRAL (reason)"
pass_corral=0 pass_runc=0 total=0
for c in $cases; do
	total=$((total + 1))
	set -- $(outcome "$work/corral" "$c")
	cres=$1 cdet=$2 flaky=""
	if [ -f "$work/corral-retry/$c.rc" ]; then
		set -- $(outcome "$work/corral-retry" "$c")
		[ "$1" = "$cres" ] || flaky="  (flaky: $cres, then $1)"
		cres=$1 cdet=$2
	fi
	[ "$cres" = pass ] && pass_corral=$((pass_corral + 1))
	rres="-" rdet=""
	if [ -n "$runc" ]; then
		set -- $(outcome "$work/runc" "$c")
		rres=$1 rdet=$2
		[ "$rres" = pass ] && pass_runc=$((pass_runc + 1))
	fi
	line=$(awk -v c="$c" '$1 == c { print; exit }' "$expect_file")
	want=$(echo "$line" | awk '{ print $2 }')
	reason=$(echo "$line" | awk '{ $1 = $2 = ""; print }' | sed 's/^ *//')
	mark=""
	if [ -z "$want" ]; then
		mark="  <-- not in expectations"
		status=1
	elif [ "$want" != "$cres" ]; then
		mark="  <-- CHANGED: expected $want"
		status=1
	fi
	printf '%-32s %-14s %-14s %s%s%s\n' "$c" "$cres $cdet" "$rres $rdet" "$want${reason:+ ($reason)}" "$mark" "$flaky"
done
echo
echo "passed: corral $pass_corral of $total${runc:+, runc $pass_runc of $total}"
echo "time: build $((t1 - t0)) s, suite $((t2 - t1)) s (runtimes in parallel${retry:+; retried:$retry})"
# The goal of issue 13: every case runc passes here, corral passes.
if [ -n "$runc" ]; then
	for c in $cases; do
		r=$(outcome "$work/runc" "$c" | cut -d' ' -f1)
		k=$(outcome "$work/corral" "$c" | cut -d' ' -f1)
		[ -f "$work/corral-retry/$c.rc" ] && k=$(outcome "$work/corral-retry" "$c" | cut -d' ' -f1)
		[ "$r" = pass ] && [ "$k" != pass ] && echo "runc passes, corral does not: $c ($(awk -v c="$c" '$1 == c { $1 = $2 = ""; print; exit }' "$expect_file" | sed 's/^ *//'))"
	done
fi
if [ "${OCI_KEEP:-0}" = 1 ] || [ $status != 0 ]; then
	echo "TAP output of every case: $work"
else
	rm -rf "$work"
fi
[ $status = 0 ] || echo "test-oci: corral's results differ from tests/oci/expectations (see the marked lines)" >&2
exit $status
