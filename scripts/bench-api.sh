#!/usr/bin/env bash
# API load benchmark: does hammering the listings slow ingest? Mosquitto → safegate with a
# 100,000-device inventory, on 127.0.0.1 only, in one run.
#
#   scripts/bench-api.sh                                         # release build, 3 rounds
#   BENCH_BUILD=0 BENCH_DEVICES=10000 BENCH_MESSAGES=200000 BENCH_ROUNDS=1 scripts/bench-api.sh
#
# Each phase preloads M readings (over the inventory's devices, in turn) into an offline
# persistent session, so the publisher does not compete for the cores, then starts a gateway
# (no store: what is timed is ingest) that drains them:
#   Q  quiet: nothing but the benchmark's own /metrics scrape (every 0.1 s) calls the API;
#   H  hammered: from the moment the API listens, BENCH_CLIENTS concurrent clients (api-load)
#      GET /api/v1/devices?limit=100 and /api/v1/sites in turn, flat out, until the drain ends.
# The ingest rate is taken from safegate_readings_accepted_total between 10 % and 90 % of M
# (after the first reading of every device, before the tail), in readings/s; a phase that has
# not drained after BENCH_DRAIN_S is stopped there and its rate taken up to that point (the
# build before the read model, hammered, can take minutes for what takes seconds quiet). The summary gives
# the medians and (h)/(q): 1.0 means the API load does not lower the ingest rate; the request
# rate and latency p50/p99 of the hammered phases are printed too.
# With BENCH_BASELINE_BIN (a directory holding another build's `safegate`, e.g. a release build
# of 12efdf9, from before the read model, when handlers scanned the fleet under the core's
# lock), phases Q0 and H0 run the same with it, and the summary gives its (h0)/(q0).
# Phases alternate their order from round to round, so drift favours none.
#
# Environment (defaults):
#   BENCH_DEVICES=100000   inventory size (one site)
#   BENCH_MESSAGES=1000000 readings per phase (M)
#   BENCH_CLIENTS=8        concurrent API clients in H
#   BENCH_API_RATE         total requests/s of the clients (default: flat out)
#   BENCH_ROUNDS=3
#   BENCH_SETTLE_S=6       quiet phases: the gateway's VmRSS is read again after this long idle
#                          (as bench-ingest.sh's phase C, after one journal cycle)
#   BENCH_BASELINE_BIN     see above
#   BENCH_DRAIN_S=60       bound on each drain (see above)
#   BENCH_TIMEOUT_S=300    bound on every other wait (publish, start-up) and on api-load
#   BENCH_WAIT_IDLE_S=30   before each round, wait up to this long for other load to stop
#   BENCH_BUILD=1          0: use the existing target/release binaries
#   BENCH_KEEP=0           1: keep the temp dir (logs, configs, timelines)
# Exit status: 0 measured; 1 a phase failed or timed out.
# Other load on the machine skews every figure: each phase reports the CPU other programs used.
# Installs mosquitto and mosquitto-clients with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Helpers both benchmark scripts use (processes, CPU accounting, medians).
source scripts/bench-lib.sh

DEVICES=${BENCH_DEVICES:-100000}
M=${BENCH_MESSAGES:-1000000}
CLIENTS=${BENCH_CLIENTS:-8}
API_RATE=${BENCH_API_RATE:-}
ROUNDS=${BENCH_ROUNDS:-3}
BASE_BIN=${BENCH_BASELINE_BIN:-}
TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
DRAIN_S=${BENCH_DRAIN_S:-60}
WAIT_IDLE_S=${BENCH_WAIT_IDLE_S:-30}
SETTLE_S=${BENCH_SETTLE_S:-6}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
FILTER='safegate/v1/#'
HZ=$(getconf CLK_TCK)
SCRIPT_START=$(date +%s%N)

log() { printf '[bench-api %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------- prerequisites
need_packages mosquitto:mosquitto mosquitto_pub:mosquitto-clients curl:curl
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ "$BUILD" = 1 ]; then
  log "cargo build --release --bin safegate --bin loadgen --bin api-load"
  cargo build --release --locked --bin safegate --bin loadgen --bin api-load >&2
