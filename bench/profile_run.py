"""Where a throughput run spends its CPU: py-spy over one `capa run`, summarised.

    nox -s bench -- profile        # py-spy is installed in the bench session
    python bench/profile_run.py [--channels 8] [--rate 400000] [--seconds 8]

Samples every thread of a `capa run` of the block-mode simulator (the throughput rig) with
`py-spy record --threads --format raw` (on-CPU samples only; idle threads are not
counted) and prints three views of the same samples: by thread, by the deepest capa
frame of each stack (which capa function is responsible, whatever library it called),
and by leaf frame (where the CPU literally was). Raw stacks are not kept (they hold local
paths); the summary goes to results/profile.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import _common as c

FRAME = re.compile(r"^(?P<func>.+) \((?P<file>[^:]+):(?P<line>\d+)\)$")


def short(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `module.py:func` without the line number."""
    m = FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    path = m["file"]
    for marker in ("site-packages/", "/src/", "<frozen "):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{m['func']}"


def summarise(raw: Path, top: int) -> dict[str, Any]:
    """Three Counters over py-spy's collapsed stacks: thread, deepest capa frame, leaf."""
    threads: Counter[str] = Counter()
    owner: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = frames[0] if frames[0].startswith(("thread", "process")) else "?"
        threads[re.sub(r"0x[0-9a-f]+", "", thread).strip()] += n
        names = [short(f) for f in frames if FRAME.match(f.strip())]
        capa = [f for f in names if f.startswith("capa")]
        owner[capa[-1] if capa else (names[-1] if names else "?")] += n
        leaf[names[-1] if names else "?"] += n

    def pct(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / total, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": total,
        "by_thread_pct": pct(threads),
        "by_deepest_capa_frame_pct": pct(owner),
        "by_leaf_pct": pct(leaf),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--rate", type=float, default=400_000, help="per channel, S/s")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 s run")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 3.0
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy is not installed here; run through `nox -s bench`")
        c.write_result("profile", {"skipped": "py-spy not installed"})
        return
    work = Path(tempfile.mkdtemp(prefix="capa-bench-prof-"))
    try:
        block = max(100, int(args.rate / 10))
        exp = c.write_experiment(work, c.block_rig(args.channels, args.rate, block), args.seconds)
        raw = work / "stacks.txt"
        argv = [spy, "record", "--threads", "--format", "raw", "--rate", "250"]
        argv += ["-o", str(raw), "--", *c.capa_argv("run", str(exp))]
        done = subprocess.run(
            argv,
            check=False,
            cwd=work,
            env=c.capa_env(work / "home"),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0 or not raw.exists():
            print(f"py-spy failed (exit {done.returncode}): {done.stderr[-800:]}")
            c.write_result("profile", {"skipped": f"py-spy failed: {done.stderr[-300:]}"})
            return
        result = summarise(raw, args.top)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{result['samples']} on-CPU samples, {args.channels} ch x {args.rate:,.0f} S/s")
    for view in ("by_thread_pct", "by_deepest_capa_frame_pct", "by_leaf_pct"):
        print(view)
        for name, share in result[view]:
            print(f"  {share:5.1f} %  {name}")
    c.write_result(
        "profile",
        {"channels": args.channels, "rate_per_channel": args.rate, "seconds": args.seconds}
        | result,
    )


if __name__ == "__main__":
    main()
