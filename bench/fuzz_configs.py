"""Fuzz the demo configurations end to end: `capa validate`, then `capa run` + SIGINT.

Issue 14's acceptance check, as processes (the black box a user sees): over fresh seeded
mutations of the demo files (``tests/fuzz/mutate.py``: byte flips, deleted and duplicated
keys, type swaps, deep nesting, huge integers, special floats, YAML alias bombs and
recursion, FIFOs, /dev/zero, symlink loops, NUL bytes, ``~nosuchuser``, odd encodings,
sizes around the 1 MiB limit):

1. ``capa validate EXPERIMENT`` must exit 0 or 2, print no traceback, write nothing and
   answer within 60 s (else it counts as a hang);
2. every experiment that validates is started with ``capa run`` and sent SIGINT after
   ``--sigint-after`` seconds; it must exit with a documented code (0 if it completed
   first, 1 aborted, 2 crashed, 3 verification failed) within 5 s of the SIGINT.

Prints the counts and writes ``bench/results/fuzz_configs.json`` with every failing case
(its seed reproduces it: ``make_case(seed)``). Usage::

    uv run python bench/fuzz_configs.py --cases 1000 --work /tmp/capa-fuzz
    uv run python bench/fuzz_configs.py --quick

Recorded result (2026-12-01, 1,000 fresh cases, seeds 1796143238000+, 2 jobs on a shared
2-core machine, 20 min): ``capa validate`` exit 0: 232, 2: 768, no other code, 0 hangs, 0
tracebacks, 0 files written; the 232 that validated ran and got SIGINT after 2 s: exit 1:
231, exit 2: 1 (a device refused a finite but absurd setpoint), 0 hangs, stop after
SIGINT median 0.71 s, p95 1.73 s, max 2.75 s (none over 5 s). Details and the earlier run
that found two SIGINT bugs: bench/README.md, "Configuration fuzzing".
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as c

sys.path.insert(0, str(c.ROOT))
from tests.fuzz.mutate import Case, make_case, snapshot

VALIDATE_CODES = {0, 2}
RUN_CODES = {0, 1, 2, 3}  # seed 001; a single SIGINT never leaves 130
VALIDATE_TIMEOUT_S = 60.0
STOP_LIMIT_S = 5.0
KILL_AFTER_S = 60.0


def _env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPA_")}
    env["HOME"] = str(work / "home")  # the pre-run log lands there, not in ~/.capa
    return env


def _bad_output(text: str) -> bool:
    return "Traceback" in text or "internal error" in text


def validate(case: Case, folder: Path, env: dict[str, str]) -> dict[str, Any]:
    """``capa validate`` of one case as a process."""
    experiment = case.materialize(folder)
    before = snapshot(folder)
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "capa", "validate", str(experiment)],
            capture_output=True,
            text=True,
            errors="replace",
            cwd=folder,
            env=env,
            timeout=VALIDATE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"case": case.name, "validate": "hang"}
    elapsed = time.perf_counter() - start
    text = proc.stdout + proc.stderr
    result: dict[str, Any] = {
        "case": case.name,
        "validate": proc.returncode,
        "validate_s": round(elapsed, 3),
    }
    problems = []
    if proc.returncode not in VALIDATE_CODES:
        problems.append(f"exit {proc.returncode}")
    if _bad_output(text):
        problems.append("traceback or internal error")
    if snapshot(folder) != before:
        problems.append("wrote files")
    if problems:
        result["problems"] = problems
        result["output"] = text[-600:]
    return result


def run_and_interrupt(
    case: Case, folder: Path, env: dict[str, str], sigint_after: float
) -> dict[str, Any]:
    """``capa run`` of a validated case, SIGINT after ``sigint_after`` s, timed to exit."""
    experiment = folder / case.experiment
    runs = folder / "runs"
    proc = subprocess.Popen(
        [sys.executable, "-m", "capa", "run", str(experiment), "--runs-root", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        cwd=folder,
        env=env,
        start_new_session=True,  # the SIGINT goes to capa only, as a shell's Ctrl-C would
    )
    out: dict[str, str] = {}
    readers = [
        threading.Thread(target=lambda s=s, k=k: out.__setitem__(k, s.read()), daemon=True)
        for k, s in (("stdout", proc.stdout), ("stderr", proc.stderr))
    ]
    for reader in readers:
        reader.start()
    finished_early = False
    try:
        proc.wait(timeout=sigint_after)
        finished_early = True
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
    sent = time.perf_counter()
    result: dict[str, Any] = {"case": case.name}
    try:
        proc.wait(timeout=KILL_AFTER_S)
        stop_s = time.perf_counter() - sent
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        stop_s = None
    for reader in readers:
        reader.join(10)
    text = out.get("stdout", "") + out.get("stderr", "")
    result["run"] = proc.returncode if stop_s is not None else "hang"
    result["stop_s"] = None if finished_early or stop_s is None else round(stop_s, 3)
    result["finished_before_sigint"] = finished_early
    problems = []
    if stop_s is None:
        problems.append(f"no exit within {KILL_AFTER_S:g} s of SIGINT (killed)")
    elif not finished_early and stop_s > STOP_LIMIT_S:
        problems.append(f"exit {stop_s:.1f} s after SIGINT (limit {STOP_LIMIT_S:g} s)")
    if stop_s is not None and proc.returncode not in RUN_CODES:
        problems.append(f"exit {proc.returncode}")
    if _bad_output(text):
        problems.append("traceback or internal error")
    reason = [line for line in out.get("stdout", "").splitlines() if "exit_reason" in line]
    if reason:
        result["exit_reason"] = reason[-1].split(":", 1)[1].strip()[:200]
    if problems:
        result["problems"] = problems
        result["output"] = text[-800:]
    return result


def one(
    seed: int, work: Path, env: dict[str, str], sigint_after: float, keep: bool
) -> dict[str, Any]:
    """Validate one fresh case and, if it validates, run and interrupt it."""
    case = make_case(seed)
    folder = work / "cases" / str(seed)
    result = validate(case, folder, env)
    if result.get("validate") == 0:
        result.update(run_and_interrupt(case, folder, env, sigint_after))
    if not keep and not result.get("problems"):
        shutil.rmtree(folder, ignore_errors=True)
    return result


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by exit code, hangs, stop latency and the failing cases."""
    validate_codes = Counter(str(r["validate"]) for r in results)
    runs = [r for r in results if "run" in r]
    run_codes = Counter(str(r["run"]) for r in runs)
    stops = [r["stop_s"] for r in runs if r.get("stop_s") is not None]
    reasons = Counter((r.get("exit_reason") or "").split(":", 1)[0] for r in runs)
    failures = [r for r in results if r.get("problems")]
    return {
        "cases": len(results),
        "validate_exit_codes": dict(sorted(validate_codes.items())),
        "validate_hangs": validate_codes.get("hang", 0),
        "runs": len(runs),
        "run_exit_codes": dict(sorted(run_codes.items())),
        "run_exit_reasons": dict(reasons.most_common()),
        "runs_finished_before_sigint": sum(1 for r in runs if r.get("finished_before_sigint")),
        "run_hangs": run_codes.get("hang", 0),
        "stop_after_sigint_s": {
            "n": len(stops),
            "median": round(c.median(stops), 3) if stops else None,
            "p95": round(c.percentile(stops, 95), 3) if stops else None,
            "max": round(max(stops), 3) if stops else None,
            "over_limit": sum(1 for s in stops if s > STOP_LIMIT_S),
        },
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="60 cases")
    parser.add_argument(
        "--seed-base", type=int, default=None, help="first seed (default: fresh, from the clock)"
    )
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sigint-after", type=float, default=2.0)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder")
    parser.add_argument("--keep", action="store_true", help="keep every case folder")
    args = parser.parse_args()
    cases = 60 if args.quick else args.cases
    seed_base = args.seed_base if args.seed_base is not None else int(time.time()) * 1000
    work = args.work or Path(tempfile.mkdtemp(prefix="capa-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    env = _env(work)
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(one, seed, work, env, args.sigint_after, args.keep)
            for seed in range(seed_base, seed_base + cases)
        ]
        for i, future in enumerate(futures, 1):
            results.append(future.result())
            if results[-1].get("problems"):
                print(f"FAIL {results[-1]['case']}: {results[-1]['problems']}", flush=True)
            if i % 50 == 0:
                bad = sum(1 for r in results if r.get("problems"))
                print(f"{i}/{cases} cases, {bad} failing", flush=True)
    summary = summarize(results)
    summary["seed_base"] = seed_base
    summary["sigint_after_s"] = args.sigint_after
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    for key, value in summary.items():
        if key != "failures":
            print(f"{key}: {value}")
    for failure in summary["failures"]:
        print(f"FAIL {failure['case']}: {failure['problems']}")
    print(f"{len(summary['failures'])} failing case(s)")
    c.write_result("fuzz_configs", {**summary, "results": results})


if __name__ == "__main__":
    main()
