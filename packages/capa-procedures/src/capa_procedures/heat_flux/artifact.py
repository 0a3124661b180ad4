"""The tune artifact: a dated TOML file that is never silently overwritten.

Written next to the experiment (``artifact_dir``) and copied into the run bundle under
``artifacts/``. A name that already exists gets ``-2``, ``-3``, ... appended: the file is
created with a hard link from a fully written temp file, which fails rather than replaces.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["copy_into_bundle", "dumps_toml", "write_new_file"]


def _float(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return repr(v)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _table(lines: list[str], header: str, data: Mapping[str, Any]) -> None:
    lines.append(header)
    lines.extend(f"{k} = {_value(v)}" for k, v in data.items() if v is not None)
    lines.append("")


def dumps_toml(
    comment: str,
    tables: Mapping[str, Mapping[str, Any]],
    arrays: Mapping[str, Sequence[Mapping[str, Any]]],
) -> str:
    """TOML text: a comment line, plain tables, then arrays of tables (flat values only)."""
    lines = [f"# {comment}", ""]
    for name, data in tables.items():
        _table(lines, f"[{name}]", data)
    for name, rows in arrays.items():
        for row in rows:
            _table(lines, f"[[{name}]]", row)
    return "\n".join(lines)


def write_new_file(directory: Path, stem: str, text: str, when: datetime) -> Path:
    """Write ``<stem>_<UTC time>.toml`` in ``directory``, never replacing an existing file."""
    directory.mkdir(parents=True, exist_ok=True)
    base = f"{stem}_{when:%Y%m%dT%H%M%SZ}"
    tmp = directory / f".{base}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        for n in range(1, 1000):
            path = directory / (f"{base}.toml" if n == 1 else f"{base}-{n}.toml")
            try:
                os.link(tmp, path)  # atomic, and fails if the name is taken
            except FileExistsError:
                continue
            return path
        raise FileExistsError(f"no free artifact name for {base} in {directory}")
    finally:
        tmp.unlink(missing_ok=True)


def copy_into_bundle(artifact: Path, bundle: Path) -> Path:
    """Copy the artifact to ``<bundle>/artifacts/``; returns the copy's path."""
    target_dir = bundle / "artifacts"
    target_dir.mkdir(exist_ok=True)
    target = target_dir / artifact.name
    shutil.copy2(artifact, target)
    return target
