"""``capa plugins``: what is installed, what loaded, why not, and what the lab trusts.

``list`` shows every plugin with its trust state; ``verify`` compares the installed
plugins with ``plugins.lock`` without importing any of them (exit 0 all match, 3 any
drift); ``trust``/``untrust`` edit the lock one plugin at a time (each decision appended
to ``plugins.lock.journal``); ``lock`` writes a lock for everything installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from capa.cli.common import load_plugin_host
from capa.cli.output import echo_json, echo_table

__all__ = ["plugins"]

EXIT_DRIFT = 3


def _required_reason(reason: str | None) -> str:
    """The journaled reason; its absence is a refusal (exit 2, seed 001), not a usage error."""
    from capa.errors import TrustError

    if reason is None or not reason.strip():
        raise TrustError("missing --reason: say why (it is recorded in plugins.lock.journal)")
    return reason


@contextmanager
def _lock_write(target: Path) -> Iterator[None]:
    """Turn an OS error while writing the lock or its journal into one line, exit 2.

    Seed 001: `capa plugins trust` exits 2 when the lockfile write failed (a parent that
    is a file, a directory in the lock's place, no permission, a full disk), never 5.
    """
    from capa.errors import TrustError

    try:
        yield
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        where = exc.filename or target
        raise TrustError(f"{target}: cannot write plugins.lock: {where}: {what}") from None


_lock_option = click.option(
    "--plugins-lock",
    "lock_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="plugins.lock to use (default: ./plugins.lock, then the user config dir; "
    "a new lock is created as ./plugins.lock).",
)


@click.group()
def plugins() -> None:
    """Inspect and trust the plugins capa discovers through the `capa` entry-point group."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_plugins(as_json: bool) -> None:
    """List plugins, their components, trust state, and every rejection with its reason.

    Always exits 0: a broken or untrusted plugin is reported here, not signalled by the
    exit code (use `capa plugins verify` for that).
    """
    host = load_plugin_host()
    # Plugin CLI additions are part of what a plugin provides; collect them too.
    from capa.cli.root import CapaGroup, cli

    if isinstance(cli, CapaGroup):
        cli.register_plugin_commands()
    rows = _describe(host)
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["plugin", "distribution", "version", "status", "trust", "components"],
        [
            (
                r["name"],
                r["dist"],
                r["version"],
                r["status"],
                r["trust"],
                ", ".join(f"{c['kind']}:{c['id']}" for c in r["components"]) or "-",
            )
            for r in rows
        ],
    )
    problems = [(r, why) for r in rows for why in _reasons(r)]
    if problems:
        click.echo("")
        click.echo("problems:")
        for r, why in problems:
            click.echo(f"  {r['name']} ({r['dist']} {r['version']}): {why}")


@plugins.command("verify")
@_lock_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def verify(ctx: click.Context, lock_path: Path | None, as_json: bool) -> None:
    """Compare installed plugins with plugins.lock, importing none of them.

    Exit codes: 0 every installed plugin matches its entry and every entry is installed;
    3 any drift (listed with its kind); 2 no lock, or the lock is unusable.
    """
    from capa.plugins.discovery import iter_entry_points
    from capa.trust.drift import check_installed
    from capa.trust.lockfile import load_lock
    from capa.trust.resolve import no_lock_error, resolve_lock

    path = resolve_lock(lock_path)
    if path is None:
        raise no_lock_error()
    checks = check_installed(iter_entry_points("capa"), load_lock(path))
    drifted = [c for c in checks if not c.trusted]
    if as_json:
        echo_json(
            {
                "lock": str(path),
                "ok": not drifted,
                "plugins": [
                    {
                        "name": c.name,
                        "dist": c.dist,
                        "version": c.version,
                        "state": c.state,
                        "record_digest": c.installed.digest if c.installed else None,
                        "drift": [{"kind": d.kind.value, "detail": d.detail} for d in c.drifts],
                    }
                    for c in checks
                ],
            }
        )
    else:
        click.echo(f"plugins.lock: {path}")
        echo_table(
            ["plugin", "distribution", "version", "state"],
            [(c.name, c.dist, c.version, c.state) for c in checks],
        )
        if drifted:
            click.echo("")
            click.echo("drift:")
            for c in drifted:
                for d in c.drifts:
                    click.echo(f"  {c.name}: {d}")
    ctx.exit(EXIT_DRIFT if drifted else 0)


