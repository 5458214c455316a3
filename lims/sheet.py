"""Sample sheets: the proposal, session, pucks and samples of an experiment, from CSV or JSON.

JSON::

    {"proposal": {"proposalCode": "mx", "proposalNumber": "1234", "title": "..."},  # or "mx1234"
     "session": {"visit_number": 1, "beamLineName": "SIM-MX", "startDate": "2025-03-01T08:00"},
     "proteins": [{"acronym": "lyso", "name": "lysozyme"}],          # optional
     "containers": [
       {"code": "puck-01", "barcode": "UP0001", "sampleChangerLocation": "1", "capacity": 16,
        "samples": [
          {"location": "1", "name": "lyso-1", "code": "DM0101", "protein": "lyso",
           "crystal": {"spaceGroup": "P43212", "cell_a": 79.1, "cell_b": 79.1, "cell_c": 37.9,
                       "cell_alpha": 90, "cell_beta": 90, "cell_gamma": 90}}]}]}

CSV: one row per sample; columns ``proposal`` (``mx1234``), ``visit_number``,
``containerCode``, ``location``, ``name`` are required; ``beamLineName``,
``containerBarcode``, ``sampleChangerLocation``, ``capacity``, ``code``, ``protein``,
``spaceGroup``, ``cell_a`` .. ``cell_gamma``, ``comments`` are optional. Every row names the
same proposal and visit. Field names are ISPyB's; a puck is placed in the sample changer by
``sampleChangerLocation`` and a pin in its puck by ``location`` (``puck:pin`` of the queue).

Loading goes through the LIMS API, which upserts on natural keys: loading a sheet again
updates what changed and duplicates nothing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from lims.client import records as r
from lims.client.client import LimsClient
from lims.client.handles import Visit

T = TypeVar("T", bound=BaseModel)

CSV_REQUIRED = ("proposal", "visit_number", "containerCode", "location", "name")
CSV_OPTIONAL = (
    "beamLineName",
    "containerBarcode",
    "sampleChangerLocation",
    "capacity",
    "code",
    "protein",
    "spaceGroup",
    "cell_a",
    "cell_b",
    "cell_c",
    "cell_alpha",
    "cell_beta",
    "cell_gamma",
    "comments",
)
_CELL = ("cell_a", "cell_b", "cell_c", "cell_alpha", "cell_beta", "cell_gamma")


class SheetError(ValueError):
    """A sample sheet that cannot be loaded; the message names the file, entry and field."""


@dataclass(frozen=True)
class SheetSample:
    record: r.BLSample
    protein: str | None = None
    """Acronym of the sample's protein."""
    crystal: r.Crystal | None = None


@dataclass(frozen=True)
class SheetContainer:
    record: r.Container
    samples: list[SheetSample] = field(default_factory=list)


@dataclass(frozen=True)
class SampleSheet:
    proposal: r.Proposal
    session: r.BLSession
    proteins: list[r.Protein]
    containers: list[SheetContainer]

    @property
    def visit(self) -> Visit:
        code = self.proposal.proposalCode + self.proposal.proposalNumber
        return Visit(code, self.session.visit_number)

    @property
    def sample_count(self) -> int:
        return sum(len(container.samples) for container in self.containers)


@dataclass(frozen=True)
class LoadReport:
    visit: Visit
    containers: int
    samples: int
    sample_ids: dict[str, int]
    """``sampleChangerLocation:location`` (or ``code:location``) -> blSampleId."""


