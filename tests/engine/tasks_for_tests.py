"""Tiny tasks for the engine tests (allowed only by the tests' own registry)."""

from __future__ import annotations

import inspect
import threading

import numpy as np

from bes.tasks.base import BesTask


class Count(
    BesTask, input_names=["limit"], optional_input_names=["n"], output_names=["n", "limit", "done"]
):
    """n + 1; done once n reaches limit."""

    def run(self) -> None:
        n = self.input("n", 0) + 1
        self.outputs.n = n
        self.outputs.limit = self.inputs.limit
        self.outputs.done = n >= self.inputs.limit


class Relay(BesTask, input_names=["n", "limit"], output_names=["n", "limit"]):
    def run(self) -> None:
        self.outputs.n = self.inputs.n
        self.outputs.limit = self.inputs.limit


class Outer(
    BesTask,
    input_names=["o_limit", "i_limit"],
    optional_input_names=["o", "total"],
    output_names=["o", "o_limit", "i_limit", "total", "outer_done"],
):
    """Outer loop: counts its returns; done after ``o_limit`` inner loops."""

    def run(self) -> None:
        o = self.input("o", -1) + 1
        self.outputs.o = o
        self.outputs.o_limit = self.inputs.o_limit
        self.outputs.i_limit = self.inputs.i_limit
        self.outputs.total = self.input("total", 0)
        self.outputs.outer_done = o >= self.inputs.o_limit


class Inner(
    BesTask,
    input_names=["o", "o_limit", "i_limit", "total"],
    optional_input_names=["i"],
    output_names=["o", "o_limit", "i_limit", "i", "total", "inner_done"],
):
    def run(self) -> None:
        i = self.input("i", 0) + 1
        self.outputs.i = i
        self.outputs.o = self.inputs.o
        self.outputs.o_limit = self.inputs.o_limit
        self.outputs.i_limit = self.inputs.i_limit
        self.outputs.total = self.inputs.total + 1
        self.outputs.inner_done = i >= self.inputs.i_limit


class Finish(BesTask, input_names=["total"], output_names=["total", "finished"]):
    def run(self) -> None:
        self.outputs.total = self.inputs.total
        self.outputs.finished = True


class Fail(BesTask, optional_input_names=["n"], output_names=["n"]):
    def run(self) -> None:
        raise ValueError(f"motor jammed at n={self.input('n')}")


class HandleError(BesTask, input_names=["WorkflowException"], output_names=["handled", "message"]):
    def run(self) -> None:
        self.outputs.handled = True
        self.outputs.message = self.inputs.WorkflowException["errorMessage"]


class ForgetsDone(BesTask, optional_input_names=["n"], output_names=["n", "done"]):
    """Declares ``done`` but never sets it."""

    def run(self) -> None:
        self.outputs.n = 1


class WaitForAbort(BesTask, optional_input_names=["wait_s"], output_names=["woke_by_abort"]):
    """A cooperative long task (like a move on the real clock): ends when abort is set."""

    started = threading.Event()

    def run(self) -> None:
        type(self).started.set()
        woke = self.context.abort.wait(self.input("wait_s", 30.0))
        self.check_abort()
        self.outputs.woke_by_abort = woke


class CountThenAbort(
    BesTask,
    input_names=["limit", "abort_at"],
    optional_input_names=["n"],
    output_names=["n", "limit", "abort_at", "done"],
):
    """Counts like Count, and requests an abort (as a client would) at ``abort_at``."""

    def run(self) -> None:
        n = self.input("n", 0) + 1
        if n == self.inputs.abort_at:
            self.context.request_abort("operator pressed abort")
        self.outputs.n = n
        self.outputs.limit = self.inputs.limit
        self.outputs.abort_at = self.inputs.abort_at
        self.outputs.done = n >= self.inputs.limit


class MakeImage(BesTask, optional_input_names=["size"], output_names=["image", "size"]):
    def run(self) -> None:
        size = self.input("size", 1000)
        self.outputs.image = np.arange(size * size, dtype=np.float32).reshape(size, size)
        self.outputs.size = size


class Echo(BesTask, input_names=["x"], optional_input_names=["y"], output_names=["x", "y"]):
    def run(self) -> None:
        self.outputs.x = self.inputs.x
        self.outputs.y = self.input("y")


class UsesBeamline(BesTask, output_names=["name"]):
    def run(self) -> None:
        self.outputs.name = self.beamline.name


class CondSum(
    BesTask, input_names=["a"], optional_input_names=["b"], output_names=["result", "too_small"]
):
    """ewokscore's example CondSumTask: a + b, and whether that is below 10."""

    def run(self) -> None:
        result = self.inputs.a + (self.input("b") or 0)
        self.outputs.result = result
        self.outputs.too_small = result < 10


class Sum(BesTask, input_names=["a"], optional_input_names=["b"], output_names=["result"]):
    """ewokscore's example SumTask."""

    def run(self) -> None:
        self.outputs.result = self.inputs.a + (self.input("b") or 0)


class ErrorSum(BesTask, optional_input_names=["a", "b", "raise_error"], output_names=["result"]):
    """ewokscore's example ErrorSumTask: a + b, then raises if asked to."""

    def run(self) -> None:
        self.outputs.result = self.input("a", 0) + (self.input("b") or 0)
        if self.input("raise_error"):
            raise RuntimeError("Intentional error")


class CountWithDepth(
    BesTask,
    input_names=["limit"],
    optional_input_names=["n", "min_depth", "max_depth"],
    output_names=["n", "limit", "done", "min_depth", "max_depth"],
):
    """Count, also recording the smallest and largest call-stack depth it ran at."""

    def run(self) -> None:
        depth = len(inspect.stack(0))
        n = self.input("n", 0) + 1
        self.outputs.n = n
        self.outputs.limit = self.inputs.limit
        self.outputs.done = n >= self.inputs.limit
        self.outputs.min_depth = min(self.input("min_depth", depth), depth)
        self.outputs.max_depth = max(self.input("max_depth", depth), depth)
