"""Where the scenes of a batch run are annotated: this process, a local process pool, or Dask.

Every engine has the same three steps: :meth:`~Engine.start` (workers up, the model loaded once per
worker process, a model problem raised as an :class:`InputError` before any scene runs),
:meth:`~Engine.run` (scene records in completion order; the caller journals them) and
:meth:`~Engine.close`. Tasks are :class:`~geo_dfm.batch.tasks.SceneTask` s run by
:func:`~geo_dfm.batch.tasks.run_scene_task` wherever the engine puts them, so every engine writes the
same files. The Dask engine lives in :mod:`geo_dfm.batch.dask_engine` (imported only when asked for).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from geo_dfm.batch.journal import SceneRecord
from geo_dfm.batch.tasks import (
    SceneTask,
    load_model,
    lost_task_record,
    raise_model_error,
    run_scene_task,
    utc_now,
)
from geo_dfm.errors import JobCancelled
from geo_dfm.progress import Progress

#: How often (seconds) a waiting engine looks at the cancel flag.
POLL_SECONDS = 0.5


class Engine(Protocol):
    """Runs scene tasks (see the module docstring)."""

    def start(self, model: Any) -> None: ...

    def run(self, tasks: Sequence[SceneTask]) -> Iterator[SceneRecord]: ...

    def close(self, aborted: bool = False) -> None: ...

    def describe(self) -> dict[str, Any]: ...


class InlineEngine:
    """Scenes one after the other in this process (``workers=1``): the model loads once, here."""

    def __init__(self, cancel_event: threading.Event) -> None:
        self.cancel_event = cancel_event

    def start(self, model: Any) -> None:
        raise_model_error(load_model(model))

    def run(self, tasks: Sequence[SceneTask]) -> Iterator[SceneRecord]:
        for task in tasks:
            yield run_scene_task(task, Progress(self.cancel_event))

    def close(self, aborted: bool = False) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"engine": "inline", "workers": 1}


def _preload(model: Any) -> None:
    """Pool worker initializer: load the model once per worker (a failure is reported by the check task)."""
    load_model(model)


#: What a pool's fork server imports once, before it forks the workers (the imports of torch and
#: open_clip take most of a worker's start-up; forking after them is safe: nothing has run yet).
FORKSERVER_PRELOAD = ["torch", "open_clip", "rasterio", "geo_dfm.models.factory", "geo_dfm.batch.tasks"]


def worker_context() -> Any:
    """The multiprocessing context of pool workers: a fork server that has imported the heavy modules
    once (POSIX), else spawn; never a plain fork of this process (its threads, GDAL handles, CUDA)."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(FORKSERVER_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


class PoolEngine:
    """A local pool of ``workers`` processes (see :func:`worker_context`); each loads the model once
    (initializer) and keeps it in its encoder cache for every scene it runs."""

    def __init__(self, workers: int, cancel_event: threading.Event) -> None:
        self.workers = workers
        self.cancel_event = cancel_event
        self._executor: cf.ProcessPoolExecutor | None = None

    def start(self, model: Any) -> None:
        self._executor = cf.ProcessPoolExecutor(
            self.workers, mp_context=worker_context(), initializer=_preload, initargs=(model,)
        )
        check = self._executor.submit(load_model, model)
        self._wait_for({check})
        raise_model_error(check.result())

    def _wait_for(self, futures: set[cf.Future]) -> set[cf.Future]:
        """Wait until one of ``futures`` is done, watching the cancel flag; the done ones."""
        while True:
            if self.cancel_event.is_set():
                raise JobCancelled("cancelled")
            done, _ = cf.wait(futures, timeout=POLL_SECONDS, return_when=cf.FIRST_COMPLETED)
            if done:
                return done

    def run(self, tasks: Sequence[SceneTask]) -> Iterator[SceneRecord]:
        if self._executor is None:
            raise RuntimeError("PoolEngine.run before start")
        started = utc_now()
        futures = {self._executor.submit(run_scene_task, task): task for task in tasks}
        pending = set(futures)
        while pending:
            done = self._wait_for(pending)
            pending -= done
            for future in done:
                task = futures.pop(future)
                exc = future.exception()
                yield future.result() if exc is None else lost_task_record(task, exc, started)

    def close(self, aborted: bool = False) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if aborted:
            _terminate_workers(executor)
        else:
            executor.shutdown(wait=True)

    def describe(self) -> dict[str, Any]:
        return {"engine": "pool", "workers": self.workers}


def _terminate_workers(executor: cf.ProcessPoolExecutor) -> None:
    """Stop a pool at once (a cancelled run must not keep computing in the background)."""
    terminate = getattr(executor, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    # Python < 3.14 has no public way to stop running workers: terminate the processes it owns
    processes = dict(getattr(executor, "_processes", None) or {})
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes.values():
        process.terminate()
    for process in processes.values():
        process.join(timeout=10)


def make_engine(workers: int, scheduler: str | None, cancel_event: threading.Event) -> Engine:
    """The engine for ``workers`` local processes (1: this process) or a Dask ``scheduler`` address."""
    if scheduler:
        from geo_dfm.batch.dask_engine import DaskEngine

        return DaskEngine(scheduler, cancel_event)
    if workers <= 1:
        return InlineEngine(cancel_event)
    return PoolEngine(workers, cancel_event)
