#!/usr/bin/env bash
# Ingest benchmark: Mosquitto → safegate → VictoriaMetrics, on 127.0.0.1 only, in one run.
#
#   scripts/bench-ingest.sh                      # release build, then phases A and B ×3, then C
#   BENCH_BUILD=0 BENCH_MESSAGES=200000 BENCH_ROUNDS=1 scripts/bench-ingest.sh   # quicker
#
# Each phase first preloads a backlog into an offline persistent session (Mosquitto queues
# QoS 0 for it, see config/bench/mosquitto.conf), so the publisher's CPU does not compete with
# the consumer being timed:
#   A  raw broker drain: `mosquitto_sub -c` takes the M queued messages          → msg/s
#   B  the gateway (store = VictoriaMetrics through InfluxDB /api/v2/write) drains M queued
#      readings; timed from process start until all M are accepted and every point is written
#      (written ≥ M + one device_state point per device, store queue empty)    → readings/s.
#      Then VictoriaMetrics must hold exactly M `reading_v` samples for the round's site.
#      Every value stays under the alarm thresholds (alarm evaluation runs, nothing is raised).
#   S  the alarm storm: as B, but every 50th reading of each device crosses the level-2 gas
#      threshold and the next one clears it: M/50 alarms (10,000 at the defaults, over 1,000
#      devices, in a few seconds). VictoriaMetrics must hold all M readings and the gateway
#      must have raised exactly M/50 alarms. Target: S ≥ 0.8 × B.
#   D  durability on: as B, but at QoS 1 with mqtt.ack = "after_commit": every PUBACK waits
#      for the outbox group commit (fsync) of its readings. Target: D ≥ 20,000 readings/s.
#   E  as D with mqtt.ack = "on_receive" (QoS 1, acknowledged at once): the price of the
#      guarantee is D / E; B is the QoS 0 figure of the same run.
#   J  a platform's own shape: as B, but every reading arrives as the ministry-family envelope
#      (one point each) on ministry/{site}/up, read through a [[mappings]] entry (preset
#      "ministry", docs/mappings.md). Target: J ≥ 0.8 × B (issue #15).
#   K, L as B and J with BENCH_PER_MESSAGE readings a message: K on the native batch topic
#      {prefix}/{site}/batch, L as envelopes of that many points. Target: L ≥ 0.8 × K.
#   T  the batch path (issue #18): BENCH_MESSAGES readings as messages of BENCH_BATCH_PER
#      (250) on {prefix}/{site}/batch at QoS 1, acknowledged after commit, from process start
#      to the last point written; with the gateway's CPU per reading (utime + stime from
#      /proc/PID/stat over the phase, start-up included).
#   R  the reference for T, in the same round: `store-write` posts the identical points
#      (same devices, times and values, encoded by the gateway's own encoder) straight to
#      VictoriaMetrics' /api/v2/write in bodies of store.batch_size lines on one keep-alive
#      connection (BENCH_REF_CONNECTIONS). Target: T ≥ 0.9 × R, T's CPU ≤ 1.0 µs a reading.
#   A, B, J, S, D and E alternate for BENCH_ROUNDS rounds; the summary gives medians and
#   ratio = median(B) / median(A). Targets: ratio ≥ 0.8 at QoS 0, B ≥ 50,000 readings/s.
#   C  a gateway with a 100,000-device inventory receives one reading per device; VmRSS from
#      /proc/PID/status once the store queue is empty and one journal cycle (5 s) has passed
#      (target ≤ 100 MB). The last phase B's VmRSS is reported too.
# The last round also prints CPU use per process and per gateway thread, and a timeline of the
# gateway's accepted / written / queued counters (with BENCH_PERF=1, a perf profile).
#
# Environment (defaults):
#   BENCH_MESSAGES=500000  BENCH_DEVICES=1000  BENCH_MEM_DEVICES=100000  BENCH_QOS=0
#   BENCH_ROUNDS=3         rounds of phase A, B then S
#   BENCH_ALARM_EVERY=50   phase S: every n-th reading of a device is an alarm (0: skip S)
#   BENCH_DURABLE=1        phases D and E (QoS 1 with and without ack after commit); 0: skip
#   BENCH_MAPPED=1         phases J, K and L (the mapped envelope, one and many a message); 0: skip
#   BENCH_PER_MESSAGE=50   readings a message in K and L (must divide BENCH_MESSAGES)
#   BENCH_BATCH=1          phases T and R (the batch path and its reference); 0: skip
#   BENCH_BATCH_PER=250    readings a message in T (must divide BENCH_MESSAGES)
#   BENCH_REF_CONNECTIONS=1  connections of the reference writer in R
#   BENCH_STORE_CPUS       e.g. "1": VictoriaMetrics runs on these CPUs only and everything else
#                          (broker, gateway, clients) on the others, as if the store had its own
#                          machine; unset: all share every CPU
#   BENCH_BASELINE_BIN     a directory holding another build's `safegate` (e.g. the release
#                          build of the previous commit in a git worktree): phases B0 and D0 run
#                          phases B and D with it in every round (alternating which goes
#                          first), phase C0 runs phase C with it, and the summary gives
#                          (b)/(b0), (d)/(d0) and (c)/(c0), the same-run before/after ratios;
#                          with BENCH_BATCH=1 it is measured in phase T too (T0)
#   BENCH_BATCH_BINS       more build directories, space-separated, each measured in phase T
#                          every round (T1, T2, …, after the baseline's T0), in an order that
#                          rotates by round: what each commit of a series bought, in one run;
#                          an entry DIR,KEY=VALUE also sets that [store] key for its gateway
#                          (e.g. "target/release,writes_in_flight=1": one setting against the
#                          default, same build)
#   BENCH_QUEUE_CAPACITY   store.queue_capacity (default: the gateway's default)
#   BENCH_BATCH_SIZE       store.batch_size (default: the gateway's default)
#   BENCH_FLUSH_MS         store.flush_interval_ms (unused since the outbox; kept for old runs)
#   BENCH_TIMEOUT_S=300    bound on every wait (each drain, publish, start-up)
#   BENCH_WAIT_IDLE_S=120  before each round, wait up to this long for other load to stop
#   BENCH_BUILD=1          0: use the existing target/release binaries
#   BENCH_PERF=0           1: `perf record` the gateway in the last round's BENCH_PERF_PHASE
#                          (slows it down: for diagnosis, not for the headline figures)
#   BENCH_PERF_PHASE=B     the phase whose CPU, timeline and profile the last round prints (B, T, …)
#   BENCH_PERF_SCHED=0     1 (with BENCH_PERF=1): an off-CPU view instead, `perf sched` of the
#                          whole machine, summed per gateway thread (running, waiting, asleep)
#   BENCH_THREADS=1        per-thread CPU of the gateway in that phase, from /proc
#   BENCH_STRICT=0         1: exit 3 when a target is missed
#   BENCH_KEEP=0           1: keep the temp dir (logs, configs, timelines, perf data)
#   BENCH_GATEWAY_ENV      extra VAR=value words for the gateway's environment only, e.g.
#                          "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2" or RUST_LOG=warn
# Exit status: 0 measured (targets are reported, not enforced unless BENCH_STRICT=1);
# 1 a phase failed or timed out; 3 a target was missed with BENCH_STRICT=1.
# Other load on the machine skews every figure: each round waits for an idle machine (bounded)
# and the summary shows the load seen before each round.
# Installs mosquitto, mosquitto-clients and victoria-metrics with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Helpers both benchmark scripts use (processes, CPU accounting, medians).
source scripts/bench-lib.sh

