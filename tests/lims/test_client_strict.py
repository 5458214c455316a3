"""Numbers and booleans are strict on both sides: the LIMS answers 422 naming the field when a
number comes as a boolean or as text (the OpenAPI schema says integer / number / boolean), and
the client refuses such a record when it is built, before anything is sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import requests
from pydantic import ValidationError

from bes.tasks.lims_records import GridRecord, LimsWriter, ScanRecord
from lims.client import LimsClient, Visit
from lims.client import records as r
from lims.service.embedded import EmbeddedLims, start_embedded
from lims.sheet import SheetError, sheet_from_csv, sheet_from_dict
from tests.lims.mxpresse import seed_session, table_counts
from tests.lims.test_sheet import CSV

T0 = datetime(2025, 3, 1, 22, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedLims]:
    """One LIMS for the refusals (they change nothing), with a session and group 1."""
    with start_embedded(tmp_path_factory.mktemp("lims")) as server:
        with LimsClient(server.url, server.token) as client:
            visit, _ = seed_session(client)
            group = client.add_data_group(visit, r.DataCollectionGroup(experimentType="Mesh"))
            assert group.id == 1
        yield server


def send(lims: EmbeddedLims, method: str, path: str, body: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {lims.token}"}
    return requests.request(method, f"{lims.url}{path}", json=body, headers=headers, timeout=10)


COLLECTIONS = "/data-groups/1/data-collections"
REFUSED = [
    # (method, path, body, the field the answer must name)
    ("POST", COLLECTIONS, {"numberOfImages": False}, "body.numberOfImages"),
    ("POST", COLLECTIONS, {"numberOfImages": True}, "body.numberOfImages"),
    ("POST", COLLECTIONS, {"numberOfImages": "12"}, "body.numberOfImages"),
    ("POST", COLLECTIONS, {"exposureTime": True}, "body.exposureTime"),
    ("POST", COLLECTIONS, {"exposureTime": "0.1"}, "body.exposureTime"),
    ("PATCH", "/data-collections/1", {"transmission": False}, "body.transmission"),
    ("PATCH", "/data-groups/1", {"workflowId": True}, "body.workflowId"),
    ("POST", "/data-collections/1/grids", {"snaked": 1}, "body.snaked"),
    ("POST", "/data-collections/1/grids", {"steps_x": True}, "body.steps_x"),
    (
        "POST",
        "/data-collections/1/image-quality-indicators",
        [{"imageNumber": True}],
        "body.0.imageNumber",
    ),
    ("POST", "/proposals/mx1234/sessions", {"visit_number": "2"}, "body.visit_number"),
    (
        "POST",
        "/proposals/mx1234/sessions/1/containers",
        {"code": "puck-09", "capacity": True},
        "body.capacity",
    ),
    (
        "POST",
        "/data-groups/1/xray-centrings",
        {"status": "success", "results": [{"numberOfVoxels": True}]},
        "body.results.0.numberOfVoxels",
    ),
    (
        "POST",
        "/screenings/1/outputs",
        {"indexingSuccess": "true", "numSpotsFound": False},
        "body.numSpotsFound",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), REFUSED)
def test_a_number_given_as_a_boolean_or_text_gets_a_422_naming_the_field(
    seeded: EmbeddedLims, method: str, path: str, body: Any, field: str
) -> None:
    answer = send(seeded, method, path, body)

    assert answer.status_code == 422, answer.text
    assert field in answer.text


def test_the_refusals_wrote_nothing(seeded: EmbeddedLims) -> None:
    with LimsClient(seeded.url, seeded.token) as client:
        counts = table_counts(client)
    assert "DataCollection" not in counts and counts["BLSession"] == 1
    assert counts["Container"] == 1


def test_an_integer_is_a_valid_float_and_booleans_are_taken_as_booleans(
    lims: EmbeddedLims, client: LimsClient
) -> None:
    seed_session(client)
    group = send(
        lims, "POST", "/proposals/mx1234/sessions/1/data-groups", {"experimentType": "OSC"}
    )
    group_id = group.json()["dataCollectionGroupId"]

    made = send(lims, "POST", f"/data-groups/{group_id}/data-collections", {"exposureTime": 1})
    collection_id = made.json()["dataCollectionId"]
    grid = send(lims, "POST", f"/data-collections/{collection_id}/grids", {"snaked": True})

    assert (made.status_code, grid.status_code) == (201, 201)
    assert client.get("data-collections", collection_id)["exposureTime"] == 1.0
    assert client.get("grids", grid.json()["gridInfoId"])["snaked"] is True


# -- the client refuses before sending ------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (r.DataCollection, {"numberOfImages": True}, "numberOfImages"),
        (r.DataCollection, {"numberOfImages": "12"}, "numberOfImages"),
        (r.DataCollection, {"numberOfImages": 12.0}, "numberOfImages"),
        (r.DataCollection, {"exposureTime": False}, "exposureTime"),
        (r.GridInfo, {"snaked": 1}, "snaked"),
        (r.BLSession, {"visit_number": True}, "visit_number"),
        (r.ImageQualityIndicators, {"imageNumber": np.int64(3)}, "imageNumber"),
    ],
)
def test_a_record_with_a_number_of_the_wrong_type_cannot_be_built(
    model: type[r.Record], fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        model(**fields)


def test_a_record_field_set_later_is_checked_too(client: LimsClient) -> None:
    record = r.DataCollection(numberOfImages=10)
    with pytest.raises(ValidationError, match="numberOfImages"):
        record.numberOfImages = True
    assert record.numberOfImages == 10 and client.pending() == 0


def test_the_writer_hands_numpy_scalars_over_as_python_numbers(client: LimsClient) -> None:
    """Counts and flags computed with NumPy are what tasks have; the writer unwraps them."""
    writer = LimsWriter.for_sample(client, Visit("mx1234", 1), "1:1")
    group = writer.start_group("Mesh", start=T0)
    scan: dict[str, Any] = {"n_images": np.int64(120), "exposure_s": np.float32(0.5)}
    collection = writer.add_collection(group, ScanRecord(start=T0, **scan))
    mesh: dict[str, Any] = {
        "steps_x": np.int64(12),
        "steps_y": np.int32(10),
        "mesh_angle_deg": np.float64(0.0),
        "snaked": np.bool_(True),
    }
    writer.add_grid(collection, GridRecord(dx_mm=0.02, dy_mm=0.02, **mesh))

    assert writer.errors == [] and collection is not None and collection.id is not None
    assert client.get("data-collections", collection.id)["numberOfImages"] == 120
    [stored] = client.records("grids", dataCollectionId=collection.id)
    assert (stored["steps_x"], stored["steps_y"], stored["snaked"]) == (12, 10, True)


def test_a_float_where_a_count_belongs_is_a_bug_of_the_task(client: LimsClient) -> None:
    writer = LimsWriter.for_sample(client, Visit("mx1234", 1), "1:1")
    group = writer.start_group("Mesh", start=T0)
    with pytest.raises(ValueError, match="numberOfImages"):
        writer.add_collection(group, ScanRecord(start=T0, n_images=120.0))  # type: ignore[arg-type]
    assert writer.errors == []


# -- sample sheets: CSV text is read as numbers, JSON numbers must be numbers ---------------------


def test_a_csv_sheet_reads_its_numbers_from_text() -> None:
    sheet = sheet_from_csv(CSV, "s.csv")
    assert sheet.session.visit_number == 1
    assert all(isinstance(c.record.capacity, int) for c in sheet.containers)
    crystals = [s.crystal for c in sheet.containers for s in c.samples if s.crystal]
    assert crystals and all(isinstance(c.cell_a, float) for c in crystals)


def test_a_json_sheet_with_a_number_as_text_or_boolean_names_the_field() -> None:
    base = {
        "proposal": "mx1234",
        "session": {"visit_number": 1},
        "containers": [{"code": "puck-01", "capacity": 16, "samples": []}],
    }
    with pytest.raises(SheetError, match=r"containers\[0\]: capacity"):
        sheet_from_dict({**base, "containers": [{"code": "puck-01", "capacity": "16"}]})
    with pytest.raises(SheetError, match="session: visit_number"):
        sheet_from_dict({**base, "session": {"visit_number": True}})
    assert sheet_from_dict(base).containers[0].record.capacity == 16
