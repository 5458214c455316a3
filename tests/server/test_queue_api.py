"""The queue over REST: the token, refusals that say why and queue nothing, a queue of pins
run to the end with its events streamed, and commands at random moments of a running queue."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import pytest
import requests

from bes.queue.states import ACTIVE, FINAL
from tests.server.conftest import AUTH, TINY, TOKEN, Served, wait_until
from tests.server.sse import Event, SseReader

PARAMETERS = {"sessionId": "mx1234-1", **TINY}


def entry(location: str, **extra: Any) -> dict[str, Any]:
    return {"location": location, "recipe": "mxpresse", "parameters": PARAMETERS, **extra}


# -- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing bearer token: send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer not-the-token"}, "wrong bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "unsupported authorization scheme"),
    ],
)
def test_the_api_refuses_without_the_token(
    served_once: Served, headers: dict[str, str], detail: str
) -> None:
    for method, path in [
        ("GET", "/api/v1/queue/status"),
        ("POST", "/api/v1/queue/entries"),  # no body: refused before it is read
        ("POST", "/api/v1/queue/start"),
        ("GET", "/api/v1/queue/events"),
        ("GET", "/api/v1/runs"),
    ]:
        answer = requests.request(method, served_once.url + path, headers=headers, timeout=10)
        assert answer.status_code == 401, (method, path)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.json()["detail"].startswith(detail)
    assert served_once.server.queue.manager.state.name == "IDLE"


def test_openapi_names_the_bearer_token_for_the_api_only(served_once: Served) -> None:
    schema = served_once.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/v1/queue/entries"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in schema["paths"]["/RUN/{workflow_name}"]["post"]
    assert served_once.get("/STATUS/nothing").status_code == 404  # open: no 401


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (entry("1-3"), "bad sample location '1-3'; expected 'puck:pin'"),
        (entry("0:3"), "puck and pin count from 1"),
        ({**entry("1:3"), "recipe": "mxpresse2"}, "unknown workflow 'mxpresse2'; known:"),
        ({**entry("1:3"), "parameters": {"mesh_rows": -1}}, "bad parameter mesh_rows=-1"),
        ({**entry("1:3"), "parameters": {"mesh_rowz": 5}}, "unknown parameter 'mesh_rowz'"),
        ({**entry("1:3"), "parameters": {"sample": "1:4"}}, "parameter(s) sample not allowed"),
        (
            {**entry("1:3"), "recipe": "beamline_check", "parameters": {"mesh_rows": 3}},
            "unknown parameter(s) 'mesh_rows' for recipe 'beamline_check'",
        ),
        ({"location": "1:3"}, "body.recipe: Field required"),
        ({**entry("1:3"), "colour": "red"}, "body.colour: Extra inputs are not permitted"),
        ({**entry("1:3"), "sample_lims_id": 0}, "body.sample_lims_id: Input should be greater"),
        ({**entry("1:3"), "sample_lims_id": 10**30}, "body.sample_lims_id: Input should be less"),
        ({**entry("1:3"), "parameters": [1]}, "body.parameters: Input should be a valid dict"),
        (b'{"location": "1:3",', "JSON decode error"),
    ],
)
def test_a_bad_entry_is_refused_with_the_reason_and_nothing_is_queued(
    served_once: Served, body: Any, reason: str
) -> None:
    if isinstance(body, bytes):
        answer = served_once.api(
            "POST",
            "/queue/entries",
            data=body,
            headers={"Content-Type": "application/json"},
        )
    else:
        answer = served_once.api("POST", "/queue/entries", json=body)
    assert answer.status_code == 422
    found = answer.json()
    assert reason in (found.get("message") or found["detail"])
    assert served_once.api("GET", "/queue/entries").json() == {"entries": []}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("GET", "/queue/entries/999", None, 404, "no queue entry 999"),
        ("DELETE", "/queue/entries/999", None, 404, "no queue entry 999"),
        ("POST", "/queue/entries/999/move", {"position": 1}, 404, "no queue entry 999"),
        ("POST", "/queue/entries/abc/retry", None, 422, "path.entry_id"),
        ("GET", f"/queue/entries/{10**30}", None, 422, "path.entry_id: Input should be less"),
        ("POST", "/queue/pause", None, 409, "cannot pause: queue is IDLE; possible now: start"),
        ("POST", "/queue/skip", None, 409, "cannot skip: no sample is running"),
        ("POST", "/queue/stop", {"reason": "x" * 501}, 422, "body.reason"),
        ("GET", "/queue/entries?state=BOGUS", None, 422, "unknown state(s) ['BOGUS']"),
        ("GET", "/queue/events?types=queue,gossip", None, 422, "unknown event type(s)"),
        ("GET", "/runs/abc", None, 404, "no BES run 'abc'"),
    ],
)
def test_commands_and_lookups_refused_say_why(
    served_once: Served, method: str, path: str, body: Any, status: int, reason: str
) -> None:
    answer = served_once.api(method, path, json=body)
    assert answer.status_code == status
    found = answer.json()
    assert reason in (found.get("message") or found["detail"])


def test_a_large_body_is_refused(served_once: Served) -> None:
    body = {**entry("1:3"), "parameters": {"prefix": "x" * (1024 * 1024)}}
    answer = served_once.api("POST", "/queue/entries", json=body)
    assert answer.status_code == 413
    assert "exceeds the limit" in answer.json()["detail"]


# -- a queue run to the end ----------------------------------------------------------------


def test_queued_pins_run_to_the_end_with_their_events_streamed(served: Served) -> None:
    def queue_done(event: Event) -> bool:
        return event.type == "queue" and event.data["to_state"] == "IDLE"

    stream = SseReader(f"{served.url}/api/v1/queue/events", AUTH, until=queue_done)
    assert stream.status == 200 and stream.content_type == "text/event-stream; charset=utf-8"
    assert stream.connected.wait(10)

    added = [served.api("POST", "/queue/entries", json=entry(f"1:{pin}")) for pin in (1, 2, 3)]
    assert [a.status_code for a in added] == [201, 201, 201]
    ids = [a.json()["id"] for a in added]
    moved = served.api("POST", f"/queue/entries/{ids[2]}/move", json={"position": 1}).json()
    assert moved["position"] == 1
    assert served.api("DELETE", f"/queue/entries/{ids[1]}").json()["location"] == "1:2"
    listed = served.api("GET", "/queue/entries").json()["entries"]
    assert [(e["location"], e["state"]) for e in listed] == [("1:3", "QUEUED"), ("1:1", "QUEUED")]

    started = served.api("POST", "/queue/start", json={"reason": "night shift"})
    assert started.status_code == 200 and started.json()["state"] in ("RUNNING", "IDLE")
    assert stream.wait(60)

    entries = served.api("GET", "/queue/entries").json()["entries"]
    assert [(e["location"], e["state"], e["outcome"]) for e in entries] == [
        ("1:3", "DONE", "collected"),
        ("1:1", "DONE", "collected"),
    ]
    assert served.station.beamline.sample_changer.mounted is None
    history = served.api("GET", "/queue/history").json()
    assert [e["location"] for e in history["entries"]] == ["1:3", "1:1"]
    assert [c["to_state"] for c in history["entries"][0]["transitions"]] == [
        "QUEUED",
        "MOUNTING",
        "MOUNTED",
        "RUNNING",
        "UNMOUNTING",
        "DONE",
    ]
    assert [(c["from_state"], c["to_state"]) for c in history["queue"]] == [
        ("IDLE", "RUNNING"),
        ("RUNNING", "IDLE"),
    ]
    assert history["queue"][0]["reason"] == "night shift"

    assert stream.events[0].type == "status" and stream.events[0].data["state"] == "IDLE"
    actions = [e.data["action"] for e in stream.of_type("entry")]
    assert actions == ["added", "added", "added", "moved", "removed"]
    samples = stream.of_type("sample")
    for entry_id in (ids[2], ids[0]):
        states = [e.data["to_state"] for e in samples if e.data["entry_id"] == entry_id]
        assert states[0] == "MOUNTING" and states[-1] == "DONE"
    _one_sample_at_a_time([(e.data["entry_id"], e.data["to_state"]) for e in samples])
    engine = stream.of_type("engine")
    started_runs = [e.data["run_id"] for e in engine if e.data["kind"] == "workflow_started"]
    assert started_runs == [e["run_id"] for e in entries]
    assert {"node_started", "node_ended", "condition_evaluated", "workflow_ended"} <= {
        e.data["kind"] for e in engine
    }
    assert stream.events[0].id is None  # the status notice does not move Last-Event-ID
    ids_seen = [int(e.id) for e in stream.events[1:] if e.id is not None]
    assert ids_seen == list(range(ids_seen[0], ids_seen[0] + len(stream.events) - 1))

    # a client back after a break gets what it missed; every stream ends with the server
    first_moved = next(e for e in stream.of_type("entry") if e.data["action"] == "moved")
    again = SseReader(
        f"{served.url}/api/v1/queue/events?types=entry,queue",
        {**AUTH, "Last-Event-ID": str(first_moved.id)},
    )
    wait_until(
        lambda: any(e.type == "queue" and e.data["to_state"] == "IDLE" for e in again.events)
    )
    assert [e.data.get("action") for e in again.of_type("entry")] == ["removed"]
    assert not again.of_type("sample") and not again.of_type("engine")
    served.server.close()
    assert again.wait(10)


def test_a_bes_run_waits_for_the_queue(served: Served) -> None:
    served.api("POST", "/queue/entries", json=entry("1:4"))
    served.gate.arm("mesh_first")
    served.api("POST", "/queue/start")
    assert served.gate.reached.wait(30)
    answer = served.post("/RUN/beamline_check", json={})
    status = served.api("GET", "/queue/status").json()
    served.gate.open()
    assert answer.status_code == 409
    assert "the sample queue is running entry" in answer.text or "queue is RUNNING" in answer.text
    assert status["current"]["location"] == "1:4"
    assert served.server.queue.manager.wait_idle(60)


# -- commands at random moments ------------------------------------------------------------


COMMANDS = ("pause", "resume", "stop", "abort", "skip")


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_commands_at_random_moments_leave_a_consistent_queue(served: Served, seed: int) -> None:
    rng = random.Random(seed)
    changes: list[tuple[int, str]] = []
    lock = threading.Lock()

    def record(event: dict[str, Any]) -> None:
        if event["type"] == "sample":
            with lock:
                changes.append((event["entry_id"], event["to_state"]))

    unsubscribe = served.server.queue.manager.subscribe(record)
    for pin in (5, 6, 7):
        assert served.api("POST", "/queue/entries", json=entry(f"1:{pin}")).status_code == 201
    assert served.api("POST", "/queue/start").status_code == 200

    given: list[tuple[str, int, str]] = []
    for _ in range(4):
        time.sleep(rng.uniform(0.0, 1.5))
        command = rng.choice(COMMANDS)
        answer = served.api("POST", f"/queue/{command}")
        assert answer.status_code in (200, 409), answer.text  # 409: not now, and why
        given.append((command, answer.status_code, answer.text))
        if command == "pause" and answer.status_code == 200:
            _no_progress_while_paused(served)
    status = served.api("GET", "/queue/status").json()
    if status["state"] not in ("IDLE",):
        ended = served.api(
            "POST", "/queue/resume" if status["state"] == "PAUSED" else "/queue/stop"
        )
        assert ended.status_code in (200, 409)
    assert served.server.queue.manager.wait_idle(60), given
    unsubscribe()

    entries = served.api("GET", "/queue/entries").json()["entries"]
    final = {state.name for state in FINAL} | {"QUEUED"}
    assert all(e["state"] in final for e in entries), (entries, given)
    assert served.station.beamline.sample_changer.mounted is None, given
    _one_sample_at_a_time(changes)
    for e in entries:  # what each entry went through agrees with where it ended
        states = [to for entry_id, to in changes if entry_id == e["id"]]
        assert (states[-1] if states else "QUEUED") == e["state"]


def test_pause_resume_stop_and_abort_do_what_they_say(served: Served) -> None:
    for pin in (1, 2, 3):
        served.api("POST", "/queue/entries", json=entry(f"1:{pin}"))
    served.gate.arm("mesh_first")
    served.api("POST", "/queue/start")
    assert served.gate.reached.wait(30)
    assert served.api("POST", "/queue/pause").json()["state"] == "PAUSING"
    served.gate.open()
    wait_until(lambda: served.api("GET", "/queue/status").json()["state"] == "PAUSED")
    _no_progress_while_paused(served)
    assert served.api("POST", "/queue/stop").json()["state"] == "STOPPING"
    assert served.server.queue.manager.wait_idle(60)
    states = [e["state"] for e in served.api("GET", "/queue/entries").json()["entries"]]
    assert states == ["DONE", "QUEUED", "QUEUED"]  # stop: after the current sample

    served.gate.arm("mesh_first")
    served.api("POST", "/queue/start")
    assert served.gate.reached.wait(30)
    abort = served.api("POST", "/queue/abort", json={"reason": "beam dump"})
    served.gate.open()
    assert abort.json()["state"] in ("ABORTING", "IDLE")
    assert served.server.queue.manager.wait_idle(60)
    entries = served.api("GET", "/queue/entries").json()["entries"]
    assert [(e["state"], e["reason"]) for e in entries] == [
        ("DONE", entries[0]["reason"]),
        ("ABORTED", "beam dump"),
        ("QUEUED", "added"),
    ]
    assert served.station.beamline.sample_changer.mounted is None
    retried = served.api("POST", f"/queue/entries/{entries[1]['id']}/retry").json()
    assert retried["state"] == "QUEUED"
    skipped = served.api("POST", f"/queue/entries/{entries[2]['id']}/skip").json()
    assert skipped["state"] == "SKIPPED"


def _no_progress_while_paused(served: Served) -> None:
    """Once PAUSED, no entry changes state until resumed."""
    try:
        wait_until(
            lambda: served.api("GET", "/queue/status").json()["state"] in ("PAUSED", "IDLE"),
            timeout_s=30,
        )
    except AssertionError:
        return  # stopped or aborted meanwhile by the caller's next command: nothing to check
    before = served.api("GET", "/queue/entries").json()["entries"]
    time.sleep(0.3)
    after = served.api("GET", "/queue/entries").json()["entries"]
    if served.api("GET", "/queue/status").json()["state"] == "PAUSED":
        assert [e["state"] for e in before] == [e["state"] for e in after]


def _one_sample_at_a_time(changes: list[tuple[int, str]]) -> None:
    """Replaying the sample transitions, never two entries on their way, on or off the
    goniometer at once."""
    active_names = {state.name for state in ACTIVE}
    active: set[int] = set()
    for entry_id, to_state in changes:
        if to_state in active_names:
            active.add(entry_id)
        else:
            active.discard(entry_id)
        assert len(active) <= 1, f"two samples at once: {active}"


@pytest.mark.parametrize(("command", "ended"), [("skip", "SKIPPED"), ("abort", "ABORTED")])
def test_skipping_or_aborting_the_last_sample_puts_its_pin_back(
    served: Served, command: str, ended: str
) -> None:
    served.api("POST", "/queue/entries", json=entry("1:8"))
    served.gate.arm("mesh_first")
    served.api("POST", "/queue/start")
    assert served.gate.reached.wait(30)
    answer = served.api("POST", f"/queue/{command}")
    served.gate.open()
    assert answer.status_code == 200
    assert served.server.queue.manager.wait_idle(60)
    assert served.api("GET", "/queue/entries").json()["entries"][0]["state"] == ended
    assert served.station.beamline.sample_changer.mounted is None
