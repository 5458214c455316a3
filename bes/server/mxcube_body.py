"""From an MXCuBE start body (``POST /RUN/{workflow}``) to what the run needs: the recipe, its
inputs, the run labels, the pin to work on and where the callbacks go.

MXCuBE builds the body from key/value pairs turned into text (``"run_number": "1"``,
``"sample_lims_id": "None"``) and adds ``initiator``, ``sessionId``, ``externalRef``,
``token``, ``sample`` (its LIMS record of the sample, or null), ``investigationId`` and
``mxcubeParameters`` (shared/REFERENCE.md §1). MX recipe parameters may be given in the body
too (``"mesh_rows": "5"``). Everything is checked here, before anything starts.

The sample (docs/server.md): MXCuBE mounts it before starting the workflow, so without a
location the run works on the pin mounted now. A location is taken from, first to last:
``sample_location`` ("puck:pin"), ``sample`` given as "puck:pin" text, the LIMS record's
``containerSampleChangerLocation`` (puck) and ``sampleLocation`` (pin) (or ISPyB's
``sampleChangerLocation`` / ``location``); the run then mounts that pin (no robot move when
it is already mounted). The record's ``sampleId`` and ``sampleName`` give ``sample_lims_id``
and ``sample_name`` when the body does not. MX parameters given as text valid only as JSON
(``"[0, 90]"``) are read as JSON; parameters of other recipes given as text that reads as a
number or true/false are passed as that value. A record location that does not parse is
ignored; an explicit one that does not parse is refused. MX runs leave the pin mounted
(``unmount_at_end`` false) unless the body says otherwise: the client mounted it and decides
what comes next.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bes.engine.recipes import Recipe
from bes.hal.sample_changer import Location
from bes.server.callbacks import CallbackTarget
from bes.station.cli import check_mx_parameters, check_recipe_inputs, is_mx_recipe
from bes.tasks.parameters import PARAMETER_NAMES, ParameterError, parse_parameters

MXCUBE_KEYS: frozenset[str] = frozenset(
    {
        "modelpath",
        "directory",
        "prefix",
        "run_number",
        "collection_software",
        "sample_node_id",
        "workflow_node_id",
        "sample_lims_id",
        "beamline",
        "shape",
        "initiator",
        "sessionId",
        "externalRef",
        "token",
        "sample",
        "investigationId",
        "mxcubeParameters",
        "request_id",
    }
)
"""What MXCuBE's client puts in a start body (every value may be text)."""
MXCUBE_PARAMETERS = ("prefix", "run_number", "sample_lims_id", "sessionId", "externalRef")
"""MXCuBE keys the MX recipes read; ``"None"`` or ``""`` there means not given."""
SAMPLE_LOCATION = "sample_location"
"""Body key naming the pin to mount, ``"puck:pin"``."""
RECORD_PUCK_KEYS = ("containerSampleChangerLocation", "sampleChangerLocation")
RECORD_PIN_KEYS = ("sampleLocation", "location")
NOT_GIVEN = ("None", "none", "null", "")
MAX_DIGITS = 18
"""Longest whole number read from text (a port, a LIMS id): below 2**63."""
LABEL_KEYS = {"session": "sessionId", "user_name": "initiator", "beamline": "beamline"}
"""Workflow-database run labels taken from the body."""


