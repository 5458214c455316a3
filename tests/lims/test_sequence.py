"""An MXPressE-like run written through the client to the real service over HTTP."""

from __future__ import annotations

from lims.client import LimsClient
from tests.lims.mxpresse import expected_counts, seed_session, table_counts, verify_run, write_run


def test_a_full_run_leaves_every_record_linked_and_filled_in(
    client: LimsClient, reader: LimsClient
) -> None:
    visit, sample = seed_session(client)
    run = write_run(client, visit, sample)

    assert client.pending() == 0 and client.failed() == []
    verify_run(reader, run)
    assert table_counts(reader) == expected_counts()


def test_two_runs_on_one_sample_add_two_sets_of_records(client: LimsClient) -> None:
    visit, sample = seed_session(client)
    write_run(client, visit, sample)
    write_run(client, visit, sample)

    counts = table_counts(client)
    assert counts["DataCollectionGroup"] == 6 and counts["ImageQualityIndicators"] == 1600
    assert counts["BLSample"] == 1


def test_reloading_the_seed_records_upserts_them(client: LimsClient) -> None:
    seed_session(client)
    before = table_counts(client)
    _, sample = seed_session(client)
    assert table_counts(client) == before
    assert client.get("samples", sample)["code"] == "DM0101"
