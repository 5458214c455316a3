"""``bes serve``: prints where it serves and where the token is, serves until SIGTERM, then
stops cleanly (exit 0); crash leftovers of the queue are recovered at start; bad options
and a taken port are exit status 2 with the reason."""

from __future__ import annotations

import os
import queue
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from bes.cli import build_parser, main
from bes.queue import NewEntry, QueueStore, SampleState
from tests.server.conftest import wait_until


def test_serve_is_a_bes_command_with_the_station_options() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--no-lims", "--clock", "instant"])
    assert (args.host, args.port, args.no_lims, args.clock) == ("127.0.0.1", 0, True, "instant")
    assert args.handler is not None
    assert args.data_dir == Path("bes-data")


def test_bes_serve_serves_until_sigterm_and_stops_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with QueueStore.in_dir(data) as store:  # a queue that a crash left mid-sample
        entry_id = store.add(NewEntry("1:1", "beamline_check", {}))
        store.update_state(entry_id, SampleState.MOUNTING, "taken by the queue")
    env = {k: v for k, v in os.environ.items() if k != "BES_API_TOKEN"}
    command = [sys.executable, "-m", "bes", "serve", "--port", "0", "--data-dir", str(data)]
    command += ["--no-lims", "--clock", "instant", "--recovery", "skip"]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in server.stdout or ()])
    reader.start()
    try:
        printed = []
        while not any(line.startswith("bes serve: http://") for line in printed):
            printed.append(lines.get(timeout=60))
        url = printed[-1].split()[-1]
        while not any("recovered queue entry" in line for line in printed):
            printed.append(lines.get(timeout=10))

        token_file = data / "api-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert any(str(token_file.resolve()) in line for line in printed)
        assert f"recovered queue entry {entry_id} (1:1): SKIPPED" in printed[-1]
        token = token_file.read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        status = requests.get(f"{url}/api/v1/queue/status", headers=headers, timeout=10)
        assert status.status_code == 200 and status.json()["counts"]["SKIPPED"] == 1
        request_id = requests.post(f"{url}/RUN/beamline_check", json={}, timeout=30).text
        wait_until(lambda: requests.get(f"{url}/STATUS/{request_id}", timeout=10).text != "STARTED")
        assert requests.get(f"{url}/STATUS/{request_id}", timeout=10).text == "FINISHED"
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
        reader.join(10)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert code == 0, rest
    assert rest[-1].strip() == "bes serve: stopped", rest


def test_a_short_token_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BES_API_TOKEN", "short")
    assert main(["serve", "--data-dir", str(tmp_path), "--no-lims"]) == 2
    assert "BES_API_TOKEN: the API token must be at least 16 characters" in capsys.readouterr().err
    assert not (tmp_path / "workflows.db").exists()  # nothing opened


def test_a_taken_port_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("BES_API_TOKEN", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        options = ["--port", str(port), "--data-dir", str(tmp_path), "--no-lims"]
        code = main(["serve", *options, "--clock", "instant"])
    assert code == 2
    assert f"cannot serve on 127.0.0.1:{port}" in capsys.readouterr().err
