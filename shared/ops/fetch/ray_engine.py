"""``--engine ray``: the planned clips, in batches, as Ray tasks on a local instance or an existing cluster.

The driver keeps the ledger: tasks fetch into the shared output folder or fsspec target (temp name, then
rename or move, as the thread engine does) and return their ledger rows, which the driver records as results come in.  So the
SQLite file is only ever written on one machine (SQLite's locking is not safe on network filesystems),
and a task that dies costs only its own batch: those clips have no ledger row and the next run fetches
them.  Each task runs ``workers`` threads; ``--rate`` applies per task.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from typing import Any

from avsets.metadata.ledger import Ledger, LedgerRow

from .clip import ClipFetcher, ClipRequest, FetchOptions
from .status import FetchSetupError
from .target import Target


def fetch_batch(requests: list[tuple[ClipRequest, LedgerRow | None]], target: Target,
                options: FetchOptions) -> list[tuple[LedgerRow, int]]:
    """Run inside a Ray task: fetch a batch (each clip with its ledger row, so files of earlier runs are kept)
    with the task's own thread pool; return rows for the driver."""
    from concurrent.futures import ThreadPoolExecutor

    fetcher = ClipFetcher(target, options)
    try:
        with ThreadPoolExecutor(max_workers=max(1, options.workers)) as pool:
            return list(pool.map(lambda item: fetcher.fetch(*item), requests))
    finally:
        fetcher.close()


def _init_ray(options: FetchOptions) -> Any:
    try:
        import ray
    except ImportError as e:
        raise FetchSetupError("--engine ray needs Ray: pip install 'avsets[ray]'") from e
    if not ray.is_initialized():
        if options.address:
            ray.init(address=options.address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count() or 1, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False)
    return ray


def run_ray(planned: Iterator[tuple[ClipRequest, LedgerRow | None]], target: Target, options: FetchOptions, ledger: Ledger,
            report: Any, progress: Any) -> None:
    """Dispatch batches, at most two per CPU of the cluster in flight, and record results as they land."""
    ray = _init_ray(options)
    remote = ray.remote(num_cpus=1, max_retries=1)(fetch_batch)
    cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
    max_in_flight = max(2, 2 * cpus)
    task_options = options  # the task never re-dispatches: it always uses threads
    in_flight: list[Any] = []
    requests = iter(planned)

    def drain(block_until: int) -> None:
        nonlocal in_flight
        while len(in_flight) > block_until:
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            for row, attempts in ray.get(ready[0]):
                ledger.record(row, add_attempts=attempts)
                report.add(row)
                if progress is not None:
                    progress(row)

    try:
        while True:
            batch = list(islice(requests, max(1, options.ray_batch_size)))
            if not batch:
                break
            in_flight.append(remote.remote(batch, target, task_options))
            drain(max_in_flight - 1)
        drain(0)
    except BaseException:
        # Ctrl-C: cancel the batches in flight (their clips get no ledger row, so the next run fetches them;
        # a task's temporary files carry its host and pid and are removed by the next run on that host).
        for ref in in_flight:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that already finished cannot be cancelled
                pass
        raise
