#!/usr/bin/env bash
# GB/T 28181 benchmark (issue 16, acceptance 5), on 127.0.0.1 only:
#
#   scripts/bench-video.sh                         # release build, then the run
#   BENCH_BUILD=0 BENCH_DEVICES=2000 scripts/bench-video.sh   # quicker
#   BENCH_BUILD=0 BENCH_BIN_DIR=target/debug BENCH_DEVICES=500 …     # the script itself, on a debug build
#
# One gateway (embedded broker, no store: the readings' way to the store is issue 18's
# benchmark) with BENCH_DEVICES NVRs of protocol gb28181 (no cameras) in 10 sites, its SIP
# endpoint on a free loopback port. video-sim (release) plays them from BENCH_SOURCES source
# addresses (127.0.0.2 …; the gateway bounds messages per address, 200/s by default): each
# registers with its digest, then keeps alive every BENCH_KEEPALIVE_MS (real devices: 60 s;
# compressed to 1 s, 10,000 devices send 10,000 keepalives/s). After BENCH_WARMUP_S (the
# registrations) it measures for the rest of BENCH_DURATION_S:
#   - keepalives answered per second, and the keepalive → 200 round trip p50/p99/max at the
#     device. The endpoint hands a keepalive's reading to the core's queue before it answers,
#     so the round trip bounds the time from the keepalive to the device's liveness taken.
#   - the gateway's CPU over the phase (/proc/<pid>/stat, % of one core, and µs per keepalive)
#     and its resident memory sampled every second (peak and at the end);
#   - then every device online in /api/v1/sites (the liveness itself, not just the answers).
# Exit status: 0 measured (figures reported, no target enforced); 1 a step failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/bench-lib.sh

DEVICES=${BENCH_DEVICES:-10000}
SOURCES=${BENCH_SOURCES:-100}
KEEPALIVE_MS=${BENCH_KEEPALIVE_MS:-1000}
DURATION_S=${BENCH_DURATION_S:-40}
WARMUP_S=${BENCH_WARMUP_S:-10}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
HZ=$(getconf CLK_TCK)
SERVER_ID=34020000002000000001
export SAFEGATE_BENCH_VIDEO_PW=bench-digest-pw

log() { printf '[bench-video %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

WORK=$(mktemp -d)
PIDS=()
trap cleanup EXIT INT TERM

if [ "$BUILD" = 1 ]; then
  log "building release binaries"
  cargo build --release --quiet --bin safegate --bin video-sim
fi
BIN_DIR=${BENCH_BIN_DIR:-$ROOT/target/release}
GW_BIN=$BIN_DIR/safegate
SIM_BIN=$BIN_DIR/video-sim
[ -x "$GW_BIN" ] && [ -x "$SIM_BIN" ] || die "release binaries missing (BENCH_BUILD=1 builds them)"

API=$(free_port)
MQTT=$(free_port)
SIP=$(free_port)
mkdir -p "$WORK/inventory" "$WORK/data"
cat >"$WORK/safegate.toml" <<EOF
include = ["inventory/*.toml"]

[gateway]
data_dir = "$WORK/data"

[mqtt]
embedded = true
listen = "127.0.0.1:$MQTT"
client_id = "bench-video"

[api]
listen = "127.0.0.1:$API"

[video]
listen = "127.0.0.1:$SIP"
server_id = "$SERVER_ID"
password_env = "SAFEGATE_BENCH_VIDEO_PW"
keepalive_s = 5
EOF
# The inventory: 10 mine sites, each with a video system, the NVRs spread over them. The IDs
# are video-sim's: <domain>118<0000001…>.
awk -v n="$DEVICES" 'BEGIN {
  for (s = 0; s < 10; s++) {
    printf "[[sites]]\nid = \"v%02d\"\nname = \"Video site %d\"\nkind = \"mine\"\n\n", s, s
    printf "[[systems]]\nid = \"cctv\"\nsite = \"v%02d\"\nkind = \"video_monitoring\"\n\n", s
  }
  for (i = 1; i <= n; i++) {
    printf "[[devices]]\nid = \"nvr%05d\"\nsite = \"v%02d\"\nkind = \"video\"\nsystem = \"cctv\"\n", i, i % 10
    printf "protocol = \"gb28181\"\ngb_id = \"3402000000118%07d\"\ninterval_s = 60\n\n", i
  }
}' >"$WORK/inventory/video.toml"

log "gateway with $DEVICES gb28181 devices, SIP on 127.0.0.1:$SIP"
"$GW_BIN" run --config "$WORK/safegate.toml" >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
wait_port "$API" 120 || die "the gateway's API never opened (see $WORK/gateway.log)"
until curl -sf "http://127.0.0.1:$API/readyz" >/dev/null; do
  kill -0 "$GW" 2>/dev/null || die "the gateway stopped: $(tail -5 "$WORK/gateway.log")"
  sleep 0.2
done
RSS_IDLE=$(rss_kb "$GW")

log "video-sim: $DEVICES devices from $SOURCES addresses, a keepalive every $KEEPALIVE_MS ms, ${DURATION_S} s (warm-up ${WARMUP_S} s)"
"$SIM_BIN" --server "127.0.0.1:$SIP" --server-id "$SERVER_ID" --password-env SAFEGATE_BENCH_VIDEO_PW \
  --nvrs "$DEVICES" --channels 0 --keepalive-ms "$KEEPALIVE_MS" --sources "$SOURCES" \
  --duration-s "$DURATION_S" --warmup-s "$WARMUP_S" >"$WORK/sim.json" &
SIM=$!
PIDS+=("$SIM")
sleep "$WARMUP_S"
T0=$(ticks "$GW"); N0=$(now_ns); PEAK=0
while kill -0 "$SIM" 2>/dev/null; do
  r=$(rss_kb "$GW"); [ "$r" -gt "$PEAK" ] && PEAK=$r
  # Online devices while the keepalives flow, before the sim stops and they go silent.
  ONLINE=$(curl -s "http://127.0.0.1:$API/api/v1/sites" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["region"]["devices"]["online"])' 2>/dev/null || echo 0)
  sleep 1
done
T1=$(ticks "$GW"); N1=$(now_ns)
wait "$SIM" || die "video-sim failed"
SUMMARY=$(cat "$WORK/sim.json")
RSS_END=$(rss_kb "$GW")
S=$(secs "$N0" "$N1")
ANSWERED=$(sed -n 's/.*"keepalives_answered":\([0-9]*\).*/\1/p' <<<"$SUMMARY")
CPU=$(awk -v t=$((T1 - T0)) -v hz="$HZ" -v s="$S" 'BEGIN { printf "%.1f", 100 * t / hz / s }')
US=$(awk -v t=$((T1 - T0)) -v hz="$HZ" -v n="$ANSWERED" 'BEGIN { printf "%.1f", (n > 0 ? 1e6 * t / hz / n : 0) }')

echo "video-sim: $SUMMARY"
echo "devices:                 $DEVICES (online in /api/v1/sites during the run: ${ONLINE:-?})"
echo "gateway CPU:             $CPU % of one core over ${S} s ($US µs per keepalive answered)"
echo "gateway resident memory: idle $(mb "$RSS_IDLE") MB, peak $(mb "$PEAK") MB, end $(mb "$RSS_END") MB"
[ "${ONLINE:-0}" = "$DEVICES" ] || die "not every device was online (${ONLINE:-?} of $DEVICES)"
