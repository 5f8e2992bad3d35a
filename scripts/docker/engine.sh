#!/usr/bin/env bash
# Starts and stops a local Docker engine for the image and e2e tests.
#
#   scripts/docker/engine.sh start    install docker.io if missing; start dockerd
#                                     unless an engine already answers
#   scripts/docker/engine.sh stop     stop the dockerd that `start` started, if
#                                     one runs; never any other engine
#   scripts/docker/engine.sh status   say which engine answers and who started it
#
# start and stop are idempotent. The machine has no systemd, so dockerd runs as a
# plain background process of its own session, with
#   data-root  $MQ_ENGINE_DATA (default /var/lib/memquorum-engine): images
#              and the build cache, kept across runs and clones so the base
#              image and the build layers are built once per machine
#   run dir    $MQ_ENGINE_RUN (default /run/memquorum-engine): pid file,
#              exec-root, locks, and what the host looked like before
#   log        $MQ_ENGINE_DATA/dockerd.log
# and listens on the default socket, so a plain `docker` reaches it.
#
# The default bridge (docker0) and the pools Docker allocates unnamed networks
# from are given an explicit private /16 that overlaps no address or route of
# this machine (scripts/docker/subnet.py), and the uplink's MTU when that is
# below 1500. dockerd turns on IPv4 forwarding and sets the FORWARD policy to
# DROP when it has to; `stop` puts both back as they were before `start` and
# removes the docker0 bridge if `start` created it.
#
# A session's processes are killed when it ends, so a dockerd started here may
# be gone without `stop`; the next `start` undoes what it had changed on the
# host and clears what it left (pid files, its containerd) before it starts.
#
# Sharing: a script that uses the engine holds a shared lock on
# $MQ_ENGINE_RUN/users.lock (scripts/docker/test-image.sh does); `stop`
# waits up to $MQ_ENGINE_STOP_WAIT seconds (default 1800) for every such
# user to finish before it stops dockerd, and leaves it running if they do not.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
data=${MQ_ENGINE_DATA:-/var/lib/memquorum-engine}
run=${MQ_ENGINE_RUN:-/run/memquorum-engine}
pidfile=$run/dockerd.pid
log=$data/dockerd.log
sock=/var/run/docker.sock
start_timeout=${MQ_ENGINE_START_TIMEOUT:-90}
stop_wait=${MQ_ENGINE_STOP_WAIT:-1800}

say() { echo "engine: $*"; }
die() { echo "engine: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (dockerd and apt-get)"

# Answers when some engine serves the client's endpoint (DOCKER_HOST or the
# default socket), whoever started it.
engine_up() { docker info >/dev/null 2>&1; }
server_version() { docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'; }

# True while process $1 runs; a zombie does not (PID 1 here reaps late).
alive() {
  local st
  st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $st != Z* ]]
}

# Some dockerd runs, ours or not.
any_dockerd() {
  local p
  for p in $(pgrep -x dockerd); do alive "$p" && return 0; done
  return 1
}

# The pid of a live dockerd started by this script, or nothing. The pid file
# alone is not trusted: the process must be a dockerd with our pid file.
our_pid() {
  local pid cmd
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" || return 0
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 0
  [[ $cmd == *"dockerd "*"--pidfile $pidfile"* ]] && echo "$pid"
  return 0
}

install_engine() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v docker >/dev/null || missing+=(docker.io)
  command -v python3 >/dev/null || missing+=(python3)
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]}"
  # Without systemd, a package's postinst may still start its service through
  # the sysv script; this engine is started here, with our own settings.
  local guard=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    guard=/usr/sbin/policy-rc.d
  fi
  export DEBIAN_FRONTEND=noninteractive
  local rc=0
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || rc=$?
  [ -z "$guard" ] || rm -f "$guard"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed ($rc)"
}

record_host() {
  {
    echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
    echo "forward_policy=$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3; exit }')"
    echo "docker0=$(ip link show docker0 >/dev/null 2>&1 && echo existed || echo absent)"
  } >"$run/host-before"
}