M=${BENCH_MESSAGES:-500000}
DEVICES=${BENCH_DEVICES:-1000}
MEM_DEVICES=${BENCH_MEM_DEVICES:-100000}
QOS=${BENCH_QOS:-0}
TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
BUILD=${BENCH_BUILD:-1}
PERF=${BENCH_PERF:-0}
PERF_PHASE=${BENCH_PERF_PHASE:-B}
THREADS=${BENCH_THREADS:-1}
STRICT=${BENCH_STRICT:-0}
KEEP=${BENCH_KEEP:-0}
ROUNDS=${BENCH_ROUNDS:-3}
WAIT_IDLE_S=${BENCH_WAIT_IDLE_S:-120}
GATEWAY_ENV=${BENCH_GATEWAY_ENV:-}
ALARM_EVERY=${BENCH_ALARM_EVERY:-50}
DURABLE=${BENCH_DURABLE:-1}
MAPPED=${BENCH_MAPPED:-1}
PER=${BENCH_PER_MESSAGE:-50}
BATCH=${BENCH_BATCH:-1}
BPER=${BENCH_BATCH_PER:-250}
REF_CONN=${BENCH_REF_CONNECTIONS:-1}
TARGET_BATCH_RATIO=0.9
TARGET_BATCH_US=1.0
BASE_BIN=${BENCH_BASELINE_BIN:-}
# Builds measured in phase T beside this tree's: index 0 is the baseline's (T0), if any.
TX_BINS=("$BASE_BIN" ${BENCH_BATCH_BINS:-})
declare -A TX_RATE TX_US TX_OK TX_DESC
TARGET_DURABLE=20000
# Per phase: QoS and acknowledgement policy of the preload and the gateway (D and E set them).
CUR_QOS=""; CUR_ACK=""
TARGET_RATIO=0.8
TARGET_RATE=50000
TARGET_RSS_MB=100
FILTER='safegate/v1/#'
SCRIPT_START=$(date +%s%N)
HZ=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# ---------------------------------------------------------------- prerequisites
need_packages mosquitto:mosquitto mosquitto_sub:mosquitto-clients victoria-metrics:victoria-metrics curl:curl
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ "$BUILD" = 1 ]; then
  log "cargo build --release --bins"
  cargo build --release --bins --locked >&2
fi
BIN=$ROOT/target/release
for b in safegate loadgen store-write; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run cargo build --release --bins)"
done
[ -z "$BASE_BIN" ] || [ -x "$BASE_BIN/safegate" ] || die "BENCH_BASELINE_BIN: $BASE_BIN/safegate is missing"

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/safegate-bench.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
thread_snapshot() { # pid → lines "tid ticks comm"
  local t
  for t in /proc/"$1"/task/*; do
    [ -r "$t/stat" ] || continue
    printf '%s %s %s\n' "${t##*/}" \
      "$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat" 2>/dev/null || echo 0)" \
      "$(tr ' ' '_' <"$t/comm" 2>/dev/null)"
  done
}

# ---------------------------------------------------------------- broker and store
start_mosquitto

STORE_PIN=()
if [ -n "${BENCH_STORE_CPUS:-}" ]; then
  STORE_PIN=(taskset -c "$BENCH_STORE_CPUS")
  others=$(awk -v s=",$BENCH_STORE_CPUS," -v n="$(nproc)" 'BEGIN { for (i = 0; i < n; i++) if (index(s, "," i ",") == 0) o = o (o == "" ? "" : ",") i; print o }')
  [ -n "$others" ] || die "BENCH_STORE_CPUS=$BENCH_STORE_CPUS leaves no CPU for the rest"
  # This shell and everything it starts from now on (gateway, clients) stay off the store's CPUs.
  taskset -pc "$others" $$ >/dev/null
  taskset -apc "$others" "$MOSQ_PID" >/dev/null
  log "VictoriaMetrics on CPU $BENCH_STORE_CPUS, everything else on CPU $others"
fi
start_victoria "${STORE_PIN[@]}"
log "mosquitto on $BROKER (pid $MOSQ_PID), VictoriaMetrics on $VM (pid $VM_PID), temp $WORK"

# Offline persistent session + a preload of `count` readings for it, fully taken by the broker.
preload() { # client_id, devices, count, site, [extra loadgen publish arguments]
  "$BIN/loadgen" session --broker "$BROKER" --client-id "$1" --filter "${CUR_FILTER:-$FILTER}" --qos "${CUR_QOS:-$QOS}" \
    || die "loadgen session $1"
  local out
  out=$(timeout "$((TIMEOUT_S + 30))" "$BIN/loadgen" publish --broker "$BROKER" --site "$4" \
    --devices "$2" --count "$3" --qos "${CUR_QOS:-$QOS}" --max-duration-s "$TIMEOUT_S" "${@:5}") || die "loadgen publish"
  log "preload for $1: $out"
  case "$out" in "sent $3 "*) ;; *) die "preload sent fewer than $3 messages" ;; esac
  wait_idle "$MOSQ_PID" "$TIMEOUT_S" || die "broker still busy after the preload"
}
# Drop a persistent session (connect once with a clean session under its id).
drop_session() {
  timeout 10 mosquitto_pub -h 127.0.0.1 -p "$MQ_PORT" -i "$1" -t bench/cleanup -n >/dev/null 2>&1 || true
}

# Other load on the machine skews every figure: before each round, wait (bounded) until the
# machine is idle for 1 s, and report the load seen.
BACKGROUND=""
wait_quiet() {
  local end=$((SECONDS + WAIT_IDLE_S)) a0 i0 a1 i1 busy
  while :; do
    read -r a0 i0 < <(cpu_total); sleep 1; read -r a1 i1 < <(cpu_total)
    busy=$(awk -v a="$((a1 - a0))" -v i="$((i1 - i0))" -v n="$(nproc)" \
      'BEGIN { printf "%.0f", (a > 0 ? 100 * n * (a - i) / a : 0) }')
    [ "$busy" -ge 20 ] && [ $SECONDS -lt $end ] || break
  done
  BACKGROUND+="${BACKGROUND:+, }$busy%"
  [ "$busy" -lt 20 ] || log "WARNING: the machine is ${busy}% busy (of $(nproc)00%) before this round: figures will be low"
}

