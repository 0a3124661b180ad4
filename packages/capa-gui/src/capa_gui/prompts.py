"""Operator prompts: the console speaks the same two-file protocol as ``capa prompt ack``.

A waiting ``prompt`` step (capa-procedures) keeps ``prompt.pending.json`` (run id, step
index, title, message, shown time) in the run's bundle directory and polls for
``prompt.ack.json`` naming that step. Acknowledging in the page writes exactly what
``capa prompt ack RUN_ID --by NAME`` writes, atomically, so the step records the same
``method.prompt.acknowledged`` event with ``acknowledged_by`` = the operator's name.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["ACK_FILE", "PENDING_FILE", "acknowledge", "pending_prompt"]

PENDING_FILE = "prompt.pending.json"
ACK_FILE = "prompt.ack.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent, or caught between temp file and rename
    return data if isinstance(data, dict) else None


def pending_prompt(bundle: Path) -> dict[str, Any] | None:
    """The prompt the run in ``bundle`` waits on, or ``None``."""
    pending = _read(bundle / PENDING_FILE)
    if pending is None:
        return None
    return {
        "run_id": pending.get("run_id"),
        "step": pending.get("step"),
        "title": str(pending.get("title", "")),
        "message": str(pending.get("message", "")),
        "shown_utc": pending.get("shown_utc"),
        "ack_command": f"capa prompt ack {pending.get('run_id') or bundle.name}",
    }


def acknowledge(bundle: Path, step: int, by: str) -> dict[str, Any]:
    """Acknowledge prompt ``step`` of the run in ``bundle`` as ``by``.

    Raises:
        ValueError: no prompt is waiting, it is another step, or ``by`` is empty.
    """
    who = by.strip()
    if not who:
        raise ValueError("say who acknowledges the prompt")
    pending = _read(bundle / PENDING_FILE)
    if pending is None:
        raise ValueError("no prompt is waiting (it may have been answered or timed out)")
    if pending.get("step") != step:
        raise ValueError(f"the waiting prompt is step {pending.get('step')}, not {step}")
    record = {"step": step, "by": who, "acked_utc": datetime.now(UTC).isoformat()}
    target = bundle / ACK_FILE
    tmp = target.with_name(f".{target.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(record, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    return {"title": pending.get("title", ""), **record}
