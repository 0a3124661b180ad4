"""Operator commands to a running heat-flux tune, through two files in the bundle.

While an iteration holds a setpoint, the tuner keeps ``tune.pending.json`` (target,
iteration, setpoint) in the run's bundle directory. ``capa prompt tune RUN_ID skip`` —
from any terminal on the machine, the same way ``capa prompt ack`` answers a method's
prompt — writes ``tune.command.json``; the tuner polls for it, records a
``heat_flux_tune.operator_command`` event and acts on it. Both files are written
atomically and removed when the tune ends, so a sealed bundle never holds them.

Commands:

* ``skip`` — give up the current target (it is recorded as skipped, with the operator's
  name) and go on with the next one; the tune then completes with ``complete = false`` in
  its artifact, since not every target has a point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio

from capa_procedures.prompt_files import read_json, remove_quietly, write_json_atomic

__all__ = ["COMMANDS", "TUNE_COMMAND_FILE", "TUNE_PENDING_FILE", "OperatorChannel"]

TUNE_PENDING_FILE = "tune.pending.json"
TUNE_COMMAND_FILE = "tune.command.json"
COMMANDS = ("skip",)
"""What ``capa prompt tune`` may ask of a running tune."""


class OperatorChannel:
    """The tuner's side of the two files (a no-op without a bundle directory).

    Every file access runs in a worker thread: the tuner's loop is the run's loop.
    """

    POLL_S = 0.5  # how often the command file is looked for; an operator's pace

    def __init__(self, bundle: Path | None) -> None:
        self._bundle = bundle
        self._next_poll = 0.0

    async def publish(self, state: dict[str, Any]) -> None:
        """Say what the tune is doing now (``capa prompt tune`` refuses without it)."""
        if self._bundle is not None:
            await anyio.to_thread.run_sync(
                write_json_atomic, self._bundle / TUNE_PENDING_FILE, state
            )

    async def poll(self, now_s: float) -> dict[str, Any] | None:
        """The operator's command, taken out of its file; ``None`` if none (or not yet due)."""
        if self._bundle is None or now_s < self._next_poll:
            return None
        self._next_poll = now_s + self.POLL_S
        path = self._bundle / TUNE_COMMAND_FILE

        def take() -> dict[str, Any] | None:
            if not path.exists():
                return None
            data = read_json(path)
            remove_quietly(path)
            # A file that is not a JSON object is still a command the operator gave:
            # it is reported (as unknown) rather than silently dropped.
            return data if data is not None else {"command": "<unreadable>"}

        return await anyio.to_thread.run_sync(take)

    async def close(self) -> None:
        """Remove both files (the tune is over; nothing is left for the sealed bundle)."""
        if self._bundle is None:
            return
        bundle = self._bundle

        def remove() -> None:
            remove_quietly(bundle / TUNE_PENDING_FILE)
            remove_quietly(bundle / TUNE_COMMAND_FILE)

        await anyio.to_thread.run_sync(remove)
