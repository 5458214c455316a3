"""Data-processing hooks: what the data-collection workflow starts after a rotation scan.

A hook is any callable ``hook(request) -> summary | None`` named in the beamline config as
component ``processing`` (a command line, the simulator's pipeline, a site's own client).
Commands come only from that config, never from a client request.

The request (the scan just written) has the keys of :data:`REQUEST_KEYS`. The summary
answered has ``program``, ``status`` (:data:`STATUSES`), ``simulated`` and ``message``, and
whatever statistics are known (:data:`STATISTICS_KEYS`): ``resolution_a`` is the
high-resolution limit; ``i_over_sigma``, ``cc_half`` and ``r_merge`` are outer-shell values;
``completeness`` (0..1) and ``multiplicity`` are overall.

Processing trouble never fails a collection: :func:`run_hook` turns any error into a
``failed`` summary that says what went wrong.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
import string
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

ProcessingHook = Callable[[dict[str, Any]], dict[str, Any] | None]
"""``hook(request) -> summary | None`` (None: started, nothing to report yet)."""

REQUEST_KEYS: tuple[str, ...] = (
    "master_file",
    "directory",
    "prefix",
    "run",
    "n_frames",
    "omega_start_deg",
    "oscillation_deg",
    "exposure_s",
    "wavelength_a",
    "detector_distance_mm",
    "sample",
    "space_group",
    "cell",
)
"""Keys of a processing request (``sample`` is the location "puck:pin"; ``space_group`` and
``cell`` may be None)."""

STATUSES: tuple[str, ...] = ("success", "failed", "started")

STATISTICS_KEYS: tuple[str, ...] = (
    "resolution_a",
    "space_group",
    "cell",
    "completeness",
    "multiplicity",
    "i_over_sigma",
    "cc_half",
    "r_merge",
)
"""Summary keys present only when known."""

SUMMARY_KEYS: tuple[str, ...] = ("program", "status", "simulated", "message", *STATISTICS_KEYS)

TEMPLATE_FIELDS: tuple[str, ...] = (
    "master_file",
    "directory",
    "prefix",
    "run",
    "n_frames",
    "sample",
)
"""Request fields a command's arguments may name, e.g. ``"{master_file}"``."""

SETTINGS: tuple[str, ...] = ("auto", "none")

# Within these bounds (inclusive) or the summary is refused; None: no bound.
_NUMBER_RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    # key: (low, high, low is exclusive)
    "resolution_a": (0.0, None, True),
    "completeness": (0.0, 1.0, False),
    "multiplicity": (0.0, None, False),
    "i_over_sigma": (None, None, False),
    "cc_half": (-1.0, 1.0, False),
    "r_merge": (0.0, None, False),
}


def check_summary(summary: Any) -> dict[str, Any]:
    """A validated copy of a hook's summary (numbers as float, ``cell`` as a list of 6 floats,
    optional keys that are None left out); ValueError naming the bad key and value."""
    if not isinstance(summary, Mapping):
        raise ValueError(
            f"processing summary must be a dict, got {type(summary).__name__}: {summary!r}"
        )
    unknown = sorted(str(k) for k in summary if k not in SUMMARY_KEYS)
    if unknown:
        raise ValueError(
            f"processing summary has unknown key(s) {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SUMMARY_KEYS)}"
        )
    checked: dict[str, Any] = {}
    for key in ("program", "message"):
        value = summary.get(key)
        if not isinstance(value, str) or (key == "program" and not value):
            what = "a non-empty string" if key == "program" else "a string"
            raise ValueError(f"processing summary {key!r} must be {what}, got {value!r}")
        checked[key] = value
    status = summary.get("status")
    if status not in STATUSES:
        raise ValueError(
            f"processing summary 'status' must be one of {', '.join(STATUSES)}, got {status!r}"
        )
    checked["status"] = status
    simulated = summary.get("simulated")
    if not isinstance(simulated, bool):
        raise ValueError(f"processing summary 'simulated' must be true or false, got {simulated!r}")
    checked["simulated"] = simulated
    for key in STATISTICS_KEYS:
        value = summary.get(key)
        if value is None:
            continue
        if key == "space_group":
            if not isinstance(value, str) or not value.strip():
                raise ValueError(
                    f"processing summary 'space_group' must be a symbol like 'P43212', "
                    f"got {value!r}"
                )
            checked[key] = value.strip()
        elif key == "cell":
            checked[key] = _check_cell(value)
        else:
            checked[key] = _check_number(key, value)
    return checked


