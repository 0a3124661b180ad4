"""Building a :class:`RunPlan` from a validated experiment (``capa.config`` report)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capa.errors import ConfigError
from capa.runtime.plan import (
    ChannelPlan,
    DerivedPlan,
    DevicePlan,
    RunPlan,
    RuntimeOptions,
    SinkPlan,
)

if TYPE_CHECKING:
    from capa.config.validate import Report
    from capa.plugins.host import PluginHost

__all__ = ["plan_from_report"]


def plan_from_report(report: Report, host: PluginHost) -> RunPlan:
    """Resolve a clean experiment :class:`~capa.config.validate.Report` into a run plan.

    Raises:
        ConfigError: the report has errors or lacks a part a run needs.
    """
    from capa.config.units import canonical_unit, is_convertible
    from capa.runtime.channel_meta import calibration_summary

    exp, hw = report.experiment, report.hardware
    if not report.ok or exp is None or hw is None or report.procedure_config is None:
        raise ConfigError(f"{report.path}: the experiment did not validate; cannot run it")

    devices = tuple(
        DevicePlan(
            name=d.config.name,
            adapter=d.cls,
            params=d.params,
            resource_id=d.config.resource_id or d.resource_id or d.cls.resource_id(d.params),
            on_failure=d.config.on_failure,
            watchdog_s=d.config.watchdog_s,
        )
        for d in sorted(hw.devices.values(), key=lambda d: d.index)
    )
    channels = []
    for ch in hw.config.channels:
        spec = hw.devices[ch.source.device].fields[ch.source.field]
        convert = bool(spec.unit) and canonical_unit(spec.unit) != canonical_unit(ch.unit)
        channels.append(
            ChannelPlan(
                name=ch.name,
                device=ch.source.device,
                field=ch.source.field,
                unit=ch.derived_unit or ch.unit,
                kind=ch.kind,
                mapping=ch,
                keep_raw=ch.keep_raw,
                writable=hw.channel_writable(ch.name),
                field_unit=spec.unit if convert and is_convertible(spec.unit, ch.unit) else "",
                raw_unit=spec.unit or ch.unit,
                calibration=calibration_summary(ch.calibration),
                plot_group=ch.plot_group,
            )
        )
    procedure = host.procedures[exp.procedure.id]
    record = host.procedures.record(exp.procedure.id)
    steps = tuple(s.step for s in report.method.steps) if report.method else ()
    return RunPlan(
        experiment=exp,
        hardware_name=hw.config.name,
        devices=devices,
        channels=tuple(channels),
        procedure=procedure,
        procedure_config=report.procedure_config,
        method=report.method.config if report.method else None,
        steps=steps,
        runtime=RuntimeOptions(
            shutdown_grace_s=exp.runtime.shutdown_grace_s,
            loop_lag_warn_ms=exp.runtime.loop_lag_warn_ms,
            saturation_deadline_s=exp.runtime.saturation_deadline_s,
        ),
        recording_policy=exp.run_options.recording_policy,
        config_files=_config_files(report),
        source=report.path,
        manifest_fields=_manifest_fields(report, host, record.dist, record.version),
        profile_warnings=(
            tuple(p for p in report.profile.problems if not p.is_error) if report.profile else ()
        ),
        sinks=_sinks(report, host),
        derived=tuple(
            DerivedPlan(
                name=r.config.name,
                expression=r.config.expression,
                constants=dict(r.config.constants),
                unit=r.config.unit,
                kind=r.config.kind,
                inputs=r.expression.inputs,
                plot_group=r.config.plot_group,
            )
            for r in hw.derived.values()
        ),
        alarms=(*hw.config.alarms, *exp.alarms),
        interlocks=(*hw.config.interlocks, *exp.interlocks),
    )


def _sinks(report: Report, host: PluginHost) -> tuple[SinkPlan, ...]:
    """Every extra sink of the experiment, with its validated config and policy."""
    exp = report.experiment
    assert exp is not None
    if len(report.sink_configs) != len(exp.sinks):  # validation reported why
        raise ConfigError(f"{report.path}: sinks did not validate; cannot run it")
    return tuple(
        SinkPlan(
            label=f"{ref.id}#{i}",
            cls=host.sinks[ref.id],
            config=config,
            on_failure=ref.on_failure,
            queue_size=ref.queue_size,
        )
        for i, (ref, config) in enumerate(zip(exp.sinks, report.sink_configs, strict=True))
    )


def _config_files(report: Report) -> dict[str, Path]:
    """The files a run was configured from, for the bundle's ``config/`` directory."""
    files = {report.path.name: report.path}
    exp = report.experiment
    assert exp is not None
    for ref in (exp.hardware, exp.method):
        if isinstance(ref, str):
            path = (report.path.parent / ref).resolve()
            files.setdefault(path.name, path)
    return files


