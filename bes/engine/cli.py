"""``bes workflows list | show NAME | validate FILE``: the recipes, from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def add_workflows_commands(subparsers: Any) -> None:
    """Register ``bes workflows ...`` on the ``bes`` command's subparsers."""
    workflows = subparsers.add_parser("workflows", help="recipes: list, show, validate")
    commands = workflows.add_subparsers(dest="workflows_command", metavar="SUBCOMMAND")

    listing = commands.add_parser("list", help="the recipes in workflows/")
    _add_dir_option(listing)
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="nodes, links, conditions and loops of a recipe")
    show.add_argument("name", help="recipe name (e.g. beamline_check) or JSON file")
    _add_dir_option(show)
    show.set_defaults(handler=_show)

    validate = commands.add_parser(
        "validate", help="check recipe files: schema, tasks, unreachable nodes, endless loops"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _add_registry_option(validate)
    validate.set_defaults(handler=_validate)

    workflows.set_defaults(handler=lambda args: _help(workflows))


def _add_registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-package",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="also allow tasks of this package (besides bes.tasks)",
    )


def _registry(args: argparse.Namespace) -> Any:
    from bes.engine.registry import DEFAULT_REGISTRY

    return DEFAULT_REGISTRY.with_packages(*args.allow_package)


def _add_dir_option(parser: argparse.ArgumentParser) -> None:
    _add_registry_option(parser)
    parser.add_argument(
        "--dir",
        type=Path,
        action="append",
        dest="dirs",
        metavar="DIR",
        help="recipe folder (default: the installed recipes or workflows/)",
    )


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _list(args: argparse.Namespace) -> int:
    from bes.engine.recipes import find_loops, list_recipes, load_recipe, validate_recipe

    console = Console()
    paths = list_recipes(args.dirs)
    if not paths:
        console.print("no recipes found")
        return 1
    table = Table(title="Workflows")
    for column in ("name", "label", "nodes", "loops", "check"):
        table.add_column(column)
    for path in paths:
        problems = validate_recipe(path, _registry(args), dirs=args.dirs)
        errors = [p for p in problems if p.level == "error"]
        if errors:
            table.add_row(path.stem, "", "", "", f"[red]{len(errors)} error(s)[/red]")
            continue
        recipe = load_recipe(path, _registry(args), dirs=args.dirs)
        graph = recipe.task_graph().graph
        table.add_row(
            path.stem,
            recipe.label,
            str(graph.number_of_nodes()),
            str(len(find_loops(graph))),
            "[green]valid[/green]",
        )
    console.print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from ewokscore.graph import analysis

    from bes.engine.recipes import (
        RecipeError,
        describe_link,
        find_loops,
        load_recipe,
        node_name,
    )

    console = Console()
    try:
        recipe = load_recipe(args.name, _registry(args), dirs=args.dirs)
    except RecipeError as exc:
        console.print(str(exc), style="red", markup=False)
        return 1
    graph = recipe.task_graph().graph
    console.print(f"[bold]{recipe.name}[/bold]: {recipe.label}")
    if recipe.source:
        console.print(f"file: {recipe.source}")
    if recipe.description:
        console.print(recipe.description)

    starts = analysis.start_nodes(graph)
    ends = analysis.end_nodes(graph)
    nodes = Table(title="Nodes")
    for column in ("id", "task", "label", "default inputs", "role"):
        nodes.add_column(column, overflow="fold")
    for node_id, attrs in graph.nodes.items():
        defaults = {d["name"]: d["value"] for d in attrs.get("default_inputs") or []}
        role = ", ".join(
            r for r, on in (("start", node_id in starts), ("end", node_id in ends)) if on
        )
        nodes.add_row(
            node_name(node_id),
            str(attrs.get("task_identifier", "")),
            str(attrs.get("label", "")),
            _short(defaults) if defaults else "",
            role,
        )
    console.print(nodes)

    links = Table(title="Links")
    for column in ("link", "data", "required"):
        links.add_column(column, overflow="fold")
    for source, target in graph.edges:
        attrs = graph[source][target]
        if attrs.get("map_all_data"):
            data = "all"
        else:
            data = ", ".join(
                f"{m.get('source_output')}->{m.get('target_input')}"
                for m in attrs.get("data_mapping") or []
            )
        required = "yes" if analysis.link_is_required(graph, source, target) else "no"
        links.add_row(describe_link(graph, source, target), data, required)
    console.print(links)

    loops = find_loops(graph)
    if loops:
        table = Table(title="Loops")
        table.add_column("nodes")
        table.add_column("exits (conditional links on the loop)")
        for loop in loops:
            table.add_row(" -> ".join(loop.nodes), "\n".join(loop.exits))
        console.print(table)
    if recipe.expected:
        console.print(f"expected on the simulated beamline: {_short(recipe.expected, 400)}")
    for problem in recipe.warnings:
        console.print(str(problem), style="yellow", markup=False)
    return 0


def _validate(args: argparse.Namespace) -> int:
    from bes.engine.recipes import validate_recipe

    console = Console()
    registry = _registry(args)
    status = 0
    for path in args.files:
        problems = validate_recipe(path, registry)
        errors = sum(1 for p in problems if p.level == "error")
        if not problems:
            console.print(f"{path}: [green]valid[/green]")
            continue
        table = Table(title=f"{path}: {errors} error(s), {len(problems) - errors} warning(s)")
        for column in ("level", "problem", "nodes", "message"):
            table.add_column(column, overflow="fold")
        for problem in problems:
            colour = "red" if problem.level == "error" else "yellow"
            table.add_row(
                f"[{colour}]{problem.level}[/{colour}]",
                problem.code,
                ", ".join(problem.node_ids),
                problem.message,
            )
        console.print(table)
        if errors:
            status = 1
    return status


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
