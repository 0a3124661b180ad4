"""What the conductor does as sampling stops, before the bundle is sealed.

How long DRAINING is held (seed 000's documentation hook); closing the data path (the
pipeline is sealed; rows emitted later are only counted); and gathering the finalize-time
summaries the manifest records: each adapter's ``run_summary()`` (cameras also get a
``cameras`` entry) and the safety counters. Kept apart from :mod:`capa.runtime.conductor`,
which sequences the run and calls these.
"""

from __future__ import annotations

from typing import Any

import anyio

from capa.errors import BundleError
from capa.runtime.pipeline import ChannelPipeline
from capa.runtime.plan import RunPlan
from capa.runtime.pool import WorkerPool
from capa.runtime.safety import SafetyMonitor
from capa.runtime.session import RunSession

__all__ = ["close_data_path", "device_summaries", "draining_delay_s", "safety_counts"]


async def close_data_path(
    pipeline: ChannelPipeline, session: RunSession, grace: float, abandoned: list[str]
) -> None:
    """Seal the pipeline: what devices emit from now on is counted ``after_stop``.

    An abandoned worker may keep emitting; its rows never reach the closing writer
    unaccounted. Rows already counted so get one warning event.
    """
    with anyio.CancelScope(shield=True):
        settled = await anyio.to_thread.run_sync(pipeline.seal, grace)
    if not settled:
        session.log.error("conductor.pipeline_busy_at_seal", grace_s=grace)
    late: dict[str, dict[str, int]] = {}
    for device, streams in pipeline.ledger.snapshot().items():
        for stream, c in streams.items():
            if c["dropped"].get("after_stop"):
                late.setdefault(device, {})[stream] = c["dropped"]["after_stop"]
    if late or abandoned:
        # An abandoned worker may go on emitting until the process ends: its rows
        # are counted (counts.accounting ... dropped.after_stop), never written.
        try:
            session.emit(
                "run.dropped_after_stop",
                "rows emitted after sampling stopped are not recorded, only counted "
                f"(so far: {late or 'none'}; still running: {abandoned or 'none'})",
                severity="warning",
                source="conductor",
                metadata={"rows": late, "abandoned_workers": list(abandoned)},
            )
        except BundleError as exc:
            # A failed writer: the rows are in counts.accounting all the same.
            session.log.error("conductor.event_unrecorded", error=str(exc))


def device_summaries(
    pool: WorkerPool, plan: RunPlan, abandoned: list[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Each adapter's ``run_summary()``; cameras also get a manifest ``cameras`` entry."""
    devices: dict[str, Any] = {}
    cameras: list[dict[str, Any]] = []
    for name, adapter in pool.adapters():
        if plan.device(name).resource_id in abandoned:
            continue  # its worker is wedged: do not touch the adapter from here
        try:
            summary = dict(adapter.run_summary())
        except Exception as exc:
            summary = {"error": f"run_summary() raised {type(exc).__name__}: {exc}"}
        if summary:
            devices[name] = summary
        if "records_video" in adapter.capabilities:
            cameras.append({"device": name, **summary})
    return devices, cameras


def safety_counts(safety: SafetyMonitor | None, devices: dict[str, Any]) -> dict[str, Any]:
    """``counts.safety``, and each device's watchdog trips in its own counters."""
    if safety is None or not safety.active:
        return {}
    summary = safety.summary()
    for name, trips in summary["watchdog_trips"].items():
        devices.setdefault(name, {})["watchdog_trips"] = trips
    return {"safety": summary}


def draining_delay_s() -> float:
    """``CAPA_DRAINING_DELAY_S`` (seed 000): seconds to hold DRAINING; 0 when unset/bad."""
    import os

    try:
        return max(0.0, float(os.environ.get("CAPA_DRAINING_DELAY_S", "0")))
    except ValueError:
        return 0.0
