"""Safety monitor reaction time on the demo rig: alarm condition -> command to the device.

Runs the demo rig (examples/demo/rig.toml: the Watlow simulator over Standard Bus on a
pseudo-terminal, the Sartorius, NI-DAQ and camera simulators beside it) with its furnace
made fast (20 s -> 2 s time constant), its over-temperature alarm (``furnace_overtemp``,
action ``safe_shutdown``) lowered from 600 to 120 degC, and a method that ramps the set
point past it. For each run it reads the bundle:

- ``reaction_ms``: the monitor's own figure — from the run-clock time of the sample that
  raised the alarm to the moment the safe-target write is handed to the device's worker;
- ``command_done_ms``: from that sample's time to the device's answer to the write (the
  ``write`` event the conductor records with the result's run-clock time), i.e. the bytes
  went over the pty to the controller simulator and its reply came back.

    python bench/safety_reaction.py --runs 5 [--json results/safety_reaction.json]

Prints p50 / max of both. Asserts nothing: the figures go to bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import _common as c

METHOD = """\
name = "overshoot"
description = "Ramp the furnace past its over-temperature alarm."

[[steps]]
kind = "ramp"
target = "furnace_sp"
start_value = 25.0
end_value = 400.0
rate_per_second = 50.0

[[steps]]
kind = "hold"
target = "furnace_sp"
value = 400.0
duration_s = 30.0

[[steps]]
kind = "safe_shutdown"
cool_target = { furnace_sp = 25.0 }
"""


def prepare(folder: Path) -> Path:
    """Copy the demo rig with a fast furnace and its over-temperature alarm at 120 degC."""
    rig = (c.ROOT / "examples" / "demo" / "rig.toml").read_text()
    fast = rig.replace("sim://?tau=20&ambient=25&seed=1", "sim://?tau=2&ambient=25&seed=1")
    alarm = 'channel = "furnace_t"\nhigh = '
    fast = fast.replace(alarm + "600.0", alarm + "120.0")
    if fast.count("tau=2&") != 1 or "high = 120.0" not in fast:
        raise SystemExit("examples/demo/rig.toml changed shape: furnace port or alarm not found")
    (folder / "rig.toml").write_text(fast)
    (folder / "overshoot.method.toml").write_text(METHOD)
    (folder / "experiment.yaml").write_text(
        "hardware: rig.toml\n"
        "method: overshoot.method.toml\n"
        "procedure: {id: capa.builtin.recipe_runner}\n"
        "operator: {id: bench}\n"
        "sample: {id: BENCH}\n"
        "runtime: {shutdown_grace_s: 5}\n"
    )
    return folder / "experiment.yaml"


def measure(bundle: Path) -> dict[str, float]:
    """Reaction figures of one run, from its events."""
    with sqlite3.connect(bundle / "events.sqlite") as db:
        rows = db.execute(
            "SELECT kind, t_mono_ns, metadata_json FROM events ORDER BY id"
        ).fetchall()
    raised = [json.loads(m) for k, _t, m in rows if k == "alarm.raised"]
    if not raised:
        raise RuntimeError(f"{bundle}: no alarm.raised event")
    alarm = raised[0]
    writes = [
        t
        for k, t, m in rows
        if k == "write" and json.loads(m or "{}").get("authorization_id", "").startswith("safety:")
    ]
    if not writes:
        raise RuntimeError(f"{bundle}: no safe-target write by the monitor")
    return {
        "reaction_ms": float(alarm["reaction_ms"]),
        "command_done_ms": (writes[0] - int(alarm["t_mono_ns"])) / 1e6,
        "value": float(alarm["value"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    work = Path(tempfile.mkdtemp(prefix="capa-bench-safety-"))
    try:
        experiment = prepare(work)
        env = c.capa_env(work / "home")
        for i in range(args.runs):
            child = c.run_child(
                c.capa_argv("run", str(experiment), "--runs-root", str(work / "runs")), work, env
            )
            bundle = c.run_bundle(child.stdout)
            if bundle is None or child.returncode != 1:
                print(f"run {i}: exit {child.returncode}\n{child.stdout}\n{child.stderr}")
                return 1
            figures = measure(bundle)
            results.append(figures)
            print(
                f"run {i}: reaction {figures['reaction_ms']:.1f} ms, "
                f"command answered {figures['command_done_ms']:.1f} ms "
                f"(alarm at {figures['value']:.1f} degC)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    reaction = [r["reaction_ms"] for r in results]
    done = [r["command_done_ms"] for r in results]
    summary = {
        "runs": len(results),
        "reaction_ms": {"p50": c.median(reaction), "max": max(reaction)},
        "command_done_ms": {"p50": c.median(done), "max": max(done)},
        "each": results,
    }
    print(
        f"alarm -> safe-target command: p50 {summary['reaction_ms']['p50']:.1f} ms, "
        f"max {summary['reaction_ms']['max']:.1f} ms; device answered: "
        f"p50 {summary['command_done_ms']['p50']:.1f} ms, "
        f"max {summary['command_done_ms']['max']:.1f} ms (target < 100 ms)"
    )
    if args.json is not None:
        c.write_result(args.json.stem, summary, args.json.parent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
