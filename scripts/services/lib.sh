# shellcheck shell=bash
# Helpers shared by the service scripts in this folder (sourced, not run).
#
# Every service script keeps its state in a directory the caller names:
# config, data, logs, and one pid file per process it started. Stopping reads
# that pid file and signals that pid only, after checking that the pid still
# runs the program we started (a pid can be reused once ours has exited).

# Where downloads and builds are cached, outside any work tree.
MQ_CACHE=${MQ_CACHE:-$HOME/.cache/memquorum}

mq_die() {
  echo "${0##*/}: $*" >&2
  exit 1
}

mq_log() {
  echo "${0##*/}: $*" >&2
}

# mq_free_ports N: prints N distinct loopback TCP ports that were free a
# moment ago (the kernel picks them; all N sockets are held open together so
# they differ). Another process can still take one before we bind it, so
# callers bind soon after.
mq_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# mq_port_is_free PORT: true when 127.0.0.1:PORT can be bound right now by a
# server that sets SO_REUSEADDR (as Java, Rust's std and dnsmasq do), so
# connections of a stopped server lingering in TIME_WAIT do not count.
mq_port_is_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
}

# mq_pid_alive PIDFILE MATCH: prints the pid and succeeds when PIDFILE names
# a live process whose command line contains MATCH.
mq_pid_alive() {
  local pidfile=$1 match=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  mq_running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$match" || return 1
  echo "$pid"
}

# mq_stop_pid PIDFILE MATCH [TIMEOUT_S]: SIGTERM the pid in PIDFILE (only if
# it still runs MATCH), wait up to TIMEOUT_S seconds (default 30), then
# SIGKILL and wait for it to be gone. Removes PIDFILE. Succeeds when nothing
# was running.
mq_stop_pid() {
  local pidfile=$1 match=$2 timeout=${3:-30} pid deadline
  if ! pid=$(mq_pid_alive "$pidfile" "$match"); then
    rm -f "$pidfile"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while mq_running "$pid" && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if mq_running "$pid"; then
    mq_log "pid $pid still running after ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while mq_running "$pid"; do sleep 0.05; done
  fi
  rm -f "$pidfile"
}

# mq_running PID: true while PID exists and is not a zombie (an exited
# process whose parent has not reaped it yet counts as gone).
mq_running() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}
