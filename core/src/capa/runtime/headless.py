"""``run_headless``: one experiment, one pool, one conductor, one sealed bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from capa.errors import DeviceError
from capa.runtime.conductor import Conductor, ConductorConfig
from capa.runtime.plan import RunPlan
from capa.runtime.pool import WorkerPool
from capa.runtime.results import HeadlessResult
from capa.runtime.session import RealRunSession

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["run_headless"]

ProgressCallback = Callable[[dict[str, Any]], None]


async def run_headless(
    plan: RunPlan,
    *,
    runs_root: Path,
    external_stop: anyio.Event | None = None,
    run_id: str | None = None,
    conductor_config: ConductorConfig | None = None,
    progress: ProgressCallback | None = None,
    progress_period_s: float = 0.5,
    on_conductor: Callable[[Conductor], None] | None = None,
    host: PluginHost | None = None,
) -> HeadlessResult:
    """Open the devices, run the procedure, seal the bundle, close the devices.

    A device that fails to open refuses the run before any bundle exists
    (``run_status=aborted``, ``exit_reason="pool_open: ..."``).

    Args:
        plan: the resolved experiment.
        runs_root: where the bundle goes.
        external_stop: setting it stops the run gracefully (the SIGINT handler does).
        run_id: a fixed run id (tests); generated otherwise.
        conductor_config: timing knobs; from the experiment's ``runtime`` by default.
        progress: called every ``progress_period_s`` with the conductor's progress.
        progress_period_s: seconds between progress calls.
        on_conductor: called with the conductor before it runs (embedding, tests).
        host: the plugin host, which procedures that start child runs (batch) need.
    """
    pool = WorkerPool(plan.devices)
    try:
        await pool.open()
    except DeviceError as exc:
        # Refused before a run id exists: seed 004's placeholder id, never an empty one.
        return HeadlessResult(
            "preflight-refused", None, "aborted", "none", "unknown", f"pool_open: {exc}"
        )
    session = RealRunSession(
        runs_root, config_files=plan.config_files, config_path=plan.source, run_id=run_id
    )
    conductor = Conductor(
        plan=plan,
        pool=pool,
        session=session,
        config=conductor_config,
        external_stop=external_stop,
        host=host,
    )
    if on_conductor is not None:
        on_conductor(conductor)
    try:
        async with anyio.create_task_group() as tg:
            if progress is not None:
                tg.start_soon(_report_progress, conductor, progress, progress_period_s)
            result = await conductor.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await pool.close(conductor.config.shutdown_grace_s)
    return HeadlessResult(
        run_id=result.run_id,
        bundle_path=result.bundle_path,
        run_status=result.outcome.run_status,
        bundle_status=result.bundle_status,
        integrity_status=result.integrity_status,
        exit_reason=result.exit_reason,
        notices=(session.stale_message,) if session.stale_message else (),
    )


async def _report_progress(
    conductor: Conductor, callback: ProgressCallback, period_s: float
) -> None:
    while True:
        await anyio.sleep(period_s)
        if conductor.state.value == "running":
            callback(conductor.progress())
