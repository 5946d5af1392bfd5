#!/usr/bin/env bash
# Mine-files benchmark (issue 14, acceptance 6): 1,000 coal mines × 300 points, on 127.0.0.1 only.
#
#   scripts/bench-mine-files.sh                               # release build, then every phase
#   BENCH_BUILD=0 BENCH_INTERVALS=2 BENCH_MQTT_REF=0 scripts/bench-mine-files.sh   # quicker
#
# One gateway (store = VictoriaMetrics) with BENCH_MINES mine sites m0001… (mine codes from
# BENCH_FIRST_CODE, each with a `major_hazard` KJ system), its FTP server on a free loopback port
# and a watched folder. mine-sim (release) plays the mines:
#   0  the gateway with the sites and no points: VmRSS (before)
#   D  definitions: every mine's CDDY and FZDY of interval 0 by FTP: BENCH_MINES × BENCH_POINTS
#      points join the inventory. Settled (the gateway idle, one journal cycle): VmRSS (with
#      points); bytes/point = (with − before) / points, and with / points.    [target ≤ 1 KB]
#   F  FTP, full intake: every mine's CDSS of intervals 1…N (N = BENCH_INTERVALS) by FTP, back to
#      back, BENCH_CONCURRENCY mines at once; from mine-sim's start until every point is written
#      to the store (gateway's written counter, store queue empty)   → points/s and files/s end to
#      end; then VictoriaMetrics must hold exactly those samples.   [target: 130,000 points/s,
#      ~430 files/s, the national load]
#   X  FTP, cheap intake: the same files again. Each is answered 226 as a duplicate (same name
#      and SHA-256) without being parsed, applied or committed: what FTP alone costs (a control
#      session per mine, a data connection per file) → files/s
#   G  as F after W, with the CDSS of intervals 2N+1…3N: the store already has every series (in
#      F it creates two a point, a channel and status_code, with their first samples), so this
#      is the steady state the national load runs in
#   W  the watched folder: mine-sim --dir writes the CDSS of intervals N+1…2N into watch_dir
#      (NAME.tmp renamed to NAME); from its start until every point is in the store → points/s,
#      files/s
#   M  the reference: the MQTT batch topic's readings/s, phase T of scripts/bench-ingest.sh
#      (its own broker, store and gateway, one round, BENCH_INGEST_MESSAGES readings as messages of
#      250 at QoS 1, acknowledged after commit: the figure of docs/performance.md), run first;
#      ratios F/M, G/M and W/M in points (readings) per second
# Each phase prints the CPU of the gateway, mine-sim and VictoriaMetrics over it (/proc, % of one
# core) and what other programs used: on a shared machine the figures are noisy.
#
# Environment (defaults):
#   BENCH_MINES=1000  BENCH_POINTS=300  BENCH_SUBSTATIONS=10  BENCH_FIRST_CODE=150621000001
#   BENCH_INTERVALS=3       CDSS files per mine in F, X, W and G
#   BENCH_CONCURRENCY=64    mines uploading at once (mine-sim --concurrency)
#   BENCH_WATCH_CONCURRENCY=16  the folder's watch_concurrency (1 to 64)
#   BENCH_MQTT_REF=1        0: skip phase M
#   BENCH_INGEST_MESSAGES=500000  readings of phase M
#   BENCH_TIMEOUT_S=600     bound on every wait
#   BENCH_BUILD=1           0: use the existing target/release binaries
#   BENCH_KEEP=0            1: keep the temp dir (configs, logs, mine-sim summaries)
# Exit status: 0 measured (targets reported, not enforced); 1 a phase failed or timed out.
# Installs mosquitto, mosquitto-clients and victoria-metrics with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/bench-lib.sh