@plugins.command("trust")
@click.argument("ident", metavar="ID")
# --reason is checked in the command, not by click: seed 001 makes a missing --reason
# exit 2 like any other refusal of `plugins trust`, where a click usage error is 64.
@click.option("--reason", help="Why this plugin is trusted (journaled; required).")
@_lock_option
@click.option(
    "--wheel", type=click.Path(path_type=Path, dir_okay=False, exists=True), help="The wheel."
)
@click.option(
    "--attestation",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="PEP 740 attestation or Sigstore bundle for --wheel.",
)
@click.option("--publisher", help="Expected signer: github:OWNER/REPO/WORKFLOW or gitlab:...")
@click.option("--identity", help="Expected certificate identity (with --issuer).")
@click.option("--issuer", help="Expected OIDC issuer URL (with --identity).")
def trust(  # click passes every option by keyword
    *,
    ident: str,
    reason: str | None,
    lock_path: Path | None,
    wheel: Path | None,
    attestation: Path | None,
    publisher: str | None,
    identity: str | None,
    issuer: str | None,
) -> None:
    """Trust plugin ID (a plugin name or a component id it provides) at its installed bytes.

    Writes or refreshes its plugins.lock entry and appends a `trust` line to
    plugins.lock.journal. With --wheel and --attestation the Sigstore signature is first
    verified offline against the expected signer, and the wheel must be exactly what is
    installed. Exit 2 for an unknown id (listing the available ones), an editable or
    modified install, or a failed verification.
    """
    from capa.errors import TrustError
    from capa.trust.manage import AttestationRequest, lock_target, trust_plugin

    reason = _required_reason(reason)
    request = None
    if (wheel is None) != (attestation is None):
        raise TrustError("--wheel and --attestation go together")
    if wheel is not None and attestation is not None:
        from capa.trust.sigstore import parse_identity

        label, policy = parse_identity(publisher, identity, issuer)
        request = AttestationRequest(wheel, attestation, policy, label)
    elif publisher or identity or issuer:
        raise TrustError("--publisher/--identity/--issuer need --wheel and --attestation")
    target = lock_target(lock_path)
    with _lock_write(target):
        entry = trust_plugin(ident, reason, target, request)
    click.echo(f"trusted {entry.name} ({entry.dist} {entry.version}) {entry.record_digest}")
    if entry.attestation is not None:
        click.echo(f"  signed by {entry.attestation.identity} ({entry.attestation.wheel})")
    click.echo(f"plugins.lock: {target}")


@plugins.command("untrust")
@click.argument("ident", metavar="ID")
@click.option("--reason", help="Why trust is revoked (journaled; required).")
@_lock_option
def untrust(ident: str, reason: str | None, lock_path: Path | None) -> None:
    """Remove plugin ID from plugins.lock and journal a `revoke` line (exit 2 if absent)."""
    from capa.trust.manage import lock_target, untrust_plugin

    reason = _required_reason(reason)
    target = lock_target(lock_path)
    with _lock_write(target):
        entry = untrust_plugin(ident, reason, target)
    click.echo(f"revoked {entry.name} ({entry.dist} {entry.version})")
    click.echo(f"plugins.lock: {target}")


