"""``capa run CONFIG``: one headless run, one sealed bundle, one exit code (seeds 000/001).

Exit codes: 0 completed and sealed; 1 aborted (operator stop, SIGINT/SIGTERM, preflight
refusal: unknown procedure, device that will not open); 2 crashed, or a configuration
error before anything was written; 3 the sealed bundle failed verification; 5 anything
else. A second Ctrl-C exits 130 at once, leaving the bundle for ``capa finalize``.
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from capa.cli.main import STARTED_EPOCH

__all__ = ["run"]

EXIT_CONFIG_ERROR = 2
EXIT_REFUSED = 1


def _console_available() -> bool:
    """Whether a loaded plugin serves live consoles (``--serve``); never raises."""
    try:
        from capa.cli.common import load_plugin_host

        return load_plugin_host().has_live_console()
    except Exception:  # e.g. production mode without a lock: no plugin, no console
        return False


class _ServeOption(click.Option):
    """``--serve``: listed in ``--help`` only when a plugin (capa-gui) provides a console."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        if not _console_available():
            return None
        return super().get_help_record(ctx)


@click.command("run")
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--runs-root",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where bundles go (default: $CAPA_RUNS_ROOT, else ./runs).",
)
@click.option(
    "--plugins-lock",
    type=click.Path(path_type=Path),
    help="plugins.lock to use (default: ./plugins.lock, then the user config dir).",
)
@click.option(
    "--serve",
    cls=_ServeOption,
    is_flag=False,
    flag_value="127.0.0.1",
    default=None,
    metavar="[HOST:PORT]",
    help="Also serve a live console for this run (read-only except stop and prompts); "
    "needs a console plugin (capa-gui). Default 127.0.0.1 on a free port.",
)
@click.pass_context
def run(
    ctx: click.Context,
    config: Path,
    runs_root: Path | None,
    plugins_lock: Path | None,
    serve: str | None,
) -> None:
    """Run the experiment CONFIG headless and record a sealed run bundle.

    Prints a summary (run_id, bundle, statuses, exit_reason) and exits with a code a
    script can branch on: 0 sealed, 1 aborted, 2 crashed or bad config, 3 bundle failed
    verification. Ctrl-C (or SIGTERM) stops gracefully; a second Ctrl-C exits at once.
    """
    ctx.exit(_execute(config, runs_root, plugins_lock, serve))


_EARLY_STOP = "operator_stop: interrupted before the run started; nothing was written"


def _execute(
    config: Path, runs_root_opt: Path | None, lock_opt: Path | None, serve: str | None = None
) -> int:
    # Ctrl-C before the run's own SIGINT handler is installed (while plugins load and the
    # files are validated) is still an operator stop: exit 1, nothing written (seed 001),
    # not click's "aborted" 130, which seed 001 reserves for a second Ctrl-C. The early
    # handler remembers it; _prepare checks between its phases, and a run that gets as
    # far as starting is stopped as soon as its own handler is installed.
    from capa.cli.common import EARLY_SIGINT

    EARLY_SIGINT.arm()
    try:
        prepared = _prepare(config, runs_root_opt, lock_opt)
    except KeyboardInterrupt:  # no early handler (capa run called off the main thread)
        return _refused(_EARLY_STOP)
    if isinstance(prepared, int):
        return prepared
    if EARLY_SIGINT.received:
        return _refused(_EARLY_STOP)
    plan, runs_root, log, host = prepared
    return _run_plan(plan, runs_root, log, host, serve)


def _interrupted() -> bool:
    """Whether a Ctrl-C arrived since ``capa run`` began (checked between phases)."""
    from capa.cli.common import EARLY_SIGINT

    return EARLY_SIGINT.received


def _prepare(config: Path, runs_root_opt: Path | None, lock_opt: Path | None) -> Any:
    """Everything before the run: an exit code, or ``(plan, runs_root, log, host)``."""
    from capa.bundle.paths import resolve_runs_root
    from capa.cli.common import load_plugin_host

    runs_root = resolve_runs_root(runs_root_opt).resolve()
    log = _prerun_logger()
    log.info(
        "run.requested",
        config=str(config),
        runs_root=str(runs_root),
        pid=os.getpid(),
        main_epoch=STARTED_EPOCH,
        **_since_main(),
    )
    lock = _resolve_plugins_lock(lock_opt)
    if lock is not None and lock_opt is None:
        click.echo(f"plugins.lock (auto-discovered): {lock}")
    from capa.trust.resolve import is_production

    if is_production():
        if lock is None:
            return _production_unavailable(lock, log)
        return _execute_production(config, runs_root, lock, log)

    host = load_plugin_host()
    log.info("run.plugins_loaded", **_since_main())
    if _interrupted():
        return _refused(_EARLY_STOP)
    from capa.config.validate import validate_experiment

    report = validate_experiment(config, host)
    log.info("run.validated", **_since_main())
    if _interrupted():
        return _refused(_EARLY_STOP)
    errors = [p for p in report.problems if p.is_error]
    if errors:
        return _config_or_refusal(errors, log)
    from capa.runtime.build import plan_from_report

    plan = plan_from_report(report, host)
    _import_runtime()
    log.info("run.planned", **_since_main())
    return plan, runs_root, log, host


