"""Run bundle storage: the writer, finalize, integrity checks, the catalog, crash recovery.

A run bundle is a directory of plain files (ARCHITECTURE.md section 6) that standard tools
open without capa: Parquet, SQLite, JSON lines and a ``sha256sum``-format checksum list.
The modules here are imported only by commands and the runtime that need them (never by
``import capa`` or ``capa --help``) because they pull in pyarrow.

- :mod:`capa.bundle.writer` — :class:`~capa.bundle.writer.BundleWriter`, one thread per run
  fed by a bounded queue, owning every file of the bundle while the run records;
- :mod:`capa.bundle.finalize` — turns whatever reached disk into a sealed bundle;
- :mod:`capa.bundle.integrity` — ``manifest.sha256`` writing and verification;
- :mod:`capa.bundle.catalog` — ``runs.sqlite``, the index of a runs root;
- :mod:`capa.bundle.recovery` — ``.runtime-active.json`` and stale-run detection;
- :mod:`capa.bundle.sink` — the built-in sink ``capa.bundle`` wrapping the writer.
"""
