"""RunContext.run_child: child runs with their own bundles on the parent's devices."""

from __future__ import annotations

import types

import anyio
import pyarrow.parquet as pq
import pytest

import capa
from capa.config.validate import validate_experiment
from capa.runtime.build import plan_from_report
from capa.runtime.headless import run_headless

from .conftest import events, manifest, write_experiment

pytestmark = pytest.mark.slow


class Twice(capa.Procedure):
    """Runs a free run twice as child runs, then records what came back."""

    id = "test.twice"
    Config = capa.EmptyConfig
    results: list = []

    async def run(self, ctx):
        for i in range(2):
            child = await ctx.run_child(
                "capa.builtin.free_run",
                {"duration_s": 0.6},
                sample_id=f"S-1-{i}",
                custom={"batch": {"iteration": i}},
            )
            type(self).results.append(child)
            ctx.events.emit("test.child", child.run_id, metadata={"status": child.run_status})
        await anyio.sleep(0.3)  # the parent samples again after its children


class SelfNesting(capa.Procedure):
    """Tries to run itself as a child."""

    id = "test.self_nesting"
    Config = capa.EmptyConfig

    async def run(self, ctx):
        await ctx.run_child("test.self_nesting", {})


def host_with_test_procedures():
    host = capa.PluginHost()
    host.load()
    plugin = types.SimpleNamespace(
        capa_register_procedures=capa.hookimpl(lambda: [Twice, SelfNesting])
    )
    host.register(plugin, name="test_children")
    return host


def run(tmp_path, procedure):
    host = host_with_test_procedures()
    exp = write_experiment(tmp_path, procedure=procedure)
    report = validate_experiment(exp, host)
    assert report.ok, report.problems
    plan = plan_from_report(report, host)

    async def main():
        with anyio.fail_after(60):
            return await run_headless(plan, runs_root=tmp_path / "runs", host=host)

    return anyio.run(main)


def test_children_get_their_own_sealed_bundles(tmp_path):
    Twice.results = []
    parent = run(tmp_path, "test.twice")
    assert parent.exit_code() == 0, parent.exit_reason
    assert [c.run_status for c in Twice.results] == ["completed", "completed"]
    for i, child in enumerate(Twice.results):
        assert child.bundle_status == "sealed"
        m = manifest(child.bundle_path)
        assert m["sample"]["id"] == f"S-1-{i}"
        assert m["custom"]["batch"] == {"iteration": i}
        assert m["procedure"]["id"] == "capa.builtin.free_run"
        assert pq.read_table(child.bundle_path / "scalars.parquet").num_rows > 0
        assert [k for k, _, _ in events(child.bundle_path)] == [
            "free_run.started",
            "free_run.ended",
        ]
    # The parent recorded its own events and, after the children, its own samples.
    assert [k for k, _, _ in events(parent.bundle_path)] == ["test.child", "test.child"]
    t_parent = pq.read_table(parent.bundle_path / "scalars.parquet").column("t_mono_ns")
    assert len(t_parent) > 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir() if p.is_dir())
    assert len(runs) == 3
    assert not (tmp_path / "runs" / ".runtime-active.json").exists()


def test_a_procedure_cannot_run_itself_as_a_child(tmp_path):
    result = run(tmp_path, "test.self_nesting")
    assert result.exit_code() == 2
    assert "cannot run itself as a child" in result.exit_reason
