"""Our binding of the ewoksppf/pypushflow actors: the graph of actors, as ewoksppf builds it.

``BesWorkflow`` is ewoksppf's ``EwoksWorkflow`` (same actors, same link semantics:
``data_mapping``, ``map_all_data``, ``conditions``, ``conditions_else_value``, ``on_error``,
``required``, ``cache_if_optional``, start and end nodes, sub-graphs merged by ewokscore).
What differs, and why (details in docs/engine.md):

- every actor uses :class:`QuietTrigger`: pypushflow's ``trigger`` pretty-prints the whole
  input dict on every call, logged or not (two thirds of the per-node cost, and arrays
  would be printed in full);
- the pool is the engine's :class:`~bes.engine.scheduler.Scheduler`, which queues each
  task and runs callbacks from its own loop, never inline: the hang of a self-loop (an
  ``InputMergeActor`` re-entering its own lock) and the stack growth of long loops go away;
- conditional actors report every evaluation, and refuse a condition on an output the
  task did not set (ewoksppf silently does not take the link);
- the workflow's error actor tells the scheduler that a failure had no ``on_error`` link.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ewokscore.graph import TaskGraph, analysis
from ewokscore.missing_data import is_missing_data
from ewokscore.node import NodeIdType
from ewokscore.variable import value_from_transfer
from ewoksppf import ppfrunscript
from ewoksppf.bindings import (
    ConditionalActor,
    EwoksPythonActor,
    EwoksWorkflow,
    InputMergeActor,
    NameMapperActor,
    is_ppfmethod,
    ppfname,
    varinfo_from_indata,
)
from pypushflow.ErrorHandler import ErrorHandler
from pypushflow.StartActor import StartActor
from pypushflow.StopActor import StopActor
from pypushflow.ThreadCounter import ThreadCounter
from pypushflow.ThreadCountingActor import ThreadCountingActor, _TriggerScope

from bes.engine.recipes import node_name

if TYPE_CHECKING:
    from bes.engine.scheduler import Scheduler

INFOKEY = ppfrunscript.INFOKEY
"""Key of the ewoksppf bookkeeping entry that travels with the data between actors."""

_logger = logging.getLogger("pypushflow")


class MissingConditionOutput(RuntimeError):
    """A conditional link tests an output that its source task did not set."""


class _Scope(_TriggerScope):
    """pypushflow's trigger scope, numbered instead of named by ``uuid4()`` (which reads
    ``os.urandom``: about 7 us per trigger, five triggers per node). Attributes as in
    ``pypushflow.ThreadCountingActor._TriggerScope.__init__`` (pypushflow 2.0)."""

    _ids = itertools.count()

    def __init__(
        self,
        name: str,
        thread_counter: ThreadCounter,
        register_scope: Callable[[Any], None],
        unregister_scope: Callable[[Any], None],
    ) -> None:
        self._id = f"scope-{next(self._ids)}"
        self._name = name
        self._thread_counter = thread_counter
        self._lock = threading.Lock()
        self._defer_finalization = False
        self._finialized = False
        self._async_callback = None
        self._register_scope = register_scope
        self._unregister_scope = unregister_scope


class QuietTrigger(ThreadCountingActor):
    """``ThreadCountingActor.trigger`` without formatting the inputs unless debug logging is on."""

    def trigger(self, inData: dict[str, Any], **kwargs: Any) -> None:
        if "_scope_id" in kwargs:
            raise RuntimeError("'_scope_id' is a reserved parameter name")
        if _logger.isEnabledFor(logging.DEBUG):
            self.logger.debug("triggered with inputs %s", sorted(map(str, inData)))
        with _Scope(
            self.name,
            self._ThreadCountingActor__thread_counter,
            self._ThreadCountingActor__register_scope,
            self._ThreadCountingActor__unregister_scope,
        ) as scope:
            self._execute(inData, _scope_id=scope.id, **kwargs)


class QuietStartActor(QuietTrigger, StartActor):
    pass


class QuietStopActor(QuietTrigger, StopActor):
    pass


class QuietNameMapperActor(QuietTrigger, NameMapperActor):
    pass


class QuietInputMergeActor(QuietTrigger, InputMergeActor):
    pass


class TaskActor(QuietTrigger, EwoksPythonActor):
    """Runs one node: ``PythonActor._execute`` hands ``ppfrunscript.run`` to the pool."""


class StopOnErrorActor(QuietTrigger, ErrorHandler):
    """The workflow's error actor: reached by failures that have no ``on_error`` link."""

    def _execute(self, inData: dict[str, Any], _scope_id: str | None = None) -> None:
        self.parent.scheduler.unhandled_error(inData)
        super()._execute(inData, _scope_id=_scope_id)


class RecordingConditionalActor(QuietTrigger, ConditionalActor):
    """ewoksppf's conditional actor that reports each evaluation to the scheduler."""

    def __init__(self, *args: Any, source_id: NodeIdType, target_id: NodeIdType, **kw: Any):
        super().__init__(*args, **kw)
        self.source_name = node_name(source_id)
        self.target_name = node_name(target_id)

    def _conditions_fulfilled(self, inData: dict[str, Any]) -> bool:
        # Same rules as ewoksppf.bindings.ConditionalActor._conditions_fulfilled, but every
        # condition is evaluated (for the record) and a missing output is an error.
        varinfo = varinfo_from_indata(inData)
        values = {k: v for k, v in inData.items() if k != INFOKEY}
        checks: list[tuple[str, Any, Any, bool]] = []
        for varname, expected in self.conditions.items():
            if varname not in values or is_missing_data(
                value := value_from_transfer(values[varname], varinfo=varinfo)
            ):
                raise MissingConditionOutput(
                    f"link {self.source_name} -> {self.target_name} tests output {varname!r}, "
                    f"which node {self.source_name!r} did not set"
                )
            if expected == self.conditions_else_value:
                satisfied = not (
                    value != self.conditions_else_value and value in self.all_conditions[varname]
                )
            else:
                satisfied = bool(value == expected)
            checks.append((varname, expected, value, satisfied))
        taken = all(check[3] for check in checks)
        self.parent.scheduler.condition_evaluated(self.source_name, self.target_name, checks, taken)
        return taken


