#!/usr/bin/env bash
# Soak: a steady QoS 1 load for minutes, Mosquitto → safegate → VictoriaMetrics, on 127.0.0.1
# only. Goal 5 of issue #18.
#
#   scripts/bench-soak.sh                          # release build, then 10 min at 20,000/s
#   BENCH_BUILD=0 BENCH_SOAK_S=60 scripts/bench-soak.sh   # a one-minute check
#
# `loadgen publish --rate` holds BENCH_SOAK_RATE readings/s (one native reading a message, QoS
# 1) from BENCH_SOAK_DEVICES devices for BENCH_SOAK_S seconds. Readings are stamped from the
# clock, unique per device, so the gateway runs with its default gateway.max_future_skew_s and
# must refuse none. One reading in BENCH_SOAK_ALARM_EVERY crosses the gas level-2 threshold,
# spread over the devices (device d's k-th reading when (k + d) is a multiple), so alarms are
# raised and cleared steadily. The gateway runs mqtt.qos = 1 with ack = "after_commit" (every
# PUBACK after the outbox fsync), on a persistent session prepared before it starts, with an
# inventory whose interval_s is devices / rate (each device reports that often) and an
# offline_after_s of BENCH_SOAK_OFFLINE_S, so a device goes offline only if its readings stop
# for that long.
#
# Every BENCH_SOAK_SAMPLE_S seconds the gateway's VmRSS (/proc) and counters (/metrics) are
# sampled. When the publisher is done the gateway must drain (store queue and outbox empty,
# every point written) within BENCH_TIMEOUT_S; then VictoriaMetrics is flushed and its
# reading_v samples for the soak's site counted with /api/v1/export/csv.
#
# The summary reports readings sent / accepted / rejected (by reason) / stored (must all be
# equal, nothing rejected), value alarms raised (must equal the alarm readings sent), offline
# alarms and device transitions (no device may go offline), the RSS table and the flatness check
# (mean VmRSS of the last third of the samples within 15 % of the middle third's), the CPU of
# the gateway (% of one core and µs per reading), of mosquitto, VictoriaMetrics and loadgen (its
# ticks sampled each second while it runs), the publisher's achieved rate and lag, the reading
# latency (gateway receive time − reading stamp), the backlog at the end of the load and how busy
# the machine was (other programs' CPU, from /proc).
#
# Environment (defaults):
#   BENCH_SOAK_S=600            seconds of load
#   BENCH_SOAK_RATE=20000       readings (messages) per second
#   BENCH_SOAK_DEVICES=10000    devices taking turns
#   BENCH_SOAK_ALARM_EVERY=500  one reading in n is an alarm (0: none)
#   BENCH_SOAK_SAMPLE_S=10      sampling interval (RSS, counters, loadgen progress)
#   BENCH_SOAK_OFFLINE_S=10     each device's offline_after_s
#   BENCH_SOAK_FLAT_PCT=15      flatness tolerance, per cent
#   BENCH_SOAK_MIN_RATE_PCT=99  the publisher must achieve this share of the rate
#   BENCH_TIMEOUT_S=300         bound on start-up, the drain and the count in VictoriaMetrics
#   BENCH_BUILD=1               0: use the existing target/release binaries
#   BENCH_KEEP=0                1: keep the temp dir (logs, config, samples, loadgen progress)
#   BENCH_GATEWAY_ENV           extra VAR=value words for the gateway's environment only
# Exit status: 0 every check passed; 1 a phase failed or timed out, or a correctness check
# failed (a reading lost or refused, an alarm missing, a device offline); 3 a target was missed
# (RSS not flat, or the publisher below the rate) with everything else correct.
# Installs mosquitto, mosquitto-clients and victoria-metrics with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# Helpers shared with the other benchmark scripts (processes, ports, CPU accounting).
source scripts/bench-lib.sh

