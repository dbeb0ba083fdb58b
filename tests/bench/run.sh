#!/usr/bin/env bash
# make bench: corralfs vs the kernel, a trivial go-fuse file and LXCFS;
# corral run vs runc, crun and unshare. Needs root. Installs lxcfs, runc,
# crun and busybox-static with apt-get when missing (and says so).
#
#   tests/bench/run.sh [driver flags]     e.g. --scale-time 20s --sections views,scale
#   make bench BENCH_ARGS="--help"        lists the flags
#
# Everything the bench makes lives below one scratch directory and under
# /corral-test/bench-* cgroups; the driver undoes it on exit, error or
# Ctrl-C, and the trap below sweeps again in case the driver itself died.
set -euo pipefail

cd "$(dirname "$0")/../.."
REPO=$PWD

if [ "$(id -u)" != 0 ]; then
	echo "bench: needs root (real cgroups, FUSE mounts, containers)" >&2
	exit 1
fi

DEBS="lxcfs runc crun busybox-static"
missing=""
for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
	echo "bench: installing$missing with apt-get"
	# A package's service must not start on its own: the bench runs its
	# own LXCFS on its own mount point.
	DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends $missing \
		|| { apt-get update -q && DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q --no-install-recommends $missing; }
fi

WORK=$(mktemp -d /tmp/corral-bench.XXXXXX)

sweep() {
	local rc=$?
	trap - EXIT INT TERM
	# Processes the driver started and may have left (it normally stops them).
	for f in "$WORK"/pids/*; do
		[ -e "$f" ] || continue
		kill -TERM "$(cat "$f")" 2>/dev/null || true
	done
	# Mounts below the scratch directory, deepest first.
	awk -v w="$WORK/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null || true
	done
	# The bench's cgroups: kill what is left in them, remove them bottom-up.
	for root in /sys/fs/cgroup/*/corral-test /sys/fs/cgroup/corral-test; do
		[ -d "$root" ] || continue
		for d in $(find "$root" -mindepth 1 -depth -type d -path "$root/bench-*" 2>/dev/null); do
			if [ -f "$d/cgroup.kill" ]; then echo 1 >"$d/cgroup.kill" 2>/dev/null || true; fi
			for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
			for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
		done
		rmdir "$root" 2>/dev/null || true # only when no other test uses it
	done
	rm -rf "$WORK"
	exit $rc
}
trap sweep EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/bin"
echo "bench: building the reader, trivialfs and the driver"
CGO_ENABLED=0 go build -trimpath -o "$WORK/bin/" ./tests/bench/reader ./tests/bench/trivialfs ./tests/bench/driver

cmd="make bench"
[ $# -gt 0 ] && cmd="make bench BENCH_ARGS=\"$*\""
"$WORK/bin/driver" --work "$WORK" --bin "$REPO/bin" --bench-bin "$WORK/bin" \
	--results "$REPO/tests/bench/results" --docs "$REPO/docs/benchmarks.md" --command "$cmd" "$@"
