"""Two bundle rules for files that producers other than the bundle writer put in a bundle.

Finalize applies them to every bundle it seals; neither knows what the files contain.

1. **Unfinished files.** A producer that writes a file of its own (a camera writes video
   segments) writes it under a name containing ``.in-flight.`` and renames it to its final
   name once it is complete and durable. A file still named ``*.in-flight.*`` when the
   bundle is finalized was never finished (its process was killed): finalize removes it
   and reports it in ``manifest.custom.finalize_warnings``. Arrow streams
   (``*.in-flight.arrows``) are the exception: finalize recovers those into Parquet.
2. **Rows that name files.** A table whose Arrow schema metadata has
   ``capa.files_column = <column>`` names, in that column, a file per row (a path relative
   to the table's own folder; null means no file). After the first rule, finalize drops
   every row whose file is not in the bundle and reports how many. A producer that appends
   a file's rows durably *before* renaming the file into place therefore gets a table that
   agrees exactly with the files that survive, wherever a kill lands.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Final

from capa.bundle.atomic import fsync_dir, temp_path_for
from capa.bundle.paths import IN_FLIGHT_SUFFIX

__all__ = ["FILES_COLUMN_KEY", "UNFINISHED_MARK", "drop_rows_without_files", "remove_unfinished"]

UNFINISHED_MARK: Final = ".in-flight."
"""Part of the name of a file its producer has not finished yet."""

FILES_COLUMN_KEY: Final = b"capa.files_column"
"""Arrow schema metadata key naming the column whose values are files of the bundle."""


def remove_unfinished(bundle: Path) -> list[str]:
    """Remove every unfinished file (rule 1); one warning line per file removed."""
    warnings: list[str] = []
    folders: set[Path] = set()
    for path in sorted(bundle.rglob(f"*{UNFINISHED_MARK}*")):
        if path.name.endswith(IN_FLIGHT_SUFFIX) or path.is_symlink() or not path.is_file():
            continue
        size = path.stat().st_size
        path.unlink()
        folders.add(path.parent)
        rel = path.relative_to(bundle).as_posix()
        warnings.append(
            f"{rel}: removed an unfinished file ({size} bytes) its producer never closed"
        )
    for folder in folders:
        fsync_dir(folder)
    return warnings


def drop_rows_without_files(bundle: Path, table_path: Path) -> str | None:
    """Apply rule 2 to one Parquet table; a warning line if rows were dropped."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(table_path)
    column = (schema.metadata or {}).get(FILES_COLUMN_KEY)
    if column is None:
        return None
    name = column.decode("utf-8", "replace")
    if name not in schema.names:
        return None
    table = pq.read_table(table_path)
    values = table.column(name).to_pylist()
    present = {v: _is_bundle_file(bundle, table_path.parent, v) for v in set(values) if v}
    keep = [not v or present[v] for v in values]
    dropped = keep.count(False)
    if not dropped:
        return None
    missing = sorted(str(v) for v, ok in present.items() if not ok)
    tmp = temp_path_for(table_path)
    pq.write_table(table.filter(pa.array(keep)), tmp, compression="zstd")
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, table_path)
    fsync_dir(table_path.parent)
    rel = table_path.relative_to(bundle).as_posix()
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"{rel}: dropped {dropped} rows whose {name!r} file is not in the bundle ({shown})"


def _is_bundle_file(bundle: Path, folder: Path, value: object) -> bool:
    """Whether ``value`` names a regular file inside the bundle (relative to ``folder``)."""
    rel = PurePosixPath(str(value))
    if rel.is_absolute() or ".." in rel.parts:
        return False  # a row may only name a file of its own bundle
    path = folder / rel
    return (
        path.is_file() and not path.is_symlink() and path.resolve().is_relative_to(bundle.resolve())
    )
