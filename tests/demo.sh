#!/usr/bin/env bash
# tests/demo.sh - `make demo`: what corral is for, in one screen.
#
# Starts corralfs (unless one already serves the mount point), runs a
# container limited to 256 MiB and half a CPU on the default root (the
# host's own /usr, read-only: nothing to prepare), and shows what free, top,
# /proc/cpuinfo and the JVM see inside, next to what they see on the host.
# Then stops the corralfs it started and checks the mount is gone.
#
# env: CORRALFS_MOUNT (default /var/lib/corralfs), BIN_DIR (default ./bin)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BIN_DIR=${BIN_DIR:-$REPO/bin}
MNT=${CORRALFS_MOUNT:-/var/lib/corralfs}
CORRAL=$BIN_DIR/corral
CORRALFS=$BIN_DIR/corralfs
LIMITS=(--memory 256m --cpus 0.5)

die() { echo "demo: $*" >&2; exit 1; }
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

[ "$(id -u)" = 0 ] || die "needs root (containers, cgroups and a FUSE mount)"
for b in "$CORRAL" "$CORRALFS"; do
  [ -x "$b" ] || die "$b missing: run 'make build'"
done

# free and top come from procps; a fresh Debian may not have it.
if ! command -v free >/dev/null || ! command -v top >/dev/null; then
  echo "demo: installing procps (free, top)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends procps >/dev/null \
    || die "apt-get install procps failed"
fi

mounted() { awk -v m="$MNT" '$5 == m && $0 ~ / - fuse(\.corralfs)? / { found = 1 } END { exit !found }' /proc/self/mountinfo; }

STARTED_PID=""
WORK=$(mktemp -d "${TMPDIR:-/tmp}/corral-demo.XXXXXX")
cleanup() {
  local rc=$?
  if [ -n "$STARTED_PID" ]; then
    # SIGTERM is corralfs's clean shutdown: it unmounts and exits.
    kill -TERM "$STARTED_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$STARTED_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$STARTED_PID" 2>/dev/null; then
      echo "demo: corralfs (pid $STARTED_PID) did not exit after SIGTERM; killing it" >&2
      kill -KILL "$STARTED_PID" 2>/dev/null || true
      rc=1
    fi
    if mounted; then
      echo "demo: $MNT is still mounted after corralfs exited; unmounting" >&2
      umount -l "$MNT" 2>/dev/null || true
      rc=1
    else
      echo "demo: corralfs stopped, $MNT unmounted"
    fi
  fi
  [ "$rc" = 0 ] || { echo "demo: corralfs log:" >&2; cat "$WORK/corralfs.log" >&2 2>/dev/null || true; }
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if mounted; then
  echo "demo: a corralfs already serves $MNT; using it (and leaving it running)"
else
  mkdir -p "$MNT"
  "$CORRALFS" --pidfile "$WORK/corralfs.pid" "$MNT" >"$WORK/corralfs.log" 2>&1 &
  STARTED_PID=$!
  for _ in $(seq 1 100); do
    mounted && break
    kill -0 "$STARTED_PID" 2>/dev/null || die "corralfs exited: $(cat "$WORK/corralfs.log")"
    sleep 0.1
  done
  mounted || die "corralfs did not mount $MNT within 10 s"
  echo "demo: corralfs (pid $STARTED_PID) serves $MNT"
fi

# in_container CMD: run a shell command in a fresh container on the default
# root, limited to 256 MiB and half a CPU, with the views bound.
in_container() { "$CORRAL" run --rm "${LIMITS[@]}" --views "$MNT" -- sh -c "$1"; }
on_host() { sh -c "$1"; }

# show TITLE CMD: the same command on the host, then in the container.
show() {
  say "== $1 =="
  echo "-- host --"
  on_host "$2" || true
  echo "-- container: corral run ${LIMITS[*]} --"
  in_container "$2" || die "the container failed to run: $2"
}

say "corral run ${LIMITS[*]}: no rootfs to prepare (the host's /usr, read-only)"
show "free -m" "free -m"
show "top -bn1 | head -5" "top -bn1 | head -5"
show "processors in /proc/cpuinfo" "grep -c ^processor /proc/cpuinfo"
if command -v java >/dev/null; then
  show "JVM default max heap (java -XX:+PrintFlagsFinal -version)" \
    "java -XX:+PrintFlagsFinal -version 2>/dev/null | awk '\$2 == \"MaxHeapSize\" { printf \"MaxHeapSize = %.0f bytes (%.0f MiB)\\n\", \$4, \$4 / 1048576 }'"
  # Without its container support the JVM asks sysinfo(2), which no file
  # view can change: corralfs's seccomp agent answers it.
  show "JVM without container support (java -XX:-UseContainerSupport: sysinfo(2))" \
    "java -XX:-UseContainerSupport -XX:+PrintFlagsFinal -version 2>/dev/null | awk '\$2 == \"MaxHeapSize\" { printf \"MaxHeapSize = %.0f bytes (%.0f MiB)\\n\", \$4, \$4 / 1048576 }'"
else
  say "(java not installed: skipping the JVM comparison)"
fi
say "demo: done"
