"""Recipes: ewoks-format JSON graphs in ``workflows/``; finding, loading and validating them.

Where recipes live: ``bes/recipes/`` inside an installed wheel (hatch force-include), the
repository's ``workflows/`` folder in a source checkout. A recipe keeps mxbes data that
ewoks ignores under the graph attribute ``mxbes``::

    "graph": {"id": "beamline_check", "label": "...",
              "mxbes": {"description": "...", "example_inputs": {...}, "expected": {...}}}

``expected`` is what the recipe gives on the simulated beamline with ``example_inputs``
(``status``, a subset of ``outputs``, ``node_executions``); tests run every recipe with it.

Loading checks, in this order, and stops at the first stage with errors: the JSON schema
and every ``task_type``/``task_identifier`` as strings (nothing is imported for a recipe that
names a forbidden task), then the task classes (imports of allowed packages only), then the
graph (start nodes, unreachable nodes, loops without an exit condition, data mappings and
conditions against the tasks' declared inputs and outputs).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx
from ewokscore.graph import TaskGraph, analysis
from ewokscore.graph.graph_io import update_default_inputs
from ewokscore.graph.schema.model import EwoksGraph
from ewokscore.graph.serialize import json_load
from ewokscore.node import NodeIdType
from pydantic import ValidationError

import bes
from bes.engine.registry import (
    ALLOWED_TASK_TYPES,
    DEFAULT_REGISTRY,
    ForbiddenTaskError,
    TaskRegistry,
    UnknownTaskError,
)
from bes.tasks.base import BesTask

RECIPE_SUFFIX = ".json"
MXBES_KEY = "mxbes"
LEGACY_EXECUTABLE_KEYS = ("class", "method", "ppfmethod", "ppfport", "script", "notebook", "task")
ERROR_INPUT_NAME = "WorkflowException"
"""What an ``on_error`` link carries from the failed task (ewoksppf convention)."""
ENGINE_INPUT_NAMES: tuple[str, ...] = (ERROR_INPUT_NAME, "WorkflowExceptionInstance")
"""Inputs only the engine gives (a fault handler's error): never a run's input."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe, with the node ids concerned."""

    level: str
    """``error`` (the recipe is refused) or ``warning``."""
    code: str
    message: str
    node_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        nodes = f" [{', '.join(self.node_ids)}]" if self.node_ids else ""
        return f"{self.level}: {self.code}{nodes}: {self.message}"


class RecipeError(ValueError):
    """A recipe cannot be loaded; ``problems`` lists every error found."""

    def __init__(self, name: str, problems: Sequence[Problem]) -> None:
        self.name = name
        self.problems = tuple(problems)
        errors = [p for p in self.problems if p.level == "error"]
        lines = "\n".join(f"  - {p}" for p in errors)
        super().__init__(f"recipe {name!r} is refused ({len(errors)} error(s)):\n{lines}")


class RecipeRefused(RecipeError, ForbiddenTaskError):
    """The recipe names a task (or task type) outside the allowed packages."""


class RecipeNotFoundError(RecipeError, FileNotFoundError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(name, [Problem("error", "not-found", message)])
        self.args = (message,)

    def __str__(self) -> str:
        return str(self.args[0])


def default_recipe_dirs() -> list[Path]:
    """``bes/recipes`` in an installed wheel, else ``workflows/`` of the source checkout."""
    package_dir = Path(bes.__file__).resolve().parent
    installed = package_dir / "recipes"
    if installed.is_dir():
        return [installed]
    checkout = package_dir.parent
    if (checkout / "workflows").is_dir() and (checkout / "pyproject.toml").is_file():
        return [checkout / "workflows"]
    return []


def list_recipes(dirs: Sequence[Path] | None = None) -> list[Path]:
    """Every recipe file, sorted by name (the first folder wins on equal names)."""
    found: dict[str, Path] = {}
    for folder in default_recipe_dirs() if dirs is None else dirs:
        for path in sorted(Path(folder).glob(f"*{RECIPE_SUFFIX}")):
            found.setdefault(path.stem, path)
    return [found[name] for name in sorted(found)]


def find_recipe(name: str, dirs: Sequence[Path] | None = None) -> Path:
    """The file of recipe ``name`` (its file name without ``.json``)."""
    stem = name[: -len(RECIPE_SUFFIX)] if name.endswith(RECIPE_SUFFIX) else name
    if not _is_bare_name(stem):
        raise RecipeNotFoundError(name, f"bad workflow name {name!r}; use a recipe name")
    for path in list_recipes(dirs):
        if path.stem == stem:
            return path
    known = ", ".join(p.stem for p in list_recipes(dirs)) or "none"
    raise RecipeNotFoundError(name, f"unknown workflow {name!r}; known: {known}")


@dataclass(frozen=True)
class Recipe:
    """A validated recipe. :meth:`task_graph` gives a fresh ewokscore graph for one run."""

    name: str
    raw: Mapping[str, Any]
    root_dir: Path
    """Where its sub-recipes (``task_type: graph``) are looked up."""
    source: Path | None = None
    task_classes: Mapping[str, type[BesTask]] = field(default_factory=dict)
    """Node id (as in events) -> task class."""
    warnings: tuple[Problem, ...] = ()

    @property
    def graph_attrs(self) -> Mapping[str, Any]:
        attrs = self.raw.get("graph", {})
        return attrs if isinstance(attrs, Mapping) else {}

    @property
    def mxbes(self) -> Mapping[str, Any]:
        data = self.graph_attrs.get(MXBES_KEY, {})
        return data if isinstance(data, Mapping) else {}

    @property
    def label(self) -> str:
        return str(self.graph_attrs.get("label") or self.name)

    @property
    def description(self) -> str:
        return str(self.mxbes.get("description", ""))

    @property
    def example_inputs(self) -> dict[str, Any]:
        return dict(self.mxbes.get("example_inputs", {}))

    @property
    def expected(self) -> dict[str, Any] | None:
        expected = self.mxbes.get("expected")
        return dict(expected) if isinstance(expected, Mapping) else None

    def task_graph(self, inputs: Sequence[Mapping[str, Any]] | None = None) -> TaskGraph:
        """A new ewokscore TaskGraph (sub-recipes merged in), with ``inputs`` set as defaults."""
        taskgraph = _load_taskgraph(self.raw, self.root_dir)
        if inputs:
            update_default_inputs(taskgraph.graph, [dict(item) for item in inputs])
        return taskgraph


def load_recipe(
    source: str | Path | Mapping[str, Any] | Recipe,
    registry: TaskRegistry | None = None,
    dirs: Sequence[Path] | None = None,
) -> Recipe:
    """Load and validate a recipe: a name, a JSON file, or a graph dict (e.g. from REST).

    Raises RecipeRefused for a forbidden task, RecipeNotFoundError, or RecipeError listing
    every error; warnings are kept in ``Recipe.warnings``.
    """
    if isinstance(source, Recipe):
        return source
    recipe, problems = _inspect(source, registry or DEFAULT_REGISTRY, dirs)
    errors = [p for p in problems if p.level == "error"]
    if errors:
        name = recipe.name if recipe else _source_name(source)
        if any(p.code == "forbidden-task" for p in errors):
            raise RecipeRefused(name, problems)
        raise RecipeError(name, problems)
    assert recipe is not None
    return recipe


def validate_recipe(
    source: str | Path | Mapping[str, Any],
    registry: TaskRegistry | None = None,
    dirs: Sequence[Path] | None = None,
) -> list[Problem]:
    """Every problem of a recipe (errors and warnings); an empty list for a clean recipe."""
    try:
        _, problems = _inspect(source, registry or DEFAULT_REGISTRY, dirs)
    except RecipeNotFoundError as exc:
        return list(exc.problems)
    return problems


def node_name(node_id: NodeIdType) -> str:
    """A node id as text: sub-recipe nodes as ``subgraph:node``."""
    if isinstance(node_id, tuple):
        return ":".join(node_name(part) for part in node_id)
    return str(node_id)


@dataclass(frozen=True)
class Loop:
    """A cycle of the recipe graph and the conditional links that can end it."""

    nodes: tuple[str, ...]
    exits: tuple[str, ...]
    """``source -> target if output == value`` for each conditional link on the cycle."""


def find_loops(graph: networkx.DiGraph, limit: int = 50) -> list[Loop]:
    """The cycles of ``graph`` (self-loops included), at most ``limit`` of them."""
    loops: list[Loop] = []
    for cycle in networkx.simple_cycles(graph):
        if len(loops) >= limit:
            break
        edges = list(zip(cycle, [*cycle[1:], cycle[0]], strict=True))
        exits = tuple(
            describe_link(graph, s, t)
            for s, t in edges
            if analysis.link_is_conditional(graph, s, t)
        )
        loops.append(Loop(tuple(node_name(n) for n in cycle), exits))
    return loops


def describe_link(graph: networkx.DiGraph, source: NodeIdType, target: NodeIdType) -> str:
    attrs = graph[source][target]
    text = f"{node_name(source)} -> {node_name(target)}"
    if attrs.get("on_error"):
        return text + " on error"
    conditions = attrs.get("conditions") or []
    if conditions:
        text += " if " + " and ".join(
            f"{c['source_output']} == {json.dumps(c['value'])}" for c in conditions
        )
    return text


def task_identifier_of(graph: networkx.DiGraph, node_id: NodeIdType) -> str:
    return str(graph.nodes[node_id].get("task_identifier", ""))


# -- inspection ---------------------------------------------------------------------------


def _source_name(source: object) -> str:
    if isinstance(source, Path):
        return source.stem
    if isinstance(source, str):
        return Path(source).stem
    if isinstance(source, Mapping):
        graph = source.get("graph")
        if isinstance(graph, Mapping) and graph.get("id"):
            return str(graph["id"])
    return "<recipe>"


def _read(
    source: str | Path | Mapping[str, Any], dirs: Sequence[Path] | None
) -> tuple[str, Any, Path, Path | None]:
    """(name, raw dict, root dir for sub-recipes, file) of a name, path or dict."""
    search = default_recipe_dirs() if dirs is None else list(dirs)
    if isinstance(source, Mapping):
        root = search[0] if search else Path.cwd()
        return _source_name(source), copy.deepcopy(dict(source)), root, None
    text = str(source)
    if isinstance(source, Path) or text.endswith(RECIPE_SUFFIX) or "/" in text or "\\" in text:
        path = Path(source)
        if not path.is_file():
            raise RecipeNotFoundError(path.stem, f"recipe file {path} does not exist")
    else:
        path = find_recipe(text, search)
    try:
        raw = json_load(path.read_text())
    except (OSError, ValueError, TypeError) as exc:
        return path.stem, exc, path.parent, path
    return path.stem, raw, path.parent, path


def _inspect(
    source: str | Path | Mapping[str, Any], registry: TaskRegistry, dirs: Sequence[Path] | None
) -> tuple[Recipe | None, list[Problem]]:
    name, raw, root_dir, path = _read(source, dirs)
    if isinstance(raw, Exception):
        return None, [Problem("error", "schema", f"{path} is not a JSON recipe: {raw}")]

    # Stage 1: strings only, nothing imported.
    problems = _precheck(raw, registry, root_dir, (), (path,) if path else ())
    if any(p.level == "error" for p in problems):
        return None, problems

    # Stage 2: the graph as ewokscore loads it (sub-recipes merged).
    try:
        taskgraph = _load_taskgraph(raw, root_dir)
    except RecursionError:
        message = "ewokscore cannot load it: a loop without conditional links (via a sub-recipe?)"
        return None, [*problems, Problem("error", "graph", message)]
    except Exception as exc:
        return None, [*problems, Problem("error", "graph", f"ewokscore cannot load it: {exc}")]
    graph = taskgraph.graph

    # Stage 3: task classes (imports of allowed packages only).
    classes: dict[NodeIdType, type[BesTask]] = {}
    for node_id, attrs in graph.nodes.items():
        try:
            classes[node_id] = registry.resolve(attrs["task_identifier"], node_name(node_id))
        except (ForbiddenTaskError, UnknownTaskError) as exc:
            code = "forbidden-task" if isinstance(exc, ForbiddenTaskError) else "unknown-task"
            problems.append(Problem("error", code, str(exc), (node_name(node_id),)))
    if any(p.level == "error" for p in problems):
        return None, problems

    # Stage 4: graph analysis.
    problems.extend(_analyse(graph, classes))
    recipe = Recipe(
        name=name,
        raw=raw,
        root_dir=root_dir,
        source=path,
        task_classes={node_name(n): c for n, c in classes.items()},
        warnings=tuple(p for p in problems if p.level == "warning"),
    )
    return recipe, problems


def _load_taskgraph(raw: Mapping[str, Any], root_dir: Path) -> TaskGraph:
    return TaskGraph(source=copy.deepcopy(dict(raw)), root_dir=str(root_dir))


def _precheck(
    raw: Any,
    registry: TaskRegistry,
    root_dir: Path,
    where: tuple[str, ...],
    stack: tuple[Path, ...],
) -> list[Problem]:
    """Schema and task identifiers, as strings. Sub-recipes are checked recursively."""

    def nid(node_id: Any) -> tuple[str, ...]:
        return (":".join([*where, str(node_id)]),)

    if not isinstance(raw, Mapping):
        return [Problem("error", "schema", "a recipe is a JSON object: graph, nodes, links")]
    problems: list[Problem] = []
    nodes = raw.get("nodes", [])
    links = raw.get("links", [])
    if not isinstance(nodes, list) or not isinstance(links, list):
        return [Problem("error", "schema", "'nodes' and 'links' must be lists")]
    try:
        EwoksGraph.model_validate(raw)
    except ValidationError as exc:
        for err in exc.errors():
            loc = err["loc"]
            ids: tuple[str, ...] = ()
            if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
                node = nodes[loc[1]] if loc[1] < len(nodes) else {}
                ids = nid(node.get("id", f"#{loc[1]}") if isinstance(node, Mapping) else loc[1])
            text = ".".join(str(part) for part in loc)
            problems.append(Problem("error", "schema", f"{text}: {err['msg']}", ids))

    seen: set[Any] = set()
    for node in nodes:
        if not isinstance(node, Mapping):
            continue
        node_id = node.get("id")
        if isinstance(node_id, list):
            node_id = tuple(node_id)
        if node_id in seen:
            problems.append(Problem("error", "schema", "node id used twice", nid(node_id)))
        seen.add(node_id)
        legacy = [key for key in LEGACY_EXECUTABLE_KEYS if key in node]
        task_type = node.get("task_type")
        identifier = node.get("task_identifier")
        if legacy:
            problems.append(
                Problem(
                    "error",
                    "forbidden-task",
                    f"old-style key(s) {', '.join(legacy)}; use task_type 'class' and "
                    "task_identifier 'package.module.Class'",
                    nid(node_id),
                )
            )
        elif task_type not in ALLOWED_TASK_TYPES:
            problems.append(
                Problem(
                    "error",
                    "forbidden-task",
                    f"task_type {task_type!r} is not allowed; use one of "
                    f"{', '.join(ALLOWED_TASK_TYPES)}",
                    nid(node_id),
                )
            )
        elif task_type == "class" and identifier is not None:  # missing: a schema error
            try:
                registry.check(identifier, ":".join([*where, str(node_id)]))
            except ForbiddenTaskError as exc:
                problems.append(Problem("error", "forbidden-task", str(exc), nid(node_id)))
        elif task_type == "graph":
            problems.extend(
                _precheck_subgraph(identifier, registry, root_dir, (*where, str(node_id)), stack)
            )

    mappings = [link for link in links if isinstance(link, Mapping)]
    if not problems:
        problems.extend(_loops_without_exit(mappings, where))
    for index, link in enumerate(links):
        if not isinstance(link, Mapping):
            continue
        for end in ("source", "target"):
            value = link.get(end)
            value = tuple(value) if isinstance(value, list) else value
            if end in link and value not in seen:
                problems.append(
                    Problem(
                        "error", "schema", f"links.{index}.{end}: no node {value!r}", nid(value)
                    )
                )
    return problems


def _precheck_subgraph(
    identifier: Any,
    registry: TaskRegistry,
    root_dir: Path,
    where: tuple[str, ...],
    stack: tuple[Path, ...],
) -> list[Problem]:
    ids = (":".join(where),)
    stem = identifier
    if isinstance(identifier, str) and identifier.endswith(RECIPE_SUFFIX):
        stem = identifier[: -len(RECIPE_SUFFIX)]
    if not isinstance(stem, str) or not _is_bare_name(stem):
        return [
            Problem(
                "error",
                "forbidden-task",
                f"sub-recipe {identifier!r} must be the name of a recipe beside this one",
                ids,
            )
        ]
    path = root_dir / f"{stem}{RECIPE_SUFFIX}"
    if not path.is_file():
        return [Problem("error", "subgraph", f"sub-recipe {stem!r}: no {path}", ids)]
    if path.resolve() in {p.resolve() for p in stack}:
        return [Problem("error", "subgraph", f"sub-recipe {stem!r} includes itself", ids)]
    try:
        raw = json_load(path.read_text())
    except (OSError, ValueError, TypeError) as exc:
        return [Problem("error", "subgraph", f"sub-recipe {stem!r}: {exc}", ids)]
    return _precheck(raw, registry, root_dir, where, (*stack, path))


def _is_bare_name(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "_-." for c in name) and ".." not in name


def _analyse(graph: networkx.DiGraph, classes: Mapping[NodeIdType, type[BesTask]]) -> list[Problem]:
    problems: list[Problem] = []
    starts = analysis.start_nodes(graph)
    if not starts and graph.nodes:
        problems.append(
            Problem(
                "error",
                "no-start-node",
                "no node to start from: give one node no predecessors or force_start_node",
            )
        )
    reachable = set(starts)
    for start in starts:
        reachable |= networkx.descendants(graph, start)
    unreachable = [n for n in graph.nodes if n not in reachable]
    if starts and unreachable:
        problems.append(
            Problem(
                "error",
                "unreachable",
                "no path from a start node leads to these nodes",
                tuple(sorted(node_name(n) for n in unreachable)),
            )
        )
    problems.extend(_check_links(graph, classes))
    problems.extend(_check_inputs(graph, classes))
    return problems


def _loops_without_exit(
    links: Sequence[Mapping[str, Any]], where: tuple[str, ...]
) -> list[Problem]:
    """A cycle made only of unconditional links can never end (and ewokscore cannot even
    load it: its required-link analysis recurses forever), so this runs on the raw links."""
    unconditional = networkx.DiGraph()
    for link in links:
        if link.get("conditions") or link.get("on_error"):
            continue
        ends = [link.get("source"), link.get("target")]
        unconditional.add_edge(*(tuple(e) if isinstance(e, list) else e for e in ends))
    problems = []
    for component in networkx.strongly_connected_components(unconditional):
        node = next(iter(component))
        if len(component) > 1 or unconditional.has_edge(node, node):
            problems.append(
                Problem(
                    "error",
                    "loop-without-exit",
                    "these nodes form a loop with no conditional link: it never ends; "
                    "put 'conditions' on one of its links",
                    tuple(sorted(":".join([*where, node_name(n)]) for n in component)),
                )
            )
    return problems


def _check_links(
    graph: networkx.DiGraph, classes: Mapping[NodeIdType, type[BesTask]]
) -> list[Problem]:
    problems = []
    for source, target in graph.edges:
        attrs = graph[source][target]
        link = f"link {node_name(source)} -> {node_name(target)}"
        outputs = set(classes[source].output_names())
        if attrs.get("on_error"):
            outputs |= {ERROR_INPUT_NAME} | set(classes[source].input_names())
        inputs = set(classes[target].input_names())
        for condition in attrs.get("conditions") or []:
            name = condition.get("source_output")
            if name not in outputs:
                problems.append(
                    Problem(
                        "error",
                        "condition-output",
                        f"{link}: condition on {name!r}, which {classes[source].__name__} "
                        f"does not output; its outputs: {', '.join(sorted(outputs)) or 'none'}",
                        (node_name(source), node_name(target)),
                    )
                )
        for mapping in attrs.get("data_mapping") or []:
            out_name = mapping.get("source_output")
            in_name = mapping.get("target_input")
            if out_name is not None and out_name not in outputs:
                problems.append(
                    Problem(
                        "error",
                        "data-mapping",
                        f"{link}: {classes[source].__name__} has no output {out_name!r}; "
                        f"its outputs: {', '.join(sorted(outputs)) or 'none'}",
                        (node_name(source), node_name(target)),
                    )
                )
            if in_name not in inputs:
                problems.append(
                    Problem(
                        "error",
                        "data-mapping",
                        f"{link}: {classes[target].__name__} has no input {in_name!r}; "
                        f"its inputs: {', '.join(sorted(inputs)) or 'none'}",
                        (node_name(source), node_name(target)),
                    )
                )
    return problems


def _check_inputs(
    graph: networkx.DiGraph, classes: Mapping[NodeIdType, type[BesTask]]
) -> list[Problem]:
    """Required inputs neither set in the recipe nor brought by a link: the run must give them."""
    problems = []
    for node_id, attrs in graph.nodes.items():
        given = {item["name"] for item in attrs.get("default_inputs") or []}
        for source in graph.predecessors(node_id):
            link = graph[source][node_id]
            if link.get("map_all_data"):
                given |= set(classes[source].output_names()) | set(classes[source].input_names())
            if link.get("on_error"):  # the failed task's error, ewoks' WorkflowException
                given.add("WorkflowException")
            given |= {m.get("target_input") for m in link.get("data_mapping") or []}
        missing = sorted(set(classes[node_id].required_input_names()) - given)
        if missing:
            problems.append(
                Problem(
                    "warning",
                    "run-input",
                    f"required input(s) {', '.join(missing)} must come from the run's inputs",
                    (node_name(node_id),),
                )
            )
    return problems


def input_items(
    recipe: Recipe,
    graph: networkx.DiGraph,
    inputs: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None,
) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    """Run inputs as ewoks input items for ``graph`` (a graph of ``recipe``), and the names
    no task takes.

    A mapping ``{name: value}`` sets ``name`` on every node whose task declares that input;
    a list of ewoks input items (``{"id"|"label"|"all", "name", "value"}``) is used as is.
    """
    if inputs is None:
        return [], ()
    if not isinstance(inputs, Mapping):
        return [dict(item) for item in inputs], ()
    items: list[dict[str, Any]] = []
    unused: list[str] = []
    for name, value in inputs.items():
        nodes = [
            node_id
            for node_id in graph.nodes
            if name in recipe.task_classes[node_name(node_id)].input_names()
        ]
        if not nodes:
            unused.append(str(name))
        items.extend({"id": node_id, "name": name, "value": value} for node_id in nodes)
    return items, tuple(unused)
