#!/usr/bin/env bash
# The load comparison behind `make bench` and `make bench-smoke`: the chat
# (target/release/server) against a bare axum broadcast loop (the
# bare-broadcast example), under the same load generator (the chat-load
# example), on the same machine, in the same run.
#
#   bench/run.sh full    every scenario against both; table and JSON in target/bench/,
#                        and fan-out on one and on two servers sharing PostgreSQL and
#                        Redis (target/bench/nodes-1.json, nodes-2.json)
#   bench/run.sh nodes   only the last: one server against two
#   bench/run.sh smoke   5 s of fan-out against the chat; fails if anything is lost
#
# BENCH_PORT (3200) is where the servers listen; SERVER, BARE and LOAD name
# other builds of the three binaries.
#
# Each scenario gets a server of its own (a fresh database for the chat), so
# one scenario's memory does not flatter or burden the next. Every server
# this starts is stopped when it exits, however it exits.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-full}
port=${BENCH_PORT:-3200}
out=target/bench
server=${SERVER:-target/release/server}
bare=${BARE:-target/release/examples/bare-broadcast}
load=${LOAD:-target/release/examples/chat-load}

# Each socket is an open file: up to the hard limit, for this script, the
# servers and the generator (the machines this runs on allow 20,000).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

server_pid=""
load_pid=""
node_pids=()
schema=""
scratch=$(mktemp -d)
postgres=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
redis=${TEST_REDIS_URL:-redis://127.0.0.1:6379}

stop_server() {
  if [[ -n $server_pid ]]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    # The chat stores what it accepted and closes its sockets before it
    # exits; ten seconds is plenty, then it is killed.
    for _ in $(seq 100); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

stop_nodes() {
  for pid in "${node_pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${node_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  node_pids=()
  if [[ -n $schema ]]; then
    PGOPTIONS=--client-min-messages=warning \
      psql "$postgres" -qc "DROP SCHEMA IF EXISTS $schema CASCADE" || true
    schema=""
  fi
}

cleanup() {
  if [[ -n $load_pid ]]; then
    kill -TERM "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
  fi
  stop_server
  stop_nodes
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The generator runs in the background and is waited for: a signal to this
# script then stops it at once (bash runs traps only between commands, and
# `wait` is one it interrupts).
run_load() {
  "$load" "$@" &
  load_pid=$!
  local status=0
  wait "$load_pid" || status=$?
  load_pid=""
  return "$status"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

require() {
  for file in "$@"; do
    [[ -x $file ]] || { echo "missing $file: run 'make bench' (it builds it)" >&2; exit 1; }
  done
}

# start_product [NAME=VALUE...]: the chat on a fresh database, with the
# settings a load from one machine needs (every client is 127.0.0.x).
start_product() {
  if port_in_use; then echo "port $port is in use; set BENCH_PORT" >&2; exit 1; fi
  local db
  db=$(mktemp -d -p "$scratch")
  # A clean environment: a developer's own settings (COOKIE_SECURE, limits)
  # must not change what is measured.
  env -i PATH="$PATH" HOME="$HOME" \
    BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$db/chat.db" \
    LEPTOS_SITE_ROOT=target/site RUST_LOG=warn "$@" \
    "$server" 2>>"$out/product.log" &
  server_pid=$!
}

start_bare() {
  if port_in_use; then echo "port $port is in use; set BENCH_PORT" >&2; exit 1; fi
  "$bare" --bind "127.0.0.1:$port" 2>>"$out/bare.log" &
  server_pid=$!
}

# The chat's limits that a load from one address would otherwise hit,
# each turned off or raised; said again in every result as a note.
open_limits=(MAX_SOCKETS_PER_ADDRESS=0 SOCKET_RATE=0 LOGIN_RATE=0 MAX_CONNECTIONS=19500)
open_note="MAX_SOCKETS_PER_ADDRESS=0 SOCKET_RATE=0 LOGIN_RATE=0 MAX_CONNECTIONS=19500 (one client address, many sockets)"
# A person may send 5 messages a second; fan-out senders go far beyond.
fast_senders=(RATE_PER_SEC=1000000 RATE_BURST=1000000)
fast_note="RATE_PER_SEC=1000000 RATE_BURST=1000000 (raised for fan-out)"

failures=0

# scenario NAME PRODUCT_ENV_ARRAY NOTE -- GENERATOR_ARGS...: the same load
# against the chat, then against the control, each on a fresh server.
scenario() {
  local name=$1 env_name=$2 note=$3
  shift 4
  local -n product_env=$env_name
  for target in product bare; do
    echo "--- $name: $target" >&2
    if [[ $target == product ]]; then
      start_product "${product_env[@]}"
      run_load --addr "127.0.0.1:$port" --target product --server-pid "$server_pid" \
        --json "$out/product-$name.json" --note "$note" "$@" || failures=$((failures + 1))
    else
      start_bare
      run_load --addr "127.0.0.1:$port" --target bare --server-pid "$server_pid" \
        --json "$out/bare-$name.json" --note "default axum WebSocket settings, broadcast capacity 1024" \
        "$@" || failures=$((failures + 1))
    fi
    stop_server
  done
}

# The largest idle run that fits: the open-file limit (one file per socket
# in each process, plus a margin) and memory (the control keeps axum's
# 128 KiB read buffer per socket; 400 KiB per socket covers server and
# generator together).
# `count` servers of one chat on PostgreSQL and Redis (a schema and a key
# prefix of their own), on $port, $port+1, ...; fan-out over all of them.
# The same load on one server and on two tells what a second server costs
# or brings.
nodes_scenario() {
  local count=$1
  shift
  echo "--- fan-out on $count server(s) sharing PostgreSQL and Redis" >&2
  schema="chat_bench_$$_$count"
  psql "$postgres" -qc "CREATE SCHEMA $schema" \
    || { echo "PostgreSQL at $postgres cannot be reached" >&2; exit 1; }
  local also=()
  for ((n = 0; n < count; n++)); do
    local node_port=$((port + n))
    ((n > 0)) && also+=(--also "127.0.0.1:$node_port")
    env -i PATH="$PATH" HOME="$HOME" BIND="127.0.0.1:$node_port" \
      DATABASE_URL="$postgres?options[search_path]=$schema,public" \
      REDIS_URL="$redis" REDIS_PREFIX="$schema:" \
      LEPTOS_SITE_ROOT=target/site RUST_LOG=warn "${fanout_env[@]}" \
      "$server" 2>>"$out/nodes.log" &
    node_pids+=($!)
  done
  run_load --addr "127.0.0.1:$port" "${also[@]}" --target product \
    --server-pid "${node_pids[0]}" --json "$out/nodes-$count.json" \
    --note "$count server(s), PostgreSQL and Redis; $fast_note; $open_note" "$@" \
    || failures=$((failures + 1))
  stop_nodes
}

largest_idle() {
  local by_files by_memory avail_kib
  by_files=$(($(ulimit -n) - 500))
  avail_kib=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  by_memory=$((avail_kib / 400))
  local n=19000
  ((by_files < n)) && n=$by_files
  ((by_memory < n)) && n=$by_memory
  echo "$n"
}

case $mode in
  smoke)
    require "$server" "$load"
    mkdir -p "$out"
    # 5 users sending 4 messages a second each. The per-user rate is
    # raised: this run checks that the generator and the delivery path
    # still work, and a stall of a busy machine (a catch-up burst from the
    # open-loop senders) must not read as a loss. The tests cover the limits.
    start_product RATE_PER_SEC=1000 RATE_BURST=1000
    run_load --addr "127.0.0.1:$port" --target product --scenario fanout \
      --clients 5 --rate 20 --duration 5 --server-pid "$server_pid" \
      --json "$out/smoke.json" --note "RATE_PER_SEC=1000 RATE_BURST=1000"
    ;;
  full)
    require "$server" "$bare" "$load"
    mkdir -p "$out"
    rm -f "$out"/product-*.json "$out"/bare-*.json "$out"/summary.* "$out"/*.log
    {
      echo "machine: $(nproc) cores, $(awk '/^MemTotal:/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
      echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
      free -h
    } | tee "$out/machine.txt" >&2
    fanout_env=("${open_limits[@]}" "${fast_senders[@]}")
    # Idle sockets share logins, 100 to a session: memory per socket is the
    # question here, and every new user is announced to every socket.
    idle_env=("${open_limits[@]}" MAX_TABS=100)
    churn_env=("${open_limits[@]}" GRACE_MS=1000)
    idle_max=$(largest_idle)
    started=$SECONDS

    scenario 1-fanout-100 fanout_env "$fast_note; $open_note" -- \
      --scenario fanout --clients 100 --rate 250 --duration 3 --sweep --max-steps 8
    scenario 2-fanout-1000 fanout_env "$fast_note; $open_note" -- \
      --scenario fanout --clients 1000 --rate 25 --duration 3 --sweep --max-steps 8
    scenario 3-idle-5000 idle_env "$open_note; MAX_TABS=100" -- \
      --scenario idle --clients 5000 --duration 3 --tabs-per-login 100
    if ((idle_max > 5000)); then
      scenario 4-idle-max idle_env "$open_note; MAX_TABS=100" -- \
        --scenario idle --clients "$idle_max" --duration 3 --tabs-per-login 100
    fi
    scenario 5-churn churn_env "$open_note; GRACE_MS=1000" -- \
      --scenario churn --clients 10 --rate 100 --duration 10 --grace-ms 1000
    for count in 1 2; do
      nodes_scenario "$count" --scenario fanout --clients 100 --rate 250 --duration 3 \
        --sweep --max-steps 8
    done

    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); took $((SECONDS - started)) s" \
      | tee -a "$out/machine.txt" >&2
    "$load" --table "$out"
    echo "results: $out/summary.md, $out/summary.json and one JSON file per run" >&2
    if ((failures > 0)); then
      echo "$failures runs failed (see the notes above)" >&2
      exit 1
    fi
    ;;
  nodes)
    require "$server" "$load"
    mkdir -p "$out"
    rm -f "$out"/nodes-*.json "$out"/nodes.log
    fanout_env=("${open_limits[@]}" "${fast_senders[@]}")
    for count in 1 2; do
      nodes_scenario "$count" --scenario fanout --clients 100 --rate 250 --duration 3 \
        --sweep --max-steps 8
    done
    if ((failures > 0)); then
      echo "$failures runs failed (see the notes above)" >&2
      exit 1
    fi
    ;;
  *)
    echo "usage: bench/run.sh full|smoke|nodes" >&2
    exit 2
    ;;
esac
