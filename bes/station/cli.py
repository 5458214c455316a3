"""``bes run RECIPE --sample 1:1-3``: run a recipe on the embedded station, one sample after
another, with live progress and a summary per sample.

Everything the user typed is checked before the station opens (recipe, samples, every
parameter), so that a typo starts nothing and creates nothing. Heavy imports (ewoks,
SQLAlchemy, the LIMS client) happen inside the handler.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bes.station.station import CLOCK_MODES, DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from rich.console import Console

    from bes.engine.recipes import Recipe
    from bes.station.report import RunReport
    from bes.station.station import Station


class UsageError(ValueError):
    """A bad command line; ``bes run`` prints it and exits with status 2."""


def add_station_commands(subparsers: Any) -> None:
    """Register ``bes run`` on the ``bes`` command's subparsers."""
    run = subparsers.add_parser(
        "run",
        help="run a recipe on the station (simulated beamline, workflow database, LIMS)",
        description="Run RECIPE for each sample, one after another, on the beamline of "
        "--config (default: the simulated one), recording into the workflow database and "
        "the LIMS (default: one served from DATA_DIR/lims for the duration of the command). "
        "Exit status 0 when every run finished, 1 when one failed or was aborted, 2 for a "
        "bad command line.",
    )
    run.add_argument("recipe", metavar="RECIPE", help="recipe name (e.g. mxpresse) or JSON file")
    run.add_argument(
        "--sample",
        action="append",
        default=[],
        metavar="PUCK:PIN[,...]",
        help="sample(s) to run, e.g. 1:1 or 1:1,1:5 or a range 1:1-3 (repeatable)",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        dest="settings",
        metavar="NAME=VALUE",
        help="a recipe parameter (VALUE as JSON when it parses: numbers, true, [0, 90]; "
        "otherwise text), e.g. --set oscillation_deg=0.5 (repeatable)",
    )
    run.add_argument(
        "--params", type=Path, metavar="FILE", help="recipe parameters from a JSON object"
    )
    add_station_options(run)
    run.add_argument(
        "--json", action="store_true", help="print each run's summary as one line of JSON"
    )
    run.add_argument("--quiet", action="store_true", help="no live progress")
    run.set_defaults(handler=_run)


def add_station_options(parser: argparse.ArgumentParser) -> None:
    """Options of the commands that open a station (``bes run``, ``bes night``)."""
    station = parser.add_argument_group("station")
    station.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="TOML",
        help="beamline config file; default: the embedded simulated beamline",
    )
    station.add_argument(
        "--clock",
        choices=CLOCK_MODES,
        default=None,
        help="simulated clock mode (default: the config's; the simulated beamline: instant)",
    )
    station.add_argument(
        "--speed", type=float, default=None, help="speed-up factor for --clock scaled"
    )
    station.add_argument(
        "--sheet",
        type=Path,
        default=None,
        metavar="FILE",
        help="simulator sample sheet (TOML/JSON: pins, loops, crystals) instead of the "
        "seeded random dewar",
    )
    station.add_argument("--seed", type=int, default=None, help="seed of the simulated world")
    station.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"data directory: files, workflows.db, the embedded LIMS (default {DEFAULT_DATA_DIR})",
    )
    station.add_argument(
        "--db-url", default=None, help="workflow database URL (default sqlite:///DIR/workflows.db)"
    )
    lims = station.add_mutually_exclusive_group()
    lims.add_argument(
        "--lims-url", default=None, help="write to this LIMS instead of the embedded one"
    )
    lims.add_argument("--no-lims", action="store_true", help="write to no LIMS")
    station.add_argument(
        "--lims-token",
        default=None,
        help="writer token of --lims-url (default: the one in DIR/lims/tokens.json)",
    )


def open_station_from_args(args: argparse.Namespace) -> Station:
    """The station the station options describe."""
    from bes.station.station import open_station

    if args.lims_token and not args.lims_url:
        raise UsageError("--lims-token goes with --lims-url")
    overrides = {"clock": {"factor": args.speed}} if args.speed is not None else None
    return open_station(
        beamline_config=args.config,
        overrides=overrides,
        data_dir=args.data_dir,
        db_url=args.db_url,
        lims_url=args.lims_url,
        lims_token=args.lims_token,
        no_lims=args.no_lims,
        clock=args.clock,
        sample_sheet=args.sheet,
        seed=args.seed,
    )


