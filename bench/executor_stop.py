"""How fast a running method step honours an external stop (capa-procedures executor).

Seed 002 asks that a ramp or wait stop within about 100 ms. For each blocking step kind
this starts the step on an in-process run context, sets ``external_stop`` at a random
moment, and measures the time until the executor returns. Prints the figures.

    uv run python bench/executor_stop.py --repeat 30
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

import capa
from capa_procedures.executor import MethodExecutor
from capa_procedures.steps import BUILTIN_STEPS


class _Events:
    def emit(self, *a: Any, **k: Any) -> None:
        pass


class _Log:
    def info(self, *a: Any, **k: Any) -> None:
        pass

    error = warning = info


class _Channels:
    """Latest values and a subscription that never delivers (the condition never holds)."""

    def names(self) -> list[str]:
        return ["sp", "pv"]

    def latest(self, channel: str) -> float | None:
        return 20.0

    def subscribe(self, channels: list[str], maxlen: int) -> _Silent:
        return _Silent()

    def unsubscribe(self, sub: _Silent) -> None:
        pass


class _Silent:
    """A subscription to a channel that sends nothing (a wait that never ends by itself)."""

    async def get(self) -> tuple[str, int, float]:
        await anyio.sleep_forever()
        raise AssertionError

    def drain(self) -> list[tuple[str, int, float]]:
        return []


class _Run:
    def __init__(self, steps: list[capa.Step], bundle: Path) -> None:
        self.steps = steps
        self.channels = _Channels()
        self.events = _Events()
        self.log = _Log()
        self.progress: dict[str, Any] = {}
        self.external_stop = anyio.Event()
        self.run_id = "bench"
        self.method = None
        self.experiment = None
        self.bundle_path = bundle

    async def write_channel(
        self, channel: str, value: float, *, authorization_id: str | None = None
    ) -> capa.CommandResult:
        await anyio.sleep(0.002)  # a fast device round trip
        return capa.CommandResult(True)


CASES: dict[str, dict[str, Any]] = {
    "ramp (tick 0.1 s)": {"kind": "ramp", "target": "sp", "end_value": 1e6, "duration_s": 3600},
    "ramp (tick 1 s)": {
        "kind": "ramp", "target": "sp", "end_value": 1e6, "duration_s": 3600, "tick_s": 1.0
    },
    "wait (condition, subscription)": {
        "kind": "wait", "end_condition": {"channel": "pv", "op": ">", "value": 1e9}
    },
    "wait (duration)": {"kind": "wait", "duration_s": 3600},
    "hold": {"kind": "hold", "target": "sp", "value": 1, "duration_s": 3600},
    "acquire": {"kind": "acquire", "duration_s": 3600},
    "prompt (polling the ack file)": {"kind": "prompt", "title": "t", "timeout_s": 3600},
}  # fmt: skip


async def _once(spec: dict[str, Any], bundle: Path) -> float:
    kinds = {c.kind: c for c in BUILTIN_STEPS}
    fields = dict(spec)
    cls = kinds[fields.pop("kind")]
    run = _Run([cls(cls.Config.model_validate(fields), 0)], bundle)
    executor = MethodExecutor(run)  # type: ignore[arg-type]
    stopped_at = 0.0
    async with anyio.create_task_group() as tg:

        async def stopper() -> None:
            nonlocal stopped_at
            await anyio.sleep(random.uniform(0.2, 0.5))
            stopped_at = time.perf_counter()
            run.external_stop.set()

        tg.start_soon(stopper)
        await executor.run_all()
    return time.perf_counter() - stopped_at


def main() -> None:
    """Print stop latency per step kind."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import tempfile

    print(f"{'step':32} {'median ms':>10} {'max ms':>8}  (n={args.repeat})")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CASES.items():
            lat = [anyio.run(_once, spec, Path(tmp)) * 1e3 for _ in range(args.repeat)]
            print(f"{name:32} {statistics.median(lat):10.2f} {max(lat):8.2f}")


if __name__ == "__main__":
    main()
