"""CPU cost of hardware-clocked acquisition with ``nidaq.task`` on the simulated backend.

    uv run python bench/nidaq_throughput.py [--channels 8] [--rate 10000] [--block 1000]
        [--seconds 30] [--skip-run]

Two measurements:

1. *adapter*: the adapter streams from the ``sim://`` backend into a context that drops
   every batch, for ``--seconds`` at ``--rate`` per channel. Process CPU time (all
   threads) divided by samples: the cost of block reads, signal synthesis, time
   reconstruction and batch building — what the DAQ side costs before the bundle writer.
2. *capa run*: a real ``capa run`` (subprocess) of the same task for ``--seconds``, its
   CPU time (user + system, from ``wait4``) divided by the samples that landed in
   ``scalars.parquet``: the sustained end-to-end cost per sample (channel pipeline,
   calibration, Arrow IPC writes, finalize to Parquet, seal), including start-up.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path


class NullContext:
    device = "daq"
    bundle_path = None

    def __init__(self) -> None:
        from capa import RunClock

        self.clock = RunClock()
        self.samples = 0

    def emit(self, emission) -> None:
        from capa import SampleBatch

        if isinstance(emission, SampleBatch):
            self.samples += len(emission)

    def latest(self, channel: str) -> float | None:
        return None


def channels(n: int) -> list[dict]:
    return [
        {"kind": "thermocouple", "physical_channel": f"cDAQ1Mod1/ai{i}", "name": f"tc{i}"}
        if i % 2 == 0
        else {"kind": "voltage", "physical_channel": f"cDAQ1Mod2/ai{i}", "name": f"v{i}"}
        for i in range(n)
    ]


def bench_adapter(n: int, rate: float, block: int, seconds: float) -> dict:
    from capa_nidaq.adapter import NidaqTask

    params = {
        "device": "sim://",
        "timing": {"sample_rate_hz": rate, "block_size": block},
        "channels": channels(n),
    }
    adapter = NidaqTask("daq", NidaqTask.Params.model_validate(params))
    ctx = NullContext()

    async def body() -> None:
        await adapter.open()
        await adapter.start(ctx)
        task = asyncio.ensure_future(adapter.stream(ctx))
        await asyncio.sleep(seconds)
        await adapter.stop()
        await task
        await adapter.close()

    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(body())
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    total = ctx.samples * n
    return {
        "samples_total": total,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_s_per_million": cpu / (total / 1e6),
        "cpu_percent_of_one_core": 100 * cpu / wall,
    }


RIG = """
name = "bench"
[[devices]]
name = "daq"
adapter = "nidaq.task"
[devices.params]
device = "sim://"
timing = {{ sample_rate_hz = {rate}, block_size = {block} }}
channels = [
{chans}
]
{channel_tables}
"""


def bench_run(n: int, rate: float, block: int, seconds: float) -> dict:
    import _common  # bench/ is on sys.path when this script runs

    chans = channels(n)
    rig = RIG.format(
        rate=rate,
        block=block,
        chans=",\n".join(
            "{ " + ", ".join(f'{k} = "{v}"' for k, v in c.items()) + " }" for c in chans
        ),
        channel_tables="\n".join(
            f'[[channels]]\nname = "{c["name"]}"\nkind = "value"\n'
            f'unit = "{"degC" if c["kind"] == "thermocouple" else "V"}"\n'
            f'source = {{ device = "daq", field = "{c["name"]}" }}\n'
            for c in chans
        ),
    )
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "rig.toml").write_text(rig)
        (tmp / "experiment.yaml").write_text(
            textwrap.dedent(
                f"""\
                hardware: rig.toml
                procedure: {{id: capa.builtin.free_run, config: {{duration_s: {seconds}}}}}
                operator: {{id: bench}}
                sample: {{id: bench}}
                """
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAPA_")}
        wall0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "capa", "run", "experiment.yaml", "--runs-root", "runs"],
            cwd=tmp,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - wall0
        out = proc.stdout.read() if proc.stdout else ""
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(
                f"capa run failed:\n{out}\n{proc.stderr.read() if proc.stderr else ''}"
            )
        bundle = next((tmp / "runs").glob("2*"))
        # samples from the Parquet footers of either bundle layout (long or wide)
        rows = _common.parquet_samples(bundle)["samples"]
        cpu = usage.ru_utime + usage.ru_stime
        return {
            "samples_total": rows,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_s_per_million": cpu / (rows / 1e6),
            "cpu_percent_of_one_core": 100 * cpu / wall,
            "max_rss_mb": usage.ru_maxrss / 1024,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--block", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {args.channels} ch x {args.rate:g} S/s, block {args.block}, "
        f"{args.seconds:g} s"
    )
    results = {"adapter": bench_adapter(args.channels, args.rate, args.block, args.seconds)}
    if not args.skip_run:
        results["capa run"] = bench_run(args.channels, args.rate, args.block, args.seconds)
    for name, r in results.items():
        print(
            f"{name:>9}: {r['samples_total']:>10,} samples  wall {r['wall_s']:6.1f} s  "
            f"CPU {r['cpu_s']:6.2f} s  = {r['cpu_s_per_million']:.3f} CPU s per million samples  "
            f"({r['cpu_percent_of_one_core']:.1f} % of one core)"
        )
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
