"""Mutation fuzzing of `capa validate` on the demo files (issue 14: hard limits on input).

Each case mutates one demo file (see ``mutate.py``) and runs ``capa validate`` on the
experiment in-process, through the CLI's single error boundary, with the workspace's
real plugins. The only documented outcomes are exit 0 (valid) or 2 (one line per problem);
any other code, a traceback, an ``internal error``, a hang (over 30 s) or a file written
fails the case, named by its seed so it can be replayed with ``make_case(seed)``.
``bench/fuzz_configs.py`` runs fresh seeds as processes, and `capa run` + SIGINT on the
ones that validate.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

import capa
import capa.cli.common
from capa.cli.main import main

from .mutate import MUTATORS, make_case, snapshot

CASES = 300  # about 20 s on a shared 2-core machine
SEED_BASE = 1_000_000  # the bench script uses other seeds: each run there is fresh
HANG_S = 30


class Hang(BaseException):
    """Raised by the alarm: a BaseException so the CLI boundary cannot turn it into 5."""


@pytest.fixture(scope="module")
def workspace_host():
    host = capa.PluginHost()
    host.load()
    return host


def _alarm(_signum, _frame):
    raise Hang


def validate(capsys, path) -> tuple[int, str]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        with pytest.raises(SystemExit) as info:
            main(["validate", str(path)])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    captured = capsys.readouterr()
    return int(info.value.code or 0), captured.out + captured.err


def test_mutated_demo_configs_exit_0_or_2_without_traceback(
    tmp_path, monkeypatch, capsys, workspace_host
):
    monkeypatch.setattr(capa.cli.common, "_host", workspace_host)
    monkeypatch.delenv("CAPA_PLUGIN_MODE", raising=False)
    monkeypatch.delenv("CAPA_DEBUG", raising=False)
    failures: list[str] = []
    codes: Counter[int] = Counter()
    mutators: Counter[str] = Counter()
    for seed in range(SEED_BASE, SEED_BASE + CASES):
        case = make_case(seed)
        mutators[case.mutator] += 1
        folder = tmp_path / str(seed)
        experiment = case.materialize(folder)
        before = snapshot(folder)
        try:
            code, text = validate(capsys, experiment)
        except Hang:
            failures.append(f"{case.name}: no answer within {HANG_S} s")
            continue
        codes[code] += 1
        if code not in (0, 2):
            failures.append(f"{case.name}: exit {code}: {text.strip()[-300:]}")
        if "Traceback" in text or "internal error" in text:
            failures.append(f"{case.name}: {text.strip()[-300:]}")
        if code == 2 and not any(line.startswith("[error]") for line in text.splitlines()):
            failures.append(f"{case.name}: exit 2 without an [error] line: {text[-300:]}")
        if snapshot(folder) != before:
            failures.append(f"{case.name}: validate wrote into the folder")
    assert not failures, "\n".join(failures)
    # The harness itself is checked: every mutator ran, and both outcomes occur.
    assert set(mutators) == set(MUTATORS), mutators
    assert codes[0] > 0
    assert codes[2] > 0


def test_cases_are_reproducible_from_their_seed(tmp_path):
    for seed in (1, 2, 3, 77, 12345):
        a, b = make_case(seed), make_case(seed)
        assert a == b
        pa = a.materialize(tmp_path / f"a{seed}")
        pb = b.materialize(tmp_path / f"b{seed}")
        target_a = pa.parent / a.target
        target_b = pb.parent / b.target
        if target_a.is_file() and target_b.is_file():
            assert target_a.read_bytes() == target_b.read_bytes()