def _check_number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"processing summary {key!r} must be a finite number, got {value!r}")
    low, high, low_exclusive = _NUMBER_RANGES[key]
    too_low = low is not None and (value <= low if low_exclusive else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        if low is not None and high is not None:
            bounds = f"within {low:g}..{high:g}"
        elif low is not None:
            bounds = f"{'>' if low_exclusive else '>='} {low:g}"
        else:
            bounds = f"<= {high:g}"
        raise ValueError(f"processing summary {key!r} must be {bounds}, got {value!r}")
    return float(value)


def _check_cell(value: Any) -> list[float]:
    bad = ValueError(
        f"processing summary 'cell' must be 6 numbers (a, b, c in Angstrom > 0, "
        f"alpha, beta, gamma in degrees within 0..180), got {value!r}"
    )
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 6:
        raise bad
    cell: list[float] = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float) or not math.isfinite(item):
            raise bad
        if item <= 0 or (i >= 3 and item >= 180):
            raise bad
        cell.append(float(item))
    return cell


def _template_fields(argument: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(argument) if name is not None]


_EXAMPLE_REQUEST: dict[str, Any] = {
    "master_file": "/data/x/x_1_master.h5",
    "directory": "/data/x",
    "prefix": "x",
    "run": 1,
    "n_frames": 1800,
    "sample": "1:1",
}