class RequestError(ValueError):
    """A start request that cannot run; ``status``: the HTTP status to answer."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RunRequest:
    """A checked start request."""

    recipe: Recipe
    inputs: dict[str, Any]
    """The run inputs (``data_root`` and ``sample`` included when they apply)."""
    labels: dict[str, str] = field(default_factory=dict)
    """Workflow-database run labels (``session``, ``user_name``, ``beamline``)."""
    location: str | None = None
    """The pin the run mounts; None: the one mounted now."""
    callback: CallbackTarget | None = None
    mx: bool = False
    """An MX recipe: it works on a sample (named or mounted)."""


def read_request(recipe: Recipe, body: Mapping[str, Any], data_root: str) -> RunRequest:
    """Check ``body`` for ``recipe``; RequestError (422) naming what is wrong."""
    if "data_root" in body:
        raise RequestError("data_root is the station's data directory; it cannot be set per run")
    callback = _callback(body.get("mxcubeParameters"))
    record = body.get("sample") if isinstance(body.get("sample"), Mapping) else None
    location = _location(body, record)
    mx = is_mx_recipe(recipe)
    parameters = {k: v for k, v in body.items() if k not in MXCUBE_KEYS and k != SAMPLE_LOCATION}
    for name in MXCUBE_PARAMETERS:
        value = body.get(name)
        if value is not None and not (isinstance(value, str) and value.strip() in NOT_GIVEN):
            parameters[name] = value.strip() if isinstance(value, str) else value
    try:
        if mx:
            inputs = _mx_inputs(parameters, record, location, data_root)
        else:
            given = {k: _from_text(v) for k, v in parameters.items() if k not in MXCUBE_PARAMETERS}
            check_recipe_inputs(recipe, given)
            inputs = given
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return RunRequest(
        recipe=recipe,
        inputs=inputs,
        labels=_labels(body),
        location=location if mx else None,
        callback=callback,
        mx=mx,
    )


def _mx_inputs(
    parameters: dict[str, Any],
    record: Mapping[str, Any] | None,
    location: str | None,
    data_root: str,
) -> dict[str, Any]:
    if record is not None:
        sample_id = record.get("sampleId", record.get("blSampleId"))
        number = _whole(sample_id)
        if "sample_lims_id" not in parameters and number is not None:
            parameters["sample_lims_id"] = number
        name = record.get("sampleName", record.get("name"))
        if "sample_name" not in parameters and isinstance(name, str) and name.strip():
            parameters["sample_name"] = name.strip()
    parameters.setdefault("unmount_at_end", False)
    for name, value in parameters.items():
        parameters[name] = _mx_from_text(name, value)
    inputs = check_mx_parameters(parameters, location, data_root)
    inputs["data_root"] = data_root
    if location is not None:
        inputs["sample"] = location
    return inputs


def _location(body: Mapping[str, Any], record: Mapping[str, Any] | None) -> str | None:
    """The pin the body names (see the module docstring)."""
    named = [
        (key, body[key])
        for key in (SAMPLE_LOCATION, "sample")
        if body.get(key) is not None and not isinstance(body[key], Mapping)
    ]
    locations: dict[str, str] = {}
    for key, value in named:
        if isinstance(value, str) and value.strip() in NOT_GIVEN:
            continue
        if not isinstance(value, str):
            raise RequestError(
                f"bad {key} {value!r}: expected 'puck:pin' text, e.g. '1:3'"
                + (" or the LIMS sample record" if key == "sample" else "")
            )
        try:
            locations[key] = str(Location.parse(value.strip()))
        except ValueError as exc:
            raise RequestError(f"bad {key}: {exc}") from None
    if len(set(locations.values())) > 1:
        raise RequestError(
            f"sample_location {locations[SAMPLE_LOCATION]!r} and sample "
            f"{locations['sample']!r} name different pins; give one"
        )
    if locations:
        return next(iter(locations.values()))
    return _record_location(record) if record is not None else None


def _record_location(record: Mapping[str, Any]) -> str | None:
    """``puck:pin`` from a LIMS sample record, or None when it has none that parses."""
    puck = next((record[k] for k in RECORD_PUCK_KEYS if record.get(k) is not None), None)
    pin = next((record[k] for k in RECORD_PIN_KEYS if record.get(k) is not None), None)
    if isinstance(pin, str) and ":" in pin:
        text = pin
    elif puck is None or pin is None:
        return None
    else:
        text = f"{str(puck).strip()}:{str(pin).strip()}"
    try:
        return str(Location.parse(text))
    except ValueError:
        return None


def _callback(value: Any) -> CallbackTarget | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RequestError(
            f"bad mxcubeParameters {value!r}: expected an object {{host, port, token}}"
        )
    host, port, token = value.get("host"), value.get("port"), value.get("token")
    if not isinstance(host, str) or not host.strip():
        raise RequestError(f"bad mxcubeParameters.host {host!r}: expected the client's host name")
    number = _whole(port)
    if number is None or not 0 < number < 65536:
        raise RequestError(f"bad mxcubeParameters.port {port!r}: expected a port 1..65535")
    if token is not None and not isinstance(token, str):
        raise RequestError(f"bad mxcubeParameters.token {token!r}: expected text")
    return CallbackTarget(host.strip(), number, token)


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for label, key in LABEL_KEYS.items():
        value = body.get(key)
        if isinstance(value, str | int) and str(value).strip() not in NOT_GIVEN:
            labels[label] = str(value).strip()
    return labels


def _mx_from_text(name: str, value: Any) -> Any:
    """An MX parameter sent as text that is valid only as JSON (``"[0, 90]"``) as that
    value; anything else as it is (the check names what is wrong)."""
    if not isinstance(value, str) or name not in PARAMETER_NAMES:
        return value
    try:
        parse_parameters({name: value})
        return value
    except ParameterError:
        pass
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    try:
        parse_parameters({name: parsed})
    except ParameterError:
        return value
    return parsed


def _from_text(value: Any) -> Any:
    """A number or true/false sent as text (as MXCuBE sends every value) as the value."""
    if not isinstance(value, str):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value
    return parsed if isinstance(parsed, int | float | bool) else value


def _whole(value: Any) -> int | None:
    """``value`` as a whole number when it is one, or text of one (MXCuBE sends numbers as
    text); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = value.strip() if isinstance(value, str) else ""
    # ASCII digits only: str.isdigit() also passes '²', which int() refuses, and a bound on
    # the length (int() refuses more than 4300 digits)
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None
