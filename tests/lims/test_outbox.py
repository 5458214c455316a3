"""The LIMS goes down in the middle of a run: nothing is lost, nothing is written twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from lims.client import FlushReport, Handle, LimsAuthError, LimsClient, LimsRejected, Visit
from lims.client import records as r
from lims.client.outbox import Outbox, Write
from lims.service.embedded import EmbeddedLims
from tests.lims.conftest import FAST
from tests.lims.helpers import Restartable, wait_until
from tests.lims.mxpresse import expected_counts, seed_session, table_counts, verify_run, write_run


def test_lims_down_mid_run_the_outbox_replays_everything_once_by_itself(
    restartable: Restartable, tmp_path: Path
) -> None:
    queued_at_restart: list[int] = []
    with LimsClient(
        restartable.url, restartable.token, outbox=tmp_path / "outbox.sqlite", **FAST
    ) as client:

        def checkpoint(name: str) -> None:
            if name == "workflow":  # the mesh group and all below it get placeholder handles
                restartable.stop()
            if name == "characterisation":
                queued_at_restart.append(client.pending())
                restartable.start()

        visit, sample = seed_session(client)
        run = write_run(client, visit, sample, checkpoint)
        wait_until(lambda: client.pending() == 0)  # no flush(): the replay thread does it

        assert queued_at_restart[0] > 20  # mesh, centring, characterisation were queued
        assert client.failed() == []
        verify_run(client, run)
        assert table_counts(client) == expected_counts()  # per table: nothing twice


def test_while_down_a_write_returns_a_placeholder_at_once_and_children_resolve_on_replay(
    restartable: Restartable, tmp_path: Path
) -> None:
    with LimsClient(
        restartable.url, restartable.token, outbox=tmp_path / "o.sqlite", **FAST
    ) as client:
        visit, _ = seed_session(client)
        restartable.stop()
        group = client.add_data_group(visit, r.DataCollectionGroup(experimentType="Mesh"))
        collection = client.add_data_collection(group, r.DataCollection(numberOfImages=3))
        client.add_image_quality_indicators(
            collection, [r.ImageQualityIndicators(imageNumber=i, spotTotal=i) for i in (1, 2, 3)]
        )
        client.update_data_collection(collection, r.DataCollection(runStatus="Aborted"))

        assert (group.id, collection.id) == (None, None)
        assert client.down and client.pending() == 4
        restartable.start()
        wait_until(lambda: client.pending() == 0)

        assert group.id is not None and collection.id is not None
        stored = client.get("data-collections", collection)
        assert stored["dataCollectionGroupId"] == group.id
        assert stored["runStatus"] == "Aborted"
        assert client.page("image-quality-indicators", dataCollectionId=collection).total == 3


def test_writes_queued_by_a_process_that_ended_are_flushed_by_the_next(
    restartable: Restartable, tmp_path: Path
) -> None:
    outbox = tmp_path / "o.sqlite"
    with LimsClient(restartable.url, restartable.token, outbox=outbox, **FAST) as first:
        seed_session(first)
        restartable.stop()
        workflow = first.add_workflow(r.Workflow(workflowType="MeshScan"))
        step = first.add_workflow_step(workflow, r.WorkflowStep(workflowStepType="Mesh"))
    # the first process is gone with 2 writes queued
    restartable.start()
    with LimsClient(
        restartable.url, restartable.token, outbox=outbox, auto_replay=False, **FAST
    ) as second:
        assert second.pending() == 2
        report = second.flush()

        assert (report.delivered, report.pending, report.failed) == (2, 0, 0)
        restored = second.handle(step.local_id, "WorkflowStep")
        assert restored.id is not None
        assert (
            second.get("workflow-steps", restored)["workflowId"]
            == second.handle(workflow.local_id).id
        )
        assert table_counts(second)["WorkflowStep"] == 1


def test_a_post_whose_answer_was_lost_is_replayed_without_a_duplicate(
    lims: EmbeddedLims, tmp_path: Path
) -> None:
    """The process died after the LIMS took a POST but before the outbox forgot it."""
    outbox_path = tmp_path / "o.sqlite"
    write = Write(
        "POST",
        "/workflows",
        key="f00dfeed" * 4,
        body={"workflowType": "MXPressE"},
        creates="f00dfeed" * 4,
        kind="Workflow",
        id_field="workflowId",
    )
    outbox = Outbox(outbox_path)
    outbox.append(write)
    outbox.close()
    first = requests.post(
        f"{lims.url}/workflows",
        json=write.body,
        headers={"Authorization": f"Bearer {lims.token}", "Idempotency-Key": write.key},
        timeout=10,
    )

    with LimsClient(lims.url, lims.token, outbox=outbox_path, auto_replay=False, **FAST) as c:
        assert c.flush().delivered == 1
        assert c.handle(write.key).id == first.json()["workflowId"]
        assert c.counts()["Workflow"] == 1


def test_a_write_refused_on_replay_is_kept_failed_with_its_dependents_and_can_be_retried(
    restartable: Restartable, tmp_path: Path
) -> None:
    with LimsClient(
        restartable.url, restartable.token, outbox=tmp_path / "o.sqlite", **FAST
    ) as client:
        seed_session(client)
        restartable.stop()
        unknown = Visit("mx1234", 7)  # no such session (yet)
        group = client.add_data_group(unknown, r.DataCollectionGroup(experimentType="OSC"))
        client.add_data_collection(group, r.DataCollection(numberOfImages=10))
        workflow = client.add_workflow(r.Workflow(workflowType="MXPressE"))
        restartable.start()
        wait_until(lambda: client.pending() == 0)

        failed = client.failed()
        assert [e.write.kind for e in failed] == ["DataCollectionGroup", "DataCollection"]
        assert "404" in (failed[0].last_error or "") and "mx1234-7 not found" in (
            failed[0].last_error or ""
        )
        assert "depends on a DataCollectionGroup" in (failed[1].last_error or "")
        assert workflow.id is not None  # an independent write went through

        client.add_session("mx1234", r.BLSession(visit_number=7))
        assert client.retry_failed() == 2
        report = client.flush()
        assert (report.pending, report.failed) == (0, 0)
        assert group.id is not None
        assert client.page("data-collections", dataCollectionGroupId=group).total == 1


def test_a_write_refused_at_once_raises_with_the_reason(client: LimsClient) -> None:
    with pytest.raises(LimsRejected, match="DataCollectionGroup 999 not found") as refused:
        client.add_data_collection(999, r.DataCollection())
    assert refused.value.status == 404
    assert client.pending() == 0 and client.failed() == []


def test_a_wrong_token_raises_and_keeps_the_write_for_a_flush_with_the_right_one(
    lims: EmbeddedLims, tmp_path: Path
) -> None:
    outbox = tmp_path / "o.sqlite"
    with LimsClient(lims.url, "not-the-token-at-all", outbox=outbox, **FAST) as wrong:
        with pytest.raises(LimsAuthError, match="401"):
            wrong.add_workflow(r.Workflow(workflowType="MXPressE"))
        assert wrong.pending() == 1
    with LimsClient(lims.url, lims.token, outbox=outbox, auto_replay=False, **FAST) as right:
        assert right.counts()["Workflow"] == 0  # nothing written with the wrong token
        assert right.flush().delivered == 1
        assert right.counts()["Workflow"] == 1


def queued(write: Callable[[], Handle | None]) -> Handle | None:
    """``write()`` through a client whose token is refused: the LimsAuthError it raises says
    the write is kept in the outbox and holds its handle."""
    with pytest.raises(LimsAuthError, match="401") as refused:
        write()
    assert refused.value.kept
    return refused.value.handle


def test_with_a_wrong_token_dependent_writes_queue_behind_their_parents_and_a_flush_stores_all(
    lims: EmbeddedLims, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lims.client.client.BULK_CHUNK", 2)  # three bulk requests
    with LimsClient(lims.url, lims.token, **FAST) as seeding:
        visit, sample = seed_session(seeding)
    outbox = tmp_path / "o.sqlite"
    wrong_token = {**FAST, "auto_replay": False}  # the replay thread would answer for it
    with LimsClient(lims.url, "not-the-token-at-all", outbox=outbox, **wrong_token) as wrong:
        workflow = queued(lambda: wrong.add_workflow(r.Workflow(workflowType="MXPressE")))
        assert workflow is not None
        group = queued(
            lambda: wrong.add_data_group(
                visit,
                r.DataCollectionGroup(experimentType="Mesh"),
                sample=sample,
                workflow=workflow,
            )
        )
        assert group is not None
        collection = queued(lambda: wrong.add_data_collection(group, r.DataCollection()))
        assert collection is not None
        rows = [r.ImageQualityIndicators(imageNumber=i, spotTotal=i) for i in range(1, 6)]
        assert queued(lambda: wrong.add_image_quality_indicators(collection, rows)) is None
        done = r.DataCollectionUpdate(runStatus="Data collection successful")
        assert queued(lambda: wrong.update_data_collection(collection, done)) is None
        assert [h.id for h in (workflow, group, collection)] == [None, None, None]
        assert wrong.pending() == 7 and wrong.failed() == []

    with LimsClient(lims.url, lims.token, outbox=outbox, auto_replay=False, **FAST) as right:
        before = right.counts()
        assert (before["Workflow"], before["DataCollectionGroup"]) == (0, 0)
        assert right.flush() == FlushReport(delivered=7, pending=0, failed=0)
        assert right.flush() == FlushReport(delivered=0, pending=0, failed=0)

        ids = {h.kind: right.handle(h.local_id).id for h in (workflow, group, collection)}
        [stored_group] = right.records("data-groups")
        assert stored_group["dataCollectionGroupId"] == ids["DataCollectionGroup"]
        assert stored_group["workflowId"] == ids["Workflow"]
        assert stored_group["blSampleId"] == sample.id
        [stored] = right.records("data-collections")
        assert stored["dataCollectionId"] == ids["DataCollection"]
        assert stored["dataCollectionGroupId"] == ids["DataCollectionGroup"]
        assert stored["runStatus"] == "Data collection successful"
        indicators = right.records("image-quality-indicators")
        assert sorted(row["imageNumber"] for row in indicators) == [1, 2, 3, 4, 5]
        assert {row["dataCollectionId"] for row in indicators} == {ids["DataCollection"]}
        after = right.counts()
        assert (after["Workflow"], after["DataCollectionGroup"], after["DataCollection"]) == (
            1,
            1,
            1,
        )


def test_without_an_outbox_a_refused_token_keeps_nothing(lims: EmbeddedLims) -> None:
    with (
        LimsClient(lims.url, "not-the-token-at-all", **FAST) as wrong,
        pytest.raises(LimsAuthError, match="401") as refused,
    ):
        wrong.add_workflow(r.Workflow(workflowType="MXPressE"))
    assert not refused.value.kept and refused.value.handle is None


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 to the first ``failures`` POSTs, then 201; records the idempotency keys."""

    failures = 2
    keys: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).keys.append(self.headers.get("Idempotency-Key"))
        if len(type(self).keys) <= type(self).failures:
            self._answer(503, {"detail": "busy"})
        else:
            self._answer(201, {"workflowId": 42})

    def _answer(self, status: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    Flaky.keys = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_5xx_answers_are_retried_with_backoff_and_the_same_idempotency_key(flaky: str) -> None:
    with LimsClient(flaky, "t" * 20, **FAST) as client:
        workflow = client.add_workflow(r.Workflow(workflowType="MXPressE"))

    assert workflow.id == 42
    assert len(Flaky.keys) == 3 and len(set(Flaky.keys)) == 1 and Flaky.keys[0]


def test_a_lims_answering_5xx_for_good_makes_the_writes_queue(flaky: str, tmp_path: Path) -> None:
    Flaky.failures = 10**6
    try:
        with LimsClient(flaky, "t" * 20, outbox=tmp_path / "o.sqlite", **FAST) as client:
            workflow = client.add_workflow(r.Workflow(workflowType="MXPressE"))
            assert workflow.id is None and client.down and client.pending() == 1
            assert "HTTP 503" in (client.last_error or "")
    finally:
        Flaky.failures = 2
