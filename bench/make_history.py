"""Fill a workflow database with N synthetic MXPressE-like samples, for benchmarks.

    python bench/make_history.py --url sqlite:////tmp/history.db --samples 100000

Distributions come from the simulator: the sample world's mix (empty loops, weak crystals,
crystal sizes and resolution limits as ``simulators.world_builder`` draws them) and the
timing profile (sample changer load/unload, detector arm and frame rate, raster-line
overhead). Runs follow each other on several beamlines, night after night from 18:00 to
08:00 UTC, in recipes ``mxpresse`` (mount, centre loop, two meshes, X-ray centring,
characterisation, collection, unmount), ``mesh_and_collect`` and ``characterisation``; some
fail (robot load, loop not found, detector), a few are aborted, and samples without crystal
or with weak diffraction end early with the decision recorded.

Rows are what the recorder writes (raw rows, run summary, step and decision counts), bulk
inserted with the database driver's ``executemany``. Node inputs and outputs are left out
(NULL) to keep the file small; device actions are not generated.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bes import __version__
from bes.record.database import Database, parse_url
from bes.record.summary import BINS_PER_DECADE, N_BINS, normalise_reason
from simulators.profile import TimingProfile
from simulators.world_builder import PROTEINS, WorldMix

NODES = (
    ("mount", "bes.tasks.mx.MountSample"),
    ("centre_loop", "bes.tasks.mx.CentreLoop"),
    ("mesh_0", "bes.tasks.mx.MeshScan"),
    ("mesh_90", "bes.tasks.mx.MeshScan"),
    ("xray_centre", "bes.tasks.mx.XrayCentre"),
    ("characterise", "bes.tasks.mx.Characterise"),
    ("collect", "bes.tasks.mx.Collect"),
    ("unmount", "bes.tasks.mx.UnmountSample"),
)
MOUNT, CENTRE, MESH0, MESH90, XRAY, CHAR, COLLECT, UNMOUNT = range(len(NODES))
RECIPES = ("mxpresse", "mesh_and_collect", "characterisation")
RECIPE_SHARE = (0.75, 0.15, 0.10)
RECIPE_NODES = {  # which node slots each recipe runs on its full path
    0: (MOUNT, CENTRE, MESH0, MESH90, XRAY, CHAR, COLLECT, UNMOUNT),
    1: (MOUNT, CENTRE, MESH0, MESH90, XRAY, COLLECT, UNMOUNT),
    2: (MOUNT, CENTRE, MESH0, MESH90, XRAY, CHAR, UNMOUNT),
}
LOAD_FAIL, LOOP_FAIL, DETECTOR_FAIL, ABORT = 0.01, 0.02, 0.005, 0.002
WEAK_LIMIT_A = 3.5
NIGHT_START_H, NIGHT_HOURS = 18, 14
SESSION_S = 3 * 3600
"""A session (one user group's shift) lasts three hours of a night."""
GAP_S = 0.05
"""Engine time between two nodes."""


@dataclass(frozen=True)
class HistoryInfo:
    samples: int
    events: int
    rows: int
    seconds: float
    url: str


def make_history(
    url: str,
    samples: int,
    *,
    seed: int = 1,
    beamlines: int = 4,
    first_night: str = "2021-01-04",
    chunk: int = 50_000,
    progress: bool = False,
) -> HistoryInfo:
    """Append ``samples`` synthetic runs to the database at ``url`` (schema upgraded first)."""
    database = Database(parse_url(url))
    database.upgrade()
    profile = TimingProfile.load()
    mix = WorldMix()
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    raw = database.engine.raw_connection()
    try:
        marker = "?" if database.backend == "sqlite" else "%s"
        cursor = raw.cursor()
        if database.backend == "sqlite":
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-1048576")
        cursor.execute("SELECT coalesce(max(id), 0) FROM runs")
        first_id = int(cursor.fetchone()[0]) + 1
        night0 = np.datetime64(first_night, "s").astype(np.int64)
        offsets = np.zeros(beamlines)  # seconds of night time used so far, per beamline
        steps: Counter[tuple[Any, ...]] = Counter()
        step_totals: Counter[tuple[Any, ...]] = Counter()
        links: Counter[tuple[Any, ...]] = Counter()
        taken: Counter[tuple[Any, ...]] = Counter()
        events = rows = 0
        done = 0
        while done < samples:
            n = min(chunk, samples - done)
            batch = _chunk(rng, n, first_id + done, seed, beamlines, offsets, night0, profile, mix)
            if database.backend == "sqlite":  # the connection is in autocommit mode
                cursor.execute("BEGIN")
            for table, columns, values in batch.tables:
                _insert(cursor, table, columns, values, marker)
                rows += len(values)
            raw.commit()
            events += batch.events
            for key, (count, total) in batch.steps.items():
                steps[key] += count
                step_totals[key] += total
            for key, (count, count_taken) in batch.links.items():
                links[key] += count
                taken[key] += count_taken
            done += n
            if progress:
                elapsed = time.perf_counter() - start
                print(f"  {done:>9,} samples  {rows:>11,} rows  {elapsed:6.1f} s", flush=True)
        if database.backend == "sqlite":
            cursor.execute("BEGIN")
        step_rows = [(*key, steps[key], step_totals[key]) for key in steps]
        _insert(
            cursor,
            "step_stats",
            ("period", "beamline", "recipe", "node_id", "status", "bin", "n", "total_s"),
            _upsertable(cursor, step_rows, "step_stats", 6, database.backend),
            marker,
        )
        link_rows = [(*key, links[key], taken[key]) for key in links]
        _insert(
            cursor,
            "decision_stats",
            ("period", "beamline", "recipe", "node_id", "target", "n_evaluated", "n_taken"),
            _upsertable(cursor, link_rows, "decision_stats", 5, database.backend),
            marker,
        )
        rows += len(step_rows) + len(link_rows)
        raw.commit()
        if database.backend == "sqlite":
            cursor.execute("ANALYZE")
            raw.commit()
    finally:
        raw.close()
        database.dispose()
    return HistoryInfo(samples, events, rows, time.perf_counter() - start, url)


@dataclass
class _Batch:
    tables: list[tuple[str, tuple[str, ...], list[tuple[Any, ...]]]]
    events: int
    steps: dict[tuple[Any, ...], tuple[int, float]]
    links: dict[tuple[Any, ...], tuple[int, int]]


def _chunk(
    rng: np.random.Generator,
    n: int,
    first_id: int,
    seed: int,
    beamlines: int,
    offsets: np.ndarray,
    night0: int,
    profile: TimingProfile,
    mix: WorldMix,
) -> _Batch:
    ids = np.arange(first_id, first_id + n)
    recipe = rng.choice(len(RECIPES), size=n, p=RECIPE_SHARE)
    # The sample: loop and crystal as simulators.world_builder draws them.
    loop_um = rng.uniform(100.0, 400.0, n)
    loop_w_um = loop_um * rng.uniform(0.6, 1.0, n)
    empty = rng.random(n) < mix.empty_fraction
    weak = rng.random(n) < mix.weak_fraction
    largest = np.maximum(np.minimum(150.0, 0.7 * np.minimum(loop_um, loop_w_um)), 10.0)
    size_um = np.exp(rng.uniform(np.log(10.0), np.log(largest)))
    volume_um3 = size_um**3 * rng.uniform(0.4, 1.0, n) * rng.uniform(0.2, 0.8, n) * np.pi / 6
    strength = np.where(weak, rng.uniform(0.02, 0.15, n), np.exp(rng.normal(0.0, 0.5, n)))
    limit_a = np.where(weak, rng.uniform(2.8, 4.0, n), rng.uniform(1.2, 3.0, n))
    resolution_a = limit_a * rng.uniform(1.0, 1.15, n)
    max_score = np.where(
        empty,
        rng.uniform(0.0, 2.0, n),
        20.0 * strength * (size_um / 50.0) ** 1.5 * np.exp(rng.normal(0.0, 0.3, n)),
    )
    space_groups = np.array([p.space_group for p in PROTEINS.values()])
    space_group = space_groups[rng.integers(len(space_groups), size=n)]

    # Step times (beamline time, seconds) from the timing profile.
    sc, det, gon = profile.sample_changer, profile.detector, profile.goniometer
    points = np.ceil(loop_um / 20.0) * np.ceil(loop_w_um / 20.0)
    lines = np.ceil(loop_w_um / 20.0)
    mesh_s = points * 0.004 + lines * gon.raster_line_overhead_s + det.arm_s + det.disarm_s
    images = rng.choice([900, 1800, 3600], size=n)
    duration = np.zeros((n, len(NODES)))
    duration[:, MOUNT] = sc.load_s * rng.uniform(0.9, 1.15, n)
    duration[:, CENTRE] = rng.uniform(10.0, 30.0, n)  # snapshots, loop finding, moves
    duration[:, MESH0] = mesh_s + rng.uniform(5.0, 15.0, n)  # + moves and spot finding
    duration[:, MESH90] = mesh_s + rng.uniform(5.0, 15.0, n)
    duration[:, XRAY] = rng.uniform(0.5, 3.0, n)
    duration[:, CHAR] = rng.uniform(40.0, 120.0, n)  # reference images, indexing, strategy
    rate_hz = rng.choice([25.0, 50.0, 100.0], size=n)
    duration[:, COLLECT] = images / np.minimum(det.max_frame_rate_hz, rate_hz) + det.arm_s + 10.0
    duration[:, UNMOUNT] = sc.unload_s * rng.uniform(0.9, 1.1, n)

    # Which nodes run, and how each run ends.
    runs = np.zeros((n, len(NODES)), dtype=bool)
    for index, slots in RECIPE_NODES.items():
        runs[np.ix_(recipe == index, list(slots))] = True
    has_char = runs[:, CHAR].copy()
    has_collect = runs[:, COLLECT].copy()
    failed_at = np.full(n, -1)
    u = rng.random(n)
    failed_at[u < LOAD_FAIL] = MOUNT
    failed_at[(u >= LOAD_FAIL) & (u < LOAD_FAIL + LOOP_FAIL)] = CENTRE
    collect_fail = has_collect & (rng.random(n) < DETECTOR_FAIL) & (failed_at < 0)
    aborted = (rng.random(n) < ABORT) & (failed_at < 0)
    abort_at = rng.integers(MOUNT, XRAY + 1, size=n)
    no_crystal = empty & (failed_at < 0) & ~aborted
    too_weak = has_char & ~empty & (resolution_a > WEAK_LIMIT_A) & (failed_at < 0) & ~aborted
    # Early ends: skip the slots after X-ray centring (no crystal) or characterisation (weak).
    runs[np.ix_(no_crystal, [CHAR, COLLECT])] = False
    runs[np.ix_(too_weak & (recipe == 0), [COLLECT])] = False
    failed_at[collect_fail & ~no_crystal & ~too_weak] = COLLECT
    stop_at = np.where(failed_at >= 0, failed_at, np.where(aborted, abort_at, len(NODES)))
    slot = np.arange(len(NODES))
    runs &= slot[None, :] <= stop_at[:, None]
    status = np.where(failed_at >= 0, "failed", np.where(aborted, "aborted", "finished"))
    node_status = np.full((n, len(NODES)), "finished", dtype=object)
    rows_failed = np.flatnonzero(failed_at >= 0)
    node_status[rows_failed, failed_at[rows_failed]] = "failed"
    rows_aborted = np.flatnonzero(aborted)
    node_status[rows_aborted, abort_at[rows_aborted]] = "aborted"
    duration[rows_failed, failed_at[rows_failed]] *= 0.5
    duration[rows_aborted, abort_at[rows_aborted]] *= 0.3
    duration = np.where(runs, duration, 0.0)

    # When: beamline after beamline, samples back to back in 14-hour nights.
    beamline = (ids % beamlines).astype(int)
    total = duration.sum(axis=1) + GAP_S * runs.sum(axis=1) + 2.0
    run_start = np.zeros(n)
    night_index = np.zeros(n, dtype=np.int64)
    position = np.zeros(n, dtype=np.int64)
    for b in range(beamlines):
        mine = np.flatnonzero(beamline == b)
        ends = offsets[b] + np.cumsum(total[mine])
        starts = ends - total[mine]
        night = np.floor(starts / (NIGHT_HOURS * 3600)).astype(np.int64)
        into = starts - night * NIGHT_HOURS * 3600
        run_start[mine] = night0 + night * 86400 + NIGHT_START_H * 3600 + into
        night_index[mine] = night
        position[mine] = np.floor(into / SESSION_S).astype(np.int64)
        offsets[b] = ends[-1] if len(ends) else offsets[b]
    run_end = run_start + total
    node_end_offsets = np.cumsum(duration + GAP_S * runs, axis=1)
    node_start = run_start[:, None] + node_end_offsets - duration
    node_end = run_start[:, None] + node_end_offsets

    day = np.datetime_as_string(run_start.astype("datetime64[s]"), unit="D")
    night_day = np.datetime_as_string((run_start - 12 * 3600).astype("datetime64[s]"), unit="D")
    beamline_names = np.array([f"MX-{chr(ord('A') + b)}" for b in range(beamlines)])
    bl = beamline_names[beamline]
    recipe_name = np.array(RECIPES)[recipe]
    session = [
        f"{b}-{ni:05d}-{p}"
        for b, ni, p in zip(bl.tolist(), night_index.tolist(), position.tolist(), strict=True)
    ]
    sample = [f"{seed}-{i}" for i in ids.tolist()]
    run_uuid = [f"{seed:08x}{i:024x}" for i in ids.tolist()]

    # Outcome and reason per run.
    outcome = np.where(
        status == "failed",
        "failed",
        np.where(
            status == "aborted",
            "aborted",
            np.where(
                no_crystal,
                "no_crystal",
                np.where(
                    too_weak & (recipe == 0),
                    "weak_diffraction",
                    np.where(recipe == 2, "characterised", "collected"),
                ),
            ),
        ),
    )
    success = (status == "finished") & ~no_crystal & ~(too_weak & (recipe == 0))
    error_node = np.full(n, None, dtype=object)
    error_kind = np.full(n, None, dtype=object)
    message = np.full(n, None, dtype=object)
    names = np.array([name for name, _ in NODES], dtype=object)
    error_node[rows_failed] = names[failed_at[rows_failed]]
    error_kind[rows_failed] = "exception"
    message[failed_at == MOUNT] = [
        f"LoadError: pin {1 + i % 24}:{1 + i % 16} not found in the dewar"
        for i in ids[failed_at == MOUNT].tolist()
    ]
    message[failed_at == CENTRE] = [
        f"LoopNotFound: no loop in the snapshot at omega {90 * (i % 2)} deg"
        for i in ids[failed_at == CENTRE].tolist()
    ]
    message[failed_at == COLLECT] = [
        f"DetectorError: frame {i % 3600} not received within 1.5 s"
        for i in ids[failed_at == COLLECT].tolist()
    ]
    reason: list[str | None] = []
    for k in range(n):
        if success[k]:
            reason.append(None)
        elif status[k] == "failed":
            reason.append(normalise_reason(f"exception: {message[k]}"))
        elif status[k] == "aborted":
            reason.append("aborted")
        elif no_crystal[k]:
            reason.append("no diffraction in either mesh scan")
        else:
            reason.append(normalise_reason(f"resolution {resolution_a[k]:.2f} A worse than 3.5 A"))

    # Metadata per run: X-ray centring (crystal size, score), characterisation
    # (resolution), collection (dose), and the outcome at the end.
    xray_done = runs[:, XRAY] & (node_status[:, XRAY] == "finished")
    char_done = runs[:, CHAR] & (node_status[:, CHAR] == "finished")
    collect_done = runs[:, COLLECT] & (node_status[:, COLLECT] == "finished")
    dose_mgy = np.where(collect_done, rng.uniform(2.0, 19.0, n), np.nan)
    metadata: list[tuple[Any, ...]] = []

    def add_metadata(mask: np.ndarray, slot_index: int, key: str, values: Any, unit: Any) -> None:
        where = np.flatnonzero(mask)
        times = node_end[where, slot_index]
        node = NODES[slot_index][0]
        value_list = np.asarray(values)[where].tolist()
        for run_key, value, t in zip(ids[where].tolist(), value_list, times.tolist(), strict=True):
            number = value if isinstance(value, float) else None
            text = f'"{value}"' if isinstance(value, str) else repr(value)
            metadata.append((run_key, node, 1, key, text, number, unit, t, None))

    add_metadata(xray_done & ~empty, XRAY, "crystal_size_um", size_um, "um")
    add_metadata(xray_done, XRAY, "max_score", max_score, None)
    add_metadata(char_done, CHAR, "resolution_a", resolution_a, "A")
    add_metadata(collect_done, COLLECT, "dose_mgy", dose_mgy, "MGy")
    finished = status == "finished"
    last_slot = np.where(runs[:, UNMOUNT], UNMOUNT, XRAY)
    for slot_index in (XRAY, UNMOUNT):
        add_metadata(finished & (last_slot == slot_index), slot_index, "outcome", outcome, None)

    # Decisions: after X-ray centring (crystal found?), after characterisation (good enough?).
    decisions: list[tuple[Any, ...]] = []
    link_counts: Counter[tuple[Any, ...]] = Counter()
    link_taken: Counter[tuple[Any, ...]] = Counter()

    def add_decisions(
        mask: np.ndarray, slot_index: int, output: str, targets: dict[str, bool], ok: np.ndarray
    ) -> None:
        where = np.flatnonzero(mask)
        node = NODES[slot_index][0]
        for k in where.tolist():
            value = bool(ok[k])
            for target, wanted in targets.items():
                is_taken = value == wanted
                cond = f"{output} == {'true' if wanted else 'false'}"
                why = (
                    f"taken: {output} = {str(value).lower()}"
                    if is_taken
                    else (f"not taken: {output} = {str(value).lower()}, not {str(wanted).lower()}")
                )
                decisions.append(
                    (
                        int(ids[k]),
                        node,
                        1,
                        target,
                        cond,
                        f'{{"{output}": {str(value).lower()}}}',
                        is_taken,
                        why,
                        float(node_end[k, slot_index]),
                        None,
                    )
                )
                for period in (day[k], day[k][:7]):
                    key = (period, bl[k], recipe_name[k], node, target)
                    link_counts[key] += 1
                    link_taken[key] += int(is_taken)

    next_after_xray = np.where(recipe == 1, "collect", "characterise")
    for r, target in ((0, "characterise"), (1, "collect"), (2, "characterise")):
        add_decisions(
            xray_done & (next_after_xray == target) & (recipe == r),
            XRAY,
            "crystal_found",
            {target: True, "unmount": False},
            ~empty,
        )
    add_decisions(
        char_done & (recipe == 0),
        CHAR,
        "resolution_ok",
        {"collect": True, "unmount": False},
        resolution_a <= WEAK_LIMIT_A,
    )

    # Node executions, in run order.
    run_rows, slot_rows = np.nonzero(runs)
    node_names = names[slot_rows]
    tasks = np.array([task for _, task in NODES], dtype=object)[slot_rows]
    step_s = duration[run_rows, slot_rows]
    node_rows = list(
        zip(
            ids[run_rows].tolist(),
            node_names.tolist(),
            tasks.tolist(),
            [1] * len(run_rows),
            node_status[run_rows, slot_rows].tolist(),
            node_start[run_rows, slot_rows].tolist(),
            node_end[run_rows, slot_rows].tolist(),
            step_s.tolist(),
            (node_start[run_rows, slot_rows] - run_start[run_rows]).tolist(),
            step_s.tolist(),
            [False] * len(run_rows),
            np.where(node_status[run_rows, slot_rows] == "failed", "exception", None).tolist(),
            np.where(
                node_status[run_rows, slot_rows] == "failed", message[run_rows], None
            ).tolist(),
            strict=True,
        )
    )
    bins = np.clip(
        np.floor(BINS_PER_DECADE * np.log10(np.maximum(step_s, 1e-3) / 1e-3)), 0, N_BINS - 1
    ).astype(int)
    frame = pd.DataFrame(
        {
            "day": day[run_rows],
            "beamline": bl[run_rows],
            "recipe": recipe_name[run_rows],
            "node_id": node_names,
            "status": node_status[run_rows, slot_rows],
            "bin": bins,
            "step_s": step_s,
        }
    )
    keys = ["period", "beamline", "recipe", "node_id", "status", "bin"]
    both = pd.concat(
        [
            frame.rename(columns={"day": "period"}),
            frame.assign(day=frame["day"].str[:7]).rename(columns={"day": "period"}),
        ]
    )
    grouped = both.groupby(keys, sort=False)["step_s"].agg(["size", "sum"])
    step_counts = {
        key: (int(count), float(total))
        for key, count, total in zip(
            grouped.index.tolist(), grouped["size"].tolist(), grouped["sum"].tolist(), strict=True
        )
    }

    n_nodes = runs.sum(axis=1)
    n_failed_nodes = (runs & (node_status != "finished")).sum(axis=1)
    n_decisions = Counter(d[0] for d in decisions)
    n_meta = Counter(m[0] for m in metadata)
    wall = run_end - run_start
    run_rows_out = list(
        zip(
            ids.tolist(),
            run_uuid,
            recipe_name.tolist(),
            [f"{r:064x}" for r in recipe.tolist()],
            ["1"] * n,
            [None] * n,
            [__version__] * n,
            status.tolist(),
            run_start.tolist(),
            run_end.tolist(),
            wall.tolist(),
            [0.0] * n,
            wall.tolist(),
            bl.tolist(),
            ["synthetic"] * n,
            ["mxbes"] * n,
            sample,
            session,
            [None] * n,
            [f'{{"sample_id": "{s}"}}' for s in sample],
            error_node.tolist(),
            error_kind.tolist(),
            message.tolist(),
            strict=True,
        )
    )
    size_known = xray_done & ~empty
    summary_rows = list(
        zip(
            ids.tolist(),
            day.tolist(),
            night_day.tolist(),
            run_start.tolist(),
            run_end.tolist(),
            wall.tolist(),
            wall.tolist(),
            recipe_name.tolist(),
            bl.tolist(),
            session,
            sample,
            status.tolist(),
            success.tolist(),
            outcome.tolist(),
            reason,
            error_node.tolist(),
            n_nodes.tolist(),
            n_failed_nodes.tolist(),
            [n_decisions.get(i, 0) for i in ids.tolist()],
            [n_meta.get(i, 0) for i in ids.tolist()],
            [0] * n,
            _or_none(size_um, size_known),
            _or_none(volume_um3, size_known),
            _or_none(max_score, xray_done),
            _or_none(resolution_a, char_done),
            _or_none(dose_mgy, collect_done),
            [None] * n,
            np.where(char_done, space_group, None).tolist(),
            strict=True,
        )
    )
    events = 2 * n + 2 * len(node_rows) + len(decisions) + len(metadata)
    return _Batch(
        tables=[
            ("runs", RUN_COLUMNS, run_rows_out),
            ("node_executions", NODE_COLUMNS, node_rows),
            ("decisions", DECISION_COLUMNS, decisions),
            ("metadata_items", METADATA_COLUMNS, metadata),
            ("run_summary", SUMMARY_COLUMNS, summary_rows),
        ],
        events=events,
        steps=step_counts,
        links={key: (link_counts[key], link_taken[key]) for key in link_counts},
    )


RUN_COLUMNS = (
    "id", "run_id", "recipe", "recipe_sha256", "recipe_version", "recipe_source",
    "bes_version", "status", "start_time", "end_time", "wall_s", "start_beamline_s",
    "end_beamline_s", "beamline", "host", "user_name", "sample", "session", "request_id",
    "inputs", "error_node", "error_kind", "error_message",
)  # fmt: skip
NODE_COLUMNS = (
    "run_id", "node_id", "task_identifier", "execution", "status", "start_time", "end_time",
    "wall_s", "start_beamline_s", "beamline_s", "handled", "error_kind", "error_message",
)  # fmt: skip
DECISION_COLUMNS = (
    "run_id", "node_id", "execution", "target", "condition", "value", "taken", "reason",
    "time", "beamline_time_s",
)  # fmt: skip
METADATA_COLUMNS = (
    "run_id", "node_id", "execution", "key", "value", "value_num", "unit", "time",
    "beamline_time_s",
)  # fmt: skip
SUMMARY_COLUMNS = (
    "run_id", "day", "night", "start_time", "end_time", "wall_s", "beamline_s", "recipe",
    "beamline", "session", "sample", "status", "success", "outcome", "reason", "error_node",
    "n_nodes", "n_failed_nodes", "n_decisions", "n_metadata", "n_device_actions",
    "crystal_size_um", "crystal_volume_um3", "max_score", "resolution_a", "dose_mgy",
    "mosaicity_deg", "space_group",
)  # fmt: skip


def _or_none(values: np.ndarray, known: np.ndarray) -> list[float | None]:
    return [float(v) if k else None for v, k in zip(values.tolist(), known.tolist(), strict=True)]


def _insert(
    cursor: Any, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]], marker: str
) -> None:
    if not rows:
        return
    sql = (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))})"
    )
    cursor.executemany(sql, rows)


