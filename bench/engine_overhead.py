"""Engine overhead: the same two-node loop (count -> relay -> count, N iterations) through
bes.engine and through plain ``ewoksppf.execute_graph`` on its thread pool (and, for
reference, on its default process pool).

Prints milliseconds per node execution, and the ratio ewoksppf / bes.engine. ewoksppf runs
in a child process with a time bound; a thread-pool run that does not end within it is
reported as ``hung`` (it deadlocks, see docs/engine.md), a process-pool run as ``>bound``.

    python bench/engine_overhead.py [--sizes 100 1000 10000] [--bound-s 60]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # loop_tasks, when run from elsewhere
    sys.path.insert(0, str(HERE))


def loop_graph(n: int) -> dict[str, Any]:
    mapping = [{"source_output": k, "target_input": k} for k in ("n", "limit")]
    return {
        "graph": {"id": "bench_loop", "schema_version": "1.2"},
        "nodes": [
            {
                "id": "count",
                "task_type": "class",
                "task_identifier": "loop_tasks.Count",
                "force_start_node": True,
                "default_inputs": [{"name": "limit", "value": n}],
            },
            {"id": "relay", "task_type": "class", "task_identifier": "loop_tasks.Relay"},
        ],
        "links": [
            {
                "source": "count",
                "target": "relay",
                "data_mapping": mapping,
                "conditions": [{"source_output": "done", "value": False}],
            },
            {"source": "relay", "target": "count", "data_mapping": mapping},
        ],
    }


def nodes_for(n: int) -> int:
    return 2 * n - 1


def run_bes(n: int, with_events: bool) -> float:
    """Seconds for one run through bes.engine (recipe loading and validation included)."""
    from bes.engine import ListSubscriber, run_workflow
    from bes.engine.registry import DEFAULT_REGISTRY

    registry = DEFAULT_REGISTRY.with_packages("loop_tasks")
    subscribers = [ListSubscriber()] if with_events else []
    start = time.perf_counter()
    result = run_workflow(loop_graph(n), registry=registry, subscribers=subscribers)
    elapsed = time.perf_counter() - start
    if result.status != "finished" or result.outputs.get("n") != n:
        raise RuntimeError(f"bes.engine run of N={n} ended {result.detail}: {result.error}")
    if result.nodes_executed != nodes_for(n):
        raise RuntimeError(f"bes.engine ran {result.nodes_executed} nodes, not {nodes_for(n)}")
    return elapsed


def run_ewoksppf_child(n: int, pool_type: str) -> None:
    """In the child process: one ewoksppf run; prints seconds as JSON."""
    from ewoksppf import execute_graph

    start = time.perf_counter()
    result = execute_graph(loop_graph(n), pool_type=pool_type)
    elapsed = time.perf_counter() - start
    print(json.dumps({"seconds": elapsed, "n": result.get("n")}))


def run_ewoksppf(n: int, bound_s: float, pool_type: str = "thread") -> float | str:
    """Seconds, ``hung`` / ``>bound`` (no end within ``bound_s``) or ``failed``."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--ewoksppf-child",
        str(n),
        "--pool",
        pool_type,
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=bound_s, cwd=HERE, check=False
        )
    except subprocess.TimeoutExpired:
        return "hung" if pool_type == "thread" else f">{bound_s:g}s"
    try:
        report = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return "failed"
    return float(report["seconds"]) if report.get("n") == n else "failed"


def ratio_text(other: float | str, bes_s: float) -> str:
    return f"{other / bes_s:.0f}x" if isinstance(other, float) else "-"


def ms_per_node(seconds: float | str, n: int) -> str:
    return seconds if isinstance(seconds, str) else f"{seconds * 1e3 / nodes_for(n):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--bound-s", type=float, default=60.0, help="ewoksppf hang bound")
    parser.add_argument("--repeat", type=int, default=3, help="bes.engine runs per size (best)")
    parser.add_argument("--attempts", type=int, default=2, help="ewoksppf tries per size")
    parser.add_argument("--skip-ewoksppf", action="store_true")
    parser.add_argument(
        "--process-max-n", type=int, default=1000, help="largest N for the process-pool run"
    )
    parser.add_argument("--ewoksppf-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--pool", default="thread", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ewoksppf_child:
        run_ewoksppf_child(args.ewoksppf_child, args.pool)
        return 0

    run_bes(20, with_events=False)  # warm-up: imports, first-call caches
    header = (
        f"{'N':>6} {'nodes':>6} | {'bes.engine':>10} {'+events':>8} | "
        f"{'ewoksppf':>9} {'hung':>5} {'ratio':>6} | {'process':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        bes_s = min(run_bes(n, with_events=False) for _ in range(args.repeat))
        events_s = min(run_bes(n, with_events=True) for _ in range(args.repeat))
        ppf: float | str = "skipped"
        hangs = 0
        for _ in range(0 if args.skip_ewoksppf else args.attempts):
            ppf = run_ewoksppf(n, args.bound_s)
            if ppf != "hung":
                break
            hangs += 1
        tries = f"{hangs}/{hangs + (0 if ppf == 'hung' else 1)}" if not args.skip_ewoksppf else "-"
        process: float | str = "-"
        if not args.skip_ewoksppf and n <= args.process_max_n:
            process = run_ewoksppf(n, args.bound_s, "process")
        print(
            f"{n:>6} {nodes_for(n):>6} | {ms_per_node(bes_s, n):>10} "
            f"{ms_per_node(events_s, n):>8} | {ms_per_node(ppf, n):>9} {tries:>5} "
            f"{ratio_text(ppf, bes_s):>6} | {ms_per_node(process, n):>8} "
            f"{ratio_text(process, bes_s):>6}",
            flush=True,
        )
    print(
        "\nms per node execution; ratio = ewoksppf / bes.engine. "
        "bes.engine: recipe load and validation included; tasks run in this process. "
        f"ewoksppf: pool_type='thread', bound {args.bound_s:g} s per run, up to "
        f"{args.attempts} tries ('hung': runs that hung / runs tried); 'process': ewoksppf's "
        "default process pool (tasks in child processes: no in-memory beamline)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
