"""Shared by the device end-to-end tests: write a rig + experiment, run `capa run`."""

from __future__ import annotations

import json
import sqlite3
import textwrap
from pathlib import Path

from ..run.conftest import CapaProcess, manifest, summary

__all__ = ["CapaProcess", "event_rows", "manifest", "run_rig", "summary", "write_rig"]


def write_rig(tmp: Path, rig: str, *, duration_s: float, grace_s: float = 3) -> Path:
    """``rig.toml`` plus an experiment running ``capa.builtin.free_run`` for ``duration_s``."""
    (tmp / "rig.toml").write_text(textwrap.dedent(rig))
    cfg = json.dumps({"duration_s": duration_s})
    (tmp / "experiment.yaml").write_text(
        textwrap.dedent(
            f"""\
            hardware: rig.toml
            procedure:
              id: capa.builtin.free_run
              config: {cfg}
            operator: {{id: tester}}
            sample: {{id: S-1}}
            runtime: {{shutdown_grace_s: {grace_s}}}
            """
        )
    )
    return tmp / "experiment.yaml"


def run_rig(proc: CapaProcess, exp: Path, timeout: float = 180) -> tuple[Path, dict[str, str]]:
    """Run to the end; returns the bundle and the summary block (asserts exit 0)."""
    done = proc.run("run", str(exp), "--runs-root", "runs", timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    s = summary(done.stdout)
    assert s["bundle_status"] == "sealed", s
    return proc.runs / s["run_id"], s


def event_rows(bundle: Path, prefix: str) -> list[dict]:
    """Events whose kind starts with ``prefix``, metadata decoded."""
    with sqlite3.connect(bundle / "events.sqlite") as db:
        rows = db.execute(
            "SELECT kind, severity, source, message, metadata_json FROM events ORDER BY id"
        ).fetchall()
    return [
        {
            "kind": k,
            "severity": sev,
            "source": src,
            "message": msg,
            "metadata": json.loads(meta) if meta else {},
        }
        for k, sev, src, msg, meta in rows
        if k.startswith(prefix)
    ]