def _manifest_fields(
    report: Report, host: PluginHost, dist: str, version: str
) -> Mapping[str, Any]:
    exp = report.experiment
    assert exp is not None
    assert report.hardware is not None
    return {
        "operator": exp.operator.model_dump(mode="json"),
        "sample": exp.sample.model_dump(mode="json"),
        "procedure": {"id": exp.procedure.id, "version": version, "dist": dist},
        "tags": list(exp.tags),
        "custom": {
            **exp.custom,
            "hardware": report.hardware.config.name,
            **({"calibration_set": exp.calibration_set} if exp.calibration_set else {}),
            **trust_manifest_fields(host),
        },
        "plugins": plugin_provenance(host),
        **({"profile": report.profile.manifest_entry()} if report.profile else {}),
    }


def plugin_provenance(host: PluginHost) -> list[dict[str, Any]]:
    """Every plugin the host saw, with distribution, version, digest and trust state.

    ``trust`` is ``dev`` in dev mode; in production it is ``trusted`` or the drift kind
    that blocked the plugin. Each entry also carries the record digest recomputed before
    import, the signer identity of a verified attestation, and the lock file's sha256.
    """
    gate = _gate_of(host)
    out = []
    for rec in host.plugins.values():
        entry: dict[str, Any] = {
            "name": rec.name,
            "dist": rec.dist,
            "version": rec.version,
            "entry_point": rec.entry_point,
            "status": rec.status.value,
            "components": list(rec.components),
            "trust": "dev",
        }
        check = gate.check_of(rec.name, rec.dist) if gate is not None else None
        if gate is not None:
            entry["trust"] = check.state if check is not None else "builtin"
            entry["lock_sha256"] = gate.lock.sha256
        if check is not None:
            locked = check.entry
            entry["record_digest"] = check.installed.digest if check.installed else None
            entry["drift"] = [str(d) for d in check.drifts]
            attestation = locked.attestation if locked is not None else None
            entry["attestation_identity"] = attestation.identity if attestation else None
        out.append(entry)
    return out


def trust_manifest_fields(host: PluginHost) -> dict[str, Any]:
    """``custom.plugins_lock`` for the manifest: mode, lock path and sha256."""
    gate = _gate_of(host)
    if gate is None:
        return {"plugins_lock": {"mode": "dev"}}
    lock = gate.lock
    return {
        "plugins_lock": {
            "mode": "production",
            "path": str(lock.path) if lock.path else None,
            "sha256": lock.sha256,
        }
    }


def _gate_of(host: PluginHost) -> Any:
    """The trust gate ``host`` was loaded through (production mode), else ``None``.

    A host is loaded through a gate only after :mod:`capa.trust.gate` was imported; in dev
    mode it never was, and importing it (hashing, drift checks, the import guard) only to
    learn that there is no gate would cost every dev-mode run its start-up time.
    """
    gate_module = sys.modules.get("capa.trust.gate")
    return None if gate_module is None else gate_module.gate_for(host)