class CommandProcessing:
    """Processing by an external command (no shell) named in the beamline config.

    Each argument may name request fields (:data:`TEMPLATE_FIELDS`), e.g.
    ``command = "autoproc -h5 {master_file} -d {directory}/proc_{run}"``. ``wait = false``:
    start it and answer ``started`` at once. ``wait = true``: wait up to ``timeout_s`` (then
    kill it) and answer ``success`` or ``failed`` with the exit code; a JSON object printed
    as the last line of its output adds its statistics (:data:`STATISTICS_KEYS`) and message.
    """

    def __init__(
        self, command: str | Sequence[str], timeout_s: float = 5.0, wait: bool = False
    ) -> None:
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv or not argv[0]:
            raise ValueError(f"processing command is empty: {command!r}")
        for argument in argv:
            try:
                names = _template_fields(argument)
            except ValueError as exc:
                raise ValueError(
                    f"processing command argument {argument!r} is not a valid template: {exc}; "
                    f"write '{{{{' and '}}}}' for literal braces"
                ) from None
            for name in names:
                if name not in TEMPLATE_FIELDS:
                    raise ValueError(
                        f"processing command argument {argument!r} names unknown field "
                        f"{{{name}}}; known: {', '.join(TEMPLATE_FIELDS)}"
                    )
            try:
                argument.format(**_EXAMPLE_REQUEST)
            except (ValueError, TypeError) as exc:
                raise ValueError(
                    f"processing command argument {argument!r} cannot be formatted: {exc}"
                ) from None
        if not timeout_s > 0:
            raise ValueError(f"processing timeout_s must be > 0, got {timeout_s!r}")
        self.argv: tuple[str, ...] = tuple(argv)
        self.timeout_s = float(timeout_s)
        self.wait = bool(wait)

    def __repr__(self) -> str:
        return f"CommandProcessing({shlex.join(self.argv)!r}, wait={self.wait})"

    def command_for(self, request: Mapping[str, Any]) -> list[str]:
        """The argument list for one request; KeyError names a template field it lacks."""
        values = {name: request[name] for name in TEMPLATE_FIELDS if name in request}
        return [argument.format(**values) for argument in self.argv]

    def __call__(self, request: dict[str, Any]) -> dict[str, Any]:
        program = self.argv[0]

        def failed(message: str) -> dict[str, Any]:
            return {"program": program, "status": "failed", "simulated": False, "message": message}

        try:
            argv = self.command_for(request)
        except KeyError as exc:
            return failed(f"the processing request has no {exc.args[0]!r} for {self!r}")
        except ValueError as exc:
            return failed(f"cannot fill in {self!r} from the request: {exc}")
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.wait else subprocess.DEVNULL,
                stderr=subprocess.PIPE if self.wait else subprocess.DEVNULL,
                text=True,
                start_new_session=not self.wait,
            )
        except OSError as exc:
            return failed(f"cannot start {program!r}: {exc.strerror or exc}")
        if not self.wait:
            return {
                "program": program,
                "status": "started",
                "simulated": False,
                "message": f"pid {process.pid}",
            }
        try:
            stdout, stderr = process.communicate(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return failed(f"no answer within {self.timeout_s:g} s; killed pid {process.pid}")
        code = process.returncode
        summary: dict[str, Any] = {
            "program": program,
            "status": "success" if code == 0 else "failed",
            "simulated": False,
            "message": f"exit code {code}",
        }
        answer = _last_json_object(stdout)
        if answer is not None:
            summary.update({k: answer[k] for k in STATISTICS_KEYS if k in answer})
            if isinstance(answer.get("message"), str) and answer["message"]:
                summary["message"] += f": {answer['message']}"
        elif code != 0:
            last_error = _last_line(stderr) or _last_line(stdout)
            if last_error:
                summary["message"] += f": {last_error}"
        try:
            return check_summary(summary)
        except ValueError as exc:
            return failed(f"exit code {code}; its JSON answer is refused: {exc}")


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _last_json_object(text: str | None) -> dict[str, Any] | None:
    line = _last_line(text)
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def resolve_hook(extras: Mapping[str, Any], setting: str) -> ProcessingHook | None:
    """The hook for a collection: ``"auto"`` -> the beamline's ``processing`` component (None
    when the config has none); ``"none"`` -> None."""
    if setting == "none":
        return None
    if setting != "auto":
        raise ValueError(f"processing must be 'auto' or 'none', got {setting!r}")
    hook = extras.get("processing")
    if hook is not None and not callable(hook):
        raise ValueError(
            f"beamline component 'processing' ({type(hook).__name__}) is not callable; "
            f"its factory must build a hook(request) -> summary"
        )
    return hook


def hook_name(hook: Callable[..., Any]) -> str:
    """A function's name or a hook object's class name, for summaries and messages."""
    name = getattr(hook, "__qualname__", None)
    return name if isinstance(name, str) and name else type(hook).__name__


def run_hook(hook: ProcessingHook, request: dict[str, Any]) -> dict[str, Any]:
    """Call a hook and answer a checked summary; never raises for the hook's trouble.

    An exception becomes ``failed`` with ``"<Type>: <message>"``; a summary that does not
    pass :func:`check_summary` becomes ``failed`` saying why; None becomes ``started``.
    """
    program = hook_name(hook)
    try:
        answer = hook(request)
    except Exception as exc:
        log.warning("processing hook %s failed", program, exc_info=True)
        return {
            "program": program,
            "status": "failed",
            "simulated": False,
            "message": f"{type(exc).__name__}: {exc}",
        }
    if answer is None:
        return {
            "program": program,
            "status": "started",
            "simulated": False,
            "message": "the hook answered no summary",
        }
    try:
        return check_summary(answer)
    except ValueError as exc:
        log.warning("processing hook %s answered a bad summary: %s", program, exc)
        return {
            "program": program,
            "status": "failed",
            "simulated": False,
            "message": f"{program} answered a bad summary: {exc}",
        }
