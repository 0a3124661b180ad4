"""``config/``: the resolved input files of a run, copied into its bundle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.paths import CONFIG_DIR, safe_component
from capa.errors import BundleError

__all__ = ["write_config_files"]


def write_config_files(bundle: Path, files: Mapping[str, Path | bytes]) -> None:
    """Copy each file (or write each content) to ``config/<name>`` atomically."""
    if not files:
        return
    folder = bundle / CONFIG_DIR
    folder.mkdir(exist_ok=True)
    for name, source in files.items():
        parts = Path(name).parts
        if not parts or any(p in (".", "..") for p in parts) or Path(name).is_absolute():
            raise BundleError(f"config file name {name!r} must be a relative path inside config/")
        for part in parts:
            safe_component(part, "config file")
        target = folder.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, bytes):
            data = source
        else:
            try:
                data = Path(source).read_bytes()
            except OSError as exc:
                raise BundleError(f"cannot copy config file {source}: {exc.strerror}") from exc
        atomic_write_bytes(target, data)