@plugins.command("lock")
@_lock_option
@click.option("--reason", default="capa plugins lock", show_default=True, help="Journaled reason.")
def lock(lock_path: Path | None, reason: str) -> None:
    """Write plugins.lock trusting every installed plugin at its current bytes (fresh rig).

    Editable or modified installs cannot be trusted; they are left out and named on
    stderr. Replaces the lock's entries (keeps `require_attestation`).
    """
    from capa.trust.manage import lock_all, lock_target

    target = lock_target(lock_path)
    with _lock_write(target):
        entries, skipped = lock_all(target, reason)
    for entry in entries:
        click.echo(f"trusted {entry.name} ({entry.dist} {entry.version}) {entry.record_digest}")
    for name, why in sorted(skipped.items()):
        click.echo(f"capa: warning: not locked: {name}: {why}", err=True)
    click.echo(f"plugins.lock: {target} ({len(entries)} plugin(s))")


def _describe(host: Any) -> list[dict[str, Any]]:
    states = _trust_states(host)
    out = []
    for key in sorted(host.plugins):
        rec = host.plugins[key]
        components = [
            {"kind": tag.split(":", 1)[0], "id": tag.split(":", 1)[1]} for tag in rec.components
        ]
        rejected = [
            {"kind": r.kind.value, "id": r.id, "class": r.qualname, "reason": r.reason}
            for r in host.rejections
            if r.plugin == rec.name and r.dist == rec.dist
        ]
        trust, drift = states.get(f"{rec.name}\0{rec.dist}") or states.get(rec.name, ("dev", []))
        out.append(
            {
                "name": rec.name,
                "dist": rec.dist,
                "version": rec.version,
                "entry_point": rec.entry_point,
                "status": rec.status.value,
                "reason": rec.reason or None,
                "trust": trust,
                "drift": drift,
                "components": components,
                "rejected": rejected,
                "commands": list(rec.commands),
            }
        )
    for name, (trust, drift) in sorted(states.items()):
        if "\0" not in name and name not in host.plugins and trust == "missing_from_install":
            out.append(
                {
                    "name": name,
                    "dist": "-",
                    "version": "-",
                    "entry_point": "",
                    "status": "absent",
                    "reason": None,
                    "trust": trust,
                    "drift": drift,
                    "components": [],
                    "rejected": [],
                    "commands": [],
                }
            )
    return out


def _trust_states(host: Any) -> dict[str, tuple[str, list[str]]]:
    """Plugin name → (trust state, drift lines).

    Production: the gate's verdicts. Dev: ``dev``, plus (when a lock is found) how each
    plugin compares with it, so an administrator sees drift before switching modes.
    """
    from capa.plugins.host import BUILTIN_PLUGIN
    from capa.trust.gate import gate_for

    gate = gate_for(host)
    if gate is not None:
        states = {n: (c.state, [str(d) for d in c.drifts]) for n, c in gate.checks.items()}
        # Per distribution too, so a name clash shows each declarer's own verdict.
        states.update(
            {
                f"{n}\0{d}": (c.state, [str(x) for x in c.drifts])
                for (n, d), c in gate.by_dist.items()
            }
        )
        states.setdefault(BUILTIN_PLUGIN, ("builtin", []))
        return states
    from capa.trust.resolve import resolve_lock

    path = resolve_lock(None)
    if path is None:
        return {}
    from capa.plugins.discovery import iter_entry_points
    from capa.trust.drift import check_installed
    from capa.trust.lockfile import load_lock

    checks = check_installed(iter_entry_points(host.group), load_lock(path))
    return {
        c.name: (f"dev ({'locked' if c.trusted else c.state})", [str(d) for d in c.drifts])
        for c in checks
    }


def _reasons(row: dict[str, Any]) -> list[str]:
    reasons = [row["reason"]] if row["reason"] else []
    if not reasons and row["status"] == "absent":
        reasons = row["drift"]
    reasons += [
        f"rejected {r['kind']} {r['id'] or r['class']!r}: {r['reason']}" for r in row["rejected"]
    ]
    return reasons