def read_sheet(path: str | Path) -> SampleSheet:
    """Parse and check a CSV or JSON sample sheet."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SheetError(f"sample sheet {path} does not exist") from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SheetError(f"sample sheet {path} is not valid JSON: {exc}") from None
        return sheet_from_dict(data, str(path))
    if suffix == ".csv":
        return sheet_from_csv(text, str(path))
    raise SheetError(f"sample sheet {path}: unknown format {suffix!r}; use .csv or .json")


def sheet_from_dict(data: Any, source: str = "<sample sheet>") -> SampleSheet:
    if not isinstance(data, dict):
        raise SheetError(f"{source}: expected a JSON object at the top level")
    _known(data, {"proposal", "session", "proteins", "containers"}, source)
    for key in ("proposal", "session", "containers"):
        if key not in data:
            raise SheetError(f"{source}: '{key}' is missing")
    proposal_data = data["proposal"]
    if isinstance(proposal_data, str):
        proposal_data = _split_proposal(proposal_data, f"{source} proposal")
    proposal = _record(r.Proposal, proposal_data, f"{source} proposal")
    session = _record(r.BLSession, data["session"], f"{source} session")
    proteins = [
        _record(r.Protein, item, f"{source} proteins[{i}]")
        for i, item in enumerate(_list(data.get("proteins", []), f"{source} proteins"))
    ]
    containers = []
    for i, item in enumerate(_list(data["containers"], f"{source} containers")):
        where = f"{source} containers[{i}]"
        if not isinstance(item, dict):
            raise SheetError(f"{where}: expected an object")
        container = _record(r.Container, {k: v for k, v in item.items() if k != "samples"}, where)
        samples = []
        for j, entry in enumerate(_list(item.get("samples", []), f"{where} samples")):
            samples.append(_sample(entry, f"{where} samples[{j}]"))
        containers.append(SheetContainer(container, samples))
    sheet = SampleSheet(proposal, session, proteins, containers)
    _check(sheet, source)
    return sheet


def sheet_from_csv(text: str, source: str = "<sample sheet>") -> SampleSheet:
    reader = csv.DictReader(text.splitlines())
    columns = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in CSV_REQUIRED if name not in columns]
    if missing:
        raise SheetError(
            f"{source}: missing column(s) {missing}; required: {', '.join(CSV_REQUIRED)}"
        )
    unknown = sorted(set(columns) - set(CSV_REQUIRED) - set(CSV_OPTIONAL))
    if unknown:
        known = ", ".join(CSV_REQUIRED + CSV_OPTIONAL)
        raise SheetError(f"{source}: unknown column(s) {unknown}; known: {known}")
    proposal: str | None = None
    session: dict[str, Any] = {}
    containers: dict[str, dict[str, Any]] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        where = f"{source} line {line}"
        for name in CSV_REQUIRED:
            if not row.get(name):
                raise SheetError(f"{where}: {name} is empty")
        this_session = {
            "visit_number": row["visit_number"],
            "beamLineName": row.get("beamLineName"),
        }
        if proposal is None:
            proposal, session = row["proposal"], this_session
        elif (row["proposal"], row["visit_number"]) != (proposal, session["visit_number"]):
            raise SheetError(
                f"{where}: session {row['proposal']}-{row['visit_number']} differs from "
                f"{proposal}-{session['visit_number']} of the first row; one session per sheet"
            )
        container = containers.setdefault(
            row["containerCode"],
            {
                "code": row["containerCode"],
                "barcode": row.get("containerBarcode") or None,
                "sampleChangerLocation": row.get("sampleChangerLocation") or None,
                "capacity": row.get("capacity") or None,
                "samples": [],
            },
        )
        sample: dict[str, Any] = {
            "location": row["location"],
            "name": row["name"],
            "code": row.get("code") or None,
            "comments": row.get("comments") or None,
            "protein": row.get("protein") or None,
        }
        crystal = {k: row[k] for k in ("spaceGroup", *_CELL) if row.get(k)}
        if crystal:
            sample["crystal"] = crystal
        container["samples"].append((where, sample))
    if proposal is None:
        raise SheetError(f"{source}: no sample rows")
    sheet_containers = []
    for item in containers.values():
        rows = item.pop("samples")
        where = rows[0][0]
        fields = {k: v for k, v in item.items() if v is not None}
        record = _record(r.Container, fields, where, text=True)
        samples = [
            _sample({k: v for k, v in s.items() if v is not None}, w, text=True) for w, s in rows
        ]
        sheet_containers.append(SheetContainer(record, samples))
    first = f"{source} line 2"
    sheet = SampleSheet(
        _record(r.Proposal, _split_proposal(proposal, first), first, text=True),
        _record(r.BLSession, {k: v for k, v in session.items() if v}, first, text=True),
        [],
        sheet_containers,
    )
    _check(sheet, source)
    return sheet


def load_sheet(client: LimsClient, sheet: SampleSheet) -> LoadReport:
    """Write the sheet's proposal, session, proteins, crystals, pucks and samples (upserts)."""
    proposal = sheet.proposal.proposalCode + sheet.proposal.proposalNumber
    visit = sheet.visit
    client.add_proposal(sheet.proposal)
    client.add_session(proposal, sheet.session)
    proteins = {p.acronym: client.add_protein(proposal, p) for p in sheet.proteins}
    sample_ids: dict[str, int] = {}
    for container in sheet.containers:
        puck = client.add_container(visit, container.record)
        place = container.record.sampleChangerLocation or container.record.code
        for sample in container.samples:
            crystal = None
            if sample.protein is not None:
                if sample.protein not in proteins:
                    proteins[sample.protein] = client.add_protein(
                        proposal, r.Protein(acronym=sample.protein)
                    )
                crystal = client.add_crystal(
                    proteins[sample.protein], sample.crystal or r.Crystal()
                )
            handle = client.add_sample(puck, sample.record, crystal=crystal)
            assert handle.id is not None  # written at once: the loader's client has no outbox
            sample_ids[f"{place}:{sample.record.location}"] = handle.id
    return LoadReport(visit, len(sheet.containers), sheet.sample_count, sample_ids)


