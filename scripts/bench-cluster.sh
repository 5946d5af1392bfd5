#!/usr/bin/env bash
# Cluster benchmark (issue #19): readings/s through one gateway alone, one gateway in cluster
# mode and three gateways in cluster mode, in one run on this machine, loopback only.
#
#   scripts/bench-cluster.sh                                  # release build first
#   BENCH_BUILD=0 BENCH_MESSAGES=100000 scripts/bench-cluster.sh
#
# Every phase preloads the same backlog into the consumers' offline persistent sessions
# (Mosquitto queues it, QoS 1), then starts the gateways and times them from their start until
# every reading is in the store (VictoriaMetrics, de-duplication on as a cluster deployment
# runs it) and, in cluster mode, every instance has applied every reading:
#   S   one gateway, no [cluster]: MQTT → core → outbox → store (the single-process path)
#   C1  one gateway with [cluster] on 3 nats-server nodes (stream and leases with 3 replicas):
#       MQTT → relay → JetStream (PUBACK after JetStream's) → follower → core, and the
#       partition writers → outbox → store. C1 / S is the cost of the JetStream hop.
#   C3  three gateways sharing the subscription ($share/safegate/…) and the partitions
#   F   after C3: `kill -9` of one gateway; the time until the survivors own every partition
#       again (their partition writers start within 0.2 s of taking one).
# Each phase reports readings/s, the gateways' CPU per reading (utime + stime, start-up
# included) and the NATS servers' CPU per reading. The readings are spread over 16 sites (so
# over the partitions) in messages of BENCH_PER readings; the store must hold exactly
# BENCH_MESSAGES readings after each phase. NATS is started afresh for each cluster phase (an
# instance applies the stream from its start).
#
# Environment (defaults): BENCH_MESSAGES=200000 BENCH_DEVICES=1600 BENCH_SITES=16
#   BENCH_PER=250 BENCH_TIMEOUT_S=300 BENCH_BUILD=1 BENCH_KEEP=0
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/bench-lib.sh

M=${BENCH_MESSAGES:-200000}
DEVICES=${BENCH_DEVICES:-1600}
SITES=${BENCH_SITES:-16}
PER=${BENCH_PER:-250}
TIMEOUT_S=${BENCH_TIMEOUT_S:-300}
BUILD=${BENCH_BUILD:-1}
KEEP=${BENCH_KEEP:-0}
HZ=$(getconf CLK_TCK)
PARTITIONS=16
log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
us_per() { awk -v t="$1" -v hz="$HZ" -v n="$2" 'BEGIN { printf "%.2f", (n > 0 ? 1e6 * t / hz / n : 0) }'; }
[ $((M % (PER * SITES))) = 0 ] || die "BENCH_MESSAGES must be a multiple of BENCH_PER × BENCH_SITES"
[ $((DEVICES % SITES)) = 0 ] || die "BENCH_DEVICES must be a multiple of BENCH_SITES"

need_packages mosquitto:mosquitto victoria-metrics:victoria-metrics curl:curl nats-server:nats-server
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [ "$BUILD" = 1 ]; then
  log "cargo build --release --bins"
  cargo build --release --bins --locked >&2
fi
BIN=$ROOT/target/release
for b in safegate loadgen; do [ -x "$BIN/$b" ] || die "$BIN/$b is missing"; done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/safegate-bench-cluster.XXXXXX")
PIDS=()
trap cleanup EXIT
trap 'exit 130' INT TERM

start_mosquitto
VM_PORT=$(free_port)
mkdir -p "$WORK/vm"
victoria-metrics -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$WORK/vm" \
  -retentionPeriod=100y -loggerLevel=ERROR -dedup.minScrapeInterval=1ms >"$WORK/vm.log" 2>&1 &
VM_PID=$!
PIDS+=("$VM_PID")
VM=http://127.0.0.1:$VM_PORT
until curl -sf --max-time 2 "$VM/health" >/dev/null 2>&1; do sleep 0.2; done
log "mosquitto on $BROKER, VictoriaMetrics on $VM, temp $WORK"

