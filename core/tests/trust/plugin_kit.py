"""Throwaway plugins for the trust tests: source text with an import-time canary, and
real wheels (zip + RECORD as the wheel spec defines them)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

CANARY_ENV = "CAPA_TEST_CANARY"

# A rig needing nothing but core, for production-mode runs of the test plugins.
RIG = """
name = "trust-rig"

[[devices]]
name = "oven"
adapter = "capa.sim.signals"
[devices.params]
resource = "oven"
rate_hz = 20
[devices.params.signals]
pv = { kind = "constant", value = 20.0, unit = "degC" }

[[channels]]
name = "oven_pv"
kind = "temperature"
unit = "degC"
source = { device = "oven", field = "pv" }
"""


def plugin_source(module: str, procedure_id: str) -> str:
    """A plugin module that appends a line to $CAPA_TEST_CANARY the moment it is imported."""
    return f'''"""Throwaway trust-test plugin {module}."""
import os

_canary = os.environ.get("{CANARY_ENV}")
if _canary:
    with open(_canary, "a", encoding="utf-8") as _f:
        _f.write("{module} imported\\n")

import capa


class Quick(capa.Procedure):
    """Ends at once, leaving an event behind."""

    id = "{procedure_id}"

    class Config(capa.ConfigModel):
        pass

    async def run(self, ctx):
        ctx.events.emit("{module}.ran", "{module} ran")


@capa.hookimpl
def capa_register_procedures():
    return [Quick]
'''


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode()


def write_wheel(
    out_dir: Path,
    dist: str,
    version: str,
    *,
    plugin: str,
    module: str,
    procedure_id: str,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write ``{dist}-{version}-py3-none-any.whl`` with package ``module`` and a RECORD."""
    stem = dist.replace("-", "_")
    info = f"{stem}-{version}.dist-info"
    files: dict[str, bytes] = {
        f"{module}/__init__.py": b'"""Trust-test package."""\n',
        f"{module}/plugin.py": plugin_source(module, procedure_id).encode(),
        **{k: v.encode() for k, v in (extra_files or {}).items()},
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nRequires-Dist: capa\n"
        ).encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: capa-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{info}/entry_points.txt": f"[capa]\n{plugin} = {module}.plugin\n".encode(),
    }
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()]
    record.append(f"{info}/RECORD,,")
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{stem}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(path, data)
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return wheel
