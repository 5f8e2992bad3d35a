#!/usr/bin/env bash
# A real Nacos server for the discovery tests: r-nacos (crate rnacos), a
# Nacos server written in Rust that speaks the Nacos v1 open API and the 2.x
# gRPC protocol. Built once with cargo, cached outside the tree.
#
#   nacos.sh install             cargo install rnacos (pinned) into the cache;
#                                does nothing when that binary is there
#   nacos.sh start DIR [--auth]  data, env file, log and pid in DIR; ports
#                                picked at run time (HTTP P, gRPC P+1000,
#                                console P+2000, as Nacos SDKs expect);
#                                prints NACOS_ADDR=127.0.0.1:P once the open
#                                API answers. --auth makes the open API
#                                require a token from POST /nacos/v1/auth/login
#                                and also prints NACOS_USER= and
#                                NACOS_PASSWORD=. On a DIR that already ran
#                                a server it starts it again: same ports,
#                                same data, same auth setting.
#   nacos.sh stop DIR
#   nacos.sh restart DIR
#
# The admin account is r-nacos's default, admin / admin. Every server starts
# from a copy of a data template made once (see ensure_template: r-nacos
# 0.8.8 often breaks on a first start on empty data).
#
# Environment: RNACOS_VERSION (0.8.8), MQ_CACHE (~/.cache/memquorum),
# NACOS_START_TIMEOUT (30 s). Other
# RNACOS_* variables pass through to the server, for example
# RNACOS_NAMING_HEALTH_TIMEOUT_SECOND (15) and
# RNACOS_NAMING_INSTANCE_TIMEOUT_SECOND (30), the ages at which an
# ephemeral instance without beats turns unhealthy and is removed.
# NACOS-NOTES.md beside this file records what the server answers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

RNACOS_VERSION=${RNACOS_VERSION:-0.8.8}
# r-nacos's default admin account (RNACOS_INIT_ADMIN_USERNAME/_PASSWORD),
# created on the first start; the data template below holds it.
NACOS_USER="admin"
NACOS_PASSWORD="admin"
root="$MQ_CACHE/rnacos-$RNACOS_VERSION"
bin="$root/bin/rnacos"

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
}

install() {
  if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qF "$RNACOS_VERSION"; then
    return 0
  fi
  command -v cargo >/dev/null || mq_die "cargo is missing (Rust toolchain)"
  mq_log "building rnacos $RNACOS_VERSION with cargo (several minutes on two cores)"
  local t0=$SECONDS
  # --locked: the crate's own Cargo.lock, so a new release of a dependency
  # cannot change or break the build.
  cargo install rnacos --version "$RNACOS_VERSION" --locked --root "$root" \
    >"$MQ_CACHE/rnacos-$RNACOS_VERSION.build.log" 2>&1 || {
    tail -n 30 "$MQ_CACHE/rnacos-$RNACOS_VERSION.build.log" >&2
    mq_die "cargo install rnacos failed"
  }
  mq_log "built $bin in $((SECONDS - t0)) s"
  rm -rf "$root/data-template"
}

# pick_ports: prints P such that P, P+1000 and P+2000 are all free.
pick_ports() {
  local p tries=0
  while ((tries++ < 50)); do
    p=$(mq_free_ports 1)
    ((p + 2000 < 65536)) || continue
    if mq_port_is_free $((p + 1000)) && mq_port_is_free $((p + 2000)); then
      echo "$p"
      return 0
    fi
  done
  mq_die "found no free port P with P+1000 and P+2000 free"
}

env_get() { # DIR KEY -> value from DIR/rnacos.env
  sed -n "s/^$2=//p" "$1/rnacos.env"
}

# curl_code URL [CURL ARGS...]: prints the HTTP status (000: no answer).
curl_code() {
  local url=$1
  shift
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
}

# launch DIR: starts r-nacos with DIR/rnacos.env, pid in DIR/rnacos.pid.
launch() {
  local dir=$1 envs=()
  mapfile -t envs <"$dir/rnacos.env"
  # Everything r-nacos is told is in DIR/rnacos.env, which `rnacos -e`
  # reads (without -e it would look for a .env in its working directory
  # and every parent of it). The same values go into its environment,
  # which wins over the file, so a caller's stray RNACOS_HTTP_PORT cannot.
  (cd "$dir" && exec env "${envs[@]}" RUST_LOG="${RUST_LOG:-info}" \
    "$bin" -e "$dir/rnacos.env" </dev/null >>"$dir/rnacos.log" 2>&1) &
  echo $! >"$dir/rnacos.pid"
}