# -- bes run -----------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bes.record.database import DatabaseError

    out = Console()
    err = Console(stderr=True)
    try:
        plan = _plan(args)
        if args.lims_token and not args.lims_url:
            raise UsageError("--lims-token goes with --lims-url")
    except UsageError as exc:
        print(f"bes run: {exc}", file=sys.stderr)
        return 2
    try:
        station = open_station_from_args(args)
    except (ValueError, DatabaseError, RuntimeError) as exc:
        print(f"bes run: cannot open the station: {exc}", file=sys.stderr)
        return 2
    progress_console = err if args.json else out
    with station:
        if not args.quiet:
            _print_station(progress_console, station)
        if plan.mx and plan.samples == [None] and station.beamline.sample_changer.mounted is None:
            print(
                f"bes run: no sample is mounted on {station.beamline.name}: "
                "give one with --sample PUCK:PIN",
                file=sys.stderr,
            )
            return 2
        reports = _run_samples(station, plan, args, progress_console)
    if args.json:
        return _status(reports, plan)
    if len(plan.samples) > 1:
        from bes.station.report import print_overview

        print_overview(out, reports)
    return _status(reports, plan)


def _run_samples(
    station: Station, plan: _Plan, args: argparse.Namespace, console: Console
) -> list[RunReport]:
    from bes.station.progress import ProgressPrinter
    from bes.station.report import print_report, report_json

    progress = ProgressPrinter(console)
    reports: list[RunReport] = []
    for sample in plan.samples:
        inputs = dict(plan.inputs)
        if sample is not None:
            inputs["sample"] = sample
        subscribers = [] if args.quiet else [progress]
        with progress.live(f"{plan.recipe.name} {sample or ''} ..."):
            report = station.run(plan.recipe, inputs, subscribers=subscribers, labels=plan.labels)
        reports.append(report)
        if args.json:
            print(report_json(report), flush=True)
        else:
            print_report(console, report)
        if report.status == "aborted":
            break
    return reports


def _status(reports: Sequence[RunReport], plan: _Plan) -> int:
    finished = len(reports) == len(plan.samples) and all(r.ok for r in reports)
    return 0 if finished else 1


def _print_station(console: Console, station: Station) -> None:
    for name, value in station.describe().items():
        console.print(f"[dim]{name}:[/dim] {value}", highlight=False, markup=True)


# -- checking the command line -----------------------------------------------------------------


class _Plan:
    """What to run: the recipe, the samples, the inputs common to every run."""

    def __init__(
        self,
        recipe: Recipe,
        mx: bool,
        samples: list[str | None],
        inputs: dict[str, Any],
        labels: dict[str, Any],
    ) -> None:
        self.recipe = recipe
        self.mx = mx
        self.samples = samples
        self.inputs = inputs
        self.labels = labels


def _plan(args: argparse.Namespace) -> _Plan:
    """Check the recipe, samples and parameters; raise UsageError naming what is wrong."""
    samples: list[str | None] = list(parse_samples(args.sample))
    parameters = _read_params(args.params)
    parameters.update(parse_settings(args.settings))
    if "data_root" in parameters:
        raise UsageError("data_root is the data directory: give it with --data-dir")
    if "sample" in parameters:
        if samples:
            raise UsageError("give the sample with --sample or as a parameter, not both")
        value = parameters.pop("sample")
        samples = list(parse_samples([str(value)])) if value is not None else []
    recipe = load_recipe_arg(args.recipe)
    mx = is_mx_recipe(recipe)
    inputs = dict(parameters)
    labels: dict[str, Any] = {}
    if mx:
        data_root = str(Path(args.data_dir).resolve())
        inputs = check_mx_parameters(parameters, samples[0] if samples else None, data_root)
        inputs["data_root"] = data_root
        labels["session"] = (
            f"{inputs.get('proposal', 'mx0000')}-{inputs.get('visit_number', 1)}"
            if "sessionId" not in inputs
            else str(inputs["sessionId"])
        )
    else:
        check_recipe_inputs(recipe, parameters)
    return _Plan(recipe, mx, samples or [None], inputs, labels)


