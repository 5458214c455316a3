"""The BES protocol as MXCuBE's client uses it: POST /RUN with the body mxcubecore builds, the
status in plain text, the XML-RPC callbacks (log_message as the run goes, workflow_end at its
end whatever the end) with the client's token."""

from __future__ import annotations

import json
import re
import sqlite3
import threading

import pytest
import requests

from bes.server.callbacks import LEVELS, CallbackTarget, MxcubeCallbacks
from tests.server.conftest import FAULTY, TINY, Mxcube, Served, mxcube_body, wait_until

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def test_mxpresse_started_by_mxcube_runs_to_the_end_and_calls_back(
    served: Served, mxcube: Mxcube
) -> None:
    served.mount("1:1")  # MXCuBE mounts the sample before it starts the workflow
    served.gate.arm("mesh_first")
    body = mxcube_body("mxpresse", mxcube, sample_lims_id=None, extra=TINY)
    answer = served.post("/RUN/mxpresse", json=body)

    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    request_id = answer.text
    assert REQUEST_ID.match(request_id)
    assert served.gate.reached.wait(30)
    assert served.status_of(request_id) == "STARTED"
    served.gate.open()
    assert served.wait_ended(request_id) == "FINISHED"
    wait_until(mxcube.ended)

    assert mxcube.refused == 0
    assert mxcube.ended() == 1
    assert mxcube.calls[-1].method == "workflow_end"
    assert {c.token for c in mxcube.calls} == {mxcube.token}
    logs = mxcube.methods("log_message")
    assert all(level in LEVELS for _, level in (c.args for c in logs))
    texts = [message for message, _ in (c.args for c in logs)]
    assert any("mesh_first #1 (ScanMesh) started" in t for t in texts)
    assert any(t.startswith("BES: decision ") for t in texts)
    assert texts[-1] == "BES: workflow mxpresse finished"
    run = served.api("GET", f"/runs/{request_id}").json()
    assert (run["status"], run["outcome"], run["sample"]) == ("FINISHED", "collected", "1:1")
    # the client mounted the pin and decides what comes next: it stays on the goniometer
    assert str(served.station.beamline.sample_changer.mounted) == "1:1"
    served.station.recorder.flush()
    with sqlite3.connect(served.station.data_dir / "workflows.db") as db:
        row = db.execute(
            "SELECT recipe, status, sample, session, user_name, beamline FROM runs"
            " WHERE run_id = ? AND request_id = ?",
            (request_id, request_id),
        ).fetchone()
    assert row == ("mxpresse", "finished", "1:1", "57", "SIM-MX1", "SIM-MX1")


def test_a_detector_fault_ends_in_error_and_workflow_end(served: Served, mxcube: Mxcube) -> None:
    served.mount(FAULTY)
    answer = served.post("/RUN/mxpresse", json=mxcube_body("mxpresse", mxcube, extra=TINY))
    assert answer.status_code == 200, answer.text

    assert served.wait_ended(answer.text) == "ERROR"
    wait_until(mxcube.ended)
    assert mxcube.ended() == 1
    errors = [c.args[0] for c in mxcube.methods("log_message") if c.args[1] == "error"]
    assert any("DetectorError" in text for text in errors), errors
    assert "DetectorError" in served.api("GET", f"/runs/{answer.text}").json()["error"]


def test_abort_ends_the_run_aborted_and_still_calls_workflow_end(
    served: Served, mxcube: Mxcube
) -> None:
    served.mount("1:2")
    served.gate.arm("mesh_first")
    request_id = served.post("/RUN/mxpresse", json=mxcube_body("mxpresse", mxcube)).text
    assert served.gate.reached.wait(30)
    run = served.server.runs.get(request_id)
    aborted: list[requests.Response] = []

    def abort() -> None:
        aborted.append(served.get(f"/ABORT/{request_id}"))

    caller = threading.Thread(target=abort)
    caller.start()
    wait_until(lambda: run.context.aborted)
    served.gate.open()
    caller.join(30)

    assert aborted[0].status_code == 200
    assert aborted[0].text == "ABORTED"
    assert served.status_of(request_id) == "ABORTED"
    wait_until(mxcube.ended)
    assert mxcube.ended() == 1
    # a second abort of an ended run changes nothing
    assert served.get(f"/ABORT/{request_id}").text == "ABORTED"


def test_the_lims_record_location_names_the_pin_to_mount(served: Served, mxcube: Mxcube) -> None:
    record = {
        "sampleId": 4711,
        "sampleName": "lyso-B3",
        "containerSampleChangerLocation": "1",
        "sampleLocation": "3",
    }
    body = mxcube_body(
        "data_collection", mxcube, sample=record, sample_lims_id=None, extra={"total_range_deg": 1}
    )
    request_id = served.post("/RUN/data_collection", json=body).text
    assert served.wait_ended(request_id) == "FINISHED"
    assert str(served.station.beamline.sample_changer.mounted) == "1:3"
    wait_until(mxcube.ended)
    served.station.recorder.flush()
    with sqlite3.connect(served.station.data_dir / "workflows.db") as db:
        (text,) = db.execute("SELECT inputs FROM runs WHERE run_id = ?", (request_id,)).fetchone()
    inputs = json.loads(text)
    assert (inputs["sample_lims_id"], inputs["sample_name"]) == (4711, "lyso-B3")
    assert "mxcubeParameters" not in inputs and mxcube.token not in text


