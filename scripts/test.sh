#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain.
# Installs the Debian packages the tests need when they are missing (Mosquitto, VictoriaMetrics,
# mbpoll, socat, SIPp, curl, nats-server, Chromium and its chromedriver for the console's browser test, Prometheus
# and promtool) and pymodbus and schemathesis from PyPI, then checks formatting and lints and runs every test.
# Tests start their own broker and store processes on free 127.0.0.1 ports and stop them when done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || need+=(mosquitto)
command -v victoria-metrics >/dev/null 2>&1 || need+=(victoria-metrics)
command -v mbpoll >/dev/null 2>&1 || need+=(mbpoll)
command -v socat >/dev/null 2>&1 || need+=(socat)
# SIPp plays GB/T 28181 devices against the video core (tests/it/video_sipp.rs).
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-pip)
# The web console's test drives headless Chromium over WebDriver (tests/it/console.rs).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# promtool lints /metrics and a real Prometheus server scrapes it (tests/it/prometheus.rs).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# A 3-node NATS JetStream cluster carries cluster mode's leases (tests/it/cluster.rs).
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
# A Chinese font, so the console's screenshots are legible (the checks read text, not pixels).
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# pymodbus: the independent Modbus server the decoder is checked against (tests/py/).
if ! python3 -c 'import pymodbus' >/dev/null 2>&1; then
  echo "installing pymodbus from PyPI"
  python3 -m pip install --quiet 'pymodbus==3.16.*' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'pymodbus==3.16.*'
fi
# schemathesis: the OpenAPI document checked against a running gateway (tests/it/schemathesis.rs).
if ! python3 -c 'import schemathesis' >/dev/null 2>&1; then
  echo "installing schemathesis from PyPI"
  python3 -m pip install --quiet 'schemathesis==4.*' 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages 'schemathesis==4.*'
fi

# Incremental caches only help repeated local builds; on a clean CI clone they double the disk used.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# A production build has no simulators: it must build without the demo feature.
cargo clippy --lib --bins --no-default-features --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets --locked 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