NATS_PIDS=()
NATS_URLS=""
# Below the kernel's ephemeral range (32768 and up): a port free now is not taken meanwhile by
# the local end of some connection (it was, once, for a route port).
low_port() {
  local p i
  for i in $(seq 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port found"
}
start_nats() { # dir: three fresh nodes
  local d=$1 i ports=() routes=() r
  mkdir -p "$d"
  for i in 0 1 2; do ports[i]=$(low_port); routes[i]=$(low_port); done
  r=$(printf 'nats-route://127.0.0.1:%s,' "${routes[@]}"); r=${r%,}
  NATS_PIDS=(); NATS_URLS=""
  for i in 0 1 2; do
    cat >"$d/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${ports[i]}
jetstream { store_dir: "$d/n$i" }
cluster {
  name: sg
  listen: 127.0.0.1:${routes[i]}
  routes: [${r//,/, }]
}
EOF
    nats-server -c "$d/n$i.conf" >"$d/n$i.log" 2>&1 &
    NATS_PIDS+=("$!"); PIDS+=("$!")
    NATS_URLS+="\"nats://127.0.0.1:${ports[i]}\", "
  done
  for i in 0 1 2; do wait_port "${ports[i]}" 20 || die "nats-server n$i did not listen"; done
  NATS_URLS="[${NATS_URLS%, }]"
}
stop_nats() { local p; for p in "${NATS_PIDS[@]}"; do stop_pid "$p"; done; NATS_PIDS=(); }

write_config() { # dir, api_port, inventory, [instance id]
  local cluster=""
  if [ -n "${4:-}" ]; then
    cluster=$'[cluster]\n'"nats_urls = $NATS_URLS"$'\n'"instance_id = \"$4\""$'\nlease_ttl_s = 6\nrenew_every_s = 1\n'
  fi
  cat >"$1/safegate.toml" <<EOF
# Generated by scripts/bench-cluster.sh.
include = ["$3"]
$cluster
[gateway]
data_dir = "$1/data"
max_future_skew_s = 86400

[mqtt]
url = "mqtt://$BROKER"
client_id = "sg"
qos = 1
ack = "after_commit"

[store]
url = "$VM"
org = "bench"
bucket = "bench"

[api]
listen = "127.0.0.1:$2"
EOF
}

# Over the gateways on these API ports: "accepted_min written depth stored ack_lost".
scrape_all() {
  local p a w q c l min="" wsum=0 qsum=0 csum=0 lsum=0
  for p in "$@"; do
    read -r a w q c l < <(curl -sf --max-time 2 "http://127.0.0.1:$p/metrics" | awk '
      $1 == "safegate_readings_accepted_total" { a = $2 }
      $1 == "safegate_store_points_written_total" { w = $2 }
      $1 == "safegate_store_queue_depth" { q = $2 }
      $1 ~ /^safegate_cluster_stored_total.*committed/ { c = $2 }
      $1 ~ /^safegate_cluster_stored_total.*ack_lost/ { l = $2 }
      END { printf "%d %d %d %d %d\n", a, w, q, c, l }' || echo "0 0 0 0 0")
    if [ -z "$min" ] || [ "$a" -lt "$min" ]; then min=$a; fi
    wsum=$((wsum + w)); qsum=$((qsum + q)); csum=$((csum + c)); lsum=$((lsum + l))
  done
  echo "$min $wsum $qsum $csum $lsum"
}

vm_readings() { # readings of this phase's sites in the store
  curl -sf --max-time 60 "$VM/internal/force_flush" >/dev/null || true
  sleep 1
  local now_s; now_s=$(date +%s)
  curl -sf --max-time 120 -G "$VM/api/v1/export/csv" \
    --data-urlencode "match[]=reading_v{site=~\"$1-.*\"}" --data-urlencode 'format=__timestamp__' \
    --data-urlencode "start=$((now_s - 86400 * 3))" --data-urlencode "end=$((now_s + 86400))" | wc -l
}

declare -A RATE US NATS_US OK DESC
GW_PIDS=(); GW_PORTS=()
phase() { # name, instances (0: no [cluster])
  local P=$1 n=$2 i d ids=() t0 t1 end acc wr q com lost g0=0 g1=0 n0=0 n1=0 p s vm
  # Sites of their own (bench<phase>-0 …): the store's count is this phase's alone.
  local site=bench${P,,} k
  : >"$WORK/inventory-$P.toml"
  for k in $(seq 0 $((SITES - 1))); do
    "$BIN/loadgen" inventory --site "$site-$k" --devices $((DEVICES / SITES)) --interval-s 10 >>"$WORK/inventory-$P.toml"
  done
  log "phase $P: preload $M readings, then $([ "$n" = 0 ] && echo "one gateway alone" || echo "$n gateway(s) in cluster mode") drain them"
  [ "$n" = 0 ] || start_nats "$WORK/nats-${P,,}"
  GW_PIDS=(); GW_PORTS=()
  if [ "$n" = 0 ]; then ids=(""); else for i in $(seq "$n"); do ids+=("gw-$i"); done; fi
  for i in "${!ids[@]}"; do
    d=$WORK/${P,,}-$i; mkdir -p "$d"; GW_PORTS[i]=$(free_port)
    write_config "$d" "${GW_PORTS[i]}" "$WORK/inventory-$P.toml" "${ids[i]}"
    "$BIN/safegate" check-config "$d/safegate.toml" >/dev/null || die "phase $P config rejected"
    if [ -n "${ids[i]}" ]; then
      "$BIN/loadgen" session --broker "$BROKER" --client-id "sg-${ids[i]}" --filter '$share/safegate/safegate/v1/#' --qos 1 || die "session"
    else
      "$BIN/loadgen" session --broker "$BROKER" --client-id sg --filter 'safegate/v1/#' --qos 1 || die "session"
    fi
  done
  # A batch message is one site's: each site's share in turn.
  for k in $(seq 0 $((SITES - 1))); do
    "$BIN/loadgen" publish --broker "$BROKER" --site "$site-$k" --devices $((DEVICES / SITES)) \
      --count $((M / PER / SITES)) --per-message "$PER" --qos 1 --max-duration-s "$TIMEOUT_S" >/dev/null || die "preload"
  done
  wait_idle "$MOSQ_PID" 120 || die "broker still busy after the preload"
  for p in "${NATS_PIDS[@]}"; do n0=$((n0 + $(ticks "$p"))); done
  t0=$(now_ns)
  for i in "${!ids[@]}"; do
    d=$WORK/${P,,}-$i
    "$BIN/safegate" run --config "$d/safegate.toml" >"$d/gateway.log" 2>&1 &
    GW_PIDS[i]=$!; PIDS+=("$!")
  done
  end=$((SECONDS + TIMEOUT_S))
  local next_line=$((SECONDS + 2))
  while :; do
    read -r acc wr q com lost < <(scrape_all "${GW_PORTS[@]}")
    if [ $SECONDS -ge $next_line ]; then
      log "phase $P after $(secs "$t0" "$(now_ns)") s: applied $acc (the slowest instance), written $wr, queued $q, committed by partition writers $com, acknowledgements lost $lost"
      next_line=$((SECONDS + 2))
    fi
    # Every reading applied by every instance; every reading written (alone: and a
    # device_state point per device; in cluster mode: the partition writers committed every
    # reading and the store took at least as many points), the queues empty.
    if [ "$n" = 0 ]; then
      if [ "$acc" -ge "$M" ] && [ "$wr" -ge $((M + DEVICES)) ] && [ "$q" = 0 ]; then break; fi
    elif [ "$acc" -ge "$M" ] && [ "$com" -ge "$M" ] && [ "$wr" -ge "$com" ] && [ "$q" = 0 ]; then
      break
    fi
    for p in "${GW_PIDS[@]}"; do kill -0 "$p" 2>/dev/null || die "phase $P: a gateway exited"; done
    [ $SECONDS -lt $end ] || die "phase $P: not drained in ${TIMEOUT_S}s (accepted $acc, written $wr, queued $q)"
    sleep 0.05
  done
  t1=$(now_ns)
  for p in "${GW_PIDS[@]}"; do g1=$((g1 + $(ticks "$p"))); done
  for p in "${NATS_PIDS[@]}"; do n1=$((n1 + $(ticks "$p"))); done
  s=$(secs "$t0" "$t1")
  vm=$(vm_readings "$site")
  RATE[$P]=$(rate "$M" "$s"); US[$P]=$(us_per "$g1" "$M"); NATS_US[$P]=$(us_per $((n1 - n0)) "$M")
  OK[$P]=$([ "$vm" = "$M" ] && echo 1 || echo 0)
  DESC[$P]="$M readings in $s s; gateways' CPU ${US[$P]} µs/reading, nats-server ${NATS_US[$P]} µs/reading; store holds $vm of $M"
  log "phase $P: ${RATE[$P]} readings/s (${DESC[$P]})"
}

failover() { # after C3: kill -9 gw-2, time until gw-1 and gw-3 own every partition
  local t0 t1 end owned
  stop_pid_kill() { kill -KILL "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
  t0=$(now_ns)
  stop_pid_kill "${GW_PIDS[1]}"
  end=$((SECONDS + 60))
  while :; do
    owned=$( (curl -sf --max-time 1 "http://127.0.0.1:${GW_PORTS[0]}/api/v1/cluster"; echo; curl -sf --max-time 1 "http://127.0.0.1:${GW_PORTS[2]}/api/v1/cluster") |
      grep -o '"owned":\[[0-9,]*\]' | grep -o '[0-9]\+' | sort -u | wc -l)
    [ "$owned" -ge "$PARTITIONS" ] && break
    [ $SECONDS -lt $end ] || die "failover: not every partition owned within 60 s"
    sleep 0.1
  done
  t1=$(now_ns)
  FAILOVER=$(secs "$t0" "$t1")
  log "phase F: after kill -9 of one of 3, every partition owned again in $FAILOVER s (lease 6 s, rounds of 1 s)"
}

stop_gateways() { local p; for p in "${GW_PIDS[@]}"; do stop_pid "$p"; done; }

phase S 0; stop_gateways
phase C1 1; stop_gateways; stop_nats
phase C3 3; failover; stop_gateways; stop_nats

echo
echo "== cluster benchmark: $M readings over $SITES sites in messages of $PER, QoS 1 after commit; $(nproc) CPUs =="
for P in S C1 C3; do
  printf '%-3s %8s readings/s  %s%s\n' "$P" "${RATE[$P]}" "${DESC[$P]}" "$([ "${OK[$P]}" = 1 ] || echo '  [STORE COUNT WRONG]')"
done
awk -v s="${RATE[S]}" -v c1="${RATE[C1]}" -v c3="${RATE[C3]}" -v us="${US[S]}" -v u1="${US[C1]}" -v u3="${US[C3]}" 'BEGIN {
  printf "C1 / S = %.2f (the JetStream hop), C3 / C1 = %.2f; gateway CPU C1 / S = %.2f, C3 / S = %.2f\n", c1 / s, c3 / c1, u1 / us, u3 / us }'
echo "failover after kill -9: every partition owned again in $FAILOVER s"
for P in S C1 C3; do [ "${OK[$P]}" = 1 ] || exit 1; done
