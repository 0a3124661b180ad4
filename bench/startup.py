"""Start-up cost of the `capa` command: wall time of repeated runs and what gets imported.

    uv run python bench/startup.py [--repeat 20] [--json results.json]

Runs each command as a fresh process `--repeat` times and reports the median and the
spread, then lists the modules `capa version` imports (via `python -X importtime`), the
largest cumulative import times first. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "capa --help": [sys.executable, "-m", "capa", "--help"],
    "capa version": [sys.executable, "-m", "capa", "version"],
    "capa plugins list": [sys.executable, "-m", "capa", "plugins", "list"],
}


def time_command(argv: list[str], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - t0)
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
        f"{platform.machine()}, {os.cpu_count()} cores; {args.repeat} runs each"
    )
    print(f"{'command':32} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for label, argv in COMMANDS.items():
        samples = time_command(argv, args.repeat)
        med, lo, hi = statistics.median(samples), min(samples), max(samples)
        results[label] = {"median_s": med, "min_s": lo, "max_s": hi}
        print(f"{label:32} {med * 1e3:10.1f} {lo * 1e3:8.1f} {hi * 1e3:8.1f}")

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
