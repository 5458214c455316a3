"""LIMS write throughput: the per-image quality indicators of one mesh (30 x 30 = 900 images)
written through ``lims.client`` to the service on a loopback port.

Prints records/s and p50/p99 latency per call for: one bulk call per mesh, one call per mesh
row, one call per image (client), one call per image with bare ``requests`` (no client: the
HTTP floor), and the outbox replaying 900 single-image writes queued while the LIMS was down.

    python bench/lims_writes.py [--images 900] [--reps 5] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == HERE:
    sys.path.pop(0)  # run as a script, this file (lims.py) would hide the lims package

import requests  # noqa: E402

from lims.client import LimsClient, Visit  # noqa: E402
from lims.client import records as r  # noqa: E402
from lims.service.embedded import EmbeddedLims, start_embedded  # noqa: E402

ROW = 30


@dataclass
class Result:
    mode: str
    calls: int
    records: int
    seconds: float
    latencies_s: list[float]

    def row(self) -> str:
        lat = sorted(self.latencies_s)
        p50 = statistics.median(lat) * 1e3
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1e3
        rate = self.records / self.seconds
        return (
            f"{self.mode:<34}{self.calls:>7}{self.records:>9}{self.seconds:>9.2f}"
            f"{rate:>12.0f}{p50:>10.2f}{p99:>10.2f}"
        )


def indicators(images: int) -> list[r.ImageQualityIndicators]:
    return [
        r.ImageQualityIndicators(imageNumber=i, spotTotal=i % 97, dozor_score=(i % 13) / 3.0)
        for i in range(1, images + 1)
    ]


def timed_calls(calls: list[Callable[[], object]]) -> tuple[float, list[float]]:
    latencies = []
    start = time.perf_counter()
    for call in calls:
        t = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - t)
    return time.perf_counter() - start, latencies


def bench(lims: EmbeddedLims, work: Path, images: int, reps: int) -> list[Result]:
    client = LimsClient(lims.url, lims.token, outbox=work / "outbox.sqlite")
    client.add_proposal(r.Proposal(proposalCode="mx", proposalNumber="1"))
    client.add_session("mx1", r.BLSession(visit_number=1))
    visit = Visit("mx1", 1)
    group = client.add_data_group(visit, r.DataCollectionGroup(experimentType="Mesh"))
    items = indicators(images)
    results = []

    def new_collection() -> int:
        handle = client.add_data_collection(group, r.DataCollection(numberOfImages=images))
        assert handle.id is not None
        return handle.id

    def run(mode: str, make_calls: Callable[[int], list[Callable[[], object]]], n: int) -> None:
        total_s, latencies = 0.0, []
        calls = 0
        for _ in range(n):
            batch = make_calls(new_collection())
            seconds, lat = timed_calls(batch)
            total_s += seconds
            latencies += lat
            calls += len(batch)
        results.append(Result(mode, calls, n * images, total_s, latencies))

    run(
        "bulk: 1 call per mesh",
        lambda dc: [partial(client.add_image_quality_indicators, dc, items)],
        reps,
    )
    run(
        f"bulk: 1 call per mesh row ({ROW})",
        lambda dc: [
            partial(client.add_image_quality_indicators, dc, items[i : i + ROW])
            for i in range(0, images, ROW)
        ],
        reps,
    )
    run(
        "one by one (client)",
        lambda dc: [partial(client.add_image_quality_indicators, dc, [one]) for one in items],
        max(1, reps // 2),
    )
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {lims.token}"

    def bare(dc: int, one: r.ImageQualityIndicators) -> None:
        answer = http.post(
            f"{lims.url}/data-collections/{dc}/image-quality-indicators",
            json=[one.model_dump(mode="json", exclude_none=True)],
            headers={"Idempotency-Key": uuid.uuid4().hex},
            timeout=30,
        )
        answer.raise_for_status()

    run(
        "one by one (bare requests)",
        lambda dc: [partial(bare, dc, one) for one in items],
        max(1, reps // 2),
    )
    http.close()

    # Replay: the LIMS goes down, 900 single-image writes queue, it comes back, flush.
    dc = new_collection()
    port, token, reader = lims.port, lims.token, lims.reader_token
    lims.stop()
    offline = LimsClient(
        lims.url, token, outbox=work / "replay.sqlite", retries=0, auto_replay=False
    )
    queue_s, queue_lat = timed_calls(
        [partial(offline.add_image_quality_indicators, dc, [one]) for one in items]
    )
    results.append(Result("queued while down (outbox)", images, images, queue_s, queue_lat))
    restarted = start_embedded(work / "lims", port=port, token=token, reader_token=reader)
    start = time.perf_counter()
    report = offline.flush()
    replay_s = time.perf_counter() - start
    assert report.delivered == images and report.pending == 0, report
    results.append(
        Result("outbox replay after restart", images, images, replay_s, [replay_s / images])
    )
    offline.close()
    client.close()
    restarted.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=900, help="images per mesh (default 900)")
    parser.add_argument("--reps", type=int, default=5, help="meshes per bulk mode (default 5)")
    parser.add_argument("--database-url", help="LIMS database (default: SQLite in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lims = start_embedded(work / "lims", database_url=args.database_url)
        database = "PostgreSQL" if args.database_url else "SQLite"
        try:
            results = bench(lims, work, args.images, args.reps)
        finally:
            if lims.running:
                lims.stop()
    print(f"LIMS writes of image quality indicators, {args.images} per mesh, {database}, loopback")
    header = (
        ("calls", 7),
        ("records", 9),
        ("s", 9),
        ("records/s", 12),
        ("p50 ms", 10),
        ("p99 ms", 10),
    )
    print(f"{'mode':<34}" + "".join(f"{name:>{width}}" for name, width in header))
    for result in results:
        print(result.row())
    print("(replay: p50/p99 are the mean per write)")


if __name__ == "__main__":
    main()
