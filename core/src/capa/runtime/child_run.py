"""Child runs: a procedure run inside another run, on the same devices.

:meth:`capa.runtime.conductor.Conductor.run_child` delegates here. The parent pauses its
own sampling, a child :class:`~capa.runtime.conductor.Conductor` records into its own
bundle (a child session), and the parent re-arms and resumes when the child has sealed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio

from capa.errors import ConductorStateError
from capa.runtime.results import HeadlessResult
from capa.runtime.state import ConductorState

if TYPE_CHECKING:
    from capa.runtime.conductor import Conductor

__all__ = ["run_child"]


async def run_child(
    parent: Conductor,
    procedure_id: str,
    config: Mapping[str, Any],
    *,
    sample_id: str | None = None,
    custom: Mapping[str, Any] | None = None,
) -> HeadlessResult:
    """Run ``procedure_id`` as a child run on ``parent``'s pool (see RunContext.run_child)."""
    from capa.errors import ConfigError, UnknownComponentError
    from capa.runtime.conductor import Conductor

    if not parent._allow_children or parent._host is None or parent.pipeline is None:
        raise ConductorStateError("child runs are not available in this run")
    if parent.state is not ConductorState.RUNNING:
        raise ConductorStateError(f"cannot start a child run: run is {parent.state.value}")
    try:
        record = parent._host.procedures.record(procedure_id)
    except UnknownComponentError as exc:
        raise ConfigError(f"child run: {exc}") from None
    if record.cls is parent.plan.procedure:
        raise ConfigError(f"child run: {procedure_id} cannot run itself as a child")
    try:
        cfg = record.cls.Config.model_validate(dict(config))
    except ValueError as exc:  # pydantic.ValidationError
        raise ConfigError(f"child run: {procedure_id} config: {exc}") from None
    fields = dict(parent.plan.manifest_fields)
    sample = dict(fields.get("sample") or {})
    if sample_id is not None:
        sample["id"] = sample_id
    fields.update(
        sample=sample,
        custom={**dict(fields.get("custom") or {}), **dict(custom or {})},
        procedure={"id": procedure_id, "version": record.version, "dist": record.dist},
    )
    plan = dataclasses.replace(
        parent.plan, procedure=record.cls, procedure_config=cfg, manifest_fields=fields
    )
    child = Conductor(
        plan=plan,
        pool=parent.pool,
        session=parent.session.child(),
        config=parent.config,
        host=parent._host,
        allow_children=False,
    )
    # One run samples the devices at a time: pause ours while the child records.
    await parent.pool.stop_sampling_all(parent.config.shutdown_grace_s)
    parent.session.log.info("conductor.child_started", procedure=procedure_id)
    try:
        async with anyio.create_task_group() as tg:

            async def forward_stop() -> None:
                await parent._stop_requested.wait()
                child.stop("parent_stopped")

            tg.start_soon(forward_stop)
            result = await child.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            parent._arm()
            await parent.pool.begin_sampling_all()
    parent.session.log.info(
        "conductor.child_ended", run_id=result.run_id, outcome=result.outcome.value
    )
    return HeadlessResult(
        run_id=result.run_id,
        bundle_path=result.bundle_path,
        run_status=result.outcome.run_status,
        bundle_status=result.bundle_status,
        integrity_status=result.integrity_status,
        exit_reason=result.exit_reason,
    )
