"""Writers run in other threads or processes by the concurrency and crash tests.

``python -m tests.record.workers crash URL``: records synthetic runs without end, printing
``committed N`` once run N is in the database, until killed.
"""

from __future__ import annotations

import sys

from bes.record.recorder import Recorder
from bes.record.synthetic import run_events

NODES = 20
EVENTS_PER_RUN = 2 + 4 * NODES


def write_runs(url: str, prefix: str, runs: int, nodes: int = NODES) -> int:
    """Record ``runs`` synthetic runs named ``<prefix>-<i>``; returns the rows dropped."""
    with Recorder(url, beamline="BL-CONCURRENT", flush_on_end=False, linger_s=0.05) as recorder:
        for index in range(runs):
            for event in run_events(f"{prefix}-{index}", nodes=nodes):
                recorder.on_event(event)
        recorder.flush()
        return recorder.stats.dropped


def crash_loop(url: str) -> None:
    """Runs of 200 nodes each, each committed (flushed) at its end, forever."""
    with Recorder(url, beamline="BL-CRASH", linger_s=0.01, batch_size=500) as recorder:
        index = 0
        while True:
            for event in run_events(f"crash-{index}", nodes=200):
                recorder.on_event(event)
            recorder.flush()
            print(f"committed {index}", flush=True)
            index += 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["crash"]:
        crash_loop(sys.argv[2])