def _since_main() -> dict[str, float]:
    """Start-up phase marks for the pre-run log.

    Wall seconds since capa's code started in this process, and the process's CPU seconds
    so far (which, unlike wall time, a busy machine does not inflate).
    """
    return {
        "since_main_s": round(time.time() - STARTED_EPOCH, 6),
        "cpu_s": round(time.process_time(), 6),
    }


def _import_runtime() -> None:
    """Import what the run needs now, while a Ctrl-C still means "do not start"."""
    import anyio  # noqa: F401

    import capa.runtime.headless
    import capa.runtime.signals  # noqa: F401


def _run_plan(plan: Any, runs_root: Path, log: Any, host: Any, serve: str | None = None) -> int:
    console = None
    if serve is not None:
        console = host.live_console(serve, runs_root, plan)
        if console is None:
            click.echo(
                "capa: error: --serve needs a plugin that serves a live console "
                "(pip install capa-gui)",
                err=True,
            )
            return EXIT_CONFIG_ERROR
        click.echo(f"live console: {console.url}", err=True)
    try:
        return _run_with(plan, runs_root, log, host, console)
    finally:
        if console is not None:
            console.close()


def _run_with(plan: Any, runs_root: Path, log: Any, host: Any, console: Any) -> int:
    import anyio

    from capa.cli.live import live_status
    from capa.runtime.headless import run_headless
    from capa.runtime.signals import install_sigint_handler

    live = live_status(plan, console.url if console is not None else None)

    def devices_open(conductor: Any) -> None:
        # Called by run_headless once every device is open, before the bundle exists.
        log.info("run.devices_opened", **_since_main())
        if console is not None:
            console.attach(conductor)

    async def main() -> Any:
        from capa.cli.common import EARLY_SIGINT

        stop = anyio.Event()
        uninstall = install_sigint_handler(stop)
        if EARLY_SIGINT.received:  # after _prepare, before the line above
            stop.set()
        try:
            return await run_headless(
                plan,
                runs_root=runs_root,
                external_stop=stop,
                progress=live.update if live else None,
                host=host,
                on_conductor=devices_open,
            )
        finally:
            uninstall()

    try:
        result = anyio.run(main)
    finally:
        if live is not None:
            live.clear()
    if console is not None:
        console.finished(result)
    log.info(
        "run.finished",
        run_id=result.run_id,
        run_status=result.run_status,
        bundle_status=result.bundle_status,
        exit_reason=result.exit_reason,
    )
    for notice in result.notices:
        click.echo(f"capa: warning: {notice}", err=True)
    click.echo(result.summary())
    line = storage_failure_line(result)
    if line:
        click.echo(f"capa: error: {line}", err=True)
    return int(result.exit_code())


def storage_failure_line(result: Any) -> str:
    """The one line telling the operator the bundle could not be written (disk full).

    Empty unless the run stopped because storage failed. Says whether what reached disk
    was sealed, or how to seal it once there is room again.
    """
    from capa.runtime.conductor import WRITER_FAILED

    reason = result.exit_reason or ""
    if not reason.startswith(f"{WRITER_FAILED}: "):
        return ""
    cause = reason[len(WRITER_FAILED) + 2 :].split("; finalize: ", 1)[0]
    if result.bundle_path is None:
        return f"{cause}; nothing was recorded"
    if result.bundle_status == "sealed":
        return f"{cause}; acquisition stopped, what reached disk was sealed"
    root = result.bundle_path.parent
    return (
        f"{cause}; acquisition stopped, bundle left unsealed: free space, then run "
        f"`capa finalize {result.run_id} --runs-root {root}`"
    )


REFUSED_RUN_ID = "preflight-refused"
"""``run_id`` printed for a run refused before it had one (seed 004)."""

# Problem codes that seed 001 counts as a preflight refusal (exit 1), not a malformed
# configuration (exit 2): the files parse and match their schema, but this rig cannot
# run them — the component is not installed, an adapter cannot be built from its params,
# two devices claim one resource, the procedure refuses the experiment.
_REFUSAL_CODES: dict[str, str] = {
    "plugin.procedure_unknown": "procedure_resolution",
    "plugin.adapter_unknown": "adapter_materialization",
    "resource.conflict": "resource_conflict",
    "resource.claim_conflict": "resource_conflict",
    "procedure.method_required": "preflight",
}
_ADAPTER_PATH = re.compile(r"(^|\.)devices\[\d+\](\.params)?(\.|\[|$)")


def refusal_kind(problem: Any) -> str | None:
    """The seed-001 refusal class of a validation problem, or None for a config error.

    Besides the codes above, any error inside a device's ``params`` (the adapter's own
    model) or raised by the adapter's code while it is built is an adapter that cannot
    be materialized.
    """
    kind = _REFUSAL_CODES.get(problem.code)
    if kind is not None:
        return kind
    path = str(problem.path or "")
    if problem.code == "plugin.error" and _ADAPTER_PATH.search(path):
        return "adapter_materialization"
    if ".params" in path and _ADAPTER_PATH.search(path):
        return "adapter_materialization"
    return None


