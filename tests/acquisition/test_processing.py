"""Processing hooks: a configured command starts (or answers) for each scan, and processing
trouble becomes a 'failed' summary that says why instead of failing the collection."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bes.acquisition.processing import (
    CommandProcessing,
    check_summary,
    resolve_hook,
    run_hook,
)

PY = sys.executable


def request(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "master_file": str(tmp_path / "lyso_1_master.h5"),
        "directory": str(tmp_path),
        "prefix": "lyso",
        "run": 1,
        "n_frames": 1800,
        "omega_start_deg": 0.0,
        "oscillation_deg": 0.1,
        "exposure_s": 0.01,
        "wavelength_a": 0.976,
        "detector_distance_mm": 95.3,
        "sample": "1:1",
        "space_group": None,
        "cell": None,
    }
    return {**base, **changes}


def test_command_started_at_once_with_the_request_fields_filled_in(tmp_path: Path) -> None:
    out = tmp_path / "args.json"
    script = (
        "import json, os, sys; json.dump(sys.argv[1:], open(sys.argv[1] + '.part', 'w')); "
        "os.replace(sys.argv[1] + '.part', sys.argv[1])"
    )
    hook = CommandProcessing([PY, "-c", script, str(out), "{master_file}", "run{run:03d}"])
    summary = run_hook(hook, request(tmp_path))
    assert summary["status"] == "started" and summary["simulated"] is False
    assert summary["program"] == PY and summary["message"].startswith("pid ")
    deadline = time.monotonic() + 10
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(out.read_text())[1:] == [str(tmp_path / "lyso_1_master.h5"), "run001"]


def test_a_string_command_is_split_like_a_shell_line_but_not_run_by_a_shell(
    tmp_path: Path,
) -> None:
    hook = CommandProcessing(
        f"{PY} -c 'import sys; print(sys.argv[1:])' '{{prefix}}; echo hacked'", wait=True
    )
    assert hook.command_for(request(tmp_path))[-1] == "lyso; echo hacked"
    summary = run_hook(hook, request(tmp_path))
    assert summary["status"] == "success" and summary["message"] == "exit code 0"


def test_wait_merges_the_json_statistics_printed_last(tmp_path: Path) -> None:
    answer = {
        "resolution_a": 1.8,
        "space_group": "P43212",
        "cell": [79.1, 79.1, 37.9, 90, 90, 90],
        "completeness": 0.995,
        "multiplicity": 6.5,
        "message": "xia2 done",
        "status": "failed",  # not a statistic: the exit code decides the status
        "simulated": True,
        "log": "/tmp/x.log",  # unknown keys are left out
    }
    line = json.dumps(json.dumps(answer)).replace("{", "{{").replace("}", "}}")
    script = f"print('working'); print({line})"  # literal braces doubled in a template
    summary = run_hook(CommandProcessing([PY, "-c", script], wait=True), request(tmp_path))
    assert summary == {
        "program": PY,
        "status": "success",
        "simulated": False,
        "message": "exit code 0: xia2 done",
        "resolution_a": 1.8,
        "space_group": "P43212",
        "cell": [79.1, 79.1, 37.9, 90.0, 90.0, 90.0],
        "completeness": 0.995,
        "multiplicity": 6.5,
    }


def test_wait_reports_a_failing_exit_code_with_its_last_error_line(tmp_path: Path) -> None:
    script = "import sys; print('indexing failed: no lattice', file=sys.stderr); sys.exit(3)"
    summary = run_hook(CommandProcessing([PY, "-c", script], wait=True), request(tmp_path))
    assert summary["status"] == "failed"
    assert summary["message"] == "exit code 3: indexing failed: no lattice"
    assert "resolution_a" not in summary


def test_wait_refuses_bad_json_statistics_with_the_reason(tmp_path: Path) -> None:
    script = "print('{{\"completeness\": 99.5}}')"
    summary = run_hook(CommandProcessing([PY, "-c", script], wait=True), request(tmp_path))
    assert summary["status"] == "failed"
    assert "'completeness' must be within 0..1, got 99.5" in summary["message"]


def test_wait_kills_a_command_that_outlives_the_timeout(tmp_path: Path) -> None:
    hook = CommandProcessing([PY, "-c", "import time; time.sleep(30)"], timeout_s=0.3, wait=True)
    summary = run_hook(hook, request(tmp_path))
    assert summary["status"] == "failed"
    assert summary["message"].startswith("no answer within 0.3 s; killed pid")


def test_a_missing_executable_is_a_failed_summary_not_an_exception(tmp_path: Path) -> None:
    hook = CommandProcessing("no-such-pipeline-xyz {master_file}")
    summary = hook(request(tmp_path))
    assert summary["status"] == "failed" and summary["program"] == "no-such-pipeline-xyz"
    assert summary["message"].startswith("cannot start 'no-such-pipeline-xyz'")
    assert check_summary(summary) == summary


def test_a_request_without_a_named_field_is_a_failed_summary(tmp_path: Path) -> None:
    incomplete = request(tmp_path)
    del incomplete["master_file"]
    summary = CommandProcessing([PY, "-c", "pass", "{master_file}"])(incomplete)
    assert summary["status"] == "failed" and "'master_file'" in summary["message"]


@pytest.mark.parametrize(
    ("command", "words"),
    [
        ("autoproc {master}", ["{master}", "known: master_file, directory"]),
        ("autoproc {wavelength_a}", ["{wavelength_a}"]),
        ("autoproc {master_file.__class__}", ["{master_file.__class__}"]),
        ("autoproc {}", ["{}"]),
        ("autoproc {prefix", ["not a valid template"]),
        ("autoproc {prefix:03d}", ["cannot be formatted"]),
    ],
)
def test_an_unknown_template_field_is_refused_when_the_config_is_built(
    command: str, words: list[str]
) -> None:
    with pytest.raises(ValueError) as error:
        CommandProcessing(command)
    for word in words:
        assert word in str(error.value)


def test_an_empty_command_or_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        CommandProcessing("  ")
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        CommandProcessing("autoproc", timeout_s=0)


def test_resolve_hook_takes_the_beamline_component_or_nothing() -> None:
    hook = CommandProcessing("autoproc {master_file}")
    assert resolve_hook({"processing": hook, "world": object()}, "auto") is hook
    assert resolve_hook({"world": object()}, "auto") is None
    assert resolve_hook({"processing": hook}, "none") is None
    with pytest.raises(ValueError, match="processing must be 'auto' or 'none', got 'xia2 -h'"):
        resolve_hook({"processing": hook}, "xia2 -h")
    with pytest.raises(ValueError, match="'processing' \\(int\\) is not callable"):
        resolve_hook({"processing": 3}, "auto")


def test_run_hook_turns_an_exception_into_a_failed_summary(tmp_path: Path) -> None:
    class Pipeline:
        def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
            raise RuntimeError("cluster queue is full")

    summary = run_hook(Pipeline(), request(tmp_path))
    assert summary == {
        "program": "Pipeline",
        "status": "failed",
        "simulated": False,
        "message": "RuntimeError: cluster queue is full",
    }


def test_run_hook_turns_garbage_or_none_into_a_summary_that_says_so(tmp_path: Path) -> None:
    def garbage(request: dict[str, Any]) -> Any:
        return {"program": "g", "status": "done", "simulated": False, "message": ""}

    def silent(request: dict[str, Any]) -> None:
        return None

    bad = run_hook(garbage, request(tmp_path))
    assert bad["status"] == "failed" and bad["program"].endswith("garbage")
    assert "'status' must be one of success, failed, started, got 'done'" in bad["message"]
    quiet = run_hook(silent, request(tmp_path))
    assert quiet["status"] == "started" and quiet["message"] == "the hook answered no summary"


GOOD = {"program": "xia2", "status": "success", "simulated": False, "message": "ok"}


def test_check_summary_normalises_a_good_summary() -> None:
    checked = check_summary(
        {**GOOD, "resolution_a": 2, "cell": (50, 60, 70, 90, 100, 90), "cc_half": None}
    )
    assert checked == {**GOOD, "resolution_a": 2.0, "cell": [50.0, 60.0, 70.0, 90.0, 100.0, 90.0]}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"status": "ok"}, "'status' must be one of success, failed, started, got 'ok'"),
        ({"program": ""}, "'program' must be a non-empty string, got ''"),
        ({"message": None}, "'message' must be a string, got None"),
        ({"simulated": "no"}, "'simulated' must be true or false, got 'no'"),
        ({"resolution_a": -1.5}, "'resolution_a' must be > 0, got -1.5"),
        ({"resolution_a": "2.0"}, "'resolution_a' must be a finite number, got '2.0'"),
        ({"completeness": 1.2}, "'completeness' must be within 0..1, got 1.2"),
        ({"cc_half": float("nan")}, "'cc_half' must be a finite number, got nan"),
        ({"r_merge": -0.1}, "'r_merge' must be >= 0, got -0.1"),
        ({"multiplicity": True}, "'multiplicity' must be a finite number, got True"),
        ({"cell": [79.1, 79.1, 37.9]}, "'cell' must be 6 numbers"),
        ({"cell": [79, 79, 37, 90, 90, 190]}, "got [79, 79, 37, 90, 90, 190]"),
        ({"space_group": 96}, "'space_group' must be a symbol like 'P43212', got 96"),
        ({"resolution": 2.0}, "unknown key(s) 'resolution'; known: program, status"),
    ],
)
def test_check_summary_names_the_bad_key_and_value(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as error:
        check_summary({**GOOD, **changes})
    assert words in str(error.value)


def test_check_summary_refuses_what_is_not_a_dict() -> None:
    with pytest.raises(ValueError, match="must be a dict, got list"):
        check_summary(["success"])