# ---------------------------------------------------------------- phase A: raw drain
A_RATE=(); A_DESC=(); A_OTHER=()
# CPU used by other sessions' processes (not this script's, not kernel threads): "pid ticks"
# lines, ticks including reaped children, so a compiler run under cargo is counted.
MYSID=$(awk '{ sub(/^.*\) /, ""); print $4 }' /proc/$$/stat)
phase_a() { # round
  local r=$1 t0 t1 ma0 s u f0
  log "round $r phase A: preload $M messages, then mosquitto_sub drains them"
  preload "raw-bench$r" "$DEVICES" "$M" "bench$r"
  ma0=$(ticks "$MOSQ_PID")
  f0=$(foreign_snapshot)
  t0=$(now_ns)
  if ! { TIMEFORMAT='%3U %3S'; time timeout "$TIMEOUT_S" mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" \
    -c -i "raw-bench$r" -q "$QOS" -t "$FILTER" -C "$M" >/dev/null 2>"$WORK/a$r.err"; } 2>"$WORK/a$r.time"
  then
    die "mosquitto_sub did not receive $M messages in ${TIMEOUT_S}s"
  fi
  t1=$(now_ns)
  A_OTHER[r]=$(foreign_pct "$f0" "$(foreign_snapshot)" "$(secs "$t0" "$t1")")
  s=$(secs "$t0" "$t1")
  A_RATE[r]=$(rate "$M" "$s")
  u=$(awk -v s="$s" '{ printf "%.0f%%", 100 * ($1 + $2) / s }' "$WORK/a$r.time")
  A_DESC[r]="$M in $s s; CPU: mosquitto $(pct_of "$(( $(ticks "$MOSQ_PID") - ma0 ))" "$s"), mosquitto_sub $u; other programs ${A_OTHER[r]}%"
  drop_session "raw-bench$r"
  log "round $r phase A: ${A_RATE[r]} msg/s (${A_DESC[r]})"
}
# ---------------------------------------------------------------- gateway helpers
write_config() { # dir, client_id, api_port, [queue_capacity]
  cat >"$1/safegate.toml" <<EOF
# Generated by scripts/bench-ingest.sh.
include = ["inventory.toml"]

[gateway]
data_dir = "$1/data"
# loadgen stamps message i at (publish start + i ms): allow a backlog of any size.
max_future_skew_s = 86400

[mqtt]
url = "mqtt://$BROKER"
client_id = "$2"
qos = ${CUR_QOS:-$QOS}
ack = "${CUR_ACK:-after_commit}"

[store]
url = "$VM"
org = "bench"
bucket = "bench"
${4:+queue_capacity = $4}
${BENCH_BATCH_SIZE:+batch_size = $BENCH_BATCH_SIZE}
${BENCH_FLUSH_MS:+flush_interval_ms = $BENCH_FLUSH_MS}
${5:-}

[api]
listen = "127.0.0.1:$3"
${CUR_MAPPING:-}
EOF
}
METRICS=""
scrape() { # api_port → sets METRICS to "received accepted rejected written dropped depth alarm_events raised"
  METRICS=$(curl -sf --max-time 2 "http://127.0.0.1:$1/metrics" | awk '
    $1 ~ /^safegate_alarm_events_total/ { e += $2 }
    $1 ~ /^safegate_alarm_events_total.*event="raised"/ { ra += $2 }
    $1 == "safegate_messages_received_total" { r = $2 }
    $1 == "safegate_readings_accepted_total" { a = $2 }
    $1 ~ /^safegate_readings_rejected_total/ { j += $2 }
    $1 == "safegate_store_points_written_total" { w = $2 }
    $1 == "safegate_store_points_dropped_total" { d = $2 }
    $1 == "safegate_store_queue_depth" { q = $2 }
    END { printf "%d %d %d %d %d %d %d %d", r, a, j, w, d, q, e, ra }') || METRICS=""
}

# ---------------------------------------------------------------- phase B: gateway drain
B_RATE=(); B_ACC_RATE=(); B_DESC=(); B_OK=(); B_RSS=(); B_HWM=(); B_OTHER=()
S_RATE=(); S_DESC=(); S_OK=(); S_OTHER=()
D_RATE=(); D_DESC=(); D_OK=(); D_OTHER=()
E_RATE=(); E_DESC=(); E_OK=(); E_OTHER=()
J_RATE=(); J_DESC=(); J_OK=(); J_OTHER=()
K_RATE=(); K_DESC=(); K_OK=(); L_RATE=(); L_DESC=(); L_OK=()
T_RATE=(); T_DESC=(); T_OK=(); T_US=(); T_OTHER=(); R_RATE=(); R_DESC=(); R_OK=(); R_OTHER=()
US=""
D0_RATE=(); D0_DESC=(); D0_OK=(); D0_OTHER=()
B0_RATE=(); B0_DESC=(); B0_OK=(); B0_OTHER=()
CPU_LINES=""; TIMELINE=""
phase_b() { # round, [mode, [index into TX_BINS for batch_other]]
  local r=$1 mode=${2:-quiet} P=B site api t0 t1 t_acc="" at_acc="" end snap0="" snap1="" perf_pid="" gw
  local c0_all c0_idle c1_all c1_idle m0 m1 v0 v1 f0 rcv=0 acc=0 rej=0 wr=0 drp=0 depth=0 ev=0 raised=0 s s_acc vm i w0 posts
  local last=0 extra=() want_alarms=0 gwbin=$BIN store_keys=""
  CUR_QOS=""; CUR_ACK=""
  # Seen by preload and write_config, for this phase only.
  local CUR_FILTER="" CUR_MAPPING="" msgs=$M poll=0.1
  case "$mode" in
    batch) P=K; extra=(--per-message "$PER"); msgs=$((M / PER)) ;;
    # Under a second end to end: poll finely, so the poll is not what is measured.
    batch_durable) P=T; CUR_QOS=1; CUR_ACK=after_commit; extra=(--per-message "$BPER"); msgs=$((M / BPER)); poll=0.01 ;;
    batch_other) P=T$3; gwbin=${TX_BINS[$3]%%,*}; CUR_QOS=1; CUR_ACK=after_commit; extra=(--per-message "$BPER"); msgs=$((M / BPER)); poll=0.01 ;;
    mapped*)
      P=J; extra=(--format ministry); CUR_FILTER='ministry/+/up'
      if [ "$mode" = mapped_batch ]; then P=L; extra+=(--per-message "$PER"); msgs=$((M / PER)); fi
      # The envelope's point is read into channel v, as the native reading's.
      CUR_MAPPING=$'[[mappings]]\nname = "bench"\npreset = "ministry"\ntopics = ["ministry/+/up"]\nsite = "{topic:1}"\nchannels = [{ name = "v", path = "$.pointValue" }]' ;;
    storm)
      P=S; extra=(--alarm-every "$ALARM_EVERY")
      want_alarms=$(( (M / DEVICES + ALARM_EVERY - 1) / ALARM_EVERY * DEVICES )) ;;
    durable) P=D; CUR_QOS=1; CUR_ACK=after_commit ;;
    durable_base) P=D0; CUR_QOS=1; CUR_ACK=after_commit; gwbin=$BASE_BIN ;;
    quiet_base) P=B0; gwbin=$BASE_BIN ;;
    qos1fast) P=E; CUR_QOS=1; CUR_ACK=on_receive ;;
  esac
  # The last round's phase BENCH_PERF_PHASE prints CPU per thread, the timeline and the profile.
  if [ "$r" = "$ROUNDS" ] && [ "$P" = "$PERF_PHASE" ]; then last=1; fi
  local B=$WORK/${P,,}$r
  site="bench${P,,}$r"
  log "round $r phase $P: preload $M readings for the gateway's session, then the gateway drains them"
  mkdir -p "$B"
  "$BIN/loadgen" inventory --site "$site" --devices "$DEVICES" --interval-s 10 >"$B/inventory.toml"
  api=$(free_port)
  [ "$mode" != batch_other ] || [[ "${TX_BINS[$3]}" != *,* ]] || store_keys=${TX_BINS[$3]#*,}
  write_config "$B" "safegate-bench-${P,,}$r" "$api" "${BENCH_QUEUE_CAPACITY:-}" "$store_keys"
  "$gwbin/safegate" check-config "$B/safegate.toml" >/dev/null || die "phase $P config rejected"
  preload "safegate-bench-${P,,}$r" "$DEVICES" "$msgs" "$site" "${extra[@]}"

  read -r c0_all c0_idle < <(cpu_total)
  m0=$(ticks "$MOSQ_PID"); v0=$(ticks "$VM_PID")
  f0=$(foreign_snapshot); w0=$(vm_writes)
  t0=$(now_ns)
  env $GATEWAY_ENV "$gwbin/safegate" run --config "$B/safegate.toml" >"$B/gateway.log" 2>&1 &
  gw=$!
  PIDS+=("$gw")
  if [ "$last" = 1 ] && [ "$PERF" = 1 ] && command -v perf >/dev/null 2>&1; then
    if [ "${BENCH_PERF_SCHED:-0}" = 1 ]; then
      # Off-CPU: every context switch of the machine, to say where each thread waits.
      perf sched record -q -o "$WORK/sched.data" >/dev/null 2>&1 &
    else
      perf record -q -F 997 -g -p "$gw" -o "$WORK/perf.data" >/dev/null 2>&1 &
    fi
    perf_pid=$!
    PIDS+=("$perf_pid")
  fi
  end=$((SECONDS + TIMEOUT_S))
  while :; do
    kill -0 "$gw" 2>/dev/null || { tail -20 "$B/gateway.log" >&2; die "gateway exited"; }
    if [ -z "$snap0" ] && [ "$THREADS" = 1 ]; then snap0=$(thread_snapshot "$gw"); fi
    scrape "$api"
    if [ -n "$METRICS" ]; then
      read -r rcv acc rej wr drp depth ev raised <<<"$METRICS"
      printf '%s %s %s %s\n' "$(secs "$t0" "$(now_ns)")" "$acc" "$wr" "$depth" >>"$B/timeline.txt"
      if [ -z "$t_acc" ] && [ $((acc + rej)) -ge "$M" ]; then
        t_acc=$(now_ns); at_acc="$wr points written, $depth queued"
      fi
      # Every reading, one device_state point per device and one point per alarm event.
      if [ -n "$t_acc" ] && [ "$depth" -eq 0 ] && [ $((wr + drp)) -ge $((acc + DEVICES + ev)) ]; then
        break
      fi
    fi
    [ $SECONDS -lt $end ] || die "phase $P: not drained in ${TIMEOUT_S}s (metrics: ${METRICS:-none})"
    sleep "$poll"
  done
  t1=$(now_ns)
  # Gateway CPU over the phase (start-up included), per reading.
  US=$(awk -v t="$(ticks "$gw")" -v hz="$HZ" -v n="$acc" 'BEGIN { printf "%.2f", (n > 0 ? 1e6 * t / hz / n : 0) }')
  if [ "$THREADS" = 1 ]; then snap1=$(thread_snapshot "$gw"); fi
  m1=$(ticks "$MOSQ_PID"); v1=$(ticks "$VM_PID"); posts=$(vm_posts "$w0" "$(vm_writes)")
  read -r c1_all c1_idle < <(cpu_total)
  local other
  other=$(foreign_pct "$f0" "$(foreign_snapshot)" "$(secs "$t0" "$t1")")
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  s=$(secs "$t0" "$t1")
  s_acc=$(secs "$t0" "$t_acc")
  log "round $r phase $P: received $rcv, accepted $acc, rejected $rej, points written $wr, dropped $drp, alarms raised $raised"

  # Check what the store holds: one reading_v sample per reading of this round's site.
  vm=$(vm_samples "$site")
  local ok=0
  if [ "$vm" = "$M" ] && [ "$acc" = "$M" ] && [ "$drp" = 0 ] && [ "$raised" = "$want_alarms" ]; then ok=1; fi
  local desc="$acc stored in $s s; gateway CPU $US µs/reading, VictoriaMetrics $(awk -v t="$((v1 - v0))" -v hz="$HZ" -v n="$M" 'BEGIN { printf "%.2f", 1e6 * t / hz / n }') µs/point; $posts; all accepted after $s_acc s ($(rate "$acc" "$s_acc")/s), $at_acc then; VM reading_v samples $vm/$M, rejected $rej, dropped $drp, alarms raised $raised/$want_alarms; other programs $other%"
  if [ "$P" = S ]; then
    S_RATE[r]=$(rate "$acc" "$s"); S_OK[r]=$ok; S_OTHER[r]=$other; S_DESC[r]=$desc
    log "round $r phase S: ${S_RATE[r]} readings/s ($desc)"
  elif [ "$P" = D ]; then
    D_RATE[r]=$(rate "$acc" "$s"); D_OK[r]=$ok; D_OTHER[r]=$other; D_DESC[r]="$desc; $(grep -c 'outbox' "$B/gateway.log" || true) outbox log lines"
    log "round $r phase D: ${D_RATE[r]} readings/s ($desc)"
  elif [ "$P" = B0 ]; then
    B0_RATE[r]=$(rate "$acc" "$s"); B0_OK[r]=$ok; B0_OTHER[r]=$other; B0_DESC[r]=$desc
    log "round $r phase B0 (baseline $BASE_BIN): ${B0_RATE[r]} readings/s ($desc)"
  elif [ "$P" = D0 ]; then
    D0_RATE[r]=$(rate "$acc" "$s"); D0_OK[r]=$ok; D0_OTHER[r]=$other; D0_DESC[r]=$desc
    log "round $r phase D0 (baseline $BASE_BIN): ${D0_RATE[r]} readings/s ($desc)"
  elif [ "$P" = J ]; then
    J_RATE[r]=$(rate "$acc" "$s"); J_OK[r]=$ok; J_OTHER[r]=$other; J_DESC[r]=$desc
    log "round $r phase J: ${J_RATE[r]} readings/s ($desc)"
  elif [ "$P" = K ]; then
    K_RATE[r]=$(rate "$acc" "$s"); K_OK[r]=$ok; K_DESC[r]=$desc
    log "round $r phase K: ${K_RATE[r]} readings/s ($desc)"
  elif [ "$P" = T ]; then
    T_RATE[r]=$(rate "$acc" "$s"); T_OK[r]=$ok; T_US[r]=$US; T_OTHER[r]=$other; T_DESC[r]=$desc
    log "round $r phase T: ${T_RATE[r]} readings/s ($desc)"
  elif [[ $P == T[0-9]* ]]; then
    local i=${P#T}
    TX_RATE[$i,$r]=$(rate "$acc" "$s"); TX_OK[$i,$r]=$ok; TX_US[$i,$r]=$US; TX_DESC[$i,$r]=$desc
    log "round $r phase $P (${TX_BINS[i]}): ${TX_RATE[$i,$r]} readings/s ($desc)"
  elif [ "$P" = L ]; then
    L_RATE[r]=$(rate "$acc" "$s"); L_OK[r]=$ok; L_DESC[r]=$desc
    log "round $r phase L: ${L_RATE[r]} readings/s ($desc)"
  elif [ "$P" = E ]; then
    E_RATE[r]=$(rate "$acc" "$s"); E_OK[r]=$ok; E_OTHER[r]=$other; E_DESC[r]=$desc
    log "round $r phase E: ${E_RATE[r]} readings/s ($desc)"
  else
    B_RATE[r]=$(rate "$acc" "$s"); B_ACC_RATE[r]=$(rate "$acc" "$s_acc"); B_OK[r]=$ok; B_OTHER[r]=$other; B_DESC[r]=$desc
    B_RSS[r]=$(rss_kb "$gw" VmRSS); B_HWM[r]=$(rss_kb "$gw" VmHWM)
    log "round $r phase B: ${B_RATE[r]} readings/s ($desc)"
  fi

  if [ "$last" = 1 ]; then
    # CPU use during the drain: whole machine, broker, store, gateway threads.
    local busy=$(( (c1_all - c0_all) - (c1_idle - c0_idle) ))
    CPU_LINES="machine $(awk -v b="$busy" -v a="$((c1_all - c0_all))" -v n="$(nproc)" 'BEGIN { printf "%.0f%% busy of %d00%%", (a > 0 ? 100 * n * b / a : 0), n }'); mosquitto $(pct_of $((m1 - m0)) "$s"), victoria-metrics $(pct_of $((v1 - v0)) "$s"), gateway $(pct_of "$(ticks "$gw")" "$s")"
    if [ -n "$snap1" ]; then
      # Per gateway thread (from the first scrape on; the gateway's start-up is not in it).
      CPU_LINES+=$'\n'$(LC_ALL=C join -a1 <(LC_ALL=C sort <<<"$snap1") <(LC_ALL=C sort <<<"$snap0") \
        | awk -v w="$(awk -v s="$s" -v hz="$HZ" 'BEGIN { print s * hz }')" '
          { d = $2 - ($4 == "" ? 0 : $4); if (d > 0) printf "  thread %-8s %-16s %5.1f%%\n", $1, $3, 100 * d / w }' \
        | sort -k4 -rn | head -6)
    fi
    # Progress over time (seconds since start, accepted, points written, queue depth).
    TIMELINE=$(awk -v n="$(wc -l <"$B/timeline.txt")" 'BEGIN { step = int(n / 8) + 1 }
      (NR - 1) % step == 0 || NR == n { printf "  t=%5.2fs accepted %7d written %7d queued %6d\n", $1, $2, $3, $4 }' "$B/timeline.txt")
    printf 'round %s phase %s, CPU (%% of one core): %s\ntimeline:\n%s\n' "$r" "$P" "$CPU_LINES" "$TIMELINE" >&2
    if [ -n "$perf_pid" ] && [ "${BENCH_PERF_SCHED:-0}" = 1 ]; then
      # Per thread of the gateway: time running, waiting to run, and asleep (off-CPU).
      perf sched timehist -i "$WORK/sched.data" -s --pid "$gw" 2>/dev/null \
        | sed -n '/Runtime summary/,$p' | head -40 >"$WORK/sched-top.txt" || true
      log "scheduling of the gateway's threads (perf sched timehist -s):"
      cat "$WORK/sched-top.txt" >&2
    elif [ -n "$perf_pid" ]; then
      perf report -i "$WORK/perf.data" --no-children --stdio -g none --sort comm,dso,sym --percent-limit 1.5 \
        2>/dev/null | grep -E '^ +[0-9]' | head -30 >"$WORK/perf-top.txt" || true
      log "perf profile of the gateway (self time, ≥1.5%; full data in $WORK/perf.data with BENCH_KEEP=1):"
      cat "$WORK/perf-top.txt" >&2
    fi
  fi
  stop_pid "$gw"
  drop_session "safegate-bench-${P,,}$r"
  # The gateway's alarm board leaves retained states on the broker; a later phase's gateway
  # would receive them all on subscribing, so remove them.
  if [ "$mode" = storm ]; then
    timeout 60 mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -t "safegate/v1/+/alarms/#" \
      --remove-retained --retained-only -W 5 >/dev/null 2>&1 || true
    local left
    left=$(timeout 30 mosquitto_sub -h 127.0.0.1 -p "$MQ_PORT" -t "safegate/v1/+/alarms/#" \
      --retained-only -W 2 2>/dev/null | wc -l) || true
    log "round $r phase S: retained alarm states left on the broker after removal: ${left:-?}"
  fi
}

# ---------------------------------------------------------------- phase R: the store alone
phase_r() { # round
  local r=$1 site="benchr$r" out v0 v1 f0 t0 t1 s vm other
  log "round $r phase R: store-write posts $M points straight to VictoriaMetrics ($REF_CONN connection(s))"
  v0=$(ticks "$VM_PID"); f0=$(foreign_snapshot); t0=$(now_ns)
  out=$(timeout "$((TIMEOUT_S + 30))" "$BIN/store-write" --url "$VM" --site "$site" --devices "$DEVICES" \
    --count "$M" --per-body "${BENCH_BATCH_SIZE:-5000}" --connections "$REF_CONN" --max-duration-s "$TIMEOUT_S") \
    || die "store-write failed"
  t1=$(now_ns); v1=$(ticks "$VM_PID")
  other=$(foreign_pct "$f0" "$(foreign_snapshot)" "$(secs "$t0" "$t1")")
  # Its own clock starts after the bodies are built: that is the figure.
  s=$(sed -n 's/.* in \([0-9.]*\) s .*/\1/p' <<<"$out")
  vm=$(vm_samples "$site")
  R_RATE[r]=$(rate "$M" "$s"); R_OTHER[r]=$other
  R_OK[r]=$([ "$vm" = "$M" ] && echo 1 || echo 0)
  R_DESC[r]="$M in $s s; VictoriaMetrics CPU $(awk -v t="$((v1 - v0))" -v hz="$HZ" -v n="$M" 'BEGIN { printf "%.2f", 1e6 * t / hz / n }') µs/point; VM reading_v samples $vm/$M; other programs $other%"
  log "round $r phase R: ${R_RATE[r]} points/s (${R_DESC[r]})"
}

batch_others() { # round: the other builds in phase T, starting one further along each round
  local r=$1 n=${#TX_BINS[@]} k i
  for k in $(seq 0 $((n - 1))); do
    i=$(( (k + r) % n ))
    [ -z "${TX_BINS[i]}" ] || phase_b "$r" batch_other "$i"
  done
}

for r in $(seq "$ROUNDS"); do
  wait_quiet
  phase_a "$r"
  if [ "$BATCH" = 1 ]; then
    # Alternate which goes first, so drift favours neither.
    if [ $((r % 2)) = 1 ]; then phase_b "$r" batch_durable; phase_r "$r"; else phase_r "$r"; phase_b "$r" batch_durable; fi
    batch_others "$r"
  fi
  # With a baseline build, B and B0 (as D and D0) alternate which goes first.
  if [ -n "$BASE_BIN" ] && [ $((r % 2)) = 0 ]; then phase_b "$r" quiet_base; fi
  phase_b "$r"
  if [ -n "$BASE_BIN" ] && [ $((r % 2)) = 1 ]; then phase_b "$r" quiet_base; fi
  if [ "$MAPPED" = 1 ]; then
    # Alternate which of each pair goes first, so drift favours neither.
    if [ $((r % 2)) = 1 ]; then phase_b "$r" mapped; phase_b "$r" batch; phase_b "$r" mapped_batch
    else phase_b "$r" mapped_batch; phase_b "$r" batch; phase_b "$r" mapped; fi
  fi
  if [ "$ALARM_EVERY" -gt 0 ]; then phase_b "$r" storm; fi
  if [ "$DURABLE" = 1 ]; then
    # With a baseline build, D and D0 alternate which goes first, so drift favours neither.
    if [ -n "$BASE_BIN" ] && [ $((r % 2)) = 0 ]; then phase_b "$r" durable_base; fi
    phase_b "$r" durable
    if [ -n "$BASE_BIN" ] && [ $((r % 2)) = 1 ]; then phase_b "$r" durable_base; fi
    phase_b "$r" qos1fast
  fi
done
# Rounds where other programs (other sessions) used more than 15% of a core are disturbed:
# medians leave them out, unless every round was disturbed.
CLEAN=(); CLEAN_NOTE="undisturbed"
for r in $(seq "$ROUNDS"); do
  [ "${A_OTHER[r]}" -gt 15 ] || [ "${B_OTHER[r]}" -gt 15 ] || [ "${S_OTHER[r]:-0}" -gt 15 ] \
    || [ "${D_OTHER[r]:-0}" -gt 15 ] || [ "${E_OTHER[r]:-0}" -gt 15 ] \
    || [ "${D0_OTHER[r]:-0}" -gt 15 ] || [ "${T_OTHER[r]:-0}" -gt 15 ] || [ "${R_OTHER[r]:-0}" -gt 15 ] || [ "${B0_OTHER[r]:-0}" -gt 15 ] || CLEAN+=("$r")
done
if [ ${#CLEAN[@]} -eq 0 ]; then
  log "WARNING: every round was disturbed by other load; the medians include them"
  CLEAN=($(seq "$ROUNDS"))
  CLEAN_NOTE="all disturbed by other load"
fi
pick() { local -n arr=$1; local r; for r in "${CLEAN[@]}"; do echo "${arr[r]}"; done; }
A_MED=$(median $(pick A_RATE))
B_MED=$(median $(pick B_RATE))
B_ACC_MED=$(median $(pick B_ACC_RATE))
RATIO=$(awk -v b="$B_MED" -v a="$A_MED" 'BEGIN { printf "%.3f", (a > 0 ? b / a : 0) }')
VM_OK=1
for r in $(seq "$ROUNDS"); do [ "${B_OK[r]}" = 1 ] || VM_OK=0; done
S_MED=0; S_RATIO=0; STORM_OK=1
if [ "$ALARM_EVERY" -gt 0 ]; then
  S_MED=$(median $(pick S_RATE))
  S_RATIO=$(awk -v s="$S_MED" -v b="$B_MED" 'BEGIN { printf "%.3f", (b > 0 ? s / b : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${S_OK[r]}" = 1 ] || STORM_OK=0; done
fi

J_MED=0; J_RATIO=0; MAPPED_OK=1
if [ "$MAPPED" = 1 ]; then
  J_MED=$(median $(pick J_RATE))
  J_RATIO=$(awk -v j="$J_MED" -v b="$B_MED" 'BEGIN { printf "%.3f", (b > 0 ? j / b : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${J_OK[r]}" = 1 ] && [ "${K_OK[r]}" = 1 ] && [ "${L_OK[r]}" = 1 ] || MAPPED_OK=0; done
  K_MED=$(median $(pick K_RATE)); L_MED=$(median $(pick L_RATE))
  L_RATIO=$(awk -v l="$L_MED" -v k="$K_MED" 'BEGIN { printf "%.3f", (k > 0 ? l / k : 0) }')
fi

T_MED=0; R_MED=0; T_RATIO=0; T_US_MED=0; BATCH_OK=1
if [ "$BATCH" = 1 ]; then
  T_MED=$(median $(pick T_RATE)); R_MED=$(median $(pick R_RATE)); T_US_MED=$(median $(pick T_US))
  T_RATIO=$(awk -v t="$T_MED" -v r="$R_MED" 'BEGIN { printf "%.3f", (r > 0 ? t / r : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${T_OK[r]}" = 1 ] && [ "${R_OK[r]}" = 1 ] || BATCH_OK=0; done
  for i in "${!TX_BINS[@]}"; do
    [ -n "${TX_BINS[i]}" ] || continue
    for r in $(seq "$ROUNDS"); do [ "${TX_OK[$i,$r]}" = 1 ] || BATCH_OK=0; done
  done
fi
tx_median() { # index, array name → median over the clean rounds
  local -n arr=$2; local r v=(); for r in "${CLEAN[@]}"; do v+=("${arr[$1,$r]}"); done; median "${v[@]}"
}

D_MED=0; E_MED=0; D_RATIO=0; DURABLE_OK=1
if [ "$DURABLE" = 1 ]; then
  D_MED=$(median $(pick D_RATE))
  E_MED=$(median $(pick E_RATE))
  D_RATIO=$(awk -v d="$D_MED" -v e="$E_MED" 'BEGIN { printf "%.3f", (e > 0 ? d / e : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${D_OK[r]}" = 1 ] && [ "${E_OK[r]}" = 1 ] || DURABLE_OK=0; done
fi
B0_MED=0; B_B0=0
if [ -n "$BASE_BIN" ]; then
  B0_MED=$(median $(pick B0_RATE))
  B_B0=$(awk -v d="$B_MED" -v b="$B0_MED" 'BEGIN { printf "%.3f", (b > 0 ? d / b : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${B0_OK[r]}" = 1 ] || VM_OK=0; done
fi
D0_MED=0; D_D0=0
if [ "$DURABLE" = 1 ] && [ -n "$BASE_BIN" ]; then
  D0_MED=$(median $(pick D0_RATE))
  D_D0=$(awk -v d="$D_MED" -v b="$D0_MED" 'BEGIN { printf "%.3f", (b > 0 ? d / b : 0) }')
  for r in $(seq "$ROUNDS"); do [ "${D0_OK[r]}" = 1 ] || DURABLE_OK=0; done
fi

# ---------------------------------------------------------------- phase C: memory at 100k devices
phase_c() { # bin dir, tag
  local bin=$1 tag=$2
  wait_quiet
  log "phase $tag: $MEM_DEVICES devices, one reading each ($bin/safegate)"
  C=$WORK/${tag,,}
  mkdir -p "$C"
  "$BIN/loadgen" inventory --site bench --devices "$MEM_DEVICES" --interval-s 10 >"$C/inventory.toml"
  C_API=$(free_port)
  write_config "$C" "safegate-bench-${tag,,}" "$C_API" "${BENCH_QUEUE_CAPACITY:-}"
  preload "safegate-bench-${tag,,}" "$MEM_DEVICES" "$MEM_DEVICES" bench
  env $GATEWAY_ENV "$bin/safegate" run --config "$C/safegate.toml" >"$C/gateway.log" 2>&1 &
  GWC=$!
  PIDS+=("$GWC")
  end=$((SECONDS + TIMEOUT_S))
  while :; do
    kill -0 "$GWC" 2>/dev/null || { tail -20 "$C/gateway.log" >&2; die "phase $tag gateway exited"; }
    scrape "$C_API"
    if [ -n "$METRICS" ]; then
      read -r rcv acc rej wr drp depth ev raised <<<"$METRICS"
      [ $((acc + rej)) -lt "$MEM_DEVICES" ] || break
    fi
    [ $SECONDS -lt $end ] || die "phase $tag: not all readings accepted in ${TIMEOUT_S}s (metrics: ${METRICS:-none})"
    sleep 0.2
  done
  C_RSS_ACC=$(rss_kb "$GWC" VmRSS)
  # Settle: the store queue empties and one journal cycle (5 s) persists every device's last seen.
  end=$((SECONDS + 60))
  while :; do
    scrape "$C_API"
    read -r rcv acc rej wr drp depth ev raised <<<"${METRICS:-0 0 0 0 0 1 0 0}"
    [ "$depth" -eq 0 ] && [ $((wr + drp)) -ge $((acc + MEM_DEVICES)) ] && break
    [ $SECONDS -lt $end ] || break
    sleep 0.2
  done
  sleep 6
  C_RSS=$(rss_kb "$GWC" VmRSS); C_HWM=$(rss_kb "$GWC" VmHWM)
  C_ACC=$acc
  log "phase $tag: accepted $acc, rejected $rej, points written $wr, dropped $drp; VmRSS $(mb "$C_RSS") MB"
  stop_pid "$GWC"
}
C0_RSS=0; C0_HWM=0
if [ -n "$BASE_BIN" ]; then
  phase_c "$BASE_BIN" C0
  C0_RSS=$C_RSS; C0_HWM=$C_HWM
fi
phase_c "$BIN" C

# ---------------------------------------------------------------- summary
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
v_ratio=$(verdict "$(awk -v r="$RATIO" -v t="$TARGET_RATIO" 'BEGIN { print (r >= t) }')")
v_rate=$(verdict "$(awk -v r="$B_MED" -v t="$TARGET_RATE" 'BEGIN { print (r >= t) }')")
v_rss=$(verdict "$(awk -v k="$C_RSS" -v t="$TARGET_RSS_MB" 'BEGIN { print (k / 1024 <= t) }')")
v_vm=$(verdict "$VM_OK")
v_storm=$(verdict "$(awk -v r="$S_RATIO" -v ok="$STORM_OK" -v on="$ALARM_EVERY" 'BEGIN { print (on == 0 || (r >= 0.8 && ok == 1)) }')")
v_mapped=$(verdict "$(awk -v r="$J_RATIO" -v ok="$MAPPED_OK" -v on="$MAPPED" 'BEGIN { print (on == 0 || (r >= 0.8 && ok == 1)) }')")
v_mapped_batch=$(verdict "$(awk -v r="${L_RATIO:-0}" -v ok="$MAPPED_OK" -v on="$MAPPED" 'BEGIN { print (on == 0 || (r >= 0.8 && ok == 1)) }')")
v_durable=$(verdict "$(awk -v d="$D_MED" -v t="$TARGET_DURABLE" -v ok="$DURABLE_OK" -v on="$DURABLE" 'BEGIN { print (on == 0 || (d >= t && ok == 1)) }')")
v_batch=$(verdict "$(awk -v r="$T_RATIO" -v ok="$BATCH_OK" -v on="$BATCH" -v t="$TARGET_BATCH_RATIO" 'BEGIN { print (on == 0 || (r >= t && ok == 1)) }')")
v_batch_us=$(verdict "$(awk -v u="$T_US_MED" -v on="$BATCH" -v t="$TARGET_BATCH_US" 'BEGIN { print (on == 0 || u <= t) }')")
MISSED=0
case "$v_ratio $v_rate $v_rss $v_vm $v_storm $v_mapped $v_mapped_batch $v_durable $v_batch $v_batch_us" in *FAIL*) MISSED=1 ;; esac
TOTAL_S=$(secs "$SCRIPT_START" "$(now_ns)")
{
  echo
  echo "==================== safegate ingest benchmark ===================="
  echo "host: $(nproc) CPUs${BENCH_STORE_CPUS:+ (VictoriaMetrics alone on CPU $BENCH_STORE_CPUS)}, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), busy before each round and C (of $(nproc)00%): $BACKGROUND; tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)'), safegate built $(date -r "$BIN/safegate" '+%F %T')"
  echo "QoS $QOS; M = $M messages over $DEVICES devices; $ROUNDS rounds of A then B; medians of rounds ${CLEAN[*]} ($CLEAN_NOTE)"
  echo "(a) mosquitto_sub drain            $A_MED msg/s"
  echo "(b) gateway → VictoriaMetrics      $B_MED readings/s (process start → last point written)"
  echo "    ingest only                    $B_ACC_MED readings/s (process start → last reading accepted)"
  echo "    ratio (b)/(a)                  $RATIO   [target ≥ $TARGET_RATIO: $v_ratio]"
  echo "    rate (b)                       [target ≥ $TARGET_RATE readings/s: $v_rate]"
  echo "    reading_v samples in VM = M    [every round: $v_vm]"
  if [ "$ALARM_EVERY" -gt 0 ]; then
    echo "(s) alarm storm → VictoriaMetrics  $S_MED readings/s (every ${ALARM_EVERY}th reading of each device raises an alarm: $((M / ALARM_EVERY)) alarms per round)"
    echo "    ratio (s)/(b)                  $S_RATIO   [target ≥ 0.8, all readings stored, all alarms raised: $v_storm]"
  fi
  if [ "$MAPPED" = 1 ]; then
    echo "(j) mapped envelope → VM          $J_MED readings/s (the ministry-family envelope on ministry/{site}/up through [[mappings]])"
    echo "    ratio (j)/(b)                  $J_RATIO   [target ≥ 0.8, all readings stored: $v_mapped]"
    echo "(k) native batch topic → VM        $K_MED readings/s ($PER readings a message)"
    echo "(l) mapped envelopes → VM          $L_MED readings/s ($PER points an envelope)"
    echo "    ratio (l)/(k)                  $L_RATIO   [target ≥ 0.8, all readings stored: $v_mapped_batch]"
  fi
  if [ "$BATCH" = 1 ]; then
    echo "(t) batch topic, QoS 1 → VM      $T_MED readings/s ($BPER readings a message, ack after commit; process start → last point written)"
    echo "(r) store-write → VM (reference) $R_MED points/s (the same points, bodies of ${BENCH_BATCH_SIZE:-5000} lines, $REF_CONN connection(s))"
    echo "    ratio (t)/(r)                  $T_RATIO   [target ≥ $TARGET_BATCH_RATIO, all stored: $v_batch]"
    echo "    gateway CPU in (t)             $T_US_MED µs/reading   [target ≤ $TARGET_BATCH_US: $v_batch_us]"
    for i in "${!TX_BINS[@]}"; do
      [ -n "${TX_BINS[i]}" ] || continue
      echo "(t$i) as (t), build ${TX_BINS[i]}   $(tx_median "$i" TX_RATE) readings/s, gateway CPU $(tx_median "$i" TX_US) µs/reading (safegate built $(date -r "${TX_BINS[i]%%,*}/safegate" '+%F %T'))"
    done
  fi
  if [ "$DURABLE" = 1 ]; then
    echo "(d) QoS 1, ack after commit        $D_MED readings/s (every PUBACK after the outbox fsync of its readings)   [target ≥ $TARGET_DURABLE, all stored: $v_durable]"
    echo "(e) QoS 1, ack on receive          $E_MED readings/s (same run, no guarantee); (d)/(e) = $D_RATIO; QoS 0 is (b)"
    if [ -n "$BASE_BIN" ]; then
      echo "(d0) as (d), baseline build        $D0_MED readings/s ($BASE_BIN/safegate, built $(date -r "$BASE_BIN/safegate" '+%F %T')); (d)/(d0) = $D_D0"
    fi
  fi
  if [ -n "$BASE_BIN" ]; then
    echo "(b0) as (b), baseline build        $B0_MED readings/s; (b)/(b0) = $B_B0"
  fi
  for r in $(seq "$ROUNDS"); do
    echo "  round $r  (a) ${A_RATE[r]} msg/s: ${A_DESC[r]}"
    echo "           (b) ${B_RATE[r]} readings/s: ${B_DESC[r]}"
    [ "$MAPPED" = 1 ] && echo "           (j) ${J_RATE[r]} readings/s: ${J_DESC[r]}" \
      && echo "           (k) ${K_RATE[r]} readings/s: ${K_DESC[r]}" && echo "           (l) ${L_RATE[r]} readings/s: ${L_DESC[r]}"
    [ "$BATCH" = 1 ] && echo "           (t) ${T_RATE[r]} readings/s: ${T_DESC[r]}" \
      && echo "           (r) ${R_RATE[r]} points/s: ${R_DESC[r]}"
    if [ "$BATCH" = 1 ]; then
      for i in "${!TX_BINS[@]}"; do
        [ -z "${TX_BINS[i]}" ] || echo "           (t$i) ${TX_RATE[$i,$r]} readings/s: ${TX_DESC[$i,$r]}"
      done
    fi
    [ "$ALARM_EVERY" -gt 0 ] && echo "           (s) ${S_RATE[r]} readings/s: ${S_DESC[r]}"
    [ "$DURABLE" = 1 ] && echo "           (d) ${D_RATE[r]} readings/s: ${D_DESC[r]}" && echo "           (e) ${E_RATE[r]} readings/s: ${E_DESC[r]}"
    [ "$DURABLE" = 1 ] && [ -n "$BASE_BIN" ] && echo "           (d0) ${D0_RATE[r]} readings/s: ${D0_DESC[r]}"
    [ -n "$BASE_BIN" ] && echo "           (b0) ${B0_RATE[r]} readings/s: ${B0_DESC[r]}"
  done
  echo "    gateway VmRSS after phase B    $(mb "${B_RSS[ROUNDS]}") MB (peak $(mb "${B_HWM[ROUNDS]}") MB; last round)"
  echo "(c) gateway VmRSS, $MEM_DEVICES devices  $(mb "$C_RSS") MB (at last accept $(mb "$C_RSS_ACC") MB, peak $(mb "$C_HWM") MB; $C_ACC accepted)   [target ≤ $TARGET_RSS_MB MB: $v_rss]"
  [ -n "$BASE_BIN" ] && echo "(c0) as (c), baseline build        $(mb "$C0_RSS") MB (peak $(mb "$C0_HWM") MB); (c)/(c0) = $(awk -v c="$C_RSS" -v b="$C0_RSS" 'BEGIN { printf "%.3f", (b > 0 ? c / b : 0) }')"
  echo "CPU in the last phase $PERF_PHASE (% of one core): $CPU_LINES"
  echo "script run time                    $TOTAL_S s"
  echo "===================================================================="
}
if [ "$STRICT" = 1 ] && [ "$MISSED" = 1 ]; then exit 3; fi
exit 0