class BesWorkflow(EwoksWorkflow):
    """ewoksppf's actor graph for one run, with our actor classes and our scheduler as pool."""

    def __init__(self, taskgraph: TaskGraph, scheduler: Scheduler) -> None:
        self.scheduler = scheduler
        # db_type given explicitly: pypushflow otherwise reads PYPUSHFLOW_* variables.
        super().__init__(taskgraph, db_options={"db_type": "dummy"})
        self._execution_pool = scheduler

    @property
    def start_actor(self) -> StartActor:
        return self._start_actor

    @property
    def stop_actor(self) -> StopActor:
        return self._stop_actor

    @property
    def thread_counter(self) -> ThreadCounter:
        return self._threadcounter

    # The factories below are ewoksppf's (EwoksWorkflow, ewoksppf 3.0) with our classes.

    def _clean_workflow(self) -> None:
        self._taskactors: dict[NodeIdType, TaskActor] = {}
        self.listActorRef: list[Any] = []
        self._sourceactors: dict[NodeIdType, dict[NodeIdType, Any]] = {}
        self._targetactors: dict[NodeIdType, Any] = {}
        self._threadcounter = ThreadCounter(parent=self)
        self._start_actor = QuietStartActor(name="Start", **self._actor_arguments)
        self._stop_actor = QuietStopActor(name="Stop", **self._actor_arguments)
        self._error_actor = StopOnErrorActor(name="Stop on error", **self._actor_arguments)
        self._connect_actors(self._error_actor, self._stop_actor)

    def _create_task_actors(self, taskgraph: TaskGraph) -> None:
        for node_id, node_attrs in taskgraph.graph.nodes.items():
            actor = TaskActor(
                node_id,
                node_attrs,
                script=ppfrunscript.__name__ + ".run",
                **self._actor_arguments,
            )
            if not analysis.node_has_successors(taskgraph.graph, node_id, link_has_on_error=True):
                self._connect_actors(actor, self._error_actor)
            self._taskactors[node_id] = actor

    def _create_conditional_actor(
        self,
        source_actor: Any,
        source_id: NodeIdType,
        target_id: NodeIdType,
        taskgraph: TaskGraph,
        conditions: dict[str, Any],
        all_conditions: dict[str, Any],
        conditions_else_value: Any,
    ) -> ConditionalActor:
        actor = RecordingConditionalActor(
            conditions,
            all_conditions,
            conditions_else_value,
            is_ppfmethod=is_ppfmethod(source_id, taskgraph.graph.nodes[source_id]),
            name=f"Conditional actor between '{ppfname(source_id)}' and '{ppfname(target_id)}'",
            source_id=source_id,
            target_id=target_id,
            **self._actor_arguments,
        )
        self._connect_actors(source_actor, actor)
        return actor

    def _create_name_mapper(
        self, taskgraph: TaskGraph, source_id: NodeIdType, target_id: NodeIdType
    ) -> NameMapperActor:
        link_attrs = taskgraph.graph[source_id][target_id]
        data_mapping = {
            item["target_input"]: item["source_output"]
            for item in link_attrs.get("data_mapping", [])
        }
        on_error = link_attrs.get("on_error", False)
        kind = " -only on error- " if on_error else " - "
        return QuietNameMapperActor(
            name=f"Name mapper <{ppfname(source_id)}{kind}{ppfname(target_id)}>",
            namemap=data_mapping,
            map_all_data=link_attrs.get("map_all_data", False),
            trigger_on_error=on_error,
            required=analysis.link_is_required(taskgraph.graph, source_id, target_id),
            cache_if_optional=link_attrs.get("cache_if_optional", False),
            **self._actor_arguments,
        )

    def _connect_start_actor(self, taskgraph: TaskGraph) -> None:
        # ewoksppf iterates a set here; the recipe's node order makes runs reproducible.
        start_nodes = analysis.start_nodes(taskgraph.graph)
        if not start_nodes and taskgraph.graph.nodes:
            raise RuntimeError(f"{taskgraph} has no start node")
        for node_id in taskgraph.graph.nodes:
            if node_id in start_nodes:
                target = self._targetactors.get(node_id) or self._taskactors[node_id]
                self._connect_actors(self._start_actor, target)

    def _compile_target_actors(self, taskgraph: TaskGraph) -> None:
        for target_id in taskgraph.graph.nodes:
            if not analysis.node_has_predecessors(taskgraph.graph, target_id):
                self._targetactors[target_id] = None
                continue
            actor = QuietInputMergeActor(
                name=f"Input merger of '{self._taskactors[target_id].name}'",
                **self._actor_arguments,
            )
            self._connect_actors(actor, self._taskactors[target_id])
            self._targetactors[target_id] = actor