def parse_samples(texts: Sequence[str]) -> list[str]:
    """``["1:1,1:5", "2:1-3"]`` -> ``["1:1", "1:5", "2:1", "2:2", "2:3"]``."""
    from bes.hal.sample_changer import Location

    samples: list[str] = []
    for text in texts:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            puck, _, pins = part.partition(":")
            first, dash, last = pins.partition("-")
            try:
                if dash:
                    start, end = Location.parse(f"{puck}:{first}"), Location.parse(f"{puck}:{last}")
                    if end.pin < start.pin:
                        raise ValueError(
                            f"bad sample range {part!r}: {end.pin} comes before {start.pin}"
                        )
                    samples.extend(f"{start.puck}:{pin}" for pin in range(start.pin, end.pin + 1))
                else:
                    samples.append(str(Location.parse(part)))
            except ValueError as exc:
                example = "e.g. 1:1, 1:1,1:5 or 1:1-3"
                raise UsageError(f"{exc} (in --sample {text!r}; {example})") from None
    return samples


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``["oscillation_deg=0.5", "prefix=lyso"]`` -> ``{"oscillation_deg": 0.5, "prefix": "lyso"}``:
    values as JSON when they parse, else as text."""
    settings: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"bad --set {item!r}; expected NAME=VALUE, e.g. oscillation_deg=0.5")
        settings[name] = _value(raw)
    return settings


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _read_params(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UsageError(f"parameter file {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"parameter file {path} cannot be read as JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"parameter file {path} must hold a JSON object {{name: value}}")
    return data


def load_recipe_arg(name: str) -> Recipe:
    """The recipe named (or the JSON file given); an unknown name lists the known ones."""
    from bes.engine.recipes import RecipeError, list_recipes, load_recipe

    path = Path(name)
    if not (name.endswith(".json") or path.is_file()):
        known = [p.stem for p in list_recipes()]
        if name not in known:
            raise UsageError(f"unknown recipe {name!r}; known: {', '.join(known) or 'none'}")
    try:
        return load_recipe(path if path.suffix == ".json" else name)
    except RecipeError as exc:
        raise UsageError(str(exc)) from None


def is_mx_recipe(recipe: Recipe) -> bool:
    """An MX recipe starts with ``PrepareRun``: it takes the MX parameters."""
    from bes.tasks.prepare import PrepareRun

    return any(issubclass(cls, PrepareRun) for cls in recipe.task_classes.values())


def check_mx_parameters(
    parameters: Mapping[str, Any], sample: str | None, data_root: str
) -> dict[str, Any]:
    """Validate MX parameters as the recipe's first node will (``ParameterError`` ->
    UsageError). A value given as a number to a text parameter (``prefix=2024``) is kept
    as text. Returns the parameters to pass."""
    from bes.tasks.parameters import ACCEPTED_NAMES, ParameterError, parse_parameters
    from bes.tasks.prepare import check_plan

    unknown = [name for name in parameters if name not in ACCEPTED_NAMES]
    if unknown:
        raise UsageError("; ".join(_unknown_parameter(name) for name in unknown))
    values = dict(parameters)
    for name, value in parameters.items():
        if isinstance(value, str) or value is None or _valid({name: value}):
            continue
        if _valid({name: json.dumps(value)}):
            values[name] = json.dumps(value)
    try:
        check_plan(parse_parameters({**values, "sample": sample, "data_root": data_root}))
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    return values


def _unknown_parameter(name: str) -> str:
    from bes.tasks.parameters import ACCEPTED_NAMES

    close = difflib.get_close_matches(name, ACCEPTED_NAMES, n=3)
    if close:
        return f"unknown parameter {name!r}; did you mean {' or '.join(map(repr, close))}?"
    return f"unknown parameter {name!r}; known: {', '.join(ACCEPTED_NAMES)}"


def _valid(values: Mapping[str, Any]) -> bool:
    from bes.tasks.parameters import ParameterError, parse_parameters

    try:
        parse_parameters(values)
    except ParameterError:
        return False
    return True


def check_recipe_inputs(recipe: Recipe, parameters: Mapping[str, Any]) -> None:
    """Every parameter must be an input of some task of ``recipe``."""
    from bes.engine.recipes import ENGINE_INPUT_NAMES

    takes = sorted(
        {name for cls in recipe.task_classes.values() for name in cls.input_names()}
        - set(ENGINE_INPUT_NAMES)
    )
    unknown = [name for name in parameters if name not in takes]
    if unknown:
        raise UsageError(
            f"unknown parameter(s) {', '.join(map(repr, unknown))} for recipe "
            f"{recipe.name!r}; it takes: {', '.join(takes) or 'none'}"
        )
