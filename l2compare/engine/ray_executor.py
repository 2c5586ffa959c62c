"""Run the same jobs on a Ray cluster (``l2compare run --executor ray``); the local pool stays the default.

Each job (a run spec, a parity group, a verify cell: ``l2compare.engine.workers.Job``) becomes one Ray
**task**, not a call on a long-lived actor:

- Ray retries a task whose worker process died (``max_retries``) and never retries one that
  raised (``retry_exceptions=False``): a killed worker is bad luck, a raising run is a bug.
  Actors would need restarts and at-least-once method retries wired by hand, and an actor holds
  its CPUs for life, so actors of one kind of process would starve the next kind's.
- Each kind of process (``workers._process_kinds``: Keras on TensorFlow with torch, Keras on JAX
  with torch, ...) has its own ``runtime_env``, whose environment variables (``KERAS_BACKEND``,
  the thread counts) are set before the worker's Python starts; Ray reuses a worker process only
  for tasks of the same runtime_env, so TensorFlow and torch are imported once per process, in the
  order ``workers.serve`` fixes, with the same thread settings as the local workers, and two
  Keras backends never meet in one process.
- A task asks for ``threads`` CPUs, and for a GPU where its columns can use one and the cluster has
  GPUs (``num_gpus``).

The driver keeps the local engine's bookkeeping: every result comes back to it as it finishes and
goes through the job's ``done`` (one atomic append to the store, under the same key); a job that
follows from another (a parity-mode torch run, after Keras's initial weights) is submitted with
that result as its argument. The driver is the only writer, so a result is recorded once; a
killed driver loses nothing that was recorded, and its rerun resumes from the store.
"""
from __future__ import annotations

import os

from l2compare.core import columns
from l2compare.engine import workers

# Retries of a task whose worker process died (killed, out of memory, node lost).
MAX_RETRIES = 3
GPU_COLUMNS = {"torch", "keras_torch", "keras_jax"}   # the columns whose libraries can use CUDA (not tensorflow-cpu)


def _run_task(served: tuple[columns.Column, ...], threads: int, function, args):
    """In a Ray worker process: become a worker of ``served`` (once per process), then run the job."""
    workers.serve(served, threads, slot=os.getpid())
    return workers._timed(function, args)


def _env(kind: tuple[columns.Column, ...], threads: int) -> dict[str, str]:
    """The environment variables a worker of ``kind`` starts with (``l2compare.core.environment.configure``'s)."""
    from l2compare.core import environment

    env = dict(environment.DEFAULTS)
    for column in kind:
        env.update({name: str(value) for name, value in column.env.items()})
    env.update({name: str(threads) for name in environment.THREAD_VARS})
    return env


def _init(address: str | None) -> bool:
    """Connect to the cluster at ``address`` (or RAY_ADDRESS), or start a local instance; True when
    this call started or joined Ray (and so must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    # A local instance: the worker processes import the project from this checkout as the driver does.
    runtime_env = None if address else {"env_vars": {"PYTHONPATH": os.pathsep.join(_project_paths())}}
    ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    return True


def _project_paths() -> list[str]:
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])  # the folder holding l2compare, keras_impl and torch_impl
    return [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def schedule(jobs: list[workers.Job], *, threads: int = 1, address: str | None = None,
             in_flight: int | None = None) -> None:
    """Run ``jobs`` (and those their results lead to) as Ray tasks, longest first, at most
    ``in_flight`` submitted at a time (default: twice the cluster's CPUs / ``threads``)."""
    if not jobs:
        return
    import ray

    kinds = workers._process_kinds(jobs)
    owns = _init(address)
    try:
        resources = ray.cluster_resources()
        in_flight = in_flight or max(1, 2 * int(resources.get("CPU", 1) // threads))
        gpus = resources.get("GPU", 0) > 0
        task = ray.remote(_run_task)
        ready = sorted(jobs, key=lambda j: j.cost, reverse=True)
        running: dict = {}
        while ready or running:
            while ready and len(running) < in_flight:
                job = ready.pop(0)
                kind = workers._kind_of(job, kinds)
                options = dict(num_cpus=threads, max_retries=MAX_RETRIES, retry_exceptions=False,
                               runtime_env={"env_vars": _env(kind, threads)})
                if gpus and set(job.columns) <= GPU_COLUMNS:
                    options["num_gpus"] = 1
                running[task.options(**options).remote(kind, threads, job.function, job.args)] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                try:
                    result, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:   # the job raised: recorded as failed, not retried
                    cause = exc.cause if exc.cause is not None else exc
                    job.failed(f"{type(cause).__name__}: {cause}")
                    continue
                except ray.exceptions.RayError as exc:   # its worker died more often than MAX_RETRIES
                    job.failed(f"{type(exc).__name__}: the worker died {MAX_RETRIES + 1} times: {exc}")
                    continue
                workers.finish_job(job, result, seconds, ready)
    finally:
        if owns:
            ray.shutdown()
