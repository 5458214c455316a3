"""The two tasks of the engine benchmark's loop (trivial on purpose: the engine is measured)."""

from __future__ import annotations

from bes.tasks.base import BesTask


class Count(
    BesTask, input_names=["limit"], optional_input_names=["n"], output_names=["n", "limit", "done"]
):
    def run(self) -> None:
        n = self.input("n", 0) + 1
        self.outputs.n = n
        self.outputs.limit = self.inputs.limit
        self.outputs.done = n >= self.inputs.limit


class Relay(BesTask, input_names=["n", "limit"], output_names=["n", "limit"]):
    def run(self) -> None:
        self.outputs.n = self.inputs.n
        self.outputs.limit = self.inputs.limit