restore_host() {
  [ -f "$run/host-before" ] || return 0
  local ip_forward forward_policy
  ip_forward=$(sed -n 's/^ip_forward=//p' "$run/host-before")
  forward_policy=$(sed -n 's/^forward_policy=//p' "$run/host-before")
  if [ -n "$ip_forward" ] && [ "$(cat /proc/sys/net/ipv4/ip_forward)" != "$ip_forward" ]; then
    echo "$ip_forward" >/proc/sys/net/ipv4/ip_forward && say "net.ipv4.ip_forward back to $ip_forward"
  fi
  if [ -n "$forward_policy" ] &&
    [ "$(iptables -S FORWARD 2>/dev/null | awk '$1 == "-P" { print $3; exit }')" != "$forward_policy" ]; then
    iptables -P FORWARD "$forward_policy" && say "iptables FORWARD policy back to $forward_policy"
  fi
  # dockerd leaves its bridge behind; the next start would see its address
  # as taken. Docker's own iptables chains stay: dockerd rewrites them.
  if grep -qx 'docker0=absent' "$run/host-before" && ip link show docker0 >/dev/null 2>&1; then
    ip link del docker0 && say "removed the docker0 bridge"
  fi
  rm -f "$run/host-before"
}

# The containerd a killed dockerd of ours had started may outlive it, or
# linger as a zombie (PID 1 here reaps late): either way the next dockerd
# finds its pid alive and waits for it instead of starting its own.
stop_orphan_containerd() {
  local pidf=$run/exec/containerd/containerd.pid cpid cmd
  cpid=$(cat "$pidf" 2>/dev/null) || return 0
  if [[ $cpid =~ ^[0-9]+$ ]] && alive "$cpid" &&
    cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$cpid/cmdline") &&
    [[ $cmd == *"containerd --config $run/exec/containerd/"* ]]; then
    say "stopping containerd pid $cpid left by that engine"
    kill -TERM "$cpid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while alive "$cpid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$cpid"; then kill -KILL "$cpid" 2>/dev/null || true; fi
  fi
  rm -f "$pidf"
}

# dockerd bind-mounts its data-root onto itself and mounts network
# namespaces under its exec-root, and leaves them mounted when it exits; the
# data-root could not even be deleted. Only mounts inside our two trees, and
# only when no dockerd of ours runs.
unmount_leftovers() {
  local m
  awk -v d="$data" -v r="$run" '$5 == d || index($5, d "/") == 1 || index($5, r "/") == 1 { print $5 }' \
    /proc/self/mountinfo | sort -r | while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
}

# Launches dockerd with our settings; prints its pid.
launch() {
  local lockfd=$1 pool bip mtu=() uplink
  pool=$(python3 "$here/subnet.py" --prefix 16 --start 10.212.0.0) ||
    die "no free private /16 in 10.0.0.0/8 for the engine's networks"
  bip=${pool%.0.0/16}.0.1/24
  # Containers' packets leave through the default route's interface; a
  # bridge with a larger MTU than it would rely on path-MTU discovery.
  uplink=$(ip -4 route show default 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "dev") { print $(i + 1); exit } }')
  if [ -n "$uplink" ] && [ "$(cat "/sys/class/net/$uplink/mtu" 2>/dev/null || echo 1500)" -lt 1500 ]; then
    mtu=(--mtu "$(cat "/sys/class/net/$uplink/mtu")")
  fi
  stop_orphan_containerd >&2 # stdout carries the pid
  record_host
  rm -f "$pidfile" # dockerd refuses to start over a pid file of a pid that exists
  if [ "$(stat -c %s "$log" 2>/dev/null || echo 0)" -gt 20000000 ]; then mv -f "$log" "$log.1"; fi
  # The lock's fd must not leak into dockerd: it would hold the lock forever.
  setsid dockerd \
    --data-root "$data" --exec-root "$run/exec" --pidfile "$pidfile" \
    -H "unix://$sock" --bip "$bip" "${mtu[@]}" \
    --default-address-pool "base=$pool,size=24" \
    >>"$log" 2>&1 </dev/null {lockfd}>&- &
  echo "engine: starting dockerd (pid $!, data-root $data, bridge $bip${mtu:+ mtu ${mtu[1]}}, pools $pool, log $log)" >&2
  echo "$!"
}

