"""Cost of channel calibration: ns per sample for each calibration kind and block size.

    uv run python bench/calibration.py [--repeat 50]

Calibrates blocks of 1, 100, 10 000 and 1 000 000 samples with each kind (plus a degF ->
degC conversion in front, as a channel does for a controller reporting degF) and prints
the median time per call and per sample. Also validates the demo rig once, to show what
`capa hardware validate` costs without process start-up. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter

from capa.config.calibration import Calibration
from capa.config.hardware import ChannelConfig

KINDS = {
    "identity": {"kind": "identity"},
    "linear": {"kind": "linear", "slope": 1.8, "intercept": 32.0},
    "polynomial (3rd)": {"kind": "polynomial", "coefficients": [0.1, 1.0, 1e-3, 1e-6]},
    "piecewise_linear (64 pts)": {
        "kind": "piecewise_linear",
        "points": [[x, x * x] for x in range(64)],
    },
    "lookup (16 rows)": {"kind": "lookup", "table": [[x, x * 10] for x in range(16)]},
}
SIZES = (1, 100, 10_000, 1_000_000)


def median_s(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    print(f"# {platform.machine()}, CPython {platform.python_version()}, numpy {np.__version__}")
    adapter = TypeAdapter(Calibration)
    rng = np.random.default_rng(0)
    print(f"{'kind':<28}{'block':>10}{'median µs/call':>16}{'ns/sample':>12}")
    for name, spec in KINDS.items():
        cal = adapter.validate_python(spec)
        for size in SIZES:
            raw = rng.random(size) * 60
            repeat = max(3, args.repeat // (10 if size >= 1_000_000 else 1))
            t = median_s(lambda cal=cal, raw=raw: cal.apply(raw), repeat)
            print(f"{name:<28}{size:>10}{t * 1e6:>16.1f}{t / size * 1e9:>12.2f}")
    channel = ChannelConfig.model_validate(
        {
            "name": "t",
            "kind": "temperature",
            "unit": "degC",
            "source": {"device": "d", "field": "pv"},
            "calibration": KINDS["linear"],
        }
    )
    raw = rng.random(10_000) * 400
    t = median_s(lambda: channel.to_value(raw, "degF"), args.repeat)
    print(f"{'channel degF->degC + linear':<28}{10_000:>10}{t * 1e6:>16.1f}{t / 1e4 * 1e9:>12.2f}")

    from capa.config.validate import validate_hardware
    from capa.plugins.host import PluginHost

    host = PluginHost()
    host.load(entry_points=False)
    rig = Path(__file__).resolve().parents[1] / "examples" / "demo" / "signals_rig.toml"
    validate_hardware(rig, host)  # warm imports
    t = median_s(lambda: validate_hardware(rig, host), args.repeat)
    print(f"validate examples/demo/signals_rig.toml (in process): {t * 1e3:.2f} ms median")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
