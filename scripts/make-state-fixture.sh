#!/usr/bin/env bash
# Make tests/data/state-v0.db: a state.db written by a release of safegate itself (not by hand),
# for the test that the journal opens and migrates the files of earlier releases
# (src/state/schema.rs). Run it with the release to capture, once; the file is committed.
#
#   SAFEGATE_BIN=target/release/safegate scripts/make-state-fixture.sh [out.db]
#
# What the file holds: site p1 with detectors g1 (an alarm raised at 30 %LEL and acknowledged)
# and o1 (online, then offline after its 1 s deadline), the registry rows, a link up and down,
# last-seen times and latency counts. Needs mosquitto, mosquitto_pub, curl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SAFEGATE_BIN:-target/release/safegate}
OUT=${1:-tests/data/state-v0.db}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MQ=$(port); API=$(port)
mosquitto -p "$MQ" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/safegate.toml" <<EOF
[mqtt]
url = "mqtt://127.0.0.1:$MQ"
client_id = "fixture"
[api]
listen = "127.0.0.1:$API"
[gateway]
data_dir = "$WORK/state"
[[sites]]
id = "p1"
name = "Park"
kind = "park"
[[devices]]
id = "g1"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 60
[[devices]]
id = "o1"
site = "p1"
kind = "gas_combustible"
protocol = "mqtt"
interval_s = 0.5
offline_after_s = 1
EOF
"$BIN" run --config "$WORK/safegate.toml" >"$WORK/gateway.log" 2>&1 &
GW=$!
PIDS+=("$GW")
# Bounded waits on conditions.
until curl -sf "http://127.0.0.1:$API/readyz" | grep -q '"connected":true'; do sleep 0.1; done
pub() { mosquitto_pub -p "$MQ" -q 1 -t "safegate/v1/p1/$1/data" -m "$2"; }
pub g1 '{"values": {"lel": 10.0}}'
pub g1 '{"values": {"lel": 30.0}}'
pub o1 '{"values": {"lel": 1.0}}'
for _ in $(seq 100); do
  n=$(curl -sf "http://127.0.0.1:$API/api/v1/alarms" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["alarms"]))')
  [ "$n" -ge 2 ] && break
  sleep 0.1
done
ID=$(curl -sf "http://127.0.0.1:$API/api/v1/alarms" | python3 -c \
  'import json,sys; print([a["id"] for a in json.load(sys.stdin)["alarms"] if a["device"] == "g1"][0])')
curl -sf -X POST -H 'content-type: application/json' -d '{"by": "fixture", "note": "made by make-state-fixture.sh"}' \
  "http://127.0.0.1:$API/api/v1/alarms/$ID/ack" >/dev/null
kill -TERM "$GW"
wait "$GW" || true
mkdir -p "$(dirname "$OUT")"
cp "$WORK/state/state.db" "$OUT"
echo "wrote $OUT ($("$BIN" --version)); $(python3 -c "import sqlite3; c=sqlite3.connect('$OUT'); print(c.execute('PRAGMA user_version').fetchone()[0])") is its user_version"