MINES=${BENCH_MINES:-1000}
POINTS=${BENCH_POINTS:-300}
SUBSTATIONS=${BENCH_SUBSTATIONS:-10}
FIRST_CODE=${BENCH_FIRST_CODE:-150621000001}
N=${BENCH_INTERVALS:-3}
CONC=${BENCH_CONCURRENCY:-64}
WATCH_CONC=${BENCH_WATCH_CONCURRENCY:-16}
MQTT_REF=${BENCH_MQTT_REF:-1}
INGEST_M=${BENCH_INGEST_MESSAGES:-500000}
TIMEOUT_S=${BENCH_TIMEOUT_S:-600}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
INTERVAL_S=10
TARGET_POINTS=130000
TARGET_FILES=430
TARGET_BYTES_PER_POINT=1024
TOTAL_POINTS=$((MINES * POINTS))
HZ=$(getconf CLK_TCK)
SCRIPT_START=$(now_ns)
export SAFEGATE_BENCH_MINE_PW=bench-upload-pw

log() { printf '[bench-mine %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
rate1() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }'; }
rss_kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
json_field() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }

# ---------------------------------------------------------------- prerequisites
need_packages mosquitto:mosquitto mosquitto_sub:mosquitto-clients victoria-metrics:victoria-metrics curl:curl
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ "$BUILD" = 1 ]; then
  log "cargo build --release --bins"
  cargo build --release --bins --locked >&2
fi
BIN=$ROOT/target/release
for b in safegate mine-sim loadgen store-write; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing (run cargo build --release --bins)"
done
[ "$MINES" -ge 1 ] && [ "$MINES" -le 9999 ] || die "BENCH_MINES must be 1 to 9999"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/safegate-bench-mine.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM
MYSID=$(awk '{ sub(/^.*\) /, ""); print $4 }' /proc/$$/stat)

# ---------------------------------------------------------------- phase M: the MQTT batch reference
M_RATE=0; M_LINE="not run (BENCH_MQTT_REF=0)"
if [ "$MQTT_REF" = 1 ]; then
  log "phase M: scripts/bench-ingest.sh, one round of its batch phase T"
  BENCH_KEEP=$KEEP BENCH_BUILD=0 BENCH_ROUNDS=1 BENCH_MESSAGES="$INGEST_M" BENCH_DURABLE=0 BENCH_MAPPED=0 \
    BENCH_ALARM_EVERY=0 BENCH_MEM_DEVICES=1000 BENCH_WAIT_IDLE_S=30 BENCH_TIMEOUT_S="$TIMEOUT_S" \
    timeout $((TIMEOUT_S * 4)) scripts/bench-ingest.sh >"$WORK/ingest.out" 2>"$WORK/ingest.err" \
    || { tail -20 "$WORK/ingest.err" >&2; die "phase M: bench-ingest.sh failed"; }
  M_LINE=$(grep -m1 '^(t) batch topic' "$WORK/ingest.out" || true)
  M_RATE=$(sed -n 's/^(t) batch topic.* \([0-9][0-9]*\) readings\/s.*/\1/p' <<<"$M_LINE")
  [ -n "$M_RATE" ] || die "phase M: no (t) line in bench-ingest.sh's summary"
  M_ROUND=$(grep -m1 '^ *(t) [0-9]' "$WORK/ingest.out" || true)
  log "phase M: $M_RATE readings/s"
fi
# ---------------------------------------------------------------- broker, store, config
start_mosquitto
start_victoria
log "mosquitto on $BROKER, VictoriaMetrics on $VM (pid $VM_PID), temp $WORK"

FTP_PORT=$(free_port)
API_PORT=$(free_port)
# A passive range wide enough for every mine-sim connection at once, below free_port's range
# and the ephemeral ports (thousands of data connections leave their ports in TIME_WAIT).
PASV_LO=$((10000 + RANDOM % 9000))
PASV_HI=$((PASV_LO + 2 * CONC + 63))
WATCH=$WORK/watch
mkdir -p "$WATCH" "$WORK/gw"
# Data times: interval i at START + 10 i s (Beijing time), an hour ago, so every phase's files
# are in the past whatever the pacing.
START=$(date -u -d "@$(( $(date +%s) + 8 * 3600 - 3600 ))" '+%F %T')
START_MS=$(( ($(date -u -d "$START" +%s) - 8 * 3600) * 1000 ))
code_of() { awk -v c="$FIRST_CODE" -v i="$1" 'BEGIN { w = length(c); printf "%0" w ".0f", c + i }'; }

