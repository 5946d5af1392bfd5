"""An independent Modbus TCP server (pymodbus) serving known typed values.

Usage: pymodbus_server.py PORT SPEC_JSON
SPEC_JSON is a list of {"unit", "table", "address", "type", "word_order", "byte_swap", "raw"}.
Each value is encoded here with Python's struct module (big-endian "ABCD" bytes, then the
byte swap and word order asked for), independently of the gateway's Rust decoder.
Prints "ready" once listening; stops when stdin closes or after 120 s.
"""

import asyncio
import json
import logging
import socket
import struct
import sys

from pymodbus.datastore import (
    ModbusDeviceContext,
    ModbusSequentialDataBlock,
    ModbusServerContext,
)
from pymodbus.server import StartAsyncTcpServer

FORMATS = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f"}


def words(kind, word_order, byte_swap, raw):
    if kind == "bool":
        return [1 if raw else 0]
    value = float(raw) if kind == "f32" else int(raw)
    data = struct.pack(FORMATS[kind], value)
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_swap:
        pairs = [p[::-1] for p in pairs]
    if word_order == "little":
        pairs.reverse()
    return [struct.unpack(">H", p)[0] for p in pairs]


def build(spec):
    tables = {}
    for item in spec:
        unit = tables.setdefault(item["unit"], {"holding": {}, "input": {}, "coil": {}, "discrete": {}})
        ws = words(item["type"], item.get("word_order", "big"), item.get("byte_swap", False), item["raw"])
        for i, w in enumerate(ws):
            unit[item["table"]][item["address"] + i] = w
    devices = {}
    for unit, t in tables.items():
        blocks = {}
        for name, key in (("holding", "hr"), ("input", "ir"), ("coil", "co"), ("discrete", "di")):
            cells = t[name]
            size = (max(cells) + 2) if cells else 1
            values = [cells.get(a, 0) for a in range(size)]
            # pymodbus addresses its data blocks from 1: the value of PDU address a is at a + 1.
            blocks[key] = ModbusSequentialDataBlock(1, values)
        devices[unit] = ModbusDeviceContext(**blocks)
    return ModbusServerContext(devices=devices, single=False)


async def main():
    # pymodbus 3.x warns on stderr about its v4 API; only errors matter here.
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    port = int(sys.argv[1])
    spec = json.loads(sys.argv[2])
    context = build(spec)
    # Fail fast when the port is taken (the caller retries on another): otherwise the check
    # below could connect to whoever holds it.
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", port))
    except OSError as e:
        sys.exit(f"port {port} is taken: {e}")
    finally:
        probe.close()
    server = asyncio.create_task(StartAsyncTcpServer(context=context, address=("127.0.0.1", port)))
    loop = asyncio.get_running_loop()
    # "ready" only once the port accepts connections; a failed start exits non-zero.
    for _ in range(200):
        if server.done():
            server.result()
            sys.exit("pymodbus server stopped")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.05)
    else:
        sys.exit(f"pymodbus server is not listening on {port}")
    print("ready", flush=True)
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    await asyncio.wait([server, stdin_closed], timeout=120, return_when=asyncio.FIRST_COMPLETED)


if __name__ == "__main__":
    asyncio.run(main())
