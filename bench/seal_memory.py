"""Peak memory of a whole `capa run` (record + seal) for runs of 10 / 40 / 120 M samples.

    uv run python bench/seal_memory.py [--samples 10e6,40e6,120e6] [--rate 250e3] [--repeat 1]
        [--python before=/path/bin/python --python after=.venv/bin/python]

Issue 15's Done-when: peak RSS of a 120 M-row run under 1 GB, printed for 10 / 40 / 120 M
rows. "Rows" are samples (one channel value at one tick: one row of the long
`scalars.parquet` of bundle layout 1; in layout 2 a wide row of 8 channels holds 8).
Each run records a `capa.sim.signals` block-mode device (--channels noise fields at
--rate S/s each, blocks of rate/10) with the built-in free run for samples / (channels x
rate) seconds, then seals. Peak RSS is the child's own ru_maxrss (reaped with wait4): the
high-water mark of the whole process life, recording and sealing. Samples are counted
from the Parquet footers afterwards, so the printed size is what was recorded, not what
was asked for. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common as c

TARGET_MB = 1000.0


def one_run(python: str, work: Path, channels: int, rate: float, samples: float) -> dict[str, Any]:
    """Record `samples` samples and seal; peak RSS, wall, CPU and the counted samples."""
    seconds = round(samples / (channels * rate), 3)
    folder = Path(tempfile.mkdtemp(dir=work))
    exp = c.write_experiment(folder, c.block_rig(channels, rate, max(100, int(rate / 10))), seconds)
    load = c.loadavg()
    child, rss = c.run_capa(python, exp, folder, c.capa_env(folder / "home"))
    fig: dict[str, Any] = {
        "samples_asked": int(samples),
        "seconds": seconds,
        "exit_code": child.returncode,
        "max_rss_MB": rss,
        "wall_s": round(child.wall_s, 2),
        "cpu_s": round(child.cpu_s, 2),
        "loadavg_before": load,
    }
    bundle = c.run_bundle(child.stdout)
    if bundle is not None and (bundle / "manifest.json").exists():
        fig.update(c.manifest_figures(bundle))
        fig.update(c.parquet_samples(bundle))
    else:
        fig["error"] = (child.stderr or child.stdout)[-800:]
    shutil.rmtree(folder, ignore_errors=True)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default="10e6,40e6,120e6", help="run sizes, samples")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=250_000, help="per channel, S/s")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--python", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--name", default="seal_memory", help="result file name")
    parser.add_argument("--quick", action="store_true", help="2 M and 8 M samples")
    args = parser.parse_args()
    if args.quick:
        args.samples = "2e6,8e6"
    sizes = [float(s) for s in args.samples.split(",")]
    pythons = c.interpreters(args.python)

    work = Path(tempfile.mkdtemp(prefix="capa-bench-rss-"))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in pythons}
    try:
        for _ in range(args.repeat):
            for size in sizes:
                for name, python in pythons.items():
                    fig = one_run(python, work, args.channels, args.rate, size)
                    runs[name].append(fig)
                    print(
                        f"{name} {size / 1e6:g} M asked: exit {fig['exit_code']}  "
                        f"samples {fig.get('samples', 0):,} ({fig.get('layout', '?')})  "
                        f"peak RSS {fig['max_rss_MB']:,.0f} MB  wall {fig['wall_s']} s  "
                        f"cpu {fig['cpu_s']} s  load {fig['loadavg_before']}",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, Any] = {}
    print(f"peak RSS of record + seal, {args.channels} ch x {args.rate:,.0f} S/s:")
    for name, rs in runs.items():
        per = {}
        for size in sizes:
            sel = [r for r in rs if r["samples_asked"] == int(size)]
            per[f"{size / 1e6:g}M"] = {
                "max_rss_MB": c.median([r["max_rss_MB"] for r in sel]),
                "samples": c.median([r.get("samples", 0) for r in sel]),
                "sealed": all(r.get("bundle_status") == "sealed" for r in sel),
            }
            p = per[f"{size / 1e6:g}M"]
            print(
                f"  {name:<8} {size / 1e6:>5g} M: {p['max_rss_MB']:>7,.0f} MB "
                f"({p['samples']:,.0f} samples recorded, sealed: {p['sealed']})"
            )
        largest = per[f"{max(sizes) / 1e6:g}M"]["max_rss_MB"]
        summary[name] = {
            "sizes": per,
            "largest_under_1_GB": largest < TARGET_MB,
        }
        print(
            f"  {name:<8} largest run under {TARGET_MB:,.0f} MB: "
            f"{summary[name]['largest_under_1_GB']}"
        )
    c.write_result(
        args.name,
        {
            "channels": args.channels,
            "rate_per_channel": args.rate,
            "pythons": pythons,
            "runs": runs,
            "summary": summary,
        },
    )


if __name__ == "__main__":
    main()