SOAK_S=${BENCH_SOAK_S:-600}
RATE=${BENCH_SOAK_RATE:-20000}
DEVICES=${BENCH_SOAK_DEVICES:-10000}
ALARM_EVERY=${BENCH_SOAK_ALARM_EVERY:-500}
SAMPLE_S=${BENCH_SOAK_SAMPLE_S:-10}
OFFLINE_S=${BENCH_SOAK_OFFLINE_S:-10}
FLAT_PCT=${BENCH_SOAK_FLAT_PCT:-15}
MIN_RATE_PCT=${BENCH_SOAK_MIN_RATE_PCT:-99}
TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
GATEWAY_ENV=${BENCH_GATEWAY_ENV:-}
SITE=soak
CLIENT_ID=safegate-soak
HZ=$(getconf CLK_TCK)
SCRIPT_START=$(now_ns)

log() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
for v in SOAK_S RATE DEVICES ALARM_EVERY SAMPLE_S TIMEOUT_S FLAT_PCT MIN_RATE_PCT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, not ${!v:-empty}"
done
[ "$SOAK_S" -ge $((3 * SAMPLE_S)) ] || die "BENCH_SOAK_S must be at least 3 × BENCH_SOAK_SAMPLE_S (thirds of the samples)"
[ "$RATE" -gt 0 ] && [ "$DEVICES" -gt 0 ] && [ "$SAMPLE_S" -gt 0 ] || die "rate, devices and sample interval must be positive"
COUNT=$((RATE * SOAK_S))
# Each device reports every devices / rate seconds.
INTERVAL_S=$(awk -v d="$DEVICES" -v r="$RATE" 'BEGIN { printf "%.6g", d / r }')
awk -v o="$OFFLINE_S" -v i="$INTERVAL_S" 'BEGIN { exit !(o >= i) }' \
  || die "BENCH_SOAK_OFFLINE_S ($OFFLINE_S) is shorter than a device's interval ($INTERVAL_S s)"

# ---------------------------------------------------------------- prerequisites
need_packages mosquitto:mosquitto mosquitto_sub:mosquitto-clients victoria-metrics:victoria-metrics curl:curl
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ "$BUILD" = 1 ]; then
  log "cargo build --release --bins"
  cargo build --release --bins --locked >&2
fi
BIN=$ROOT/target/release
for b in safegate loadgen; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run cargo build --release --bins)"
done

# ---------------------------------------------------------------- processes and cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/safegate-soak.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM
MYSID=$(awk '{ sub(/^.*\) /, ""); print $4 }' /proc/$$/stat)

rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

start_mosquitto

start_victoria
log "mosquitto on $BROKER (pid $MOSQ_PID), VictoriaMetrics on $VM (pid $VM_PID), temp $WORK"

# ---------------------------------------------------------------- the gateway
G=$WORK/gw
mkdir -p "$G"
"$BIN/loadgen" inventory --site "$SITE" --devices "$DEVICES" --interval-s "$INTERVAL_S" \
  --offline-after-s "$OFFLINE_S" >"$G/inventory.toml"
API_PORT=$(free_port)
cat >"$G/safegate.toml" <<EOF
# Generated by scripts/bench-soak.sh. gateway.max_future_skew_s keeps its default: the soak's
# readings are stamped from the clock and none may be refused.
include = ["inventory.toml"]

[gateway]
data_dir = "$G/data"

[mqtt]
url = "mqtt://$BROKER"
client_id = "$CLIENT_ID"
qos = 1
ack = "after_commit"

[store]
url = "$VM"
org = "bench"
bucket = "bench"

[api]
listen = "127.0.0.1:$API_PORT"
EOF
"$BIN/safegate" check-config "$G/safegate.toml" >/dev/null || die "the gateway's config was rejected"
# The gateway's persistent session exists before it connects, so the broker queues for it
# whatever arrives before its subscription is in place.
"$BIN/loadgen" session --broker "$BROKER" --client-id "$CLIENT_ID" --filter 'safegate/v1/#' --qos 1 \
  || die "loadgen session $CLIENT_ID"

M_TEXT=""
# Sets M_TEXT to the gateway's /metrics, or "" when it does not answer.
scrape() { M_TEXT=$(curl -sf --max-time 5 "http://127.0.0.1:$API_PORT/metrics") || M_TEXT=""; }
# One figure from M_TEXT: the sum of the samples whose name (with labels) matches a regex.
metric() { awk -v re="$1" '$1 ~ re { s += $2 } END { printf "%.0f", s }' <<<"$M_TEXT"; }
counters() { # → "accepted rejected written depth outbox_points"
  printf '%s %s %s %s %s' "$(metric '^safegate_readings_accepted_total$')" \
    "$(metric '^safegate_readings_rejected_total')" "$(metric '^safegate_store_points_written_total$')" \
    "$(metric '^safegate_store_queue_depth$')" "$(metric '^safegate_outbox_points$')"
}

