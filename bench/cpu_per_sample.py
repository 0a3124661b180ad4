"""CPU per million samples of a whole `capa run` (record + seal) at a fixed load.

    uv run python bench/cpu_per_sample.py [--channels 8] [--rate 1e6] [--seconds 10]
        [--repeat 3] [--python before=/path/bin/python --python after=.venv/bin/python]

The Done-when figure of issue 15: a `capa.sim.signals` device in block mode (hardware-
clocked noise, blocks of rate/10) with --channels fields at --rate samples per second
each is recorded by `capa run` (built-in free run for --seconds) into a sealed bundle.
CPU is the child's own rusage (user + system, reaped with wait4): start-up, acquisition,
writing, sealing. Samples are counted from the Parquet footers of whatever the bundle
holds (`scalars.parquet`, long, and/or `samples/<device>/part-*.parquet`, wide), so the
script measures bundle layout 1 and 2 alike. With several --python interpreters (two
checkouts of capa), runs are interleaved A B A B ... so machine load hits both alike.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

import _common as c


def one_run(python: str, work: Path, channels: int, rate: float, seconds: float) -> dict[str, Any]:
    """One `capa run` of the block rig; its CPU, wall, peak RSS and sample counts."""
    block = max(100, int(rate / 10))
    folder = Path(tempfile.mkdtemp(dir=work))
    exp = c.write_experiment(folder, c.block_rig(channels, rate, block), seconds)
    load = c.loadavg()
    child, rss = c.run_capa(python, exp, folder, c.capa_env(folder / "home"))
    fig: dict[str, Any] = {
        "exit_code": child.returncode,
        "wall_s": round(child.wall_s, 3),
        "cpu_s": round(child.cpu_s, 3),
        "max_rss_MB": rss,
        "loadavg_before": load,
    }
    bundle = c.run_bundle(child.stdout)
    if bundle is None or not (bundle / "manifest.json").exists():
        fig["error"] = (child.stderr or child.stdout)[-800:]
        shutil.rmtree(folder, ignore_errors=True)
        return fig
    fig.update(c.manifest_figures(bundle))
    fig.update(c.parquet_samples(bundle))
    fig["bundle_bytes"] = c.bundle_bytes(bundle)
    expected = rate * seconds * channels
    fig["samples_expected"] = int(expected)
    fig["kept_up"] = fig["samples"] >= 0.97 * expected
    fig["cpu_s_per_million_samples"] = round(child.cpu_s / max(1, fig["samples"]) * 1e6, 4)
    fig["wall_s_per_million_samples"] = round(child.wall_s / max(1, fig["samples"]) * 1e6, 4)
    fig["bytes_per_sample"] = round(fig["parquet_bytes"] / max(1, fig["samples"]), 3)
    shutil.rmtree(folder, ignore_errors=True)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=1_000_000, help="per channel, S/s")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--name", default="cpu_per_sample", help="result file name")
    parser.add_argument("--quick", action="store_true", help="2 s runs, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.repeat = 2.0, 1
    pythons = c.interpreters(args.python)

    work = Path(tempfile.mkdtemp(prefix="capa-bench-cpu-"))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in pythons}
    try:
        for i in range(args.repeat):
            for name, python in pythons.items():  # interleaved: A B A B ...
                fig = one_run(python, work, args.channels, args.rate, args.seconds)
                runs[name].append(fig)
                print(
                    f"{name} run {i + 1}/{args.repeat}: exit {fig['exit_code']}  "
                    f"samples {fig.get('samples', 0):,} ({fig.get('layout', '?')})  "
                    f"cpu {fig['cpu_s']} s  wall {fig['wall_s']} s  "
                    f"cpu/M {fig.get('cpu_s_per_million_samples', '?')}  "
                    f"rss {fig['max_rss_MB']} MB  kept up {fig.get('kept_up')}  "
                    f"load {fig['loadavg_before']}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, dict[str, Any]] = {}
    for name, rs in runs.items():
        ok = [r for r in rs if "samples" in r]
        if not ok:
            summary[name] = {"error": "no run produced a bundle"}
            continue
        summary[name] = {
            k: c.median([r[k] for r in ok])
            for k in (
                "cpu_s_per_million_samples",
                "wall_s_per_million_samples",
                "cpu_s",
                "wall_s",
                "samples",
                "max_rss_MB",
                "bytes_per_sample",
            )
        }
        summary[name]["runs"] = len(ok)
        summary[name]["all_kept_up"] = all(r["kept_up"] for r in ok)
        summary[name]["all_sealed"] = all(r["bundle_status"] == "sealed" for r in ok)
    print(
        f"CPU per million samples, {args.channels} ch x {args.rate:,.0f} S/s, "
        f"{args.seconds} s runs (record + seal), medians:"
    )
    for name, s in summary.items():
        if "error" in s:
            print(f"  {name:<10} {s['error']}")
            continue
        print(
            f"  {name:<10} {s['cpu_s_per_million_samples']:.4f} CPU s/M  "
            f"{s['wall_s_per_million_samples']:.4f} wall s/M  ({s['runs']} runs, "
            f"kept up: {s['all_kept_up']}, sealed: {s['all_sealed']})"
        )
    names = [n for n in summary if "error" not in summary[n]]
    if len(names) >= 2:
        a, b = names[0], names[-1]
        ratio = summary[a]["cpu_s_per_million_samples"] / summary[b]["cpu_s_per_million_samples"]
        print(f"  {a} / {b} CPU per sample: {ratio:.2f}x (target for issue 15: >= 2x)")
        summary["ratio"] = {"first_over_last": round(ratio, 3), "first": a, "last": b}
    c.write_result(
        args.name,
        {
            "channels": args.channels,
            "rate_per_channel": args.rate,
            "seconds": args.seconds,
            "pythons": pythons,
            "loadavg_end": c.loadavg(),
            "runs": runs,
            "median": summary,
        },
    )


if __name__ == "__main__":
    main()