def _config_or_refusal(errors: list[Any], log: Any) -> int:
    """Exit 2 when any error is a configuration error; else a preflight refusal (exit 1)."""
    kinds = [refusal_kind(p) for p in errors]
    if any(kind is None for kind in kinds):
        for problem in errors:
            click.echo(f"capa: error: {problem}", err=True)
            log.error("run.config_error", problem=str(problem))
        return EXIT_CONFIG_ERROR
    for problem in errors:
        click.echo(f"capa: refused: {problem}", err=True)
    first = errors[0]
    where = f"{first.path}: " if first.path else ""
    reason = f"{kinds[0]}: {where}{first.message}"
    if len(errors) > 1:
        reason += f" (and {len(errors) - 1} more)"
    log.error("run.refused", exit_reason=reason)
    return _refused(reason)


def _refused(reason: str) -> int:
    from capa.runtime.results import HeadlessResult

    result = HeadlessResult(REFUSED_RUN_ID, None, "aborted", "none", "unknown", reason)
    click.echo(result.summary())
    return EXIT_REFUSED


def _resolve_plugins_lock(flag: Path | None) -> Path | None:
    """``--plugins-lock`` (must exist) > ``./plugins.lock`` > user config dir (seed 000)."""
    from capa.trust.resolve import resolve_lock

    return resolve_lock(flag)


def lock_search_paths() -> list[Path]:
    """Where a ``plugins.lock`` is looked for when ``--plugins-lock`` is not given."""
    from capa.trust import resolve

    return resolve.lock_search_paths()


def _production_unavailable(lock: Path | None, log: Any) -> int:
    """Production mode without a lock: exit 2, naming every path that was searched."""
    from capa.trust.resolve import no_lock_error

    message = str(no_lock_error()) if lock is None else f"{lock}: plugins.lock unusable"
    log.error("run.refused", reason=message)
    click.echo(f"capa: error: {message}", err=True)
    return EXIT_CONFIG_ERROR


_UNRESOLVED = {
    "plugin.procedure_unknown",
    "plugin.adapter_unknown",
    "plugin.step_unknown",
    "plugin.sink_unknown",
}


def _execute_production(config: Path, runs_root: Path, lock: Path, log: Any) -> Any:
    """Production mode: load only what ``lock`` pins, refuse runs needing anything else.

    A component that a blocked plugin provides is a preflight refusal (exit 1, no
    bundle) whose ``exit_reason`` names the plugin and its drift; a broken lock is a
    configuration error (exit 2, raised as TrustError).
    """
    from capa.cli.common import load_plugin_host
    from capa.config.validate import validate_experiment
    from capa.trust.gate import gate_for

    host = load_plugin_host(lock)
    if _interrupted():
        return _refused(_EARLY_STOP)
    gate = gate_for(host)
    assert gate is not None  # load_plugin_host gates every host in production mode
    log.info("run.plugins_lock", path=str(lock), sha256=gate.lock.sha256)
    for check in gate.blocked():
        click.echo(f"capa: warning: plugin {check.name!r} blocked: {check.reason()}", err=True)
        log.warning("run.plugin_blocked", plugin=check.name, drift=check.reason())
    report = validate_experiment(config, host)
    errors = [p for p in report.problems if p.is_error]
    unresolved = [p for p in errors if p.code in _UNRESOLVED]
    if unresolved:
        reason = _blocked_reason(unresolved[0], gate)
        log.error("run.refused", exit_reason=reason)
        return _refused(reason)
    if errors:
        return _config_or_refusal(errors, log)

    from capa.runtime.build import plan_from_report

    plan = plan_from_report(report, host)
    _import_runtime()
    return plan, runs_root, log, host


def _blocked_reason(problem: Any, gate: Any) -> str:
    """``plugin_blocked: ...`` when a blocked plugin provides the missing component."""
    import re

    match = re.search(r"unknown (\w+) '([^']+)'", problem.message)
    if match:
        kind, cid = match.groups()
        check = gate.blocker_of(cid)
        if check is not None:
            return (
                f"plugin_blocked: {kind} {cid!r} is provided by plugin {check.name!r} "
                f"({check.dist} {check.version}), blocked: {check.reason()}"
            )
    blocked = ", ".join(f"{c.name} ({c.state})" for c in gate.blocked())
    prefix = (
        "procedure_resolution"
        if problem.code == "plugin.procedure_unknown"
        else ("plugin_resolution")
    )
    suffix = f"; blocked plugins (not imported): {blocked}" if blocked else ""
    return f"{prefix}: {problem.message}{suffix}"


def _prerun_logger() -> Any:
    """JSON-lines logger for what happens before a bundle exists (seed 003)."""
    import structlog

    directory = Path.home() / ".capa" / "logs"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"capa-{datetime.now(UTC):%Y%m%d}.log"
        stream: Any = path.open("a", encoding="utf-8", buffering=1)
    except OSError:
        stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives for the process
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.JSONRenderer(default=str),
        ],
    ).bind(pid=os.getpid())
