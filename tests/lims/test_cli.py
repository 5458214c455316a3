"""``bes lims serve | load-sheet | flush | status`` and the import boundary bes -> lims."""

from __future__ import annotations

import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from bes.cli import main
from lims.client import LimsClient
from lims.client import records as r
from lims.service.embedded import EmbeddedLims
from tests.lims.test_sheet import CSV

ROOT = Path(__file__).resolve().parents[2]


def test_bes_lims_lists_its_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lims"]) == 2
    out = capsys.readouterr().out
    for command in ("serve", "load-sheet", "flush", "status"):
        assert command in out


def test_building_the_bes_command_does_not_load_the_lims_service() -> None:
    code = (
        "import sys; from bes.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('lims.service')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_serve_then_load_a_sheet_and_read_the_status_with_the_generated_token(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data_dir = tmp_path / "data"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bes",
            "lims",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, (
                "bes lims serve did not start"
            )
            time.sleep(0.05)
        tokens = data_dir / "lims" / "tokens.json"
        assert stat.S_IMODE(tokens.stat().st_mode) == 0o600
        sheet = tmp_path / "sheet.csv"
        sheet.write_text(CSV)
        common = ["--url", url, "--data-dir", str(data_dir)]

        assert main(["lims", "load-sheet", str(sheet), *common]) == 0
        assert main(["lims", "status", *common]) == 0
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert f"LIMS on {url}" in output
    assert (data_dir / "lims" / "lims.sqlite").exists()


def test_flush_sends_what_an_earlier_run_queued(
    lims: EmbeddedLims, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = tmp_path / "outbox.sqlite"
    with LimsClient(
        "http://127.0.0.1:9", lims.token, outbox=outbox, retries=0, auto_replay=False
    ) as c:
        c.add_workflow(r.Workflow(workflowType="MXPressE"))  # port 9: nobody there
        assert c.pending() == 1
    args = ["lims", "flush", "--outbox", str(outbox), "--url", lims.url, "--token", lims.token]

    assert main(args) == 0
    assert "1 delivered, 0 pending, 0 refused" in capsys.readouterr().out
    assert (
        main(["lims", "status", "--url", lims.url, "--token", lims.token, "--outbox", str(outbox)])
        == 0
    )
    out = capsys.readouterr().out
    assert "Workflow" in out and "0 pending, 0 refused" in out


def test_flush_without_an_outbox_or_a_token_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["lims", "flush", "--outbox", str(tmp_path / "none.sqlite"), "--token", "x" * 20]) == 1
    )
    assert "no outbox" in capsys.readouterr().err
    (tmp_path / "o.sqlite").touch()
    args = ["lims", "flush", "--outbox", str(tmp_path / "o.sqlite"), "--data-dir", str(tmp_path)]
    assert main(args) == 1
    assert "start the LIMS once (bes lims serve) or pass --token" in capsys.readouterr().err


def test_serve_with_a_bad_config_says_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "lims.toml"
    config.write_text('database_url = "sqlite:///x.sqlite"\n[tokens]\n"short" = "writer"\n')
    assert main(["lims", "serve", "--config", str(config)]) == 2
    assert "at least 16 characters" in capsys.readouterr().err
    config.write_text('database_url = "sqlite:///x.sqlite"\nport = 1\n')
    assert main(["lims", "serve", "--config", str(config)]) == 2
    assert "unknown key(s) ['port']" in capsys.readouterr().err
