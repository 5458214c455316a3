"""Check a new queue entry before it is stored: a location that parses, a known recipe, and
parameters that recipe accepts (MX recipes: validated as their first node will). A bad entry
raises ``ValueError`` with the reason; nothing is stored."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bes.hal.sample_changer import Location
from bes.queue.entries import NewEntry

if TYPE_CHECKING:
    from bes.engine.recipes import Recipe

SAMPLE_KEYS = ("sample", "sample_lims_id")
"""Run inputs that the entry itself sets (its location and LIMS id)."""
STATION_KEYS = ("data_root",)
"""Run inputs that the station sets: every file goes below its data directory."""


def validate_entry(entry: NewEntry) -> NewEntry:
    """The entry with its location in canonical form and its parameters checked; MX
    parameters gain an explicit ``run_number`` (a re-queued entry gets the next one)."""
    location = str(Location.parse(entry.location))
    lims_id = entry.sample_lims_id
    if lims_id is not None and (isinstance(lims_id, bool) or not isinstance(lims_id, int)):
        raise ValueError(f"bad sample_lims_id {lims_id!r}: expected a whole number from 1")
    if lims_id is not None and lims_id < 1:
        raise ValueError(f"bad sample_lims_id {lims_id!r}: expected a whole number from 1")
    parameters = dict(entry.parameters)
    given = [key for key in SAMPLE_KEYS if key in parameters]
    if given:
        raise ValueError(
            f"parameter(s) {', '.join(given)} not allowed: the entry's location and "
            "sample_lims_id name the sample"
        )
    station = [key for key in STATION_KEYS if key in parameters]
    if station:
        raise ValueError(
            f"parameter(s) {', '.join(station)} not allowed: the station's data directory "
            "holds every file; it cannot be set per entry"
        )
    try:
        json.dumps(parameters, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"parameters must be JSON values: {exc}") from None
    recipe = _recipe(entry.recipe)
    if _is_mx(recipe):
        parameters = _check_mx(parameters, location, lims_id)
    else:
        _check_inputs(recipe, parameters)
    return replace(entry, location=location, parameters=parameters)


@functools.lru_cache(maxsize=64)
def _recipe(name: str) -> Recipe:
    from bes.engine.recipes import RecipeError, find_recipe, load_recipe

    try:
        return load_recipe(find_recipe(name))
    except RecipeError as exc:
        raise ValueError(str(exc)) from None


def _is_mx(recipe: Recipe) -> bool:
    """An MX recipe starts with ``PrepareRun``: it takes the MX parameters."""
    from bes.tasks.prepare import PrepareRun

    return any(issubclass(cls, PrepareRun) for cls in recipe.task_classes.values())


def _check_mx(parameters: dict[str, Any], location: str, lims_id: int | None) -> dict[str, Any]:
    from bes.tasks.parameters import parse_parameters
    from bes.tasks.prepare import check_plan

    values = {**parameters, "sample": location, "sample_lims_id": lims_id}
    checked = parse_parameters(values)  # ParameterError is a ValueError naming the parameter
    check_plan(checked)
    return {**parameters, "run_number": checked.run_number}


def _check_inputs(recipe: Recipe, parameters: dict[str, Any]) -> None:
    from bes.engine.recipes import ENGINE_INPUT_NAMES

    takes = sorted(
        {name for cls in recipe.task_classes.values() for name in cls.input_names()}
        - set(ENGINE_INPUT_NAMES)
    )
    unknown = [name for name in parameters if name not in takes]
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for recipe "
            f"{recipe.name!r}; it takes: {', '.join(takes) or 'none'}"
        )