fi
BIN=$ROOT/target/release
for b in safegate loadgen api-load; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run cargo build --release --bins)"
done
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN/safegate" ] || die "BENCH_BASELINE_BIN: $BASE_BIN/safegate is missing"

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/safegate-bench-api.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_mb() { awk '$1 == "VmRSS:" { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"; }
# CPU used by other sessions' processes (not this script's, not kernel threads), as in
# scripts/bench-ingest.sh: "pid ticks" lines, ticks including reaped children.
MYSID=$(awk '{ sub(/^.*\) /, ""); print $4 }' /proc/$$/stat)
BACKGROUND=""
wait_quiet() { # bounded wait for an idle machine (< 20 % busy for 1 s); records what it saw
  local end=$((SECONDS + WAIT_IDLE_S)) a0 i0 a1 i1 busy
  while :; do
    read -r a0 i0 < <(cpu_total); sleep 1; read -r a1 i1 < <(cpu_total)
    busy=$(awk -v a="$((a1 - a0))" -v i="$((i1 - i0))" -v n="$(nproc)" \
      'BEGIN { printf "%.0f", (a > 0 ? 100 * n * (a - i) / a : 0) }')
    [ "$busy" -ge 20 ] && [ $SECONDS -lt $end ] || break
  done
  BACKGROUND+="${BACKGROUND:+, }$busy%"
}

# ---------------------------------------------------------------- broker, inventory
start_mosquitto
"$BIN/loadgen" inventory --site bench --devices "$DEVICES" --interval-s 600 >"$WORK/inventory.toml"
log "mosquitto on $BROKER (pid $MOSQ_PID), $DEVICES devices, M = $M, temp $WORK"

write_config() { # dir, client_id, api_port
  cat >"$1/safegate.toml" <<EOF
# Generated by scripts/bench-api.sh. No [store]: ingest is what is timed.
include = ["inventory.toml"]

[gateway]
data_dir = "$1/data"
# loadgen stamps message i at (publish start + i ms): allow a backlog of any size.
max_future_skew_s = 86400

[mqtt]
url = "mqtt://$BROKER"
client_id = "$2"
qos = 0

[api]
listen = "127.0.0.1:$3"
EOF
}
accepted() { # api_port → readings accepted so far, or nothing
  curl -sf --max-time 2 "http://127.0.0.1:$1/metrics" \
    | awk '$1 == "safegate_readings_accepted_total" { a = $2 } END { if (a != "") printf "%d", a }' || true
}
# The rate between the first timeline samples at or past 10 % and 90 % of M (or the last
# sample, when the drain was stopped before 90 %; or the first, before 10 %).
window_rate() { # timeline file (lines "seconds accepted")
  awk -v lo="$((M / 10))" -v hi="$((M * 9 / 10))" '
    NR == 1 { t0 = $1; a0 = $2 }
    !f1 && $2 >= lo { f1 = 1; t1 = $1; a1 = $2 } !f2 && $2 >= hi { f2 = 1; t2 = $1; a2 = $2 }
    { tl = $1; al = $2 }
    END {
      if (!f1) { t1 = t0; a1 = a0 }
      if (!f2) { t2 = tl; a2 = al }
      if (t2 > t1) printf "%.0f", (a2 - a1) / (t2 - t1); else print 0
    }' "$1"
}

declare -A RATE DESC LOAD
phase() { # round, name (q h q0 h0)
  local r=$1 P=$2 gwbin=$BIN hammer=0 dir id api gw lg="" t0 end acc=0 f0 g0 s other
  case "$P" in h|h0) hammer=1 ;; esac
  case "$P" in q0|h0) gwbin=$BASE_BIN ;; esac
  dir=$WORK/$P$r; id="safegate-bench-api-$P$r"
  mkdir -p "$dir"
  ln -s "$WORK/inventory.toml" "$dir/inventory.toml"
  api=$(free_port)
  write_config "$dir" "$id" "$api"
  "$BIN/loadgen" session --broker "$BROKER" --client-id "$id" --filter "$FILTER" --qos 0 || die "loadgen session $id"
  local out
  out=$(timeout "$((TIMEOUT_S + 30))" "$BIN/loadgen" publish --broker "$BROKER" --site bench \
    --devices "$DEVICES" --count "$M" --qos 0 --max-duration-s "$TIMEOUT_S") || die "loadgen publish"
  case "$out" in "sent $M "*) ;; *) die "preload sent fewer than $M messages: $out" ;; esac
  wait_idle "$MOSQ_PID" "$TIMEOUT_S" || die "broker still busy after the preload"

  f0=$(foreign_snapshot)
  t0=$(now_ns)
  "$gwbin/safegate" run --config "$dir/safegate.toml" >"$dir/gateway.log" 2>&1 &
  gw=$!
  PIDS+=("$gw")
  wait_port "$api" "$TIMEOUT_S" || { tail -20 "$dir/gateway.log" >&2; die "phase $P: the API never listened"; }
  if [ "$hammer" = 1 ]; then
    "$BIN/api-load" --url "http://127.0.0.1:$api" --path '/api/v1/devices?limit=100' --path /api/v1/sites \
      --clients "$CLIENTS" --seconds "$TIMEOUT_S" ${API_RATE:+--rate "$API_RATE"} >"$dir/load.txt" 2>"$dir/load.err" &
    lg=$!
    PIDS+=("$lg")
  fi
  g0=$(ticks "$gw")
  end=$((SECONDS + DRAIN_S))
  local drained="all $M accepted"
  while :; do
    kill -0 "$gw" 2>/dev/null || { tail -20 "$dir/gateway.log" >&2; die "phase $P: gateway exited"; }
    acc=$(accepted "$api")
    if [ -n "$acc" ]; then
      printf '%s %s\n' "$(secs "$t0" "$(now_ns)")" "$acc" >>"$dir/timeline.txt"
      [ "$acc" -lt "$M" ] || break
    fi
    if [ $SECONDS -ge $end ]; then
      drained="STOPPED with ${acc:-?} of $M accepted"
      break
    fi
    sleep 0.1
  done
  [ -s "$dir/timeline.txt" ] || die "phase $P: the gateway's metrics never answered"
  s=$(secs "$t0" "$(now_ns)")
  other=$(foreign_pct "$f0" "$(foreign_snapshot)" "$s")
  local gcpu rss
  gcpu=$(pct_of "$(( $(ticks "$gw") - g0 ))" "$s")
  rss="$(rss_mb "$gw") MB"
  if [ -n "$lg" ]; then
    kill -INT "$lg" 2>/dev/null || true
    wait "$lg" 2>/dev/null || true
    LOAD[$P$r]=$(cat "$dir/load.txt")
    [ -s "$dir/load.err" ] && log "api-load: $(head -3 "$dir/load.err")"
  fi
  if [ "$hammer" = 0 ] && [ "$SETTLE_S" -gt 0 ]; then
    sleep "$SETTLE_S"
    rss="$rss, $(rss_mb "$gw") MB after ${SETTLE_S} s idle"
  fi
  RATE[$P$r]=$(window_rate "$dir/timeline.txt")
  DESC[$P$r]="$drained after $s s; gateway CPU $gcpu of one core, VmRSS $rss at the end; other programs ${other}% of one core"
  log "round $r phase $P: ${RATE[$P$r]} readings/s (${DESC[$P$r]})${LOAD[$P$r]:+; api-load: ${LOAD[$P$r]}}"
  stop_pid "$gw"
  timeout 10 mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -i "$id" -t bench/cleanup -n >/dev/null 2>&1 || true
}

