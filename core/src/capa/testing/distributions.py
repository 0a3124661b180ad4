"""Throwaway distributions for tests: real ``.dist-info`` metadata on a ``sys.path`` entry.

``importlib.metadata`` cannot tell these from installed packages, so plugin discovery,
entry-point loading and installed-file digests are exercised for real, without pip.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["make_distribution"]


def make_distribution(
    site: Path,
    name: str,
    version: str = "1.0",
    *,
    files: Mapping[str, str] | None = None,
    entry_points: Mapping[str, Mapping[str, str]] | None = None,
    requires: tuple[str, ...] = (),
) -> Path:
    """Write a distribution into ``site`` and return its ``.dist-info`` directory.

    Args:
        site: a directory on ``sys.path`` (the ``capa_site`` fixture gives one).
        name: distribution name, e.g. ``capa-example``.
        version: distribution version.
        files: relative path -> text, e.g. ``{"example_plugin.py": "..."}``.
        entry_points: group -> {entry-point name: value}, e.g.
            ``{"capa": {"example": "example_plugin"}}``.
        requires: ``Requires-Dist`` lines.
    """
    files = dict(files or {})
    stem = re.sub(r"[-_.]+", "_", name).lower()
    dist_info = site / f"{stem}-{version}.dist-info"
    dist_info.mkdir(parents=True, exist_ok=False)

    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {r}" for r in requires]
    written: dict[str, bytes] = {}
    for rel, text in files.items():
        path = site / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written[rel] = path.read_bytes()
    meta_files = {
        "METADATA": "\n".join(metadata) + "\n",
        "INSTALLER": "capa.testing\n",
        "entry_points.txt": _entry_points_txt(entry_points or {}),
    }
    for fname, text in meta_files.items():
        (dist_info / fname).write_text(text, encoding="utf-8")
        written[f"{dist_info.name}/{fname}"] = text.encode()

    # RECORD as an installer writes it: path, urlsafe-b64 sha256 without padding, size.
    lines = [f"{rel},{_record_hash(data)},{len(data)}" for rel, data in sorted(written.items())]
    lines.append(f"{dist_info.name}/RECORD,,")
    (dist_info / "RECORD").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dist_info


def _entry_points_txt(groups: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for group, eps in groups.items():
        out.append(f"[{group}]")
        out += [f"{ep_name} = {value}" for ep_name, value in eps.items()]
        out.append("")
    return "\n".join(out)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")