env $GATEWAY_ENV "$BIN/safegate" run --config "$G/safegate.toml" >"$G/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
end=$((SECONDS + TIMEOUT_S))
while :; do
  kill -0 "$GW" 2>/dev/null || { tail -20 "$G/gateway.log" >&2; die "the gateway exited during start-up"; }
  scrape
  [ -n "$M_TEXT" ] && [ "$(metric '^safegate_mqtt_connected$')" = 1 ] && break
  [ $SECONDS -lt $end ] || die "the gateway did not connect to the broker in ${TIMEOUT_S}s"
  sleep 0.2
done
log "gateway pid $GW connected; api 127.0.0.1:$API_PORT; $DEVICES devices every $INTERVAL_S s, offline after $OFFLINE_S s"

# ---------------------------------------------------------------- the load
read -r c0_all c0_idle < <(cpu_total)
f0=$(foreign_snapshot)
g0=$(ticks "$GW"); m0=$(ticks "$MOSQ_PID"); v0=$(ticks "$VM_PID")
alarm_args=()
[ "$ALARM_EVERY" -gt 0 ] && alarm_args=(--alarm-every "$ALARM_EVERY" --alarm-spread)
log "loadgen: $COUNT readings at $RATE/s (QoS 1) over $DEVICES devices for ${SOAK_S}s${alarm_args:+, one alarm in $ALARM_EVERY}"
t0=$(now_ns)
# Bounded by itself: it stops sending at --max-duration-s and waits at most 10 s more for acks.
"$BIN/loadgen" publish --broker "$BROKER" --site "$SITE" --devices "$DEVICES" --count "$COUNT" \
  --rate "$RATE" --qos 1 --max-duration-s $((SOAK_S + 60)) --progress-s "$SAMPLE_S" \
  "${alarm_args[@]}" >"$WORK/loadgen.out" 2>"$WORK/loadgen.err" &
LG=$!
PIDS+=("$LG")
rss0=$(rss_kb "$GW" VmRSS)
# Lines: nominal t, VmRSS kB, accepted, rejected, written, queue, outbox, gateway ticks, actual t.
printf '%s %s %s %s 0\n' 0 "$rss0" "$(counters)" "$g0" >"$WORK/samples.txt"
l_ticks=0
next=$SAMPLE_S
# One pass a second: loadgen's CPU (its last value before it exits), and a sample of the
# gateway every SAMPLE_S seconds of load.
while kill -0 "$LG" 2>/dev/null; do
  kill -0 "$GW" 2>/dev/null || { tail -20 "$G/gateway.log" >&2; die "the gateway exited under load"; }
  sleep 1
  t=$(ticks "$LG"); [ "$t" = 0 ] || l_ticks=$t
  el=$(( ($(now_ns) - t0) / 1000000000 ))
  if [ "$el" -ge "$next" ] && [ "$next" -le "$SOAK_S" ]; then
    rss=$(rss_kb "$GW" VmRSS)
    scrape
    printf '%s %s %s %s %s\n' "$next" "$rss" "$(counters)" "$(ticks "$GW")" "$(secs "$t0" "$(now_ns)")" >>"$WORK/samples.txt"
    next=$((next + SAMPLE_S))
  fi
  [ "$el" -lt $((SOAK_S + 120)) ] || die "loadgen still running $((SOAK_S + 120)) s after it started"
