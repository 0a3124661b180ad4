"""Sartorius balance command and read round trips over a real pseudo-terminal.

    uv run python bench/sartorius_roundtrip.py [--n 500] [--json FILE]

For each protocol the script starts the ``capa_sartorius`` wire-level simulator behind a
pty and times, end to end on the calling thread:

- ``read``: one polled ``SartoriusBalance.read()`` -- request encoded and written, the
  simulator thread reassembles it, asks the balance model and encodes the reply, the
  driver reassembles the reply (SBI: CR LF; xBPI: length byte), decodes it (xBPI:
  checksum) and builds the sample batch and device records;
- ``command``: ``SartoriusBalance.command(tare)`` to ``CommandResult``. On xBPI this is a
  full exchange with the balance's acknowledgement; SBI acknowledges nothing, so the
  SBI figure is dispatch + write only and ``command+read`` (tare, then a print that
  shows the effect) is given as the SBI round trip that proves arrival.

The pty runs at memory speed: the figures are software overhead (driver, simulator,
scheduler), not 9 600-baud line time (about 17 ms for a 16-byte SBI line). Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

import capa
from capa_sartorius.adapter import SartoriusBalance
from capa_sartorius.params import BalanceParams


def percentile(sorted_ms: list[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[index]


async def timed(n: int, fn: Callable[[], Awaitable[Any]]) -> dict[str, float]:
    for _ in range(min(20, n)):  # warm-up: imports, first pty configuration
        await fn()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await fn()
        samples.append((time.perf_counter_ns() - t0) / 1e6)
    samples.sort()
    return {
        "p50_ms": percentile(samples, 0.50),
        "p99_ms": percentile(samples, 0.99),
        "max_ms": samples[-1],
        "mean_ms": statistics.fmean(samples),
    }


async def bench_protocol(protocol: str, n: int) -> dict[str, dict[str, float]]:
    adapter = SartoriusBalance(
        "balance", BalanceParams(port="sim://?mass_g=50&settle_s=0", protocol=protocol)
    )
    await adapter.open()
    tare = capa.Command("tare")
    try:

        async def read() -> None:
            emissions = await adapter.read()
            batch = emissions[0]
            assert isinstance(batch, capa.SampleBatch)
            if batch.status["mass"][0] == "comm_error":
                raise RuntimeError(f"{protocol}: read failed: {emissions}")

        async def command() -> None:
            result = await adapter.command(tare)
            if not result.accepted:
                raise RuntimeError(f"{protocol}: tare refused: {result.detail}")

        async def command_then_read() -> None:
            await command()
            await read()

        out = {"read": await timed(n, read), "command": await timed(n, command)}
        if protocol == "sbi":
            out["command+read"] = await timed(n, command_then_read)
        return out
    finally:
        await adapter.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="timed operations per figure")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    results = {p: anyio.run(bench_protocol, p, args.n) for p in ("sbi", "xbpi")}
    print(
        f"# sartorius round trip over a pty, n={args.n}, {platform.python_version()}, "
        f"{platform.machine()}, {sys.platform}"
    )
    print("| protocol | operation | p50 ms | p99 ms | max ms |")
    print("|---|---|---:|---:|---:|")
    for protocol, ops in results.items():
        for op, f in ops.items():
            print(
                f"| {protocol} | {op} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | {f['max_ms']:.3f} |"
            )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"n": args.n, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
