"""The whole benchmark suite, in order, in one interpreter's environment.

    nox -s bench                    # full suite (about an hour on 2 cores: stop latency
                                    # alone records 2 x 600 s, 5 x 60 s and 5 x 5 s)
    nox -s bench -- --quick         # smoke run, a couple of minutes
    nox -s bench -- peers profile   # only some parts (names below), full size
    python bench/suite.py --list

Each part is a script of this folder run as a child process with this interpreter;
each writes results/<name>.json. Throughput runs before peers: the peer comparison paces
capa's simulated clock at the highest rate throughput sustained in the same suite run.
Nothing here asserts a figure; a part that fails is reported and the suite goes on.
"""

from __future__ import annotations

import argparse
import sys
import time

import _common as c

R = str(c.RESULTS)
# name: (script, full arguments, quick arguments)
PARTS: dict[str, tuple[str, list[str], list[str]]] = {
    "startup": (
        "startup.py",
        ["--repeat", "15", "--json", f"{R}/startup.json"],
        ["--repeat", "3", "--json", f"{R}/startup.json"],
    ),
    "run_startup": ("run_startup.py", ["--repeat", "10"], ["--quick"]),
    "watlow": (
        "watlow_roundtrip.py",
        ["--n", "500", "--json", f"{R}/watlow_roundtrip.json"],
        ["--n", "50", "--json", f"{R}/watlow_roundtrip.json"],
    ),
    "sartorius": (
        "sartorius_roundtrip.py",
        ["--n", "1000", "--json", f"{R}/sartorius_roundtrip.json"],
        ["--n", "100", "--json", f"{R}/sartorius_roundtrip.json"],
    ),
    "throughput": ("throughput.py", [], ["--quick"]),
    "finalize": ("finalize_verify.py", [], ["--quick"]),
    "stop": ("stop_latency.py", ["--seconds", "5,60,600", "--count", "5,5,2"], ["--quick"]),
    "cpu": ("cpu_per_sample.py", [], ["--quick"]),
    "memory": ("seal_memory.py", [], ["--quick"]),
    "fast_start": ("fast_start.py", [], ["--quick"]),
    "peers": ("peers.py", [], ["--quick"]),
    "profile": ("profile_run.py", [], ["--quick"]),
    "safety": (
        "safety_reaction.py",
        ["--runs", "10", "--json", f"{R}/safety_reaction.json"],
        ["--runs", "2", "--json", f"{R}/safety_reaction.json"],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", help=f"subset of: {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="smoke-sized variants")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    if args.list:
        for name, (script, full, _) in PARTS.items():
            print(f"{name:<12} {script} {' '.join(full)}")
        return
    unknown = set(args.parts) - PARTS.keys()
    if unknown:
        sys.exit(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    c.RESULTS.mkdir(exist_ok=True)
    status: dict[str, dict[str, float | int]] = {}
    for name in args.parts or PARTS:
        script, full, quick = PARTS[name]
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        code = c.run_script(script, *(quick if args.quick else full))
        status[name] = {"exit_code": code, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"=== {name}: exit {code} in {status[name]['seconds']} s", flush=True)
    c.write_result("suite", {"quick": args.quick, "parts": status})
    failed = [n for n, s in status.items() if s["exit_code"] != 0]
    if failed:
        sys.exit(f"parts failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