def _upsertable(
    cursor: Any, rows: list[tuple[Any, ...]], table: str, keys: int, backend: str
) -> list[tuple[Any, ...]]:
    """Stats rows not yet in the table (appending to a history: add to existing counts)."""
    cursor.execute(f"SELECT count(*) FROM {table}")
    if cursor.fetchone()[0] == 0:
        return rows
    marker = "?" if backend == "sqlite" else "%s"
    names = (
        ("period", "beamline", "recipe", "node_id", "status", "bin")
        if table == "step_stats"
        else ("period", "beamline", "recipe", "node_id", "target")
    )
    counters = ("n", "total_s") if table == "step_stats" else ("n_evaluated", "n_taken")
    where = " AND ".join(f"{name} = {marker}" for name in names)
    sets = ", ".join(f"{c} = {c} + {marker}" for c in counters)
    fresh = []
    for row in rows:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE {where}", (*row[keys:], *row[:keys]))
        if cursor.rowcount == 0:
            fresh.append(row)
    return fresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="database URL (sqlite:///... or postgres)")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--beamlines", type=int, default=4)
    parser.add_argument("--first-night", default="2021-01-04", help="YYYY-MM-DD")
    args = parser.parse_args(argv)
    info = make_history(
        args.url,
        args.samples,
        seed=args.seed,
        beamlines=args.beamlines,
        first_night=args.first_night,
        progress=True,
    )
    print(
        f"{info.samples:,} samples, {info.events:,} events, {info.rows:,} rows in "
        f"{info.seconds:.1f} s ({info.events / info.seconds:,.0f} events/s) -> {info.url}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