done
lg_rc=0
wait "$LG" || lg_rc=$?
t_pub=$(now_ns)
cat "$WORK/loadgen.err" >&2
[ "$lg_rc" = 0 ] || die "loadgen publish failed (exit $lg_rc): $(tail -1 "$WORK/loadgen.err")"
LG_OUT=$(cat "$WORK/loadgen.out")
log "loadgen: $(tr '\n' ';' <<<"$LG_OUT")"
SENT=$(awk '$1 == "sent" { print $2 }' <<<"$LG_OUT")
ALARMS_SENT=$(awk '$1 == "readings" { print $4 }' <<<"$LG_OUT")
ALARMS_SENT=${ALARMS_SENT:-0}
PACE=$(grep '^pace ' <<<"$LG_OUT" || true)
ACHIEVED=$(awk '{ print $5 }' <<<"$PACE")
[ -n "$SENT" ] && [ -n "$PACE" ] || die "could not read loadgen's report: $LG_OUT"
# The backlog as the publisher finished (its last message acknowledged by the broker).
scrape
read -r acc_end rej_end wr_end depth_end outbox_end <<<"$(counters)"
acks_end=$(metric '^safegate_mqtt_acks_pending$')

# ---------------------------------------------------------------- the drain
# Every reading accepted or refused, then everything written: the store queue and the outbox
# empty and points written ≥ readings + device transitions + alarm events (one point each).
end=$((SECONDS + TIMEOUT_S))
while :; do
  kill -0 "$GW" 2>/dev/null || { tail -20 "$G/gateway.log" >&2; die "the gateway exited while draining"; }
  scrape
  if [ -n "$M_TEXT" ]; then
    read -r acc rej wr depth outbox <<<"$(counters)"
    tr_n=$(metric '^safegate_device_transitions_total$')
    ev=$(metric '^safegate_alarm_events_total')
    if [ $((acc + rej)) -ge "$SENT" ] && [ "$depth" = 0 ] && [ "$outbox" = 0 ] \
      && [ $((wr + $(metric '^safegate_store_points_dropped_total$'))) -ge $((acc + tr_n + ev)) ]; then
      break
    fi
  fi
  [ $SECONDS -lt $end ] || die "not drained ${TIMEOUT_S}s after the load (accepted ${acc:-?}/$SENT, written ${wr:-?}, queue ${depth:-?}, outbox ${outbox:-?})"
  sleep 0.2
done
t1=$(now_ns)
g1=$(ticks "$GW"); m1=$(ticks "$MOSQ_PID"); v1=$(ticks "$VM_PID")
read -r c1_all c1_idle < <(cpu_total)
OTHER=$(foreign_pct "$f0" "$(foreign_snapshot)" "$(secs "$t0" "$t1")")
RUN_S=$(secs "$t0" "$t1"); LOAD_S=$(secs "$t0" "$t_pub"); DRAIN_S=$(secs "$t_pub" "$t1")
RSS_END=$(rss_kb "$GW" VmRSS); HWM=$(rss_kb "$GW" VmHWM)
DROPPED=$(metric '^safegate_store_points_dropped_total$')
REJECT_REASONS=$(awk '$1 ~ /^safegate_readings_rejected_total/ && $2 > 0 {
    r = $1; sub(/.*reason="/, "", r); sub(/".*/, "", r); printf "%s%s %d", sep, r, $2; sep = ", " }' <<<"$M_TEXT")
VALUE_RAISED=$(metric '^safegate_alarm_events_total[{]alarm_type="value",event="raised"[}]$')
OFFLINE_RAISED=$(metric '^safegate_alarm_events_total[{]alarm_type="offline",event="raised"[}]$')
CLEARED=$(metric '^safegate_alarm_events_total[{]alarm_type="value",event="cleared"[}]$')
TRANSITIONS=$(metric '^safegate_device_transitions_total$')
LAT_N=$(metric '^safegate_reading_latency_seconds_count$')
LAT_SUM=$(awk '$1 == "safegate_reading_latency_seconds_sum" { print $2 }' <<<"$M_TEXT")
lat_le() { awk -v le="$1" '$1 ~ /^safegate_reading_latency_seconds_bucket/ && index($1, "le=\"" le "\"") { print $2 }' <<<"$M_TEXT"; }
LAT_MEAN_MS=$(awk -v s="${LAT_SUM:-0}" -v n="$LAT_N" 'BEGIN { printf "%.1f", (n > 0 ? 1000 * s / n : 0) }')
LAT_LINE=$(awk -v n="$LAT_N" -v a="$(lat_le 0.1)" -v b="$(lat_le 0.25)" -v c="$(lat_le 1.0)" -v d="$(lat_le 5.0)" \
  'BEGIN { if (n > 0) printf "≤0.1 s %.2f%%, ≤0.25 s %.2f%%, ≤1 s %.2f%%, ≤5 s %.3f%%", 100*a/n, 100*b/n, 100*c/n, 100*d/n }')