# wait_ready DIR: 0 when the server answers and a login succeeds, 1 when it
# died or panicked, 2 on timeout. A login writes its token through
# r-nacos's Raft (with auth off too, when the user exists), so a token
# proves that writes work, not only that HTTP is up.
wait_ready() {
  local dir=$1 pid port base deadline body
  pid=$(cat "$dir/rnacos.pid")
  port=$(env_get "$dir" RNACOS_HTTP_PORT)
  base="http://127.0.0.1:$port/nacos/v1"
  deadline=$((SECONDS + ${NACOS_START_TIMEOUT:-30}))
  until [ "$(curl_code "$base/ns/instance/list?serviceName=memquorum-probe")" != 000 ]; do
    mq_running "$pid" || return 1
    ((SECONDS < deadline)) || return 2
    sleep 0.1
  done
  # At most two logins a second: r-nacos refuses a user's logins after 100
  # in a minute (LOGIN_LIMITE_ERROR) until one succeeds.
  while :; do
    grep -q 'panicked at' "$dir/rnacos.log" && return 1
    mq_running "$pid" || return 1
    body=$(curl -s --max-time 2 -X POST "$base/auth/login" \
      --data-urlencode "username=$NACOS_USER" --data-urlencode "password=$NACOS_PASSWORD") || true
    [[ $body =~ \"accessToken\":\"[0-9a-f]{32,}\" ]] && return 0
    ((SECONDS < deadline)) || return 2
    sleep 0.5
  done
}

write_env() { # DIR PORT AUTH DATA_DIR
  cat >"$1/rnacos.env" <<EOF
RNACOS_HTTP_PORT=$2
RNACOS_GRPC_PORT=$(($2 + 1000))
RNACOS_HTTP_CONSOLE_PORT=$(($2 + 2000))
RNACOS_SDK_HOST=127.0.0.1
RNACOS_CONSOLE_HOST=127.0.0.1
RNACOS_DATA_DIR=$4
RNACOS_RAFT_NODE_ID=1
RNACOS_RAFT_AUTO_INIT=true
RNACOS_ENABLE_OPEN_API_AUTH=$3
RNACOS_INIT_ADMIN_USERNAME=$NACOS_USER
RNACOS_INIT_ADMIN_PASSWORD=$NACOS_PASSWORD
RNACOS_HTTP_WORKERS=2
EOF
}

# ensure_template: a data directory of a first start that went well.
#
# r-nacos 0.8.8 initialises its one-node Raft on a first start (empty data
# directory) in a task that races the injection of its actors; when the
# task wins, the state machine's actor panics ("called Option::unwrap() on
# a None value", raftapply.rs:421), and from then on every write through
# Raft, logins and config publishing included, answers "Mailbox has
# closed". Here that happened on more than half of the first starts. A start
# on existing data skips that task, so every server starts from a copy of
# this template: Raft initialised, the admin user created, nothing else (no
# services, no configs, no tokens).
ensure_template() {
  local tpl="$root/data-template" work attempt rc
  [ -d "$tpl" ] && return 0
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    work=$(mktemp -d "$MQ_CACHE/rnacos-template.XXXXXX")
    write_env "$work" "$(pick_ports)" false "$work/data"
    launch "$work"
    rc=0
    wait_ready "$work" || rc=$?
    mq_stop_pid "$work/rnacos.pid" "$work/rnacos.env" 15
    if ((rc == 0)); then
      rm -f "$work/data/db_lock"
      # -T: when a parallel start made the template first, keep that one.
      mv -T "$work/data" "$tpl" 2>/dev/null || true
      rm -rf "$work"
      mq_log "made the r-nacos data template (first start attempt $attempt)"
      return 0
    fi
    mq_log "first start attempt $attempt of r-nacos failed (rc $rc); trying again"
    rm -rf "$work"
  done
  mq_die "r-nacos never started cleanly on empty data in 10 attempts"
}

start() {
  local dir=$1 auth=$2 port rc
  [ -x "$bin" ] || mq_die "rnacos is not installed: run nacos.sh install"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if mq_pid_alive "$dir/rnacos.pid" "$dir/rnacos.env" >/dev/null; then
    mq_die "r-nacos started in $dir still runs (pid $(cat "$dir/rnacos.pid")); stop it first"
  fi
  if [ -f "$dir/rnacos.env" ]; then
    # A restart: same ports, data and auth setting.
    port=$(env_get "$dir" RNACOS_HTTP_PORT)
    auth=$(env_get "$dir" RNACOS_ENABLE_OPEN_API_AUTH)
    local p until
    for p in "$port" $((port + 1000)) $((port + 2000)); do
      until=$((SECONDS + 30))
      until mq_port_is_free "$p"; do
        ((SECONDS < until)) || mq_die "port $p of $dir is taken by another process"
        sleep 0.2
      done
    done
  else
    port=$(pick_ports)
    write_env "$dir" "$port" "$auth" "$dir/data"
  fi
  if [ ! -d "$dir/data" ]; then
    ensure_template
    cp -a "$root/data-template" "$dir/data"
  fi
  launch "$dir"
  rc=0
  wait_ready "$dir" || rc=$?
  if ((rc != 0)); then
    tail -n 20 "$dir/rnacos.log" >&2
    mq_stop_pid "$dir/rnacos.pid" "$dir/rnacos.env" 5
    if ((rc == 1)); then
      mq_die "r-nacos in $dir died or panicked before it was ready"
    fi
    mq_die "r-nacos in $dir was not ready within ${NACOS_START_TIMEOUT:-30}s"
  fi
  echo "NACOS_ADDR=127.0.0.1:$port"
  echo "NACOS_GRPC_PORT=$((port + 1000))"
  echo "NACOS_CONSOLE_ADDR=127.0.0.1:$((port + 2000))"
  if [ "$auth" = true ]; then
    echo "NACOS_USER=$NACOS_USER"
    echo "NACOS_PASSWORD=$NACOS_PASSWORD"
  fi
}

stop() {
  local dir
  [ -d "$1" ] || mq_die "no such directory: $1"
  dir=$(cd "$1" && pwd)
  mq_stop_pid "$dir/rnacos.pid" "$dir/rnacos.env" "${NACOS_STOP_TIMEOUT:-15}"
}

cmd=${1:-}
[ $# -ge 1 ] && shift
case $cmd in
  install) [ $# -eq 0 ] || usage; install; ensure_template ;;
  start)
    case $# in
      1) start "$1" false ;;
      2) [ "$2" = --auth ] || usage; start "$1" true ;;
      *) usage ;;
    esac
    ;;
  stop) [ $# -eq 1 ] || usage; stop "$1" ;;
  restart)
    [ $# -eq 1 ] || usage
    [ -f "$1/rnacos.env" ] || mq_die "$1 has no server to restart"
    stop "$1"
    start "$1" "$(env_get "$1" RNACOS_ENABLE_OPEN_API_AUTH)"
    ;;
  *) usage ;;
esac
