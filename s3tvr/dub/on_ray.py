"""A catalogue dubbed on a Ray cluster (``s3tvr dub … --ray auto|ADDRESS``).

Each worker is a Ray actor holding a :class:`~s3tvr.dub.catalogue.Worker` (its engines, so its
models, for its whole life); the driver hands a job to each free actor and waits for the first to
finish (``ray.wait``). An actor that dies with its node takes only its current job with it: that
job goes back in the queue (within --retries) for another actor, which finishes it from the job's
work folder, on storage every node reaches. With no actor left, what remains is reported failed.
Ray is imported here only: the rest of s3tvr never needs it.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any, Optional, Sequence

from s3tvr.config import Config
from s3tvr.dub.catalogue import Catalogue, Job, JobResult, Worker, _said
from s3tvr.errors import InputError, SetupError, brief
from s3tvr.progress import Progress

log = logging.getLogger(__name__)

# Passed on to the workers: where models are cached, and whether they may be downloaded.
FORWARDED_ENV = ("S3TVR_CACHE", "HF_HUB_OFFLINE", "HF_HOME", "S3TVR_MODELS")
INFO_WAIT_S = 120.0  # a hang guard for the workers' final counts; a live worker answers at once
# A hang guard for a worker to start when no other is working: the cluster may count a node that
# just died (its CPUs) until its heartbeats time out, and a worker placed on it never starts.
START_WAIT_S = 300.0


def run(catalogue: Catalogue, configs: dict[str, Config], options: Any, progress: Progress, voice: Sequence[str],
        address: str, workers: Optional[int], cpus_per_worker: float) -> None:
    ray = _import_ray()
    _connect(ray, address, workers, cpus_per_worker)
    catalogue.mode = f"ray ({address})"
    if not catalogue.todo():  # all dubbed already: no worker to start
        catalogue.finish(catalogue.skipped(), 0.0)
        return
    try:
        count, gpus = _size(ray, workers, cpus_per_worker)
        actor = ray.remote(max_restarts=0, max_task_retries=0)(Worker)
        actors = [actor.options(num_cpus=cpus_per_worker, num_gpus=gpus).remote(configs, options, tuple(voice))
                  for _ in range(count)]
        log.info("%d Ray workers (%g CPU%s each)", count, cpus_per_worker, f", {gpus:g} GPU" if gpus else "")
        started = time.perf_counter()
        results, alive, seen = _schedule(ray, catalogue, actors, progress)
        catalogue.workers = _worker_info(ray, alive, seen)
        catalogue.finish(results, time.perf_counter() - started)
    finally:
        ray.shutdown()


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise SetupError("--ray needs Ray: pip install 's3tvr[ray]'") from None
    return ray


def _connect(ray: Any, address: str, workers: Optional[int], cpus_per_worker: float) -> None:
    """Join the cluster at ``address``; auto: the one RAY_ADDRESS names, else a local one started here."""
    import s3tvr

    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    # Where this s3tvr is, for workers that do not have it installed (a local cluster, a checkout);
    # on a real cluster each node installs s3tvr and this path simply does not exist there.
    source = str(Path(s3tvr.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "logging_level": logging.WARNING, "log_to_driver": True}
    target = os.environ.get("RAY_ADDRESS") if address == "auto" else address
    try:
        if target:
            ray.init(address=target, **kwargs)
        else:  # a local cluster of this machine, as big as the workers asked for
            # Ray's gRPC servers listen on every interface whatever the node address: its token
            # authentication keeps other machines out, so it stays on even where RAY_AUTH_MODE says not.
            os.environ["RAY_AUTH_MODE"] = "token"
            cpus = workers * cpus_per_worker if workers else None
            ray.init(num_cpus=cpus, include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise SetupError(f"cannot reach the Ray cluster at {target}: {brief(exc)} (start one: ray start --head; one with "
                         "token authentication needs its token in RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None


def _size(ray: Any, workers: Optional[int], cpus_per_worker: float) -> tuple[int, float]:
    """How many workers, and GPUs each: one per GPU where the cluster has GPUs, else one per
    ``cpus_per_worker`` CPUs; never more than fit at once (a worker that never starts would hold its job forever)."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    per_gpu = 1.0 if gpus >= 1 else 0.0
    fit = int(min(cpus // cpus_per_worker, gpus if per_gpu else cpus // cpus_per_worker))
    if fit < 1:
        raise InputError(f"no Ray worker fits: the cluster has {cpus:g} CPUs, --cpus-per-worker is {cpus_per_worker:g}")
    count = workers or fit
    if count > fit:
        log.warning("--workers %d: only %d fit on this cluster (%g CPUs, %g GPUs): starting %d", count, fit, cpus, gpus, fit)
        count = fit
    return count, per_gpu


def _schedule(ray: Any, catalogue: Catalogue, actors: list[Any],
              progress: Progress) -> tuple[list[JobResult], list[Any], dict[str, dict[str, Any]]]:
    """Each free actor takes the next job; a finished (or lost) job frees its actor (or drops it)."""
    from ray.exceptions import RayActorError, RayError

    todo = catalogue.todo()
    tick = progress.stage("catalogue", len(todo))
    pending: deque[Job] = deque(todo)
    idle: list[Any] = []
    # Jobs go to workers that have started only: one asked to a worker that never starts would wait forever.
    starting = {a.info.remote(): a for a in actors}
    attempts: dict[Job, int] = {}
    last: dict[Job, str] = {}  # why a job's last attempt failed, for its report if it cannot be tried again
    running: dict[Any, tuple[Any, Job]] = {}
    results, seen = catalogue.skipped(), {}
    while pending or running:
        while pending and idle:
            actor, job = idle.pop(0), pending.popleft()
            attempts[job] = attempts.get(job, 0) + 1
            running[actor.dub.remote(job)] = (actor, job)
        waiting = [*running, *starting]
        ready = ray.wait(waiting, num_returns=1, timeout=None if running else START_WAIT_S)[0] if waiting else []
        if not ready:  # no worker working, none starting (or none started in time): nothing left to run the rest on
            for job in pending:
                why = f"; its last attempt: {last[job]}" if job in last else ""
                results.append(_failed(job, attempts.get(job, 0), f"no Ray worker left to dub it (none alive or starting){why}"))
                tick()
            break
        [ref] = ready
        if ref in starting:
            actor = starting.pop(ref)
            try:
                ray.get(ref)
                idle.append(actor)
            except RayError as exc:
                log.warning("a Ray worker did not start: %s", brief(exc))
            continue
        actor, job = running.pop(ref)
        try:
            result = ray.get(ref)
            idle.append(actor)
            seen[_key(result.worker)] = dict(result.worker)
        except (RayActorError, RayError) as exc:  # the worker or its node died: it takes no more jobs
            _kill(ray, actor)  # "unavailable" may be a blip: one that comes back must not dub the job beside its retry
            result = _failed(job, 0, f"its Ray worker was lost ({brief(exc)})")
            log.warning("%s -> %s: its Ray worker was lost; %d left", job.input, job.lang, len(idle) + len(running))
        result.attempts = attempts[job]
        if catalogue.retry(job, result):
            log.warning("%s -> %s failed (%s): trying again", job.input, job.lang, result.reason)
            last[job] = result.reason
            pending.appendleft(job)
            continue
        _said(result)
        results.append(result)
        tick()
    return results, idle, seen


def _kill(ray: Any, actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone with its node
        log.debug("the lost worker could not be killed", exc_info=True)


def _failed(job: Job, attempts: int, reason: str) -> JobResult:
    return JobResult(str(job.input), job.lang, str(job.output), "failed", reason, attempts=attempts,
                     worker={"error": "WorkerLost"})


def _key(worker: dict[str, Any]) -> str:
    return f"{worker.get('node')}:{worker.get('pid')}"


def _worker_info(ray: Any, alive: list[Any], seen: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each worker's identity and model loads: asked of those alive, the last known of those lost."""
    info = dict(seen)
    try:
        refs = [a.info.remote() for a in alive]
        answered, _ = ray.wait(refs, num_returns=len(refs), timeout=INFO_WAIT_S)
        for worker in ray.get(answered):
            info[_key(worker)] = worker
    except Exception as exc:  # the counts are a record, not the work: the catalogue stands without them
        log.warning("the workers' model loads could not be read: %s", brief(exc))
    for worker in info.values():
        worker.pop("error", None)
    return list(info.values())
