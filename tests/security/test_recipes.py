"""A recipe named by a client (``POST /RUN/{name}``, a queue entry's ``recipe``) is one of the
registered recipes, and a registered recipe may only use the tasks of ``bes.tasks``: a name
that leaves the recipes folder, or a recipe whose node names ``os.system``,
``subprocess.Popen`` or a module outside ``bes.tasks``, is refused before anything is
imported (bes/engine/registry.py)."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import bes.engine.recipes
from bes.engine.recipes import list_recipes
from bes.queue import validate
from tests.security.conftest import TOKEN, LiveBes, bearer

PROBE = "mxbes_security_probe"
"""A module that would leave a mark if anything imported it."""
PROBE_SOURCE = """\
import os
import pathlib

pathlib.Path(os.environ["MXBES_PROBE_MARK"]).write_text("imported")


class Boom:
    pass
"""


def recipe(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"graph": {"id": name}, "nodes": list(nodes), "links": []}


def node(task_type: str, identifier: str, **extra: Any) -> dict[str, Any]:
    return {"id": "n", "task_type": task_type, "task_identifier": identifier, **extra}


EVIL: dict[str, tuple[dict[str, Any], str]] = {
    # recipe name: (the recipe, what the refusal names)
    "evil_system": (recipe("evil_system", node("class", "os.system")), "'os.system'"),
    "evil_popen": (recipe("evil_popen", node("class", "subprocess.Popen")), "subprocess.Popen"),
    "evil_module": (recipe("evil_module", node("class", f"{PROBE}.Boom")), f"{PROBE}.Boom"),
    "evil_lookalike": (
        recipe("evil_lookalike", node("class", f"bes.tasks_{PROBE}.Boom")),
        "is not allowed",
    ),
    "evil_dots": (
        recipe("evil_dots", node("class", f"bes.tasks..{PROBE}.Boom")),
        "is not allowed",
    ),
    "evil_method": (recipe("evil_method", node("method", "os.system")), "task_type 'method'"),
    "evil_script": (recipe("evil_script", node("script", "/tmp/x.py")), "task_type 'script'"),
    "evil_ppf": (recipe("evil_ppf", node("ppfmethod", f"{PROBE}.run")), "task_type 'ppfmethod'"),
    "evil_legacy": (
        recipe("evil_legacy", {"id": "n", "class": f"{PROBE}.Boom"}),
        "old-style key(s) class",
    ),
    "evil_subgraph": (recipe("evil_subgraph", node("graph", "../evil_module")), "sub-recipe"),
    "evil_nested": (recipe("evil_nested", node("graph", "evil_module")), f"{PROBE}.Boom"),
}
"""Recipes in the recipes folder that name code outside bes.tasks."""


@pytest.fixture
def recipes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A recipes folder with the registered recipes and the EVIL ones, and a probe module
    that could be imported (it is on sys.path) and would write a mark if it were."""
    folder = tmp_path / "recipes"
    folder.mkdir()
    for path in list_recipes():
        shutil.copy(path, folder)
    for name, (graph, _) in EVIL.items():
        (folder / f"{name}.json").write_text(json.dumps(graph))
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{PROBE}.py").write_text(PROBE_SOURCE)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("MXBES_PROBE_MARK", str(tmp_path / "imported"))
    monkeypatch.setattr(bes.engine.recipes, "default_recipe_dirs", lambda: [folder])
    validate._recipe.cache_clear()
    yield folder
    validate._recipe.cache_clear()
    sys.modules.pop(PROBE, None)


def assert_nothing_imported(folder: Path) -> None:
    assert PROBE not in sys.modules, f"{PROBE} was imported"
    assert not (folder.parent / "imported").exists(), f"{PROBE} was run"


@pytest.mark.parametrize("name", sorted(EVIL))
def test_a_registered_recipe_with_a_task_outside_bes_tasks_is_refused_before_any_import(
    bes_live: LiveBes, recipes: Path, name: str
) -> None:
    named = EVIL[name][1]
    answer = bes_live.request("POST", f"/RUN/{name}", json={})
    assert answer.status_code == 422, answer.text
    assert f"recipe '{name}' is refused" in answer.text
    assert named in answer.text
    answer = bes_live.request(
        "POST",
        "/api/v1/queue/entries",
        json={"location": "1:1", "recipe": name},
        headers=bearer(TOKEN),
    )
    assert answer.status_code == 422, answer.text
    assert named in answer.json()["detail"]
    assert_nothing_imported(recipes)
    assert bes_live.server.runs.list() == []
    assert bes_live.server.queue.manager.store.list() == []


def test_the_probe_would_leave_a_mark_if_imported(recipes: Path) -> None:
    """The check above means something: the probe module is importable and marks."""
    import importlib

    importlib.import_module(PROBE)
    assert (recipes.parent / "imported").read_text() == "imported"


OUTSIDE_NAMES = [
    "..",
    "../evil_module",
    "..%2Fevil_module",
    "evil_module/../mxpresse",
    "/tmp/evil_module.json",
    "outside",
    "outside.json",
    "%00",
    "mxpresse\x00",
    "./mxpresse",
    "~/mxpresse",
    "C:\\recipes\\mxpresse",
]
"""Workflow names that would leave the recipes folder (or name a file outside it)."""


@pytest.mark.parametrize("name", OUTSIDE_NAMES)
def test_a_workflow_name_cannot_leave_the_recipes_folder(
    bes_live: LiveBes, recipes: Path, name: str
) -> None:
    outside = recipes.parent / "outside.json"
    outside.write_text(json.dumps(EVIL["evil_module"][0]))
    answer = bes_live.request("POST", f"/RUN/{quote(name, safe='%')}", json={})
    assert answer.status_code == 404, answer.text
    assert "workflow" in answer.text or "Not Found" in answer.text
    answer = bes_live.request(
        "POST",
        "/api/v1/queue/entries",
        json={"location": "1:1", "recipe": name},
        headers=bearer(TOKEN),
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert "bad workflow name" in detail or "unknown workflow" in detail
    assert_nothing_imported(recipes)
    assert bes_live.server.runs.list() == []


def test_the_registered_recipes_still_load(bes_live: LiveBes, recipes: Path) -> None:
    # refused for want of a pin, after the recipe was found and loaded
    answer = bes_live.request("POST", "/RUN/MXPressE", json={})
    assert answer.status_code == 409, answer.text
    assert "no sample is mounted" in answer.text
    assert_nothing_imported(recipes)
