"""Start-up cost of the `capa` command: wall time of repeated runs and what gets imported.

    uv run python bench/startup.py [--repeat 20] [--json results.json]

Runs each command as a fresh process `--repeat` times, interleaved (every round runs each
command once, in a shuffled order, so a busy machine affects all of them alike), and
reports the median and the spread of wall and CPU time and the ratio of the medians to
`python -c pass`; then lists the modules `capa version` imports (via `python -X
importtime`), the largest cumulative import times first. `capa --help` is timed with its
cache warm (the normal case) and cold (a fresh cache directory every run: rendered through
click, every plugin loaded). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("capa"))  # the console script a user runs
COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "capa --help": [SCRIPT, "--help"],
    "python -m capa --help": [sys.executable, "-m", "capa", "--help"],
    "capa --help (cold cache)": [SCRIPT, "--help"],
    "capa -V": [SCRIPT, "-V"],
    "capa version": [sys.executable, "-m", "capa", "version"],
    "capa plugins list": [sys.executable, "-m", "capa", "plugins", "list"],
}
COLD = "capa --help (cold cache)"


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one run of ``argv``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed")
    return wall, usage.ru_utime + usage.ru_stime


def time_commands(repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """Every command ``repeat`` times, interleaved; (wall samples, CPU samples) each."""
    cache = Path(tempfile.mkdtemp(prefix="capa-bench-cache-"))
    warm = {**os.environ, "XDG_CACHE_HOME": str(cache / "warm")}
    run_once(COMMANDS["capa --help"], warm)  # the cache a user has after one call
    samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in COMMANDS}
    try:
        for i in range(repeat):
            for label in random.sample(list(COMMANDS), len(COMMANDS)):
                env = warm
                if label == COLD:
                    env = {**os.environ, "XDG_CACHE_HOME": str(cache / f"cold{i}")}
                wall, cpu = run_once(COMMANDS[label], env)
                samples[label][0].append(wall)
                samples[label][1].append(cpu)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return samples


def import_profile(argv: list[str]) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) for every module the command imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    # Lines look like "import time:   self_us |  cumulative_us | package.module".
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self_us, cumulative_us, name = line.split(":", 1)[1].split("|")
        rows.append((int(cumulative_us), name.strip()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    print(
        f"{platform.python_implementation()} {platform.python_version()} on "
        f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; "
        f"{args.repeat} interleaved runs each; PYTHONDONTWRITEBYTECODE="
        f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
    print(
        f"{'command':28} {'median ms':>10} {'min ms':>8} {'max ms':>8} {'x pass':>7}"
        f" {'cpu ms':>8} {'x pass':>7}"
    )
    samples = time_commands(args.repeat)
    base_wall = statistics.median(samples["python -c pass (baseline)"][0])
    base_cpu = statistics.median(samples["python -c pass (baseline)"][1])
    for label, (walls, cpus) in samples.items():
        med, lo, hi = statistics.median(walls), min(walls), max(walls)
        cpu = statistics.median(cpus)
        results[label] = {
            "median_s": med,
            "min_s": lo,
            "max_s": hi,
            "cpu_median_s": cpu,
            "ratio_to_baseline": med / base_wall,
            "cpu_ratio_to_baseline": cpu / base_cpu,
        }
        print(
            f"{label:28} {med * 1e3:10.1f} {lo * 1e3:8.1f} {hi * 1e3:8.1f} "
            f"{med / base_wall:7.2f} {cpu * 1e3:8.1f} {cpu / base_cpu:7.2f}"
        )

    profile = import_profile(COMMANDS["capa version"])
    top_level = sorted({name.split(".")[0] for _, name in profile})
    print(f"\n`capa version` imports {len(profile)} modules; top-level packages:")
    print("  " + ", ".join(top_level))
    print("largest cumulative import times (ms):")
    for cumulative, name in sorted(profile, reverse=True)[:12]:
        print(f"  {cumulative / 1e3:7.1f}  {name}")
    if args.json_path:
        with open(args.json_path, "w", encoding="utf-8") as fh:
            json.dump(
                {"commands": results, "version_imports": [n for _, n in profile]}, fh, indent=2
            )


if __name__ == "__main__":
    main()
