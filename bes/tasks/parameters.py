"""The parameters of the MX recipes: one flat set of names with defaults that match a modern
beamline (shared/REFERENCE.md section 3: 20 um boxes, 4 ms per point, two orthogonal
faces), validated before anything moves.

A recipe's first node (``bes.tasks.prepare.PrepareRun``) takes these names as inputs; a bad
value stops the run there with a :class:`ParameterError` naming the parameter, before the
sample changer or a motor moves. MXCuBE's start-body keys that mean the same thing are
accepted under their own names (``prefix``, ``run_number``, ``sample_lims_id``, ``sessionId``,
``externalRef``, ``beamline``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bes.acquisition.layout import safe_name
from bes.hal.sample_changer import Location

Positive = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Angle = Annotated[float, Field(ge=-3600, le=3600)]


class ParameterError(ValueError):
    """A recipe parameter has a bad value; the message names it, the value and the rule."""


class MxParameters(BaseModel):
    """Every MX recipe parameter with its default (units in the names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- sample and data ----------------------------------------------------------------
    sample: str | None = None
    """Dewar location ``puck:pin`` to mount; None: work on the sample mounted now."""
    sample_name: str | None = None
    sample_lims_id: Annotated[int, Field(ge=1)] | None = None
    data_root: str = "bes-data"
    """The data area; every file goes below it."""
    proposal: Annotated[str, Field(pattern=r"^[A-Za-z]+[0-9]+$")] = "mx0000"
    visit_number: Annotated[int, Field(ge=1)] = 1
    prefix: (
        Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", max_length=100)] | None
    ) = None
    """File name prefix; default: the sample's name."""
    run_number: Annotated[int, Field(ge=1)] = 1
    """First run number to try; a taken one moves to the next free (never overwrite)."""
    file_format: Literal["hdf5", "cbf"] = "hdf5"
    unmount_at_end: bool = True
    """mxpresse / mesh_and_collect: put the pin back at the end (and after a fault)."""

    # -- loop centring ------------------------------------------------------------------
    loop_omegas_deg: tuple[Angle, ...] = (0.0, 90.0, 45.0, 135.0)

    # -- mesh scans and X-ray centring --------------------------------------------------
    mesh_box_um: Annotated[float, Field(ge=1, le=500)] = 20.0
    mesh_exposure_s: Annotated[float, Field(gt=0, le=10)] = 0.004
    mesh_rows: Annotated[int, Field(ge=1, le=200)] | None = None
    """None: from the loop's size seen on the camera."""
    mesh_cols: Annotated[int, Field(ge=1, le=200)] | None = None
    mesh_min_points: Annotated[int, Field(ge=1, le=50)] = 5
    """Smallest rows/cols of a mesh planned from the loop."""
    mesh_max_points: Annotated[int, Field(ge=1, le=40_000)] = 2500
    mesh_snaked: bool = True
    mesh_transmission: Fraction = 1.0
    mesh_retries: Annotated[int, Field(ge=0, le=5)] = 1
    """No signal: enlarge the mesh and try again at most this often."""
    mesh_enlarge_factor: Annotated[float, Field(gt=1, le=4)] = 1.6
    max_attenuations: Annotated[int, Field(ge=0, le=5)] = 2
    """Overloads: lower the transmission and repeat the mesh at most this often."""
    attenuation_factor: Annotated[float, Field(gt=0, lt=1)] = 0.25
    overload_fraction: Annotated[float, Field(gt=0, le=1)] = 0.1
    """Share of mesh frames with overloaded spots that calls for less transmission."""
    min_score: Annotated[float, Field(ge=0)] = 2.0
    """A mesh whose best score is not above this holds no diffraction."""
    centring_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.25
    """3D map threshold relative to its maximum (0.25 x max as at large MX facilities)."""
    n_crystals: Annotated[int, Field(ge=1, le=50)] = 2
    """mesh_and_collect: collect from the best this many crystals."""
    move_to_best: bool = True
    """mesh_scan: finish at the best point."""

    # -- characterisation ---------------------------------------------------------------
    char_omegas_deg: tuple[Angle, ...] = (0.0, 90.0)
    """Start of each reference wedge, relative to the omega the crystal was centred at."""
    char_frames_per_wedge: Annotated[int, Field(ge=1, le=100)] = 5
    char_oscillation_deg: Annotated[float, Field(gt=0, le=10)] = 0.1
    char_exposure_s: Annotated[float, Field(gt=0, le=10)] = 0.05
    char_transmission: Fraction | None = None
    """None: as much as the 5 % characterisation share of the dose budget allows."""
    min_resolution_a: Annotated[float, Field(gt=0, le=50)] = 4.0
    """Poor diffraction: characterisation resolution worse than this stops the workflow."""
    space_group: str | None = None
    """The sample's symmetry when known (sample record); shapes the strategy's range."""

    # -- data collection ----------------------------------------------------------------
    omega_start_deg: Angle | None = None
    """The collection parameters below override the strategy (or replace it when none)."""
    total_range_deg: Annotated[float, Field(gt=0, le=3600)] | None = None
    oscillation_deg: Annotated[float, Field(gt=0, le=10)] | None = None
    exposure_s: Annotated[float, Field(gt=0, le=60)] | None = None
    transmission: Fraction | None = None
    detector_distance_mm: Positive | None = None
    wedge_range_deg: Annotated[float, Field(gt=0, le=360)] = 30.0
    """mesh_and_collect / line_scan: rotation per crystal (or along the line)."""
    line_points: Annotated[int, Field(ge=2, le=100)] = 5
    """line_scan: positions the collection steps through along the crystal."""
    processing: Literal["auto", "none"] = "auto"
    """auto: trigger the beamline's processing hook after a collection (if it has one)."""

    @field_validator("sample")
    @classmethod
    def _location(cls, value: str | None) -> str | None:
        if value is not None:
            Location.parse(value)
        return value

    @field_validator("sample_name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        # files go under safe_name(sample_name): it must give a name (not '..', say)
        if value is not None:
            if len(value) > 100:
                raise ValueError("at most 100 characters")
            safe_name(value)
        return value

    @field_validator("loop_omegas_deg", "char_omegas_deg")
    @classmethod
    def _some_angles(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value:
            raise ValueError("give at least one angle")
        return value

    @property
    def location(self) -> Location | None:
        return Location.parse(self.sample) if self.sample else None


MXCUBE_NAMES = {"sessionId": "session", "externalRef": "proposal_text"}
"""MXCuBE start-body keys read by ``parse_parameters`` besides the parameter names."""
MXCUBE_IGNORED: frozenset[str] = frozenset(
    {
        "modelpath",
        "directory",
        "collection_software",
        "sample_node_id",
        "workflow_node_id",
        "beamline",
        "shape",
        "initiator",
        "token",
        "investigationId",
        "mxcubeParameters",
        "request_id",
    }
)
"""Keys an MXCuBE start body (shared/REFERENCE.md section 1) carries that the MX recipes do
not use; any other unknown name is refused."""
PARAMETER_NAMES: tuple[str, ...] = tuple(MxParameters.model_fields)
ACCEPTED_NAMES: tuple[str, ...] = (*PARAMETER_NAMES, *MXCUBE_NAMES)


def parse_parameters(values: Mapping[str, Any]) -> MxParameters:
    """Validated parameters from run inputs; ``None`` values mean "use the default".

    ``sessionId`` (``mx1234-1``) and ``externalRef`` (``mx1234``) set proposal and visit."""
    given = {k: v for k, v in values.items() if v is not None}
    session = given.pop("sessionId", None)
    proposal_text = given.pop("externalRef", None)
    if session is not None and isinstance(session, str) and "-" in session:
        code, _, visit = session.rpartition("-")
        given.setdefault("proposal", code)
        if visit.isascii() and visit.isdigit() and len(visit) <= 18:
            given.setdefault("visit_number", int(visit))
    elif proposal_text is not None:
        given.setdefault("proposal", proposal_text)
    try:
        return MxParameters(**given)
    except ValidationError as exc:
        raise ParameterError(describe(exc)) from None


def check_unknown(names: Iterable[str]) -> None:
    """Refuse run inputs no task takes, except MXCuBE's own keys (a typo must not pass as a
    default)."""
    unknown = sorted(set(names) - MXCUBE_IGNORED)
    if unknown:
        hints = [
            f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
            for name in unknown
            for close in [difflib.get_close_matches(name, ACCEPTED_NAMES, n=1)]
        ]
        raise ParameterError(f"unknown parameter(s) {', '.join(hints)}")


def describe(exc: ValidationError) -> str:
    """``bad parameter mesh_box_um=-5: Input should be greater than or equal to 1`` ..."""
    parts = []
    for error in exc.errors():
        name = ".".join(str(p) for p in error["loc"]) or "parameters"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {name!r}")
            continue
        value = error.get("input")
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"bad parameter {name}={value!r}: {message}")
    return "; ".join(parts)
