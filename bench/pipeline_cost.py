"""CPU of the channel pipeline alone: long ``scalars`` rows vs wide ``samples`` rows.

    uv run python bench/pipeline_cost.py [--channels 8] [--rate 1000000] [--block 10000]
                                         [--seconds 10] [--repeat 5]

Feeds pre-generated ``capa.sim.signals`` block-mode batches (8 channels of 1 MS/s in
blocks of 10 000 by default: ``--seconds`` of signal) through a real
:class:`~capa.runtime.pipeline.ChannelPipeline` — calibration (linear), registry, status
codes and the record batch — once with the device polled (long rows into ``scalars``) and
once streamed (one wide ``SampleRows`` batch per block), with a submit that keeps nothing.
Signal generation and the writer are outside the measured loop. Prints CPU seconds per
million samples (samples = ticks × channels) and the wide/long ratio, median of
``--repeat`` interleaved runs; asserts nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import numpy as np

import capa
from capa.config.hardware import ChannelConfig
from capa.runtime.channels import ChannelRegistry
from capa.runtime.pipeline import ChannelPipeline, RecordingPlan
from capa.runtime.plan import ChannelPlan
from capa.sim.signals import SimSignals


def _batches(channels: int, rate: float, block: int, seconds: float) -> list[capa.SampleBatch]:
    params = SimSignals.Params.model_validate(
        {
            "mode": "block",
            "sample_rate_hz": rate,
            "block_size": block,
            "signals": {
                f"f{i}": {"kind": "sine", "unit": "V", "amplitude": 1.0, "period_s": 0.01 * (i + 1)}
                for i in range(channels)
            },
        }
    )
    sim = SimSignals("daq", params)
    period = 1e9 / rate
    out = []
    for k in range(max(1, int(seconds * rate) // block)):
        t = np.round((k * block + np.arange(block)) * period).astype(np.int64)
        out.append(capa.SampleBatch(t, sim._values(t, block / rate)))
    return out


def _pipeline(channels: int, streamed: bool) -> ChannelPipeline:
    plans = []
    for i in range(channels):
        config = ChannelConfig(
            name=f"v{i}",
            kind="voltage",
            unit="V",
            source={"device": "daq", "field": f"f{i}"},
            calibration={"kind": "linear", "slope": 2.0, "intercept": 0.1},
        )
        plans.append(ChannelPlan(f"v{i}", "daq", f"f{i}", "V", mapping=config))
    names = [p.name for p in plans]
    return ChannelPipeline(
        devices=[],
        channels=plans,
        recording=RecordingPlan("record_all", frozenset(names), frozenset()),
        registry=ChannelRegistry(names),
        submit=lambda _record: None,
        clock=capa.RunClock(),
        streamed={"daq"} if streamed else (),
    )


def _cpu(pipe: ChannelPipeline, batches: list[capa.SampleBatch]) -> float:
    gc.collect()
    start = time.process_time()
    for batch in batches:
        pipe.process("daq", batch)
    return time.process_time() - start


def main() -> None:
    """Print CPU s per million samples for the long and wide layouts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=1_000_000)
    parser.add_argument("--block", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    batches = _batches(args.channels, args.rate, args.block, args.seconds)
    samples = sum(len(b.t_mono_ns) for b in batches) * args.channels
    per_million: dict[str, list[float]] = {"long": [], "wide": []}
    for _ in range(args.repeat):  # interleaved, so drift hits both alike
        for layout in ("long", "wide"):
            pipe = _pipeline(args.channels, streamed=layout == "wide")
            per_million[layout].append(_cpu(pipe, batches) / samples * 1e6)
    print(
        f"pipeline only: {args.channels} ch x {args.rate:,.0f} S/s, block {args.block}, "
        f"{len(batches)} batches, {samples:,} samples, median of {args.repeat}"
    )
    med = {k: statistics.median(v) for k, v in per_million.items()}
    for layout in ("long", "wide"):
        spread = f"{min(per_million[layout]):.4f}-{max(per_million[layout]):.4f}"
        print(f"  {layout:<5} {med[layout]:.4f} CPU s per million samples  (range {spread})")
    ratio = med["wide"] / med["long"]
    print(f"  wide / long: {ratio:.2f}  (long costs {1 / ratio:.1f}x)")


if __name__ == "__main__":
    main()