log "drained ${DRAIN_S}s after the load: accepted $acc, rejected $rej, points written $wr, dropped $DROPPED"

# ---------------------------------------------------------------- what the store holds
STORED=$(vm_samples "$SITE" "$TIMEOUT_S")
log "VictoriaMetrics holds $STORED reading_v samples for site $SITE"

# Value alarms expected: device d's k-th reading is one when (k + d) % n == 0 (loadgen's
# --alarm-spread), over the readings each device sent; loadgen counts them too.
ALARMS_WANT=0
if [ "$ALARM_EVERY" -gt 0 ]; then
  ALARMS_WANT=$(awk -v r="$SENT" -v D="$DEVICES" -v n="$ALARM_EVERY" 'BEGIN {
    for (d = 0; d < D; d++) { K = int(r / D) + (d < r % D); k0 = (n - d % n) % n
      if (K > k0) c += int((K - 1 - k0) / n) + 1 }
    printf "%d", c }')
fi

# ---------------------------------------------------------------- checks
verdict() { if [ "$1" = 1 ]; then echo PASS; else echo FAIL; fi; }
FAILED=0; MISSED=0
ok_count=0
[ "$SENT" = "$COUNT" ] && [ "$acc" = "$SENT" ] && [ "$rej" = 0 ] && [ "$STORED" = "$SENT" ] && [ "$DROPPED" = 0 ] && ok_count=1
ok_alarms=0
[ "$VALUE_RAISED" = "$ALARMS_WANT" ] && [ "$ALARMS_SENT" = "$ALARMS_WANT" ] && ok_alarms=1
ok_online=0
[ "$OFFLINE_RAISED" = 0 ] && [ "$TRANSITIONS" = "$DEVICES" ] && ok_online=1
[ $ok_count = 1 ] && [ $ok_alarms = 1 ] && [ $ok_online = 1 ] || FAILED=1

# RSS: samples at t = SAMPLE_S … SOAK_S; the middle and the last third of them.
RSS_TABLE=$(awk -v hz="$HZ" 'NR > 1 {
    printf "  %5ds %8.1f MB %12d %12d %10d %7d %6.0f%% %8.0f/s\n", $1, $2 / 1024, $3, $5, $7, $6,
      100 * ($8 - pt) / (($9 - pp) * hz), ($3 - pa) / ($9 - pp) }
  { pt = $8; pp = $9; pa = $3 }' "$WORK/samples.txt")
read -r N_S MID LAST < <(awk 'NR > 1 { r[++n] = $2 } END {
    a = int(n / 3); b = int(2 * n / 3)
    for (i = a + 1; i <= b; i++) { m += r[i]; mc++ }
    for (i = b + 1; i <= n; i++) { l += r[i]; lc++ }
    printf "%d %.0f %.0f\n", n, (mc ? m / mc : 0), (lc ? l / lc : 0) }' "$WORK/samples.txt")
FLAT_PCT_SEEN=$(awk -v m="$MID" -v l="$LAST" 'BEGIN { printf "%+.1f", (m > 0 ? 100 * (l - m) / m : 0) }')
ok_flat=$(awk -v m="$MID" -v l="$LAST" -v t="$FLAT_PCT" 'BEGIN { print (m > 0 && (l - m) <= m * t / 100 && (m - l) <= m * t / 100) ? 1 : 0 }')
ok_rate=$(awk -v a="${ACHIEVED:-0}" -v r="$RATE" -v p="$MIN_RATE_PCT" 'BEGIN { print (a >= r * p / 100) ? 1 : 0 }')
[ "$ok_flat" = 1 ] && [ "$ok_rate" = 1 ] || MISSED=1

busy=$(awk -v b="$(( (c1_all - c0_all) - (c1_idle - c0_idle) ))" -v a="$((c1_all - c0_all))" -v n="$(nproc)" \
  'BEGIN { printf "%.0f", (a > 0 ? 100 * n * b / a : 0) }')
