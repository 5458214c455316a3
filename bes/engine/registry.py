"""Which tasks a recipe may name: only ``BesTask`` classes of the allowed packages.

Recipes arrive from REST clients, so a ``task_identifier`` is checked as a string before
anything is imported: an identifier outside the allowed packages is refused, never loaded.
Only ``task_type`` ``class`` (a task) and ``graph`` (a sub-recipe) are accepted; ewoks'
``method``, ``script``, ``notebook``, ``ppfmethod``, ``ppfport`` and ``generated`` would
run arbitrary code and are refused.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from bes.tasks.base import BesTask

DEFAULT_TASK_PACKAGES: tuple[str, ...] = ("bes.tasks",)
ALLOWED_TASK_TYPES: tuple[str, ...] = ("class", "graph")


class ForbiddenTaskError(ValueError):
    """A recipe names a task outside the allowed packages (or a forbidden task type)."""


class UnknownTaskError(ValueError):
    """A recipe names a task inside the allowed packages that does not exist."""


class TaskRegistry:
    """The packages whose ``BesTask`` classes recipes may use."""

    def __init__(self, packages: Iterable[str] = DEFAULT_TASK_PACKAGES) -> None:
        self.packages: tuple[str, ...] = tuple(packages)
        if not self.packages:
            raise ValueError("a task registry needs at least one allowed package")
        for package in self.packages:
            if not package or package.startswith(".") or package.endswith("."):
                raise ValueError(f"bad task package name {package!r}")
        self._classes: dict[str, type[BesTask]] = {}

    def with_packages(self, *extra: str) -> TaskRegistry:
        """A registry that also allows ``extra`` packages (tests, site-specific tasks)."""
        return TaskRegistry(self.packages + tuple(p for p in extra if p not in self.packages))

    def is_allowed(self, identifier: str) -> bool:
        """True if ``identifier`` (``package.module.Class``) lies inside an allowed package."""
        return any(identifier.startswith(package + ".") for package in self.packages)

    def check(self, identifier: object, node_id: object = None) -> str:
        """The identifier if it may be used; ForbiddenTaskError (before any import) if not."""
        where = f"node {node_id!r}: " if node_id is not None else ""
        if not isinstance(identifier, str) or not identifier:
            raise ForbiddenTaskError(f"{where}task_identifier must be a non-empty string")
        name = identifier.rpartition(".")[2]
        if not self.is_allowed(identifier) or not name.isidentifier() or ".." in identifier:
            raise ForbiddenTaskError(
                f"{where}task {identifier!r} is not allowed; recipes may only use tasks of "
                f"{', '.join(self.packages)} (task_type 'class', 'package.module.Class')"
            )
        return identifier

    def resolve(self, identifier: str, node_id: object = None) -> type[BesTask]:
        """Import and return the task class (after :meth:`check`)."""
        cached = self._classes.get(identifier)
        if cached is not None:
            return cached
        self.check(identifier, node_id)
        where = f"node {node_id!r}: " if node_id is not None else ""
        module_name, _, name = identifier.rpartition(".")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise UnknownTaskError(
                f"{where}unknown task {identifier!r}: cannot import {module_name!r} ({exc})"
            ) from None
        task_class = getattr(module, name, None)
        if not (
            isinstance(task_class, type)
            and issubclass(task_class, BesTask)
            and task_class.class_registry_name() is not None
        ):
            known = ", ".join(sorted(_task_names(module))) or "none"
            raise UnknownTaskError(
                f"{where}unknown task {identifier!r}: {module_name} has no BesTask {name!r}; "
                f"its tasks: {known}"
            )
        self._classes[identifier] = task_class
        return task_class

    def known_tasks(self) -> dict[str, type[BesTask]]:
        """Every task of the allowed packages, by identifier (imports the packages)."""
        found: dict[str, type[BesTask]] = {}
        for package_name in self.packages:
            try:
                package = importlib.import_module(package_name)
            except ImportError:
                continue
            modules = [package]
            for info in pkgutil.walk_packages(
                getattr(package, "__path__", []), prefix=package_name + "."
            ):
                try:
                    modules.append(importlib.import_module(info.name))
                except ImportError:
                    continue
            for module in modules:
                for name in _task_names(module):
                    found[f"{module.__name__}.{name}"] = getattr(module, name)
        return dict(sorted(found.items()))


def _task_names(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BesTask)
        and value.__module__ == module.__name__
        and value.class_registry_name() is not None
    ]


DEFAULT_REGISTRY = TaskRegistry()
"""Tasks of ``bes.tasks`` only."""