{
  echo "# Generated by scripts/bench-mine-files.sh: $MINES mine sites, each with its KJ system."
  for i in $(seq 0 $((MINES - 1))); do
    id=$(printf 'm%04d' $((i + 1)))
    printf '[[sites]]\nid = "%s"\nname = "模拟煤矿%d"\nkind = "mine"\nmine_code = "%s"\nupload_password_env = "SAFEGATE_BENCH_MINE_PW"\n\n[[systems]]\nid = "%s-kj"\nsite = "%s"\nkind = "major_hazard"\n\n' \
      "$id" $((i + 1)) "$(code_of "$i")" "$id" "$id"
  done
} >"$WORK/gw/inventory.toml"
cat >"$WORK/gw/safegate.toml" <<EOF
# Generated by scripts/bench-mine-files.sh.
include = ["inventory.toml"]

[gateway]
data_dir = "$WORK/gw/data"
max_future_skew_s = 86400

[mqtt]
url = "mqtt://$BROKER"
client_id = "safegate-bench-mine"
qos = 0

[store]
url = "$VM"
org = "bench"
bucket = "bench"

[api]
listen = "127.0.0.1:$API_PORT"

[mine_files]
enabled = true
listen = "127.0.0.1:$FTP_PORT"
passive_ports = [$PASV_LO, $PASV_HI]
# mine-sim keeps one control session per mine open for the whole run.
max_sessions = $((MINES + 256))
idle_timeout_s = 3600
# Nothing goes offline mid-run.
upload_timeout_s = 86400
watch_dir = "$WATCH"
settle_ms = 100
watch_scan_ms = 100
watch_concurrency = $WATCH_CONC
EOF
"$BIN/safegate" check-config "$WORK/gw/safegate.toml" >/dev/null || die "config rejected"