def _sample(entry: Any, where: str, *, text: bool = False) -> SheetSample:
    if not isinstance(entry, dict):
        raise SheetError(f"{where}: expected an object")
    values = dict(entry)
    protein = values.pop("protein", None)
    crystal_data = values.pop("crystal", None)
    if protein is not None and not isinstance(protein, str):
        raise SheetError(f"{where}: protein must be an acronym (text), got {protein!r}")
    crystal = (
        _record(r.Crystal, crystal_data, f"{where} crystal", text=text)
        if crystal_data is not None
        else None
    )
    if crystal is not None and protein is None:
        raise SheetError(f"{where}: a crystal needs the sample's protein (acronym)")
    if "location" not in values:
        raise SheetError(f"{where}: location is missing (the pin's place in its puck)")
    values["location"] = str(values["location"])
    return SheetSample(_record(r.BLSample, values, where, text=text), protein, crystal)


def _check(sheet: SampleSheet, source: str) -> None:
    codes: set[str] = set()
    for container in sheet.containers:
        code = container.record.code
        if code in codes:
            raise SheetError(f"{source}: container {code!r} is listed twice")
        codes.add(code)
        places: set[str | None] = set()
        for sample in container.samples:
            location = sample.record.location
            if location in places:
                raise SheetError(f"{source}: two samples at location {location} of {code!r}")
            places.add(location)
            capacity = container.record.capacity
            inside = (
                capacity is None
                or location is None
                or not location.isdigit()
                or 1 <= int(location) <= capacity
            )
            if not inside:
                raise SheetError(
                    f"{source}: sample {sample.record.name!r} at location {location} is "
                    f"outside container {code!r} (capacity {capacity})"
                )


def _record(model: type[T], data: Any, where: str, *, text: bool = False) -> T:
    """``data`` as a ``model``; ``text``: every value is text (a CSV row), numbers are read
    from it (``"16"`` -> 16). JSON values are taken as they are: a number given as text or a
    boolean given as a number is refused, as the LIMS would."""
    if not isinstance(data, Mapping):
        raise SheetError(f"{where}: expected an object, got {data!r}")
    try:
        if text:
            return model.model_validate_strings(dict(data))
        return model.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(record)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise SheetError(f"{where}: {problems}") from None


def _split_proposal(text: str, where: str) -> dict[str, str]:
    try:
        visit = Visit(text.strip(), 1)
    except ValueError:
        raise SheetError(f"{where}: proposal {text!r} is not code + number, e.g. mx1234") from None
    code = visit.proposal.rstrip("0123456789")
    return {"proposalCode": code, "proposalNumber": visit.proposal[len(code) :]}


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise SheetError(f"{where}: expected a list")
    return value


def _known(data: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise SheetError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
