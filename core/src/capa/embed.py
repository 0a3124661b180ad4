"""What an application embedding capa needs beyond :mod:`capa.runtime`.

An operator console (``capa-gui``), a notebook or a batch driver loads plugins under the
same trust rules as ``capa run``, validates an experiment file as ``capa validate`` does,
resolves it into a :class:`~capa.runtime.RunPlan`, and reads the catalog of a runs root.
These functions are thin, stable entry points onto the modules that do that work, so
plugins import ``capa.embed`` instead of internals. Nothing heavy is imported until a
function is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from capa.bundle.catalog import Catalog
    from capa.bundle.integrity import VerifyResult
    from capa.config.validate import Report
    from capa.plugins.host import PluginHost
    from capa.problems import Problem
    from capa.runtime.plan import RunPlan

__all__ = [
    "blocked_plugins",
    "catalog",
    "is_production",
    "load_host",
    "plan_from_report",
    "problem_line",
    "read_manifest",
    "resolve_lock",
    "resolve_runs_root",
    "validate_experiment",
    "verify_bundle",
]


def is_production() -> bool:
    """Whether ``CAPA_PLUGIN_MODE=production`` (only locked plugins are imported)."""
    from capa.trust.resolve import is_production as _is_production

    return _is_production()


def resolve_lock(flag: Path | None) -> Path | None:
    """``--plugins-lock`` (must exist) > ``./plugins.lock`` > the user config dir.

    Raises:
        TrustError: ``flag`` names a file that does not exist.
    """
    from capa.trust.resolve import resolve_lock as _resolve_lock

    return _resolve_lock(flag)


def load_host(lock: Path | None = None) -> PluginHost:
    """A loaded plugin host, exactly as ``capa run`` builds it.

    In production mode only the plugins ``lock`` (or the auto-discovered lock) pins are
    imported; without a lock this raises :class:`~capa.errors.TrustError` naming the
    paths searched. In dev mode every installed plugin is loaded and ``lock`` is unused.
    """
    if is_production():
        from capa.trust.gate import load_trusted_host
        from capa.trust.lockfile import load_lock
        from capa.trust.resolve import no_lock_error

        path = resolve_lock(lock)
        if path is None:
            raise no_lock_error()
        return load_trusted_host(load_lock(path))
    from capa.cli.common import load_plugin_host

    return load_plugin_host()


def blocked_plugins(host: PluginHost) -> list[str]:
    """``name: drift`` of every plugin the production gate refused (empty in dev mode)."""
    from capa.trust.gate import gate_for

    gate = gate_for(host)
    if gate is None:
        return []
    return [f"{check.name}: {check.reason()}" for check in gate.blocked()]


def validate_experiment(path: Path, host: PluginHost, *, live: bool = False) -> Report:
    """Every problem of an experiment file (and the files it names), as ``capa validate``.

    ``live`` also handshakes every device (read-only).
    """
    from capa.config.validate import validate_experiment as _validate

    return _validate(path, host, live=live)


def problem_line(problem: Problem) -> str:
    """The one-line form ``capa validate`` prints for ``problem`` (with file and line)."""
    from capa.cli.config_output import problem_line as _line

    return _line(problem)


def plan_from_report(report: Report, host: PluginHost) -> RunPlan:
    """The run plan of a clean report (raises ConfigError when it has errors)."""
    from capa.runtime.build import plan_from_report as _plan

    return _plan(report, host)


def resolve_runs_root(value: str | Path | None = None) -> Path:
    """``--runs-root`` > ``$CAPA_RUNS_ROOT`` > ``./runs``."""
    from capa.bundle.paths import resolve_runs_root as _resolve

    return _resolve(value)


def catalog(runs_root: Path, *, create: bool = False) -> Catalog:
    """The run catalog (``runs.sqlite``) of ``runs_root``; see :class:`Catalog`."""
    from capa.bundle.catalog import Catalog

    return Catalog(runs_root, create=create)


def verify_bundle(bundle: Path) -> VerifyResult:
    """Re-hash a sealed bundle against its ``manifest.sha256`` (``capa catalog verify``)."""
    from capa.bundle.integrity import verify_bundle as _verify

    return _verify(bundle)


def read_manifest(bundle: Path) -> dict[str, Any]:
    """A bundle's ``manifest.json`` as a plain dict (validated on the way)."""
    from capa.bundle.manifest import read_manifest as _read

    data: dict[str, Any] = _read(bundle).model_dump(mode="json")
    return data