do_start() {
  local pid lockfd launched=0 deadline
  mkdir -p "$run" "$data"
  exec {lockfd}>"$run/lock"
  flock -w 300 "$lockfd" || die "another engine.sh holds $run/lock for 300 s"

  # A dockerd that runs but does not answer yet (ours or someone else's, just
  # started) gets time to answer: a second one on the same socket would fail.
  deadline=$((SECONDS + start_timeout))
  if ! engine_up && any_dockerd; then
    say "a dockerd runs but does not answer yet; waiting up to ${start_timeout}s"
    while ! engine_up && any_dockerd && ((SECONDS < deadline)); do sleep 0.2; done
  fi
  if ! engine_up; then
    any_dockerd && die "a dockerd runs but does not answer on $sock; not starting a second one"
    install_engine
    # A dockerd of ours that ended without `stop` (killed with its session)
    # left the host as dockerd set it; what it was before is on file.
    if [ -f "$run/host-before" ]; then
      say "an engine started here earlier ended without 'stop'; undoing what it changed"
      unmount_leftovers
      restore_host
    fi
    pid=$(launch "$lockfd")
    launched=1
    deadline=$((SECONDS + start_timeout))
    until engine_up; do
      if ! alive "$pid"; then
        echo "engine: dockerd exited before it answered; last lines of $log:" >&2
        tail -n 30 "$log" >&2 || true
        restore_host
        exit 1
      fi
      if ((SECONDS >= deadline)); then
        echo "engine: no answer from dockerd pid $pid after ${start_timeout}s; last lines of $log:" >&2
        tail -n 30 "$log" >&2 || true
        exit 1
      fi
      sleep 0.2
    done
  fi

  # Callers that stop only what they started look for "engine: started:".
  pid=$(our_pid)
  if ((launched)); then
    say "started: dockerd pid $pid answers (docker $(server_version)); 'engine.sh stop' stops it"
  elif [ -n "$pid" ]; then
    say "already running: dockerd pid $pid, started earlier by this script (docker $(server_version), data-root $data)"
  else
    say "using the engine that already runs (docker $(server_version)); not started here, so stop leaves it alone"
  fi
}

do_stop() {
  local pid lockfd usersfd
  mkdir -p "$run"
  exec {lockfd}>"$run/lock"
  flock -w 300 "$lockfd" || die "another engine.sh holds $run/lock for 300 s"
  pid=$(our_pid)
  if [ -z "$pid" ]; then
    say "no dockerd started by this script is running; nothing to stop"
    rm -f "$pidfile"
    return 0
  fi
  exec {usersfd}>"$run/users.lock"
  if ! flock -x -n "$usersfd"; then
    say "waiting up to ${stop_wait}s for other users of the engine to finish"
    if ! flock -x -w "$stop_wait" "$usersfd"; then
      say "still in use after ${stop_wait}s; leaving dockerd pid $pid running"
      return 0
    fi
  fi
  say "stopping dockerd pid $pid"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if alive "$pid"; then
    say "dockerd pid $pid did not exit within 60 s of SIGTERM; killing its process group"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$pidfile"
  unmount_leftovers
  restore_host
  say "stopped"
}

do_status() {
  local pid
  pid=$(our_pid)
  if engine_up; then
    if [ -n "$pid" ]; then
      say "running: dockerd pid $pid started by this script (docker $(server_version), data-root $data)"
    else
      say "running: an engine not started by this script (docker $(server_version))"
    fi
  else
    say "no engine answers${pid:+ (dockerd pid $pid is starting)}"
    return 1
  fi
}

case ${1:-} in
start) do_start ;;
stop) do_stop ;;
status) do_status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
