"""Cost of production-mode admission: re-hashing installed plugins before import.

    uv run python bench/trust_admission.py [--repeat 20]

For every installed plugin (entry-point group ``capa``) measures ``inspect_distribution``
(read RECORD, re-hash every listed file, walk the package directories, locate the
entry-point module) and prints per-plugin file counts, bytes hashed and median / min / max
milliseconds, plus the time to parse a lock listing all of them. Editable installs are
measured too (their RECORD lists only the .pth file, so they are cheap and not
representative; measure in a venv installed from wheels, e.g. the `nox -s trust` venv:
``.nox/trust/tmp/trust/venv/bin/python bench/trust_admission.py``). Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from capa.plugins.discovery import iter_entry_points
from capa.trust.digest import inspect_distribution, read_record
from capa.trust.lockfile import LockEntry, PluginsLock, dump_lock, parse_lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    lock = PluginsLock()
    print(f"{'plugin':<12} {'files':>5} {'KiB':>8} {'median ms':>10} {'min ms':>8} {'max ms':>8}")
    for info in iter_entry_points("capa"):
        assert info.dist is not None
        record = read_record(info.dist.read_text("RECORD") or "")
        size = sum(
            Path(str(info.dist.locate_file(p))).stat().st_size
            for p, h in record
            if h and Path(str(info.dist.locate_file(p))).is_file()
        )
        times = []
        found = None
        for _ in range(args.repeat):
            start = time.perf_counter()
            found = inspect_distribution(info.dist, info.value)
            times.append((time.perf_counter() - start) * 1000)
        assert found is not None
        lock = lock.with_entry(
            LockEntry(info.name, info.dist_name, info.dist_version, info.value, found.digest)
        )
        note = " (editable)" if found.editable else ""
        median = statistics.median(times)
        print(
            f"{info.name:<12} {found.files:>5} {size / 1024:>8.1f} {median:>10.2f}"
            f" {min(times):>8.2f} {max(times):>8.2f}{note}"
        )
    text = dump_lock(lock).encode()
    start = time.perf_counter()
    for _ in range(args.repeat):
        parse_lock(text)
    per = (time.perf_counter() - start) * 1000 / args.repeat
    print(f"parse plugins.lock ({len(lock.plugins)} entries, {len(text)} bytes): {per:.3f} ms")


if __name__ == "__main__":
    main()
