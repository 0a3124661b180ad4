"""Runtime version marker and the runtime-diagnostics snapshot (seed 004).

:data:`RUNTIME_VERSION` names the revision of the conductor / worker / pool semantics; it
is recorded in every manifest as ``capa.runtime_version`` (and ``capa.engine_version``,
seed 004's name) so a bundle can be read knowing which engine wrote it.
:func:`runtime_diagnostics` is the per-loop / per-resource snapshot that lands in
``manifest.queue_health`` at the end of a run, one flat entry per tag:

* ``loop.conductor`` — how late the run loop's 20 Hz heartbeat woke up: ``samples``,
  ``lag_p50_ms``, ``lag_p99_ms``, ``lag_max_ms``, ``lag_warnings``.
* ``bridge.outbound:<resource_id>`` — the hand-off of one worker's emissions to the
  pipeline and writer (here a direct call that blocks while the writer is behind, not a
  queue of its own): ``enqueued_total`` (emissions handed over), ``dropped_total``
  (hand-offs that failed), ``blocked_total_ms`` (time spent in hand-offs),
  ``blocked_since_ms`` (age of a hand-off still in progress, ``-1`` when none),
  ``latency_p50_ms`` / ``latency_p99_ms`` (per hand-off, over the last 4096).
* ``worker:<resource_id>`` — ``samples_emitted``, ``emissions_total``,
  ``commands_total``, ``read_errors``, ``emit_errors``, ``late_polls``,
  ``last_sample_age_s`` (``-1`` before the first emission), ``abandoned`` (0 / 1).

Values are floats so the block can be compared across runs and plotted as is.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from capa.runtime.conductor import Conductor
    from capa.runtime.monitors import LoopLagMeter
    from capa.runtime.worker import Worker

__all__ = ["RUNTIME_VERSION", "runtime_diagnostics", "snapshot"]

RUNTIME_VERSION: Final[str] = "0.1.0-rt1"
"""Revision of the runtime's semantics (conductor, workers, pool, pipeline).

Bumped when a change alters how a bundle must be interpreted (what is counted, when a run
is sealed, what an outcome means); recorded as ``manifest.capa.runtime_version`` and
``manifest.capa.engine_version``.
"""


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def snapshot(lag: LoopLagMeter, workers: Iterable[Worker]) -> dict[str, dict[str, float]]:
    """The diagnostics of a run loop's ``lag`` meter and its ``workers`` (see module doc)."""
    summary = lag.summary()
    out: dict[str, dict[str, float]] = {
        "loop.conductor": {
            "samples": float(summary.get("beats", 0)),
            "lag_p50_ms": float(summary.get("p50_ms", 0.0)),
            "lag_p99_ms": float(summary.get("p99_ms", 0.0)),
            "lag_max_ms": float(summary.get("max_ms", 0.0)),
            "lag_warnings": float(lag.warnings),
        }
    }
    now = time.monotonic()
    for worker in workers:
        rid = worker.resource_id
        stats = worker.stats
        handoffs = stats.handoff_latencies_ms()
        blocked = stats.blocked_for_s()
        last = stats.last_handoff
        out[f"bridge.outbound:{rid}"] = {
            "enqueued_total": float(stats.emissions),
            "dropped_total": float(stats.emit_errors),
            "blocked_total_ms": round(stats.handoff_total_s * 1e3, 3),
            "blocked_since_ms": round(blocked * 1e3, 3) if blocked is not None else -1.0,
            "latency_p50_ms": _pct(handoffs, 0.50),
            "latency_p99_ms": _pct(handoffs, 0.99),
        }
        out[f"worker:{rid}"] = {
            "samples_emitted": float(stats.samples),
            "emissions_total": float(stats.emissions),
            "commands_total": float(stats.commands),
            "read_errors": float(stats.read_errors),
            "emit_errors": float(stats.emit_errors),
            "late_polls": float(stats.late_polls),
            "last_sample_age_s": round(now - last, 3) if last is not None else -1.0,
            "abandoned": 1.0 if stats.abandoned else 0.0,
        }
    return out


def runtime_diagnostics(conductor: Conductor) -> dict[str, dict[str, float]]:
    """The live diagnostics snapshot of ``conductor``'s run (see the module docstring).

    Safe to call from any thread while the run goes on; the conductor records the final
    snapshot in ``manifest.queue_health`` when it seals the bundle.
    """
    return conductor.runtime_diagnostics()
