"""Fixtures: the BES server on a free loopback port over a station on the simulated beamline
(instant clock, a sample sheet with good crystals), an MXCuBE-like XML-RPC callback server
that checks the ``Token`` header, and a gate that holds a run at a node until the test lets
it go. No test leaves a thread behind."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

import pytest
import requests

from bes.engine.events import EngineEvent, NodeStarted
from bes.server.server import BesServer
from bes.station import Station, open_station

TOKEN = "test-api-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GOOD_PIN: dict[str, Any] = {
    "loop": {"centre_mm": [0.0, 0.08, -0.03]},
    "crystals": [{"position_mm": [0.02, 0.09, -0.02], "size_um": [50, 40, 30]}],
}
FAULTY = "2:1"
"""A pin whose detector fails during the first mesh."""
SHEET = {
    "pins": [
        *({"location": f"1:{pin}", **GOOD_PIN} for pin in range(1, 9)),
        {"location": FAULTY, **GOOD_PIN, "faults": ["detector_error"]},
    ]
}
TINY = {
    "mesh_rows": 3,
    "mesh_cols": 3,
    "mesh_min_points": 3,
    "loop_omegas_deg": [0.0, 90.0],
    "char_frames_per_wedge": 1,
    "oscillation_deg": 0.5,
    "total_range_deg": 1.0,
}
"""Small meshes, one reference frame per wedge, a 1 deg collection: mxpresse in ~2 s."""
THREADS_KEPT = ("bes-heatmap", "AnyIO worker thread")
"""Threads that outlive a test by design: the heat-map writer of the process, the worker
threads of a server's event loop (they end with the loop)."""


def wait_until(condition: Callable[[], Any], timeout_s: float = 30.0, poll_s: float = 0.01) -> Any:
    """Poll ``condition`` until truthy (a bound for a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(poll_s)
    return value


@pytest.fixture(autouse=True)
def no_thread_left_behind() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(THREADS_KEPT)
        ]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not extra, f"threads left behind: {extra}"


class Gate:
    """An engine subscriber that holds the run at the first start of ``node`` (any node when
    None) until :meth:`open`; ``reached`` is set once it holds."""

    def __init__(self, node: str | None = None) -> None:
        self.node = node
        self.reached = threading.Event()
        self._open = threading.Event()
        self._armed = False

    def arm(self, node: str | None = None) -> Gate:
        self.node = node
        self.reached.clear()
        self._open.clear()
        self._armed = True
        return self

    def open(self) -> None:
        self._armed = False
        self._open.set()

    def on_event(self, event: EngineEvent) -> None:
        if not self._armed or not isinstance(event, NodeStarted):
            return
        if self.node is not None and event.node_id != self.node:
            return
        self._armed = False
        self.reached.set()
        self._open.wait(30)


@dataclass
class Served:
    server: BesServer
    url: str
    station: Station
    gate: Gate

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**AUTH, **kwargs.pop("headers", {})}
        return requests.request(
            method, f"{self.url}/api/v1{path}", headers=headers, timeout=30, **kwargs
        )

    def status_of(self, request_id: str) -> str:
        return self.get(f"/STATUS/{request_id}").text

    def wait_ended(self, request_id: str) -> str:
        return str(wait_until(lambda: (s := self.status_of(request_id)) != "STARTED" and s))

    def mount(self, location: str) -> None:
        from bes.hal.sample_changer import Location

        self.station.beamline.sample_changer.load(Location.parse(location))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """The BES server on a station of its own (no LIMS), with a gate in every run."""
    with serve(tmp_path) as served:
        yield served


@pytest.fixture(scope="module")
def served_once(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests of a module that start nothing."""
    with serve(tmp_path_factory.mktemp("served")) as served:
        yield served


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[Served]:
    sheet = folder / "sheet.json"
    sheet.write_text(json.dumps(SHEET))
    gate = Gate()
    with open_station(
        data_dir=folder / "data", no_lims=True, clock="instant", sample_sheet=sheet
    ) as station:
        server = BesServer(
            station, TOKEN, subscribers=[gate], callback_timeout_s=2.0, abort_wait_s=10.0
        )
        try:
            url = server.start()
            yield Served(server, url, station, gate)
        finally:
            gate.open()
            server.close()


# -- an MXCuBE-like callback server ------------------------------------------------------------


@dataclass
class Call:
    method: str
    args: tuple[Any, ...]
    token: str | None


@dataclass
class Mxcube:
    """An XML-RPC server as MXCuBE's: ``log_message`` and ``workflow_end``, 401 without the
    token. ``delay_s``: how long each call takes."""

    token: str
    port: int = 0
    delay_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    refused: int = 0

    def methods(self, name: str) -> list[Call]:
        return [c for c in self.calls if c.method == name]

    def ended(self) -> int:
        return len(self.methods("workflow_end"))


class _ThreadingXMLRPCServer(ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True
    block_on_close = True


def _handler(mxcube: Mxcube) -> type[SimpleXMLRPCRequestHandler]:
    class Handler(SimpleXMLRPCRequestHandler):
        def do_POST(self) -> None:
            if self.headers.get("Token") != mxcube.token:
                mxcube.refused += 1
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_POST()

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

    return Handler


@pytest.fixture
def mxcube() -> Iterator[Mxcube]:
    client = Mxcube(token="a1b2c3d4e5")  # as EdnaWorkflow.generateNewToken makes them
    server = _ThreadingXMLRPCServer(
        ("127.0.0.1", 0), requestHandler=_handler(client), logRequests=False, allow_none=True
    )
    client.port = server.server_address[1]

    def call(name: str) -> Callable[..., bool]:
        def method(*args: Any) -> bool:
            if client.delay_s:
                time.sleep(client.delay_s)
            client.calls.append(Call(name, args, client.token))
            return True

        return method

    server.register_function(call("log_message"), "log_message")
    server.register_function(call("workflow_end"), "workflow_end")
    thread = threading.Thread(
        target=server.serve_forever, args=(0.02,), name="test-mxcube", daemon=True
    )
    thread.start()
    yield client
    server.shutdown()
    server.server_close()
    thread.join(10)


def mxcube_body(
    workflow: str,
    mxcube: Mxcube | None = None,
    *,
    sample: dict[str, Any] | None = None,
    sample_lims_id: int | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The start body as mxcubecore builds it: the queue node's key/value pairs as text
    (``GenericWorkflowQueueEntry`` params_list), then what ``EdnaWorkflow`` adds."""
    beamline_params = {
        "directory": "/data/visitor/mx1234/sim-mx1/20240101/RAW_DATA/lyso",
        "prefix": "lyso-1",
        "run_number": 1,
        "collection_software": "MXCuBE - 3.0",
        "sample_node_id": 2,
        "workflow_node_id": 3,
        "sample_lims_id": sample_lims_id,
        "beamline": "SIM-MX1",
        "shape": "",
        **(extra or {}),
    }
    params_list = [str(x) for x in itertools.chain(*beamline_params.items())]
    params_list[:0] = ["modelpath", workflow]
    body: dict[str, Any] = dict(zip(params_list[::2], params_list[1::2], strict=True))
    body["initiator"] = "SIM-MX1"
    body["sessionId"] = 57
    body["externalRef"] = "mx1234"
    body["sample"] = sample
    body["investigationId"] = 57
    token = mxcube.token if mxcube is not None else "no-client"
    body["token"] = token
    if mxcube is not None:
        body["mxcubeParameters"] = {"host": "127.0.0.1", "port": mxcube.port, "token": token}
    return body
