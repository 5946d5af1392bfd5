# Helpers shared by scripts/bench-ingest.sh and scripts/bench-api.sh (sourced, not run).
# They expect the sourcing script to define `log`, `HZ`, `WORK`, `PIDS` and `KEEP`.

die() { log "FAILED: $*"; exit 1; }

now_ns() { date +%s%N; }

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

cleanup() {
  local rc=$? p i
  trap - EXIT INT TERM
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
  exit "$rc"
}

# Wait until something listens on a loopback port; 1 when it does not within the bound.
wait_port() { # port, seconds
  local end=$((SECONDS + $2))
  until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    [ $SECONDS -lt $end ] || return 1
    sleep 0.05
  done
}

# A free loopback port: nothing answers on it (a small race with other programs is accepted).
# Optionally from [lo, lo + span): below 32768, a port free now is not taken meanwhile by the
# local end of some connection (the kernel's ephemeral range).
free_port() { # [lo, span]
  local p i
  for i in $(seq 200); do
    p=$((${1:-20000} + RANDOM % ${2:-40000}))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  die "no free port found"
}

ticks() { # utime+stime of a process (all threads)
  awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# Wait until a process has used no CPU for 0.5 s (the broker has finished taking a preload).
wait_idle() { # pid, seconds
  local end=$((SECONDS + $2)) last cur quiet=0
  last=$(ticks "$1")
  while [ $SECONDS -lt $end ]; do
    sleep 0.1
    cur=$(ticks "$1")
    if [ "$cur" = "$last" ]; then
      quiet=$((quiet + 1)); [ $quiet -ge 5 ] && return 0
    else quiet=0; fi
    last=$cur
  done
  return 1
}

pct_of() { awk -v t="$1" -v s="$2" -v hz="$HZ" 'BEGIN { printf "%.0f%%", (s > 0 ? 100 * t / (s * hz) : 0) }'; } # ticks, seconds

stop_pid() { # pid: TERM, bounded wait, KILL
  local i
  kill -TERM "$1" 2>/dev/null || true
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

foreign_snapshot() {
  # A process that exits between the glob and the read makes cat fail: under pipefail and
  # set -e that would end the calling script.
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v me="$MYSID" '
    { pid = $1; sub(/^.*\) /, ""); if ($4 != 0 && $4 != me) print pid, $12 + $13 + $14 + $15 }'
}

foreign_pct() { # snapshot0, snapshot1, seconds → % of one core
  awk -v s="$3" -v hz="$HZ" 'NR == FNR { t0[$1] = $2; next } { d += $2 - ($1 in t0 ? t0[$1] : 0) }
    END { printf "%.0f", (s > 0 ? 100 * d / (s * hz) : 0) }' <(printf '%s\n' "$1") <(printf '%s\n' "$2")
}

cpu_total() { awk '/^cpu / { print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat; }

# Of an even count, the mean of the middle two: whole for whole numbers (rates), to 2 places
# for fractions (µs a reading).
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else { m = (a[NR / 2] + a[NR / 2 + 1]) / 2; print (a[NR / 2] ~ /\./ ? sprintf("%.2f", m) : int(m)) } }'; }

# Install with apt-get the Debian packages whose command is missing: "command:package" words.
need_packages() {
  local need=() w c
  for w in "$@"; do
    c=${w%%:*}
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || need+=("${w#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  log "installing Debian packages: ${need[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# Start Mosquitto (config/bench/mosquitto.conf) on a free 127.0.0.1 port, its files in $WORK;
# sets MQ_PORT, MOSQ_PID and BROKER and adds it to PIDS (stopped by cleanup).
start_mosquitto() {
  MQ_PORT=$(free_port)
  sed "s/@PORT@/$MQ_PORT/" config/bench/mosquitto.conf >"$WORK/mosquitto.conf"
  "$MOSQUITTO" -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
  MOSQ_PID=$!
  PIDS+=("$MOSQ_PID")
  wait_port "$MQ_PORT" 10 || { cat "$WORK/mosquitto.log" >&2; die "mosquitto did not listen on $MQ_PORT"; }
  BROKER=127.0.0.1:$MQ_PORT
}

# Start VictoriaMetrics on a free 127.0.0.1 port, its data in $WORK/vm, and wait until it is
# healthy; sets VM_PORT, VM_PID and VM and adds it to PIDS. Arguments, if any, are a command to
# start it under (taskset -c 1).
start_victoria() {
  VM_PORT=$(free_port)
  mkdir -p "$WORK/vm"
  "$@" victoria-metrics -httpListenAddr="127.0.0.1:$VM_PORT" -storageDataPath="$WORK/vm" \
    -retentionPeriod=100y -loggerLevel=ERROR >"$WORK/vm.log" 2>&1 &
  VM_PID=$!
  PIDS+=("$VM_PID")
  VM=http://127.0.0.1:$VM_PORT
  local end=$((SECONDS + 30))
  until curl -sf --max-time 2 "$VM/health" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || { cat "$WORK/vm.log" >&2; die "VictoriaMetrics not healthy on $VM_PORT"; }
    sleep 0.2
  done
}

# How many reading_v samples VictoriaMetrics ($VM) holds for site $1 (within a day of now),
# after flushing what it has buffered; "error" when it does not answer within $2 s (120).
# The sleep: flushed data becomes searchable within a second (VictoriaMetrics' own cache).
# VictoriaMetrics' own count of line-protocol writes and of rows read from them: "requests rows".
# (Counts the gateway's posts; store-write's, through the same path, do not show in it: not
# used for phase R.)
vm_writes() {
  curl -sf --max-time 5 "$VM/metrics" | awk '
    /^vm_http_requests_total\{path="\/influx\/write"/ { q = $NF }
    /^vm_protoparser_rows_read_total\{type="influx"\}/ { n = $NF }
    END { printf "%d %d\n", q, n }' || echo "0 0"
}

# The writes between two vm_writes snapshots: "N posts, M rows a post".
vm_posts() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); q = y[1] - x[1]; n = y[2] - x[2];
    printf "%d posts to the store, %.0f rows a post", q, (q > 0 ? n / q : 0) }'
}

vm_samples() {
  local now_s n
  curl -sf --max-time 120 "$VM/internal/force_flush" >/dev/null || true
  sleep 1
  now_s=$(date +%s)
  n=$(curl -sf --max-time "${2:-120}" -G "$VM/api/v1/export/csv" \
    --data-urlencode "match[]=reading_v{site=\"$1\"}" --data-urlencode 'format=__timestamp__' \
    --data-urlencode "start=$((now_s - 86400))" --data-urlencode "end=$((now_s + 86400))" \
    | wc -l) || n=error
  echo "$n"
}
