"""``run_headless``: one experiment, one pool, one conductor, one sealed bundle."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from capa.errors import DeviceError
from capa.runtime.conductor import Conductor, ConductorConfig
from capa.runtime.failures import describe_failure
from capa.runtime.plan import RunPlan
from capa.runtime.pool import PoolState, WorkerPool
from capa.runtime.results import HeadlessResult
from capa.runtime.session import RealRunSession
from capa.runtime.state import RunOutcome

if TYPE_CHECKING:
    from capa.plugins.host import PluginHost

__all__ = ["run_headless"]

ProgressCallback = Callable[[dict[str, Any]], None]

OPERATOR_STOP = "operator_stop"
"""``exit_reason`` prefix of a run the operator stopped (SIGINT, SIGTERM, Abort)."""

# Closing devices that opened just as the operator stopped the run.
_CLOSE_AFTER_STOP_S = 1.0


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
    stop = external_stop if external_stop is not None else anyio.Event()
    refusal = await open_pool_or_stop(pool, stop)
    if refusal is not None:
        # Refused before a run id exists: seed 004's placeholder id, never an empty one.
        return HeadlessResult("preflight-refused", None, "aborted", "none", "unknown", refusal)
    session = RealRunSession(
        runs_root, config_files=plan.config_files, config_path=plan.source, run_id=run_id
    )
    conductor = Conductor(
        plan=plan,
        pool=pool,
        session=session,
        config=conductor_config,
        external_stop=stop,
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
    except Exception as exc:  # ExceptionGroup included; cancellation is not caught
        with anyio.CancelScope(shield=True):
            return await _seal_after_escape(pool, session, conductor, exc)
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


async def _seal_after_escape(
    pool: WorkerPool, session: RealRunSession, conductor: Conductor, exc: BaseException
) -> HeadlessResult:
    """Last line of defence: the conductor itself raised. Stop, seal if possible, report.

    The conductor turns every failure it knows of into a sealed outcome; this catches what
    it does not (a bug in draining or finalizing), so ``capa run`` still ends ``crashed``
    (exit 2) with the unwrapped cause rather than an ExceptionGroup and exit 5.
    """
    reason = f"conductor: {describe_failure(exc)}"
    _say(f"capa: error: the run failed unexpectedly: {reason}")
    grace = conductor.config.shutdown_grace_s
    try:
        await pool.stop_sampling_all(grace)
    except Exception as stop_exc:  # keep going: the bundle matters more than the devices
        _say(f"capa: error: stopping the devices failed: {describe_failure(stop_exc)}")
    bundle_status, integrity = "none", "unknown"
    if session.bundle_path is not None:
        bundle_status = "open"
        try:
            sealed = await anyio.to_thread.run_sync(session.close, RunOutcome.CRASHED, reason, {})
        except Exception as close_exc:
            reason = f"{reason}; finalize: {describe_failure(close_exc)}"
        else:
            bundle_status, integrity = sealed.bundle_status, sealed.integrity_status
    return HeadlessResult(
        run_id=session.run_id,
        bundle_path=session.bundle_path,
        run_status="crashed",
        bundle_status=bundle_status,
        integrity_status=integrity,
        exit_reason=reason,
    )


def _say(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):  # stderr gone: nowhere left to say it
        sys.stderr.write(text + "\n")


async def open_pool_or_stop(pool: WorkerPool, stop: anyio.Event) -> str | None:
    """Open ``pool`` unless ``stop`` is set first; ``None`` once open, else the refusal.

    The open runs in a cancel scope that ``stop`` cancels (the SIGINT handler sets it), so
    Ctrl-C during a slow or hung device open ends the run at once as an operator stop
    instead of waiting out every open timeout. Workers still blocked in a driver's open
    are abandoned by the pool (daemon threads), never waited for.
    """
    failure: DeviceError | None = None
    with anyio.CancelScope() as scope:

        async def cancel_on_stop() -> None:
            await stop.wait()
            scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_on_stop)
            try:
                await pool.open()
            except DeviceError as exc:
                failure = exc
            tg.cancel_scope.cancel()
    if scope.cancelled_caught or stop.is_set():
        if pool.state is PoolState.OPEN:
            # The stop arrived just as the last device opened: honour it before any bundle.
            with anyio.CancelScope(shield=True):
                await pool.close(_CLOSE_AFTER_STOP_S)
        return f"{OPERATOR_STOP}: stopped while opening devices"
    if failure is not None:
        return f"pool_open: {failure}"
    return None


async def _report_progress(
    conductor: Conductor, callback: ProgressCallback, period_s: float
) -> None:
    while True:
        await anyio.sleep(period_s)
        if conductor.state.value == "running":
            try:
                callback(conductor.progress())
            except Exception as exc:
                # A display that fails (a closed terminal) must not end the measurement
                # it displays: report it once and stop displaying.
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(f"capa: progress display stopped: {exc}\n")
                return
