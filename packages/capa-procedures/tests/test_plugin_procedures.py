import importlib.metadata as md

import capa_procedures
from capa import PluginHost
from capa.plugins.registry import PluginStatus


def test_entry_point_declared_and_version_matches_metadata():
    eps = [ep for ep in md.entry_points(group="capa") if ep.name == "procedures"]
    assert [ep.value for ep in eps] == ["capa_procedures.plugin"]
    assert md.version("capa-procedures") == capa_procedures.__version__


def test_plugin_loads_through_the_host():
    host = PluginHost()
    host.load()
    record = host.plugins["procedures"]
    assert record.status is PluginStatus.LOADED, record.reason
    assert record.dist == "capa-procedures"
    assert not host.rejections_for("procedures")


def test_free_run_is_cores_and_not_registered_here():
    from capa_procedures import plugin

    ids = {cls.id for cls in plugin.capa_register_procedures()}
    assert ids == {
        "capa.builtin.recipe_runner",
        "capa.builtin.heat_flux_tune",
        "capa.builtin.batch",
    }
    host = PluginHost()
    host.load()
    assert host.procedures.record("capa.builtin.free_run").dist == "capa"


def test_recipe_runner_without_method_is_refused_with_the_free_run_hint():
    import anyio
    import pytest

    from capa_procedures.errors import ProcedureError
    from capa_procedures.recipe_runner import RecipeRunner, RecipeRunnerConfig

    from .fakes import FakeChannels, FakeRun

    runner = RecipeRunner(RecipeRunnerConfig())
    ctx = FakeRun(steps=[], channels=FakeChannels({}))
    with pytest.raises(ProcedureError, match=r"use capa\.builtin\.free_run"):
        anyio.run(runner.preflight, ctx)


def test_step_durations_are_bounded():
    import pytest
    from pydantic import ValidationError

    from capa_procedures.steps import BUILTIN_STEPS
    from capa_procedures.steps.base import MAX_DURATION_S

    kinds = {cls.kind: cls for cls in BUILTIN_STEPS}
    for value in (float("inf"), float("nan"), 2.0**63, MAX_DURATION_S * 2):
        with pytest.raises(ValidationError):
            kinds["wait"].Config.model_validate({"duration_s": value})
        with pytest.raises(ValidationError):
            kinds["acquire"].Config.model_validate({"duration_s": value})
    assert kinds["wait"].Config.model_validate({"duration_s": MAX_DURATION_S}).duration_s
