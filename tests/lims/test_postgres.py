"""The same run on the PostgreSQL back end (database ``test`` on 127.0.0.1:5432, trust auth).

Each test works in a schema of its own and drops it afterwards. Skipped, with the reason,
when no server answers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lims.client import LimsClient
from lims.service.embedded import EmbeddedLims, start_embedded
from tests.lims.conftest import FAST
from tests.lims.helpers import post_concurrently
from tests.lims.mxpresse import expected_counts, seed_session, table_counts, verify_run, write_run

pytestmark = pytest.mark.postgres
SERVER = "127.0.0.1:5432"
USERS = ("postgres", "root")


def _database_url() -> str:
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'mxbes[postgres]')")
    errors = []
    for user in USERS:
        try:
            with psycopg.connect(f"postgresql://{user}@{SERVER}/test", connect_timeout=2):
                return f"postgresql+psycopg://{user}@{SERVER}/test"
        except psycopg.OperationalError as exc:
            errors.append(f"{user}: {str(exc).strip().splitlines()[0]}")
    pytest.skip(f"no PostgreSQL database 'test' on {SERVER} ({'; '.join(errors)})")


@pytest.fixture
def pg_lims(tmp_path: Path) -> Iterator[EmbeddedLims]:
    url = _database_url()  # skips when psycopg is missing: import it after
    import psycopg

    schema = f"lims_test_{uuid.uuid4().hex[:12]}"
    try:
        with start_embedded(tmp_path, database_url=url, database_schema=schema) as server:
            yield server
    finally:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_full_run_on_postgresql_leaves_every_record_linked(
    pg_lims: EmbeddedLims, tmp_path: Path
) -> None:
    with LimsClient(pg_lims.url, pg_lims.token, outbox=tmp_path / "o.sqlite", **FAST) as client:
        visit, sample = seed_session(client)
        run = write_run(client, visit, sample)
        seed_session(client)  # upserts: nothing new

        verify_run(client, run)
        assert table_counts(client) == expected_counts()
    assert pg_lims.database_url.startswith("postgresql")


def test_concurrent_retries_of_one_post_create_one_record_on_postgresql(
    pg_lims: EmbeddedLims,
) -> None:
    answers = post_concurrently(pg_lims, "/workflows", {"workflowType": "MXPressE"}, copies=8)

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["workflowId"] for a in answers}) == 1
    with LimsClient(pg_lims.url, pg_lims.token) as client:
        assert client.counts()["Workflow"] == 1