# ---------------------------------------------------------------- gateway and its counters
METRICS=""
scrape() { # sets METRICS: "written dropped depth taken_cdss_applied taken_cdss_duplicate taken_all records"
  METRICS=$(curl -sf --max-time 5 "http://127.0.0.1:$API_PORT/metrics" | awk '
    $1 == "safegate_store_points_written_total" { w = $2 }
    $1 == "safegate_store_points_dropped_total" { d = $2 }
    $1 == "safegate_store_queue_depth" { q = $2 }
    $1 ~ /^safegate_mine_files_taken_total/ { t += $2 }
    $1 ~ /^safegate_mine_files_taken_total/ && /CDSS/ && /outcome="applied"/ { ca += $2 }
    $1 ~ /^safegate_mine_files_taken_total/ && /CDSS/ && /outcome="duplicate"/ { cd += $2 }
    $1 ~ /^safegate_mine_files_records_total/ { r += $2 }
    END { printf "%d %d %d %d %d %d %d", w, d, q, ca, cd, t, r }') || METRICS=""
}

log "starting the gateway with $MINES mine sites"
"$BIN/safegate" run --config "$WORK/gw/safegate.toml" >"$WORK/gw/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
end=$((SECONDS + TIMEOUT_S))
until curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$API_PORT/healthz"; do
  kill -0 "$GW" 2>/dev/null || { tail -20 "$WORK/gw/gateway.log" >&2; die "the gateway exited"; }
  [ $SECONDS -lt $end ] || die "no API after ${TIMEOUT_S}s"
  sleep 0.1
done
wait_port "$FTP_PORT" 30 || die "no FTP server on $FTP_PORT"
# Settled: idle, and one journal cycle (5 s) done.
wait_idle "$GW" 60 || log "WARNING: the gateway is not idle after start"
sleep 6
RSS0=$(rss_kb "$GW" VmRSS)
log "phase 0: VmRSS with $MINES sites and no points: $(mb "$RSS0") MB"

SIM=(--mines "$MINES" --first-code "$FIRST_CODE" --points "$POINTS" --substations "$SUBSTATIONS"
  --interval-s "$INTERVAL_S" --start "$START" --fast --concurrency "$CONC" --timeout-s 60)
SIM_FTP=(--ftp "127.0.0.1:$FTP_PORT" --password-env SAFEGATE_BENCH_MINE_PW)

# Runs mine-sim in the background with the given arguments, its JSON summary to $WORK/$tag.json.
# Sets SIM_PID; sim_wait collects its user+system seconds.
sim_start() { # tag, mine-sim arguments
  local tag=$1; shift
  ( TIMEFORMAT='%3U %3S'; { time timeout "$TIMEOUT_S" "$BIN/mine-sim" "$@" >"$WORK/$tag.json" 2>"$WORK/$tag.err"; } 2>"$WORK/$tag.time" ) &
  SIM_PID=$!
  PIDS+=("$SIM_PID")
}

# Other load skews every figure: before each phase, wait (bounded) until the machine is idle
# for 1 s (under 20 % of one core busy), and keep the load seen for the summary.
BACKGROUND=""
wait_quiet() { # tag
  local end=$((SECONDS + 60)) a0 i0 a1 i1 busy
  while :; do
    read -r a0 i0 < <(cpu_total); sleep 1; read -r a1 i1 < <(cpu_total)
    busy=$(awk -v a="$((a1 - a0))" -v i="$((i1 - i0))" -v n="$(nproc)" \
      'BEGIN { printf "%.0f", (a > 0 ? 100 * n * (a - i) / a : 0) }')
    [ "$busy" -ge 20 ] && [ $SECONDS -lt $end ] || break
  done
  BACKGROUND+="${BACKGROUND:+, }$1 $busy%"
  [ "$busy" -lt 20 ] || log "WARNING: the machine is ${busy}% busy (of $(nproc)00%) before phase $1: figures will be low"
}

# One timed phase: start mine-sim, poll the gateway until mine-sim has ended, the store queue is
# empty and the written counter has grown by at least `want_points`. Sets P_S (seconds), P_SIM
# (its summary), P_CPU (CPU line), P_OTHER.
P_S=0; P_SIM=""; P_CPU=""; P_OTHER=0; P_SIM_S=0
phase() { # tag, want_points, mine-sim arguments
  local tag=$1 want=$2; shift 2
  local w0 t0 t1 g0 g1 v0 v1 f0 sim_done=0 sim_t=0 wr drp depth ca cd tk rec
  wait_quiet "$tag"
  scrape; read -r w0 drp depth ca cd tk rec <<<"$METRICS"
  g0=$(ticks "$GW"); v0=$(ticks "$VM_PID"); f0=$(foreign_snapshot)
  t0=$(now_ns)
  sim_start "$tag" "$@"
  end=$((SECONDS + TIMEOUT_S))
  while :; do
    kill -0 "$GW" 2>/dev/null || { tail -20 "$WORK/gw/gateway.log" >&2; die "the gateway exited"; }
    if [ "$sim_done" = 0 ] && ! kill -0 "$SIM_PID" 2>/dev/null; then
      wait "$SIM_PID" || { cat "$WORK/$tag.err" >&2; die "phase $tag: mine-sim failed: $(tail -1 "$WORK/$tag.json")"; }
      sim_done=1; sim_t=$(now_ns)
    fi
    scrape
    if [ -n "$METRICS" ] && [ "$sim_done" = 1 ]; then
      read -r wr drp depth ca cd tk rec <<<"$METRICS"
      [ "$depth" -eq 0 ] && [ $((wr - w0)) -ge "$want" ] && break
    fi
    [ $SECONDS -lt $end ] || die "phase $tag: not done in ${TIMEOUT_S}s (metrics: ${METRICS:-none})"
    sleep 0.05
  done
  t1=$(now_ns)
  g1=$(ticks "$GW"); v1=$(ticks "$VM_PID")
  P_S=$(secs "$t0" "$t1"); P_SIM_S=$(secs "$t0" "$sim_t")
  P_OTHER=$(foreign_pct "$f0" "$(foreign_snapshot)" "$P_S")
  P_SIM=$(tail -1 "$WORK/$tag.json")
  local simcpu
  simcpu=$(awk -v s="$P_S" '{ printf "%.0f%%", 100 * ($1 + $2) / s }' "$WORK/$tag.time")
  P_CPU="gateway $(pct_of $((g1 - g0)) "$P_S"), mine-sim $simcpu, victoria-metrics $(pct_of $((v1 - v0)) "$P_S"), other programs $P_OTHER%"
  P_WRITTEN=$((wr - w0))
  log "phase $tag: ${P_S} s (mine-sim ${P_SIM_S} s), points written $P_WRITTEN, dropped $drp; CPU $P_CPU"
  log "phase $tag: mine-sim: $P_SIM"
}

# How many samples of the mines' readings VictoriaMetrics holds with data times in [from, to] ms:
# every channel of measurement `reading` but status_code, for the sites m….
vm_count() { # from_ms, to_ms
  curl -sf --max-time 120 "$VM/internal/force_flush" >/dev/null || true
  sleep 1
  curl -sf --max-time 300 -G "$VM/api/v1/export/csv" \
    --data-urlencode 'match[]={__name__=~"reading_.+",__name__!="reading_status_code",site=~"m[0-9]+"}' \
    --data-urlencode 'format=__timestamp__' \
    --data-urlencode "start=$(( $1 / 1000 ))" --data-urlencode "end=$(( $2 / 1000 ))" | wc -l || echo error
}
at_ms() { echo $((START_MS + $1 * INTERVAL_S * 1000)); }

# ---------------------------------------------------------------- phase D: definitions
log "phase D: $MINES CDDY + FZDY by FTP ($TOTAL_POINTS points join)"
phase D 0 "${SIM[@]}" "${SIM_FTP[@]}" --files 1 --only CDDY,FZDY
D_S=$P_S; D_SIM=$P_SIM
[ "$(json_field "$D_SIM" files_ok)" = $((2 * MINES)) ] || die "phase D: not every definition taken: $D_SIM"
wait_idle "$GW" 120 || log "WARNING: the gateway is not idle after the definitions"
sleep 6
RSS1=$(rss_kb "$GW" VmRSS); HWM1=$(rss_kb "$GW" VmHWM)
DEVICES=$(curl -sf --max-time 30 "http://127.0.0.1:$API_PORT/metrics" | awk '$1 ~ /^safegate_devices[{ ]/ || $1 == "safegate_devices" { n += $2 } END { print n + 0 }')
BPP=$(awk -v a="$RSS1" -v b="$RSS0" -v n="$TOTAL_POINTS" 'BEGIN { printf "%.0f", 1024 * (a - b) / n }')
BPP_ALL=$(awk -v a="$RSS1" -v n="$TOTAL_POINTS" 'BEGIN { printf "%.0f", 1024 * a / n }')
log "phase D: VmRSS $(mb "$RSS1") MB (peak $(mb "$HWM1") MB): $BPP bytes/point over phase 0, $BPP_ALL bytes/point in all"

# ---------------------------------------------------------------- phase F: FTP, full intake
WANT=$((TOTAL_POINTS * N))
log "phase F: $((MINES * N)) CDSS files ($WANT points) by FTP, $CONC mines at once"
phase F "$WANT" "${SIM[@]}" "${SIM_FTP[@]}" --from-interval 1 --files "$N" --only CDSS
F_S=$P_S; F_SIM=$P_SIM; F_CPU=$P_CPU; F_SIM_S=$P_SIM_S; F_OTHER=$P_OTHER
F_OK=$(json_field "$F_SIM" files_ok)
F_PTS=$(json_field "$F_SIM" points)
F_VM=$(vm_count "$(at_ms 1)" "$(at_ms "$N")")
F_RATE=$(rate "$F_PTS" "$F_S"); F_FILES=$(rate1 "$F_OK" "$F_S")
F_RSS=$(rss_kb "$GW" VmRSS)
log "phase F: $F_RATE points/s, $F_FILES files/s end to end; VictoriaMetrics holds $F_VM/$WANT"

# ---------------------------------------------------------------- phase X: FTP, duplicates
log "phase X: the same $((MINES * N)) CDSS files again (duplicates: FTP without parse, apply, commit)"
phase X 0 "${SIM[@]}" "${SIM_FTP[@]}" --from-interval 1 --files "$N" --only CDSS
X_S=$P_S; X_SIM=$P_SIM; X_CPU=$P_CPU; X_SIM_S=$P_SIM_S
X_OK=$(json_field "$X_SIM" files_ok)
X_FILES=$(rate1 "$X_OK" "$X_S")
scrape; read -r _ _ _ _ X_DUP _ _ <<<"$METRICS"
log "phase X: $X_FILES files/s ($X_DUP CDSS duplicates counted by the gateway in all)"

# ---------------------------------------------------------------- phase W: watched folder
log "phase W: $((MINES * N)) CDSS files ($WANT points) written into the watched folder"
phase W "$WANT" "${SIM[@]}" --dir "$WATCH" --from-interval $((N + 1)) --files "$N" --only CDSS
W_S=$P_S; W_SIM=$P_SIM; W_CPU=$P_CPU; W_SIM_S=$P_SIM_S
W_OK=$(json_field "$W_SIM" files_ok)
W_PTS=$(json_field "$W_SIM" points)
W_VM=$(vm_count "$(at_ms $((N + 1)))" "$(at_ms $((2 * N)))")
W_RATE=$(rate "$W_PTS" "$W_S"); W_FILES=$(rate1 "$W_OK" "$W_S")
W_LEFT=$(find "$WATCH" -maxdepth 1 -name '*.txt' | wc -l)
W_QUAR=$(find "$WATCH/quarantine" -name '*.txt' ! -name '*.reason.txt' 2>/dev/null | wc -l)
log "phase W: $W_RATE points/s, $W_FILES files/s end to end; VictoriaMetrics holds $W_VM/$WANT; left $W_LEFT, quarantined $W_QUAR"

# ---------------------------------------------------------------- phase G: FTP again, series known
log "phase G: $((MINES * N)) more CDSS files by FTP, the store already knowing every series"
phase G "$WANT" "${SIM[@]}" "${SIM_FTP[@]}" --from-interval $((2 * N + 1)) --files "$N" --only CDSS
G_S=$P_S; G_SIM=$P_SIM; G_CPU=$P_CPU; G_SIM_S=$P_SIM_S
G_OK=$(json_field "$G_SIM" files_ok)
G_PTS=$(json_field "$G_SIM" points)
G_VM=$(vm_count "$(at_ms $((2 * N + 1)))" "$(at_ms $((3 * N)))")
G_RATE=$(rate "$G_PTS" "$G_S"); G_FILES=$(rate1 "$G_OK" "$G_S")
G_INTAKE=$(rate "$G_PTS" "$G_SIM_S"); F_INTAKE=$(rate "$F_PTS" "$F_SIM_S")
log "phase G: $G_RATE points/s, $G_FILES files/s end to end; VictoriaMetrics holds $G_VM/$WANT"
RSS_END=$(rss_kb "$GW" VmRSS); HWM_END=$(rss_kb "$GW" VmHWM)
stop_pid "$GW"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

# ---------------------------------------------------------------- summary
pf() { if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; then echo PASS; else echo MISS; fi; }
TOTAL_S=$(secs "$SCRIPT_START" "$(now_ns)")
{
  echo
  echo "==================== safegate mine-files benchmark ===================="
  echo "host: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo), busy before each phase (of $(nproc)00%): $BACKGROUND; tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src simulators 2>/dev/null || echo ' (modified)'), safegate built $(date -r "$BIN/safegate" '+%F %T'); $(date -u '+%F %H:%M UTC')"
  echo "$MINES mines × $POINTS points ($TOTAL_POINTS points, $SUBSTATIONS substations a mine); $N CDSS files a mine per phase; mine-sim --fast --concurrency $CONC; watch_concurrency $WATCH_CONC"
  echo "(f) FTP, full intake              $F_RATE points/s, $F_FILES files/s end to end ($F_PTS points in $F_OK files, $F_S s: file sent → committed → in VictoriaMetrics; mine-sim done after $F_SIM_S s)"
  echo "    VictoriaMetrics samples        $F_VM/$WANT   [target $TARGET_POINTS points/s: $(pf "$F_RATE" $TARGET_POINTS), $TARGET_FILES files/s: $(pf "$F_FILES" $TARGET_FILES)]"
  echo "    CPU (% of one core)            $F_CPU"
  echo "    committed (mine-sim done)      $F_INTAKE points/s, $(rate1 "$F_OK" "$F_SIM_S") files/s (every 226 is after the commit); the rest is the store writing the first sample of $((TOTAL_POINTS * 2)) new series"
  echo "(g) FTP, full, series known       $G_RATE points/s, $G_FILES files/s end to end ($G_PTS points in $G_OK files, $G_S s; mine-sim done after $G_SIM_S s: $G_INTAKE points/s, $(rate1 "$G_OK" "$G_SIM_S") files/s committed)"
  echo "    VictoriaMetrics samples        $G_VM/$WANT   [target $TARGET_POINTS points/s: $(pf "$G_RATE" $TARGET_POINTS), $TARGET_FILES files/s: $(pf "$G_FILES" $TARGET_FILES)]"
  echo "    CPU (% of one core)            $G_CPU"
  echo "(x) FTP, duplicates (cheap)       $X_FILES files/s ($X_OK files in $X_S s; answered 226 without parse, apply or commit)"
  echo "    CPU (% of one core)            $X_CPU"
  echo "(w) watched folder                $W_RATE points/s, $W_FILES files/s end to end ($W_PTS points in $W_OK files, $W_S s: file written → in VictoriaMetrics; mine-sim done after $W_SIM_S s)"
  echo "    VictoriaMetrics samples        $W_VM/$WANT; left in the folder $W_LEFT, quarantined $W_QUAR"
  echo "    CPU (% of one core)            $W_CPU"
  echo "(m) MQTT batch topic (reference)  $M_RATE readings/s ($M_LINE)"
  [ -z "${M_ROUND:-}" ] || echo "    $M_ROUND" | sed 's/  */ /g'
  echo "    ratios                         (f)/(m) $(ratio "$F_RATE" "$M_RATE"), (g)/(m) $(ratio "$G_RATE" "$M_RATE"), (w)/(m) $(ratio "$W_RATE" "$M_RATE"), (x)/(g) files $(ratio "$X_FILES" "$G_FILES"), (w)/(g) $(ratio "$W_RATE" "$G_RATE")"
  echo "(r) VmRSS                         $(mb "$RSS0") MB with $MINES sites and no points; $(mb "$RSS1") MB with $TOTAL_POINTS points registered (peak $(mb "$HWM1") MB; inventory devices $DEVICES)"
  echo "    bytes/point                    $BPP ((with − before) / points), $BPP_ALL (RSS / points)   [target ≤ $TARGET_BYTES_PER_POINT: $(pf $TARGET_BYTES_PER_POINT "$BPP_ALL")]"
  echo "    later                          $(mb "$F_RSS") MB after (f), $(mb "$RSS_END") MB at the end (peak $(mb "$HWM_END") MB)"
  echo "(d) definitions                   $((2 * MINES)) files (CDDY + FZDY) in $D_S s: $D_SIM"
  echo "script run time                   $TOTAL_S s"
  echo "======================================================================="
}
exit 0
