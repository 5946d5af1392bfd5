"""Reference for scripts/bench-modbus.sh: pymodbus's client reading holding registers on one
loopback TCP connection, one request at a time, for a bounded time.

Usage: pymodbus_client_bench.py PORT UNIT COUNT SECONDS [sync|async]
"""

import asyncio
import sys
import time

from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient


def report(kind, ok, failed, secs, cpu):
    print(
        f"pymodbus-{kind} requests={ok} failed={failed} seconds={secs:.2f} rps={ok / secs:.0f} "
        f"cpu_s={cpu:.2f} per_cpu_s={ok / cpu:.0f}"
    )


def run_sync(port, unit, count, seconds):
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=1)
    if not client.connect():
        sys.exit(f"cannot connect to 127.0.0.1:{port}")
    ok = failed = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        r = client.read_holding_registers(0, count=count, device_id=unit)
        if r.isError() or len(r.registers) != count:
            failed += 1
        else:
            ok += 1
    report("sync", ok, failed, time.perf_counter() - start, time.process_time() - cpu0)
    client.close()


async def run_async(port, unit, count, seconds):
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1)
    if not await client.connect():
        sys.exit(f"cannot connect to 127.0.0.1:{port}")
    ok = failed = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        r = await client.read_holding_registers(0, count=count, device_id=unit)
        if r.isError() or len(r.registers) != count:
            failed += 1
        else:
            ok += 1
    report("async", ok, failed, time.perf_counter() - start, time.process_time() - cpu0)
    client.close()


def main():
    port, unit, count, seconds = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    mode = sys.argv[5] if len(sys.argv) > 5 else "sync"
    if mode == "async":
        asyncio.run(run_async(port, unit, count, seconds))
    else:
        run_sync(port, unit, count, seconds)


if __name__ == "__main__":
    main()