us_per() { awk -v t="$1" -v n="$SENT" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? 1e6 * t / hz / n : 0) }'; }

{
  echo
  echo "==================== safegate soak ===================="
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo); machine ${busy}% busy of $(nproc)00% over the run, other programs ${OTHER}% of one core; load average before the summary $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src simulators 2>/dev/null || echo ' (modified)'), safegate built $(date -r "$BIN/safegate" '+%F %T')"
  echo "load: $RATE readings/s (QoS 1, one a message) over $DEVICES devices (each every $INTERVAL_S s, offline after $OFFLINE_S s) for ${SOAK_S}s; gateway mqtt.qos 1, ack after_commit; $([ "$ALARM_EVERY" -gt 0 ] && echo "one alarm in $ALARM_EVERY readings" || echo "no alarms")"
  echo "publisher: $(sed 's/^pace //' <<<"$PACE")"
  echo "           sent $SENT of $COUNT messages; load ${LOAD_S}s (last broker ack), drain ${DRAIN_S}s more"
  echo "readings   sent $SENT, accepted $acc, rejected $rej (${REJECT_REASONS:-none}), stored in VictoriaMetrics $STORED, store points dropped $DROPPED   [all stored, none refused: $(verdict $ok_count)]"
  echo "alarms     value alarms raised $VALUE_RAISED, expected $ALARMS_WANT (loadgen sent $ALARMS_SENT alarm readings), cleared $CLEARED   [$(verdict $ok_alarms)]"
  echo "liveness   device transitions $TRANSITIONS (expected $DEVICES first readings), offline alarms $OFFLINE_RAISED   [no device offline: $(verdict $ok_online)]"
  echo "latency    receive − reading stamp: mean ${LAT_MEAN_MS} ms; $LAT_LINE"
  echo "backlog    as the load ended: accepted $acc_end, written $wr_end, store queue $depth_end chunks, outbox $outbox_end points, MQTT acks pending $acks_end; at the end: queue $depth, outbox $outbox"
  echo "gateway VmRSS every ${SAMPLE_S}s (accepted, written, outbox points, store queue, gateway CPU and accepted/s over the interval):"
  printf '  %6s %11s %12s %12s %10s %7s %7s %10s\n' t VmRSS accepted written outbox queue CPU accepted
  printf '  %5ss %8.1f MB\n' 0 "$(mb "$rss0" | tr -d '\n')"
  echo "$RSS_TABLE"
  echo "  after the drain $(mb "$RSS_END") MB, peak (VmHWM) $(mb "$HWM") MB"
  echo "flatness   mean VmRSS of the last third $(mb "$LAST") MB vs the middle third $(mb "$MID") MB ($N_S samples): ${FLAT_PCT_SEEN}%   [within ±${FLAT_PCT}%: $(verdict "$ok_flat")]"
  echo "rate       publisher achieved ${ACHIEVED:-?} msg/s of $RATE   [≥ ${MIN_RATE_PCT}%: $(verdict "$ok_rate")]"
  echo "CPU over ${RUN_S}s (load + drain), % of one core: gateway $(pct_of $((g1 - g0)) "$RUN_S") ($(us_per $((g1 - g0))) µs per reading), mosquitto $(pct_of $((m1 - m0)) "$RUN_S") ($(us_per $((m1 - m0))) µs), victoria-metrics $(pct_of $((v1 - v0)) "$RUN_S") ($(us_per $((v1 - v0))) µs), loadgen $(pct_of "$l_ticks" "$RUN_S") ($(us_per "$l_ticks") µs)"
  echo "script run time $(secs "$SCRIPT_START" "$(now_ns)") s; temp $WORK$([ "$KEEP" = 1 ] && echo ' (kept)' || echo ' (removed)')"
  echo "======================================================="
} | tee "$WORK/summary.txt"
if [ "$FAILED" = 1 ]; then log "FAILED: a correctness check failed (see above)"; exit 1; fi
if [ "$MISSED" = 1 ]; then log "a target was missed (see above)"; exit 3; fi
exit 0
