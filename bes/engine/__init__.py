"""The workflow engine: loads recipes (ewoks graphs), runs them on pypushflow actors in this
process, hands every task its :class:`RunContext`, enforces timeouts and abort, and reports
events to subscribers. See docs/engine.md.

Names are imported on first use, so that ``bes --help`` does not load ewoks.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bes.engine.context import Limits, RunContext, WorkflowAborted, install_signal_abort
    from bes.engine.events import (
        ConditionCheck,
        ConditionEvaluated,
        EngineEvent,
        ListSubscriber,
        MetadataReported,
        NodeEnded,
        NodeError,
        NodeStarted,
        Subscriber,
        WorkflowEnded,
        WorkflowStarted,
        summarise,
    )
    from bes.engine.recipes import (
        Problem,
        Recipe,
        RecipeError,
        RecipeNotFoundError,
        RecipeRefused,
        list_recipes,
        load_recipe,
        validate_recipe,
    )
    from bes.engine.registry import (
        DEFAULT_REGISTRY,
        ForbiddenTaskError,
        TaskRegistry,
        UnknownTaskError,
    )
    from bes.engine.runner import WorkflowResult, run_workflow

_EXPORTS = {
    "bes.engine.context": ("Limits", "RunContext", "WorkflowAborted", "install_signal_abort"),
    "bes.engine.events": (
        "ConditionCheck",
        "ConditionEvaluated",
        "EngineEvent",
        "ListSubscriber",
        "MetadataReported",
        "NodeEnded",
        "NodeError",
        "NodeStarted",
        "Subscriber",
        "WorkflowEnded",
        "WorkflowStarted",
        "summarise",
    ),
    "bes.engine.recipes": (
        "Problem",
        "Recipe",
        "RecipeError",
        "RecipeNotFoundError",
        "RecipeRefused",
        "list_recipes",
        "load_recipe",
        "validate_recipe",
    ),
    "bes.engine.registry": (
        "DEFAULT_REGISTRY",
        "ForbiddenTaskError",
        "TaskRegistry",
        "UnknownTaskError",
    ),
    "bes.engine.runner": ("WorkflowResult", "run_workflow"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "DEFAULT_REGISTRY",
    "ConditionCheck",
    "ConditionEvaluated",
    "EngineEvent",
    "ForbiddenTaskError",
    "Limits",
    "ListSubscriber",
    "MetadataReported",
    "NodeEnded",
    "NodeError",
    "NodeStarted",
    "Problem",
    "Recipe",
    "RecipeError",
    "RecipeNotFoundError",
    "RecipeRefused",
    "RunContext",
    "Subscriber",
    "TaskRegistry",
    "UnknownTaskError",
    "WorkflowAborted",
    "WorkflowEnded",
    "WorkflowResult",
    "WorkflowStarted",
    "install_signal_abort",
    "list_recipes",
    "load_recipe",
    "run_workflow",
    "summarise",
    "validate_recipe",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bes.engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