def test_workflow_names_as_mxcube_spells_them(served: Served) -> None:
    request_id = served.post("/RUN/BEAMLINE_CHECK", json={"step_deg": "90"}).text
    assert REQUEST_ID.match(request_id), request_id
    assert served.wait_ended(request_id) == "FINISHED"


@pytest.mark.parametrize(
    ("path", "body", "status", "reason"),
    [
        ("/RUN/mxpresse2", {}, 404, "unknown workflow 'mxpresse2'; known: beamline_check"),
        ("/RUN/bad name", {}, 404, "bad workflow name 'bad name'; use a recipe name"),
        ("/RUN/mxpresse", b"{not json", 400, "the body is not JSON"),
        ("/RUN/mxpresse", [1, 2], 422, "the body must be a JSON object, not list"),
        ("/RUN/mxpresse", {"mesh_rows": "-1"}, 422, "bad parameter mesh_rows='-1'"),
        ("/RUN/mxpresse", {"mesh_rowz": 5}, 422, "unknown parameter 'mesh_rowz'; did you mean"),
        ("/RUN/mxpresse", {"sample_location": "1-3"}, 422, "bad sample_location"),
        ("/RUN/mxpresse", {"sample": 7}, 422, "bad sample 7"),
        ("/RUN/mxpresse", {"data_root": "/tmp"}, 422, "data_root is the station's"),
        ("/RUN/mxpresse", {"mxcubeParameters": "x"}, 422, "bad mxcubeParameters"),
        ("/RUN/mxpresse", {"mxcubeParameters": {"host": "h"}}, 422, "mxcubeParameters.port"),
        ("/RUN/beamline_check", {"mesh_rows": 3}, 422, "unknown parameter(s) 'mesh_rows'"),
        ("/RUN/mxpresse", {}, 409, "no sample is mounted on SIM-MX1"),
    ],
)
def test_a_bad_start_says_why_and_starts_nothing(
    served_once: Served, path: str, body: object, status: int, reason: str
) -> None:
    served = served_once
    if isinstance(body, bytes):
        answer = served.post(path, data=body, headers={"Content-Type": "application/json"})
    else:
        answer = served.post(path, json=body)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/plain")
    assert reason in answer.text
    assert served.server.runs.list() == []


def test_the_beamline_taken_by_the_queue_or_another_run_is_a_conflict(served: Served) -> None:
    served.mount("1:1")
    with served.server.queue.beamline_lock:  # as while the queue runs a sample
        answer = served.post("/RUN/beamline_check", json={})
    assert answer.status_code == 409
    assert "the beamline is busy" in answer.text
    assert served.server.runs.list() == []

    served.gate.arm()
    first = served.post("/RUN/beamline_check", json={}).text
    assert served.gate.reached.wait(30)
    second = served.post("/RUN/beamline_check", json={})
    queue = served.api("POST", "/queue/start")
    served.gate.open()
    assert second.status_code == 409 and f"BES run {first}" in second.text
    assert queue.status_code == 409 and f"GET /ABORT/{first}" in queue.json()["detail"]
    assert served.wait_ended(first) == "FINISHED"


def test_unknown_request_ids_and_large_bodies(served: Served) -> None:
    for path in ("/STATUS/abc", "/ABORT/abc"):
        answer = served.get(path)
        assert answer.status_code == 404
        assert "unknown request id 'abc'" in answer.text
    answer = served.post("/RUN/mxpresse", json={"comment": "x" * (1024 * 1024)})
    assert answer.status_code == 413  # in plain text, as every answer of the BES protocol
    assert answer.headers["content-type"].startswith("text/plain")
    assert "exceeds the limit of 1048576 bytes" in answer.text


def test_a_dead_or_slow_client_never_holds_up_the_run(served: Served, mxcube: Mxcube) -> None:
    dead = Mxcube(token="t", port=_free_port())
    request_id = served.post("/RUN/beamline_check", json=mxcube_body("bc", dead)).text
    assert served.wait_ended(request_id) == "FINISHED"

    mxcube.delay_s = 1.0  # every call outlasts the server's 0.2 s timeout below
    served.server.runs.callback_timeout_s = 0.2
    request_id = served.post("/RUN/beamline_check", json=mxcube_body("bc", mxcube)).text
    assert served.wait_ended(request_id) == "FINISHED"
    assert mxcube.calls == []  # the run ended before the client had answered one call
    run = served.server.runs.get(request_id)
    assert run.callbacks is not None
    assert run.callbacks.close(10)
    assert run.callbacks.dropped > 0  # the client stopped answering: no more messages
    wait_until(mxcube.ended)  # but workflow_end was still sent


def test_callbacks_carry_the_token_and_a_wrong_one_is_refused(mxcube: Mxcube) -> None:
    right = MxcubeCallbacks(CallbackTarget("127.0.0.1", mxcube.port, mxcube.token))
    right.log_message("hello", "warning")
    assert right.close(10)
    assert [(c.method, c.args) for c in mxcube.calls] == [
        ("log_message", ("hello", "warning")),
        ("workflow_end", ()),
    ]
    wrong = MxcubeCallbacks(CallbackTarget("127.0.0.1", mxcube.port, "not-the-token"))
    wrong.log_message("hello")
    assert wrong.close(10)
    assert mxcube.refused == 2
    assert wrong.failures == 2 and not wrong.delivered
    with pytest.raises(ValueError, match="unknown log level 'debug'"):
        right.log_message("x", "debug")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
