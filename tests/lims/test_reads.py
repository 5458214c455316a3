"""Reads: pages of {total, results, skip, limit}, filters, and the per-image upsert."""

from __future__ import annotations

import pytest

from lims.client import LimsClient, LimsRejected
from lims.client import records as r
from tests.lims.mxpresse import seed_session


@pytest.fixture
def collection(client: LimsClient) -> int:
    visit, _ = seed_session(client)
    group = client.add_data_group(visit, r.DataCollectionGroup(experimentType="Mesh"))
    handle = client.add_data_collection(group, r.DataCollection(numberOfImages=900))
    assert handle.id is not None
    return handle.id


def test_pages_report_the_total_and_slice_in_id_order(client: LimsClient) -> None:
    visit, _ = seed_session(client)
    puck = client.add_container(visit, r.Container(code="puck-02", capacity=30))
    for pin in range(1, 26):
        client.add_sample(puck, r.BLSample(name=f"s{pin}", location=str(pin)))

    first = client.page("samples", containerId=puck, limit=10)
    last = client.page("samples", containerId=puck, skip=20, limit=10)
    beyond = client.page("samples", containerId=puck, skip=30, limit=10)

    assert (first.total, len(first.results), first.skip, first.limit) == (25, 10, 0, 10)
    assert [s["name"] for s in last.results] == [f"s{pin}" for pin in range(21, 26)]
    assert beyond.total == 25 and beyond.results == []
    ids = [s["blSampleId"] for s in client.records("samples", containerId=puck)]
    assert ids == sorted(ids) and len(ids) == 25
    assert client.page("samples", sessionId=1).total == 26  # the seed sample too
    assert client.page("samples", containerId=puck, name="s7").total == 1


def test_null_fields_are_left_out_of_answers(client: LimsClient, collection: int) -> None:
    stored = client.get("data-collections", collection)
    assert stored == {
        "dataCollectionId": collection,
        "dataCollectionGroupId": 1,
        "numberOfImages": 900,
    }


def test_900_indicators_in_bulk_then_again_leave_900_rows_with_the_last_values(
    client: LimsClient, collection: int
) -> None:
    client.add_image_quality_indicators(
        collection, [r.ImageQualityIndicators(imageNumber=i, spotTotal=i) for i in range(1, 901)]
    )
    client.add_image_quality_indicators(
        collection,
        [r.ImageQualityIndicators(imageNumber=i, spotTotal=2 * i) for i in range(1, 901)],
    )

    page = client.page("image-quality-indicators", dataCollectionId=collection, skip=850, limit=100)
    assert page.total == 900 and len(page.results) == 50
    assert page.results[-1] == {
        **page.results[-1],
        "imageNumber": 900,
        "spotTotal": 1800,
    }
    assert client.counts()["ImageQualityIndicators"] == 900


def test_a_resent_image_keeps_the_fields_it_does_not_give(
    client: LimsClient, collection: int
) -> None:
    client.add_image_quality_indicators(
        collection, [r.ImageQualityIndicators(imageNumber=5, spotTotal=40, method2Res=2.1)]
    )
    client.add_image_quality_indicators(
        collection,
        [
            r.ImageQualityIndicators(imageNumber=5, dozor_score=3.0),
            r.ImageQualityIndicators(imageNumber=6, dozor_score=1.0),
            r.ImageQualityIndicators(imageNumber=6, dozor_score=2.0),  # the last one wins
        ],
    )

    rows = client.records("image-quality-indicators", dataCollectionId=collection)
    assert [
        (i["imageNumber"], i.get("spotTotal"), i.get("method2Res"), i["dozor_score"]) for i in rows
    ] == [
        (5, 40, 2.1, 3.0),
        (6, None, None, 2.0),
    ]


def test_indicators_one_by_one_equal_the_bulk(client: LimsClient, collection: int) -> None:
    for i in range(1, 21):
        client.add_image_quality_indicators(
            collection, [r.ImageQualityIndicators(imageNumber=i, spotTotal=i)]
        )
    assert client.page("image-quality-indicators", dataCollectionId=collection).total == 20


def test_reading_a_missing_record_says_which(client: LimsClient) -> None:
    with pytest.raises(LimsRejected, match="DataCollection 4242 not found"):
        client.get("data-collections", 4242)
