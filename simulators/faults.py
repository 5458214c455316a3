"""Fault injection: per pin (from the sample sheet) or at random with a rate, reproducibly."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

FAULT_KINDS: tuple[str, ...] = (
    "pin_missing",
    "load_fails",
    "sample_changer_fault",
    "motor_timeout",
    "detector_error",
    "beam_loss",
    "disk_full",
)
"""Every fault the simulator can inject. Each surfaces as a typed bes.hal.errors exception."""


class FaultPlan:
    """Decides when a device fails.

    ``per_pin`` maps ``"puck:pin"`` -> kinds that fire for that pin (every time, or
    once with ``once=True``); ``rate`` is the chance per opportunity that a random
    fault of ``random_kinds`` fires, drawn from a seeded generator.
    """

    def __init__(
        self,
        rate: float = 0.0,
        seed: int | None = 0,
        random_kinds: Iterable[str] = FAULT_KINDS,
        per_pin: Mapping[str, Iterable[str]] | None = None,
        once: bool = False,
        beam_loss_s: float = 30.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be within 0..1, got {rate!r}")
        kinds = tuple(random_kinds)
        for kind in kinds + tuple(k for ks in (per_pin or {}).values() for k in ks):
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self.rate = float(rate)
        self.random_kinds = frozenset(kinds)
        self.per_pin = {pin: set(ks) for pin, ks in (per_pin or {}).items()}
        self.once = once
        self.beam_loss_s = float(beam_loss_s)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self.fired: list[tuple[str, str | None]] = []
        """(kind, pin) of every fault that fired, in order: for tests and reports."""

    def add(self, pin: str, kind: str) -> None:
        """Inject ``kind`` for ``pin`` from now on."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._lock:
            self.per_pin.setdefault(pin, set()).add(kind)

    def should_fire(self, kind: str, pin: str | None, pin_faults: Iterable[str] = ()) -> bool:
        """True if ``kind`` fires now for ``pin``; the caller raises the matching error.

        ``pin_faults`` are the faults the world gives that pin (from the sample sheet).
        """
        with self._lock:
            planned = self.per_pin.get(pin or "", set())
            hit = kind in planned or kind in set(pin_faults)
            if hit and self.once and kind in planned:
                planned.discard(kind)
            if not hit and self.rate > 0 and kind in self.random_kinds:
                hit = bool(self._rng.random() < self.rate)
            if hit:
                self.fired.append((kind, pin))
            return hit

    def describe(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "random_kinds": sorted(self.random_kinds),
            "per_pin": {k: sorted(v) for k, v in self.per_pin.items()},
        }
