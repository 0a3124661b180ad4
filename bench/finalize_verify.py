"""Finalize (Arrow IPC -> sorted Parquet + sha256) and verify throughput of a 10 M-row run.

    uv run python bench/finalize_verify.py [--rows 10000000] [--repeat 3] [--quick]

Reuses bench/bundle_throughput.py unchanged (writer + finalize figures, one child process
per repeat, `--keep` so the sealed bundle stays), then times
`capa.bundle.integrity.verify_bundle` on that bundle — the function `capa catalog verify`
calls: re-hash every file listed in manifest.sha256 and compare. The bundle was just
written, so the page cache is warm: verify MB/s is hashing speed, not disk speed. For
scale, the raw `hashlib.sha256` speed of this machine on a 64 MiB buffer is printed too.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

KEYS = (
    "writer_rows_per_s",
    "writer_MB_per_s",
    "writer_cpu_s_per_million_rows",
    "finalize_s",
    "finalize_rows_per_s",
    "finalize_MB_in_per_s",
    "in_flight_MB",
    "parquet_MB",
)


def verify_once(bundle: Path) -> dict[str, Any]:
    """Time one verify of `bundle`; MB/s over the bytes of every file it hashed."""
    from capa.bundle.integrity import verify_bundle

    listed = [
        line.split(maxsplit=1)[1].lstrip("*")
        for line in (bundle / "manifest.sha256").read_text().splitlines()
        if line.strip()
    ]
    size = sum((bundle / rel).stat().st_size for rel in listed if (bundle / rel).exists())
    t0 = time.perf_counter()
    result = verify_bundle(bundle)
    wall = time.perf_counter() - t0
    return {
        "status": str(result.status.value if hasattr(result.status, "value") else result.status),
        "files": result.checked,
        "MB": round(size / 1e6, 1),
        "verify_s": round(wall, 3),
        "verify_MB_per_s": round(size / wall / 1e6, 1),
    }


def hashlib_mb_per_s() -> float:
    """sha256 of a 64 MiB buffer: the ceiling for verify on this machine."""
    buf = b"\x5a" * (64 * 2**20)
    t0 = time.perf_counter()
    hashlib.sha256(buf).hexdigest()
    return round(len(buf) / (time.perf_counter() - t0) / 1e6, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 M rows, one run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 1_000_000, 1

    runs: list[dict[str, Any]] = []
    for i in range(args.repeat):
        root = Path(tempfile.mkdtemp(prefix="capa-bench-fin-"))
        try:
            out = root / "figures.json"
            code = c.run_script(
                "bundle_throughput.py",
                *("--rows", str(args.rows), "--runs-root", str(root / "runs")),
                *("--keep", "--json", str(out)),
            )
            if code != 0:
                sys.exit(f"bundle_throughput.py failed (exit {code})")
            figures = json.loads(out.read_text())
            bundle = next(p.parent for p in (root / "runs").rglob("manifest.sha256"))
            figures["verify"] = verify_once(bundle)
            print(f"run {i + 1}: verify {figures['verify']}", flush=True)
            runs.append(figures)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    med = {k: c.median([r[k] for r in runs]) for k in KEYS}
    med["verify_MB_per_s"] = c.median([r["verify"]["verify_MB_per_s"] for r in runs])
    med["verify_s"] = c.median([r["verify"]["verify_s"] for r in runs])
    med["hashlib_sha256_MB_per_s"] = hashlib_mb_per_s()
    print(f"medians of {len(runs)} runs of {args.rows:,} rows:")
    for k, v in med.items():
        print(f"  {k:<32} {v}")
    c.write_result("finalize_verify", {"rows": args.rows, "runs": runs, "median": med})


if __name__ == "__main__":
    main()