PHASES=(q h)
[ -z "$BASE_BIN" ] || PHASES+=(q0 h0)
for r in $(seq "$ROUNDS"); do
  wait_quiet
  order=("${PHASES[@]}")
  # Every other round in reverse, so drift favours no phase.
  if [ $((r % 2)) = 0 ]; then
    order=(); for ((i = ${#PHASES[@]} - 1; i >= 0; i--)); do order+=("${PHASES[i]}"); done
  fi
  for p in "${order[@]}"; do phase "$r" "$p"; done
done

med_of() { local p=$1 r v=(); for r in $(seq "$ROUNDS"); do v+=("${RATE[$p$r]}"); done; median "${v[@]}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
Q=$(med_of q); H=$(med_of h)
{
  echo
  echo "==================== safegate API load benchmark ===================="
  echo "host: $(nproc) CPUs, busy before each round (of $(nproc)00%): $BACKGROUND; tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)'), safegate built $(date -r "$BIN/safegate" '+%F %T')"
  echo "$DEVICES devices, M = $M readings per phase (QoS 0, no store); rate between 10 % and 90 % of M; medians of $ROUNDS rounds"
  echo "(q) quiet                          $Q readings/s"
  echo "(h) hammered                       $H readings/s ($CLIENTS clients: GET /api/v1/devices?limit=100 and /api/v1/sites${API_RATE:+, $API_RATE req/s in all})"
  echo "    ratio (h)/(q)                  $(ratio "$H" "$Q")"
  if [ -n "$BASE_BIN" ]; then
    Q0=$(med_of q0); H0=$(med_of h0)
    echo "(q0) quiet, baseline build         $Q0 readings/s ($BASE_BIN/safegate, built $(date -r "$BASE_BIN/safegate" '+%F %T'))"
    echo "(h0) hammered, baseline build      $H0 readings/s"
    echo "    ratio (h0)/(q0)                $(ratio "$H0" "$Q0")"
  fi
  for r in $(seq "$ROUNDS"); do
    for p in "${PHASES[@]}"; do
      echo "  round $r ($p) ${RATE[$p$r]} readings/s: ${DESC[$p$r]}"
      [ -z "${LOAD[$p$r]:-}" ] || echo "           api-load: ${LOAD[$p$r]}"
    done
  done
  echo "script run time                    $(secs "$SCRIPT_START" "$(now_ns)") s"
  echo "====================================================================="
}
exit 0
