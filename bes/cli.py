"""The `bes` command. Each area registers its own subcommands here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import bes
from bes.config import SIMULATED_BEAMLINE
from bes.hal import Beamline, BeamlineConfigError

Handler = Callable[[argparse.Namespace], int]


def add_beamline_options(parser: argparse.ArgumentParser) -> None:
    """Options every command that builds a beamline takes."""
    parser.add_argument(
        "--config",
        type=Path,
        default=SIMULATED_BEAMLINE,
        help="beamline config file (TOML); default: the embedded simulated beamline",
    )
    parser.add_argument(
        "--clock",
        choices=("instant", "scaled", "real"),
        default=None,
        help="simulated clock mode (overrides the config)",
    )
    parser.add_argument(
        "--speed", type=float, default=None, help="speed-up factor for --clock scaled"
    )


def build_beamline(args: argparse.Namespace) -> Beamline:
    """The Beamline named by ``--config``, with ``--clock/--speed`` applied."""
    clock: dict[str, Any] = {}
    if args.clock:
        clock["mode"] = args.clock
    if args.speed is not None:
        clock["factor"] = args.speed
    return Beamline.from_config(args.config, overrides={"clock": clock} if clock else None)


def _sim_info(args: argparse.Namespace) -> int:
    console = Console()
    beamline = build_beamline(args)
    console.print(f"[bold]Beamline {beamline.name}[/bold]  (config {beamline.config_path})")
    devices = Table(title="Devices")
    devices.add_column("role")
    devices.add_column("implementation")
    devices.add_column("setting")
    devices.add_column("value")
    for role, device in beamline.devices().items():
        kind = type(device)
        implementation = f"{kind.__module__}.{kind.__qualname__}"
        rows = _settings(device)
        if not rows:
            devices.add_row(role, implementation, "", "")
        for i, (key, value) in enumerate(rows):
            devices.add_row(role if i == 0 else "", implementation if i == 0 else "", key, value)
        devices.add_section()
    console.print(devices)
    for name, component in beamline.extras.items():
        description = component.describe() if hasattr(component, "describe") else None
        if name == "profile" and isinstance(description, dict):
            _print_profile(console, description)
        elif description is not None:
            console.print(f"[bold]{name}[/bold]: {_format(description)}")
    return 0


def _settings(device: object) -> list[tuple[str, str]]:
    """(setting, value) rows from a device's optional ``describe()``."""
    describe = getattr(device, "describe", None)
    if not callable(describe):
        return []
    description = describe()
    if not isinstance(description, dict):
        return [("state", _format(description))]
    return [(str(key), _format(value)) for key, value in description.items()]


def _format(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_format(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(_format(v) for v in value) + ")"
    return str(value)


def _print_profile(console: Console, profile: dict[str, Any]) -> None:
    table = Table(title=f"Timing profile ({profile.get('source', '')})")
    table.add_column("device")
    table.add_column("parameter")
    table.add_column("value", justify="right")
    for section, values in profile.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            table.add_row(section, key, _format(value))
    console.print(table)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bes", description="mxbes: Beamline Expert System for MX (simulated beamline built in)"
    )
    parser.add_argument("--version", action="version", version=f"mxbes {bes.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sim = commands.add_parser("sim", help="the simulated beamline")
    sim_commands = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    info = sim_commands.add_parser("info", help="devices and timing profile of the beamline")
    add_beamline_options(info)
    info.set_defaults(handler=_sim_info)

    for register in _command_registrars():
        register(commands)
    return parser


def _command_registrars() -> list[Callable[[Any], None]]:
    """Subcommands of the other areas (engine, record, queue, LIMS, ...)."""
    from bes.engine.cli import add_workflows_commands
    from bes.record.cli import add_record_commands
    from bes.server.cli import add_server_commands
    from bes.station.cli import add_station_commands
    from bes.station.night_cli import add_night_command
    from lims.cli import add_lims_commands  # imports lims.service only in `bes lims serve`

    registrars: list[Callable[[Any], None]] = [
        add_workflows_commands,
        add_record_commands,
        add_station_commands,
        add_night_command,
        add_server_commands,
        add_lims_commands,
    ]
    return registrars


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except BeamlineConfigError as exc:
        print(f"bes: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bes: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
