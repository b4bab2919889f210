#!/usr/bin/python3
"""A Modbus meter for Vatio's tests: Debian's pymodbus serving typed values.

    meter_sim.py tcp HOST:PORT SPEC.json
    meter_sim.py rtuovertcp HOST:PORT SPEC.json
    meter_sim.py rtu DEVICE BAUD PARITY(N|E|O) STOPBITS SPEC.json

SPEC is {"units": {"1": [VALUE, ...], ...}}, each VALUE
{"function": "input"|"holding", "address": 0-based, "type": "float32", ...,
 "word_order": "high_first"|"low_first", "byte_order": "high_first"|"low_first",
 "value": 230.1}. Its values are encoded here with Python's struct, apart
from Vatio's own decoding. Only the registers given exist: a read of any
other is answered with exception 2 (illegal data address); a unit not given
is not answered.

It prints "ready PORT" (TCP; the port it listens on, PORT 0 choosing one) or
"ready" once it serves. A line of JSON on stdin, a VALUE with a "unit", sets
that value; "quit" stops it.
"""

import asyncio
import json
import logging
import struct
import sys
import threading

from pymodbus.datastore import ModbusServerContext, ModbusSlaveContext, ModbusSparseDataBlock
from pymodbus.server import StartAsyncSerialServer, StartAsyncTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
           "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d"}


def words(v):
    """The registers of one VALUE, in address order."""
    raw = struct.pack(FORMATS[v["type"]], v["value"])
    ws = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if v.get("word_order", "high_first") == "low_first":
        ws.reverse()
    if v.get("byte_order", "high_first") == "low_first":
        ws = [w[::-1] for w in ws]
    return [int.from_bytes(w, "big") for w in ws]


def blocks(values):
    """The sparse register blocks (input, holding) of a unit's values."""
    regs = {"input": {}, "holding": {}}
    for v in values:
        for i, w in enumerate(words(v)):
            regs[v["function"]][v["address"] + i] = w
    return regs


def context(spec):
    slaves = {}
    for unit, values in spec["units"].items():
        regs = blocks(values)
        slaves[int(unit)] = ModbusSlaveContext(
            ir=ModbusSparseDataBlock(regs["input"] or {65535: 0}),
            hr=ModbusSparseDataBlock(regs["holding"] or {65535: 0}),
            zero_mode=True)
    return ModbusServerContext(slaves=slaves, single=False)


def control(ctx, loop, stop):
    for line in sys.stdin:
        line = line.strip()
        if line == "quit":
            break
        if not line:
            continue
        v = json.loads(line)
        fc = 4 if v["function"] == "input" else 3
        loop.call_soon_threadsafe(ctx[int(v["unit"])].setValues, fc, v["address"], words(v))
    loop.call_soon_threadsafe(stop.set)


async def main():
    logging.basicConfig(level=logging.CRITICAL)
    kind, where = sys.argv[1], sys.argv[2]
    with open(sys.argv[-1]) as f:
        ctx = context(json.load(f))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if kind in ("tcp", "rtuovertcp"):
        host, port = where.rsplit(":", 1)
        framer = ModbusSocketFramer if kind == "tcp" else ModbusRtuFramer
        server = await StartAsyncTcpServer(context=ctx, address=(host, int(port)), framer=framer,
                                           allow_reuse_address=True, defer_start=True)
        asyncio.ensure_future(server.serve_forever())
        await server.serving
        print("ready", server.server.sockets[0].getsockname()[1], flush=True)
    else:
        baud, parity, stopbits = int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
        server = await StartAsyncSerialServer(context=ctx, framer=ModbusRtuFramer, port=where, baudrate=baud,
                                              parity=parity, stopbits=stopbits, bytesize=8, timeout=0.05, defer_start=True)
        asyncio.ensure_future(server.start())
        print("ready", flush=True)
    threading.Thread(target=control, args=(ctx, loop, stop), daemon=True).start()
    await stop.wait()


asyncio.run(main())
