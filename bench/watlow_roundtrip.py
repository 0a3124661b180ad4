"""Command round trip of the Watlow driver over a pseudo-terminal, both protocols.

    uv run python bench/watlow_roundtrip.py [--n 500] [--json results.json]

For each protocol, starts the wire-level simulator behind a real pty and times
``EzZonePM.command(set_setpoint)``: request encoded → written to the tty → simulator
decodes, updates the plant, answers → reply reassembled and checked → (Modbus: read back)
→ ``CommandResult``. Also times one polled ``read()`` tick (three parameters). Prints
p50 / p99 / max in milliseconds; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import time

from capa import Command
from capa_watlow.adapter import EzZonePM
from capa_watlow.sim import start_pty_simulator


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(protocol: str, n: int) -> dict[str, dict[str, float]]:
    sim = start_pty_simulator("sim://?tau=1")
    adapter = EzZonePM("bench", EzZonePM.Params(port=sim.path, protocol=protocol, retries=0))
    try:
        await adapter.open()
        commands, reads = [], []
        for i in range(n):
            t0 = time.perf_counter()
            result = await adapter.command(Command("set_setpoint", {"value": 100.0 + i % 50}))
            commands.append(time.perf_counter() - t0)
            if not result.accepted:
                raise SystemExit(f"{protocol}: command refused: {result.detail}")
        for _ in range(n):
            t0 = time.perf_counter()
            await adapter.read()
            reads.append(time.perf_counter() - t0)
    finally:
        await adapter.close()
        sim.stop()
    return {"set_setpoint": summarise(commands), "read tick": summarise(reads)}


def summarise(samples: list[float]) -> dict[str, float]:
    ms = [s * 1e3 for s in samples]
    return {
        "n": len(ms),
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 0.99),
        "max_ms": max(ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.platform()}, n={args.n}")
    results = {}
    print(f"{'protocol':<11} {'operation':<13} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for protocol in ("stdbus", "modbus_rtu"):
        results[protocol] = asyncio.run(measure(protocol, args.n))
        for op, fig in results[protocol].items():
            print(
                f"{protocol:<11} {op:<13} {fig['p50_ms']:8.2f} {fig['p99_ms']:8.2f} "
                f"{fig['max_ms']:8.2f}"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
