"""A small in-process RunContext for unit tests of the executor and step kinds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

import capa


class FakeClock:
    def __init__(self) -> None:
        import time

        self._t0 = time.monotonic_ns()

    def now_ns(self) -> int:
        import time

        return time.monotonic_ns() - self._t0


class FakeChannels:
    """Latest values; writes to a writable channel show up as its latest value."""

    def __init__(self, values: dict[str, float | None]) -> None:
        self.values = dict(values)

    def names(self) -> list[str]:
        return list(self.values)

    def latest(self, channel: str) -> float | None:
        return self.values.get(channel)

    def latest_with_time(self, channel: str) -> tuple[int, float] | None:
        value = self.values.get(channel)
        return None if value is None else (0, value)  # sampled at the start of the run


class FakeEvents:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, dict[str, Any]]] = []

    def emit(self, kind, message, *, severity="info", source="", metadata=None) -> None:
        self.rows.append((kind, str(severity), message, dict(metadata or {})))

    def kinds(self) -> list[str]:
        return [k for k, *_ in self.rows]


class _Log:
    def info(self, *a: Any, **k: Any) -> None: ...
    def error(self, *a: Any, **k: Any) -> None: ...
    def warning(self, *a: Any, **k: Any) -> None: ...


@dataclass
class FakeRun:
    """Implements what capa.RunContext promises, with a recorded write log."""

    steps: list[capa.Step]
    channels: FakeChannels
    writable: set[str] = field(default_factory=set)
    refuse: set[str] = field(default_factory=set)
    on_write: Any = None
    run_id: str = "20260101T000000-abcd"
    method: Any = None
    experiment: Any = None
    bundle_path: Any = None
    events: FakeEvents = field(default_factory=FakeEvents)
    external_stop: anyio.Event = field(default_factory=anyio.Event)
    progress: dict[str, Any] = field(default_factory=dict)
    clock: FakeClock = field(default_factory=FakeClock)
    log: Any = field(default_factory=_Log)
    writes: list[tuple[str, float, str | None]] = field(default_factory=list)
    writes_show_up: bool = True
    """Whether a write is visible as the channel's latest value at once (a device that is
    sampled right away) or not (the next poll has not happened yet)."""

    async def dispatch(self, device: str, command: capa.Command) -> capa.CommandResult:
        raise NotImplementedError

    async def write_channel(
        self, channel: str, value: float, *, authorization_id: str | None = None
    ) -> capa.CommandResult:
        if channel not in self.writable:
            raise capa.ConfigError(f"channel {channel!r} is not writable")
        self.writes.append((channel, value, authorization_id))
        if self.on_write is not None:
            self.on_write(channel, value)
        if channel in self.refuse:
            return capa.CommandResult(False, "refused by test")
        if self.writes_show_up:
            self.channels.values[channel] = value
        await anyio.lowlevel.checkpoint()
        return capa.CommandResult(True, "")


def make_steps(*specs: dict[str, Any]) -> list[capa.Step]:
    """Step instances from ``{"kind": ..., **fields}`` dicts, validated by their models."""
    from capa_procedures.steps import BUILTIN_STEPS

    kinds = {cls.kind: cls for cls in BUILTIN_STEPS}
    out = []
    for i, spec in enumerate(specs):
        fields = dict(spec)
        cls = kinds[fields.pop("kind")]
        out.append(cls(cls.Config.model_validate(fields), i))
    return out
