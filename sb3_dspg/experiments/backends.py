"""Where the runs of a comparison grid execute: a local process pool, or Ray tasks on a cluster.

Both backends take the same jobs and yield ``(job, outcome)`` as runs finish, in completion order;
``outcome`` is the run's result, or the exception it raised: a run that fails for its own reason never
stops the grid. With Ray every run is a task (``num_cpus`` each) that needs no shared file system: it
trains in a temporary folder on its worker and returns its files, which the driver writes (see
:func:`pack_run` / :func:`unpack_run`). A task whose worker process dies is retried ``max_retries``
times; Ctrl-C cancels what is still pending and keeps everything already written.
"""

import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

BACKENDS = ("local", "ray")


class Job(NamedTuple):
    """One training run of a grid, with its budget and evaluation protocol."""

    spec: str
    algo: str
    seed: int
    timesteps: int
    eval_freq: int
    eval_episodes: int


def run_local(jobs: list[Job], run: Callable[..., dict], workers: int, **settings: Any) -> Iterator[tuple[Job, Any]]:
    """Run ``run(*job, **settings)`` for every job in a pool of ``workers`` processes (shared file system)."""
    pool = ProcessPoolExecutor(workers)
    futures = {pool.submit(run, *job, **settings): job for job in jobs}
    try:
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], error if error is not None else future.result()
    finally:  # normal end, an error, or Ctrl-C: nothing pending is started
        pool.shutdown(wait=True, cancel_futures=True)


def pack_run(run: Callable[..., dict], job: Job, **settings: Any) -> tuple[dict, dict[str, bytes]]:
    """
    On a worker without the driver's file system: train into a temporary folder and return the result with
    every file of the run (evaluations, ``done.json``, TensorBoard events) as ``{relative path: bytes}``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        result = run(*job, **{**settings, "out": tmp})
        files = {str(path.relative_to(tmp)): path.read_bytes() for path in Path(tmp).rglob("*") if path.is_file()}
    return result, files


def unpack_run(out: Path, files: dict[str, bytes]) -> None:
    """Write a packed run under ``out``; its ``done.json`` last, so that a half-written run is never taken as done."""
    for relative, data in sorted(files.items(), key=lambda item: item[0].endswith("done.json")):
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def run_ray(
    jobs: list[Job],
    run: Callable[..., dict],
    out: Path,
    workers: int,
    address: str | None = None,
    cpus_per_run: float = 1,
    max_retries: int = 2,
    **settings: Any,
) -> Iterator[tuple[Job, Any]]:
    """
    Every job as a Ray task. Without ``address`` a local Ray instance with ``workers`` CPUs is started;
    ``"auto"`` or ``"ray://HOST:PORT"`` joins a running cluster.

    :param cpus_per_run: ``num_cpus`` of each task (and its torch threads)
    :param max_retries: how often a task whose worker died is run again (errors the run raises are not retried)
    """
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else workers, include_dashboard=False, log_to_driver=False)
    task = ray.remote(pack_run).options(num_cpus=cpus_per_run, max_retries=max_retries, retry_exceptions=False)
    pending = {task.remote(run, job, **settings): job for job in jobs}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                result, files = ray.get(done[0])
            except Exception as error:  # the run's own exception (RayTaskError), or a worker that died too often
                yield job, getattr(error, "cause", None) or error
                continue
            unpack_run(out, files)
            yield job, result
    finally:
        for ref in pending:  # Ctrl-C or an error in the driver: stop what has not finished
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()
