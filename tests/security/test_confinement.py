"""Files go below the station's data directory and nowhere else, whatever a client sends: the
MXCuBE body's ``directory`` is ignored, ``data_root`` is refused, names (``prefix``,
``sample_name``, the proposal from ``sessionId``/``externalRef``) cannot hold ``..`` or ``/``,
and a symbolic link inside the data directory that points out of it stops the run before a
file is written through it (``bes.acquisition.layout.DataLayout``). The queue API obeys the
same rules."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bes.acquisition.layout import safe_name
from bes.queue import NewEntry
from bes.queue.control import RunControl
from tests.security.conftest import TOKEN, LiveBes, bearer, serve_bes
from tests.server.conftest import GOOD_PIN, TINY

BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    # (MXCuBE body, what the refusal names)
    ({"data_root": "/tmp"}, "data_root"),
    ({"data_root": "../.."}, "data_root"),
    ({"prefix": "../../etc/cron.d/x"}, "prefix='../../etc/cron.d/x'"),
    ({"prefix": "/etc/passwd"}, "prefix='/etc/passwd'"),
    ({"prefix": "a/b"}, "prefix='a/b'"),
    ({"prefix": ".."}, "prefix='..'"),
    ({"prefix": "x" * 101}, "prefix="),
    ({"sample_name": ".."}, "sample_name='..'"),
    ({"sample_name": "/"}, "sample_name='/'"),
    ({"sessionId": "../../etc-1"}, "proposal='../../etc'"),
    ({"sessionId": "/abs-1"}, "proposal='/abs'"),
    ({"externalRef": "../x"}, "proposal='../x'"),
    ({"proposal": "mx1/../../x"}, "proposal='mx1/../../x'"),
    ({"file_format": "../x"}, "file_format='../x'"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_path_like_keys_of_a_start_body_cannot_leave_the_data_root(
    bes_live: LiveBes, body: dict[str, Any], named: str
) -> None:
    answer = bes_live.request("POST", "/RUN/mxpresse", json={"sample_location": "1:1", **body})
    assert answer.status_code == 422, answer.text
    assert named in answer.text
    assert bes_live.server.runs.list() == []


@pytest.mark.parametrize(("body", "named"), BAD_BODIES)
def test_path_like_parameters_of_a_queue_entry_cannot_leave_the_data_root(
    bes_live: LiveBes, body: dict[str, Any], named: str
) -> None:
    entry = {"location": "1:1", "recipe": "mxpresse", "parameters": body}
    answer = bes_live.request("POST", "/api/v1/queue/entries", json=entry, headers=bearer(TOKEN))
    manager = bes_live.server.queue.manager
    queued = manager.store.list()
    for stored in queued:  # the next test starts from an empty queue, whatever happened
        manager.remove(stored.id)
    assert answer.status_code == 422, answer.text
    assert named.split("=")[0] in answer.json()["detail"]
    assert queued == []


def test_an_entry_stored_with_a_data_root_still_writes_below_the_station_data(
    bes_live: LiveBes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry queued before data_root was refused keeps it in the queue file: the runner
    gives the station's data directory last, so it wins."""
    queue = bes_live.server.queue
    entry = queue.manager.add(NewEntry("1:1", "beamline_check"))
    try:
        old = replace(entry, parameters={"data_root": str(tmp_path / "elsewhere")})
        seen: dict[str, Any] = {}

        class Stop(Exception):
            pass

        def run(recipe: Any, inputs: dict[str, Any], **_: Any) -> Any:
            seen.update(inputs)
            raise Stop

        monkeypatch.setattr(bes_live.station, "run", run)
        control = RunControl(old, on_phase=lambda *_: None, on_checkpoint=lambda _: None)
        with pytest.raises(Stop):
            queue.run_entry(old, control)
        assert seen["data_root"] == str(bes_live.station.data_dir)
    finally:
        queue.manager.remove(entry.id)


# -- runs on the beamline -------------------------------------------------------------------


@pytest.fixture
def with_pins(tmp_path: Path) -> Iterator[LiveBes]:
    """The BES server over a station with good crystals at 1:1 and 1:2."""
    sheet = {"pins": [{"location": f"1:{pin}", **GOOD_PIN} for pin in (1, 2)]}
    with serve_bes(tmp_path / "served", sheet=sheet) as live:
        yield live


def start(live: LiveBes, **body: Any) -> str:
    body = {"sample_location": "1:1", "sessionId": "mx1234-1", "prefix": "lyso-1", **TINY, **body}
    answer = live.request("POST", "/RUN/mxpresse", data=json.dumps(body))
    assert answer.status_code == 200, answer.text
    return answer.text


def ended(live: LiveBes, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while live.request("GET", f"/STATUS/{request_id}").text == "STARTED":
        assert time.monotonic() < deadline, "the run did not end"
        time.sleep(0.02)
    run: dict[str, Any] = live.request(
        "GET", f"/api/v1/runs/{request_id}", headers=bearer(TOKEN)
    ).json()
    return run


def files_below(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def test_files_go_below_the_data_root_whatever_directory_says(
    with_pins: LiveBes, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    run = ended(with_pins, start(with_pins, directory=str(outside), modelpath=str(outside)))
    assert run["status"] == "FINISHED", run
    assert files_below(outside) == []
    data = with_pins.station.data_dir.resolve()
    written = files_below(data / "mx1234")
    assert any(path.name.endswith("_master.h5") for path in written)
    assert all(path.resolve().is_relative_to(data) for path in written)


def raw_sample_dir(live: LiveBes, sample: str = "1-1") -> Path:
    date = datetime.now(UTC).strftime("%Y%m%d")
    beamline = safe_name(live.station.beamline.name)
    return live.station.data_dir / "mx1234" / beamline / date / "RAW_DATA" / sample


@pytest.mark.parametrize("level", ["proposal", "sample"])
def test_a_symlink_out_of_the_data_root_stops_the_run_before_it_writes(
    with_pins: LiveBes, tmp_path: Path, level: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    link = (
        with_pins.station.data_dir / "mx1234" if level == "proposal" else raw_sample_dir(with_pins)
    )
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    run = ended(with_pins, start(with_pins))
    assert run["status"] == "ERROR", run
    assert "leaves the data area" in run["error"], run
    assert files_below(outside) == [], "a file was written through the link"
    assert list(outside.iterdir()) == []
