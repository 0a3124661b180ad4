"""``config/``: the resolved input files of a run, copied into its bundle."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from capa.bundle.atomic import atomic_write_bytes
from capa.bundle.paths import CONFIG_DIR, safe_component
from capa.errors import BundleError

__all__ = ["load_config_files", "write_config_files"]


def load_config_files(files: Mapping[str, Path | bytes]) -> dict[tuple[str, ...], bytes]:
    """Check every name and read every file, before anything is written.

    Raises:
        BundleError: a name is not a plain relative path, or a file cannot be read.
    """
    loaded: dict[tuple[str, ...], bytes] = {}
    for name, source in files.items():
        parts = Path(name).parts
        if not parts or any(p in (".", "..") for p in parts) or Path(name).is_absolute():
            raise BundleError(f"config file name {name!r} must be a relative path inside config/")
        for part in parts:
            safe_component(part, "config file")
        if isinstance(source, bytes):
            loaded[parts] = source
            continue
        try:
            loaded[parts] = Path(source).read_bytes()
        except OSError as exc:
            raise BundleError(f"cannot copy config file {source}: {exc.strerror}") from exc
    return loaded


def write_config_files(bundle: Path, files: Mapping[tuple[str, ...], bytes]) -> None:
    """Write loaded files (:func:`load_config_files`) to ``config/`` atomically."""
    for parts, data in files.items():
        target = bundle.joinpath(CONFIG_DIR, *parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
