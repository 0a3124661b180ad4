"""Start-up checks of issue 15: `capa --help` against bare Python, and no pandas in a run.

    uv run python bench/fast_start.py [--repeat 15] [--quick]
        [--python before=/path/bin/python --python after=.venv/bin/python]

1. `python -c pass` and `python -m capa --help` are each spawned --repeat times,
   interleaved, and the ratio of their median wall times printed (target: <= 2x).
2. A short `capa run` (the block-mode simulator, 8 channels, free run of 1 s) runs under
   `python -X importtime`, which lists every module the process imports, whenever and on
   whichever thread; the check prints whether `pandas` (or any `pandas.*`) was imported.
   pyarrow imports pandas lazily when it is installed, so the check only means something
   where pandas is installed (the `nox -s bench` venv has it through qcodes); the script
   says which case it is (`-X importtime` also lists an import that failed, so without
   pandas the script still shows whether a run *tried* to import it).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

FIND_PANDAS = "import importlib.util as u; raise SystemExit(not u.find_spec('pandas'))"


def spawn_s(argv: list[str]) -> float:
    """Wall seconds of one child, output discarded."""
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def help_ratio(python: str, repeat: int) -> dict[str, Any]:
    """Median wall of `python -c pass` and `capa --help`, interleaved, and their ratio."""
    bare, helps = [], []
    spawn_s([python, "-m", "capa", "--help"])  # warm the page cache and .pyc files once
    for _ in range(repeat):
        bare.append(spawn_s([python, "-c", "pass"]))
        helps.append(spawn_s([python, "-m", "capa", "--help"]))
    b, h = c.median(bare), c.median(helps)
    return {
        "python_c_pass_ms": round(b * 1e3, 1),
        "capa_help_ms": round(h * 1e3, 1),
        "ratio": round(h / b, 2),
        "within_2x": h / b <= 2.0,
        "python_c_pass_all_ms": [round(x * 1e3, 1) for x in bare],
        "capa_help_all_ms": [round(x * 1e3, 1) for x in helps],
    }


def pandas_in_run(python: str, work: Path) -> dict[str, Any]:
    """Run a 1 s `capa run` under -X importtime; was pandas imported at any point?"""
    installed = (
        subprocess.run(
            [python, "-c", FIND_PANDAS],
            check=False,
        ).returncode
        == 0
    )
    folder = Path(tempfile.mkdtemp(dir=work))
    exp = c.write_experiment(folder, c.block_rig(8, 10_000, 1000), 1.0)
    argv_env = c.capa_env(folder / "home")
    argv_env["PYTHONPROFILEIMPORTTIME"] = "1"
    child, _ = c.run_capa(python, exp, folder, argv_env)
    imported = sorted(
        {
            line.rsplit("|", 1)[1].strip()
            for line in child.stderr.splitlines()
            if line.startswith("import time:") and "|" in line
        }
    )
    pandas = [m for m in imported if m == "pandas" or m.startswith("pandas.")]
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "pandas_installed": installed,
        "run_exit_code": child.returncode,
        "modules_imported": len(imported),
        "pandas_imported": bool(pandas),
        "pandas_modules": len(pandas),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--python", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--name", default="fast_start", help="result file name")
    parser.add_argument("--quick", action="store_true", help="5 repeats")
    args = parser.parse_args()
    if args.quick:
        args.repeat = 5
    pythons = c.interpreters(args.python)
    work = Path(tempfile.mkdtemp(prefix="capa-bench-fast-"))
    out: dict[str, Any] = {}
    try:
        for name, python in pythons.items():
            ratio = help_ratio(python, args.repeat)
            pandas = pandas_in_run(python, work)
            out[name] = {"help": ratio, "pandas": pandas}
            print(
                f"{name}: `capa --help` {ratio['capa_help_ms']} ms / `python -c pass` "
                f"{ratio['python_c_pass_ms']} ms = {ratio['ratio']}x "
                f"(<= 2x: {ratio['within_2x']}; medians of {args.repeat}, interleaved)"
            )
            if pandas["run_exit_code"] != 0:
                verdict = f"run failed (exit {pandas['run_exit_code']}): not checked"
            elif not pandas["pandas_installed"]:
                verdict = (
                    "pandas is not installed here, so it cannot end up in sys.modules; "
                    f"the run tried to import it: {pandas['pandas_imported']}"
                )
            else:
                verdict = (
                    f"pandas imported by a run (start-up to seal): {pandas['pandas_imported']} "
                    f"({pandas['pandas_modules']} pandas modules of "
                    f"{pandas['modules_imported']} imported)"
                )
            print(f"{name}: {verdict}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c.write_result(args.name, {"pythons": pythons, "repeat": args.repeat, "results": out})


if __name__ == "__main__":
    main()
