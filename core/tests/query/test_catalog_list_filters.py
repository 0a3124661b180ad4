"""``capa catalog list`` filters on the catalog that real runs wrote (conftest.py)."""

from __future__ import annotations

import json

import pytest

from .conftest import QueryRoot, run_capa


def _listed(root, *filters: str) -> list[str]:
    code, out, err = run_capa("catalog", "list", "--runs-root", root, "--json", *filters)
    assert code == 0, err
    return sorted(r["run_id"] for r in json.loads(out))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), ["hot12", "cool12", "hot13"]),
        (("--operator", "ada"), ["hot12", "hot13"]),
        (("--operator", "cy d"), ["cool12"]),  # display name, any case
        (("--sample", "s-12"), ["hot12", "cool12"]),
        (("--tag", "furnace"), ["hot12", "cool12"]),
        (("--tag", "furnace", "--tag", "hot"), ["hot12"]),
        (("--procedure", "capa.builtin.free_run"), ["hot12", "cool12", "hot13"]),
        (("--procedure", "capa.builtin.recipe_runner"), []),
        (("--text", "COOLER"), ["cool12"]),  # sample notes
        (("--text", "s-1"), ["hot12", "cool12", "hot13"]),  # sample ids
        (("--sample", "S-12", "--operator", "ada"), ["hot12"]),
        (
            ("--sample", "S-12", "--run-status", "completed", "--since", "2000-01-01"),
            ["hot12", "cool12"],
        ),
        (("--sample", "S-12", "--since", "2999-01-01"), []),
        (("--text", "%"), []),  # literal, not a LIKE pattern
    ],
)
def test_list_filters_combine(query_root: QueryRoot, filters, expected):
    ids = query_root.ids
    assert _listed(query_root.root, *filters) == sorted(ids[k] for k in expected)


def test_text_matches_the_run_id(query_root: QueryRoot):
    run_id = query_root.ids["hot13"]
    assert _listed(query_root.root, "--text", run_id[-4:].upper()) == [run_id]


def test_no_match_says_so(query_root: QueryRoot):
    code, out, _ = run_capa(
        "catalog", "list", "--runs-root", query_root.root, "--operator", "nobody"
    )
    assert code == 0
    assert out.strip() == f"no runs in {query_root.root} match the filters"
