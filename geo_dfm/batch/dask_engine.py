"""The Dask engine: scene tasks on an existing ``distributed`` cluster (``--scheduler tcp://HOST:8786``).

The only module of geo-dfm that imports dask (``pip install 'geo-dfm[distributed]'``). A
:class:`ModelPlugin` worker plugin loads the model once in every worker process, as it joins (workers
added later load it too); tasks then find it in the process's encoder cache. Tasks are scenes; each
writes its outputs under the run's OUT itself, so OUT and the scenes must be reachable at the same paths
from every worker (a shared file system, or URLs). Results come back as small
:class:`~geo_dfm.batch.journal.SceneRecord` s, journaled by the client: the single writer.

GPUs: run one worker process per GPU, each seeing one device (``CUDA_VISIBLE_DEVICES=0 dask worker
tcp://… --nworkers 1 --nthreads 1``, then ``=1`` …, or ``dask-cuda``'s ``dask cuda worker``); the
default device ``auto`` then picks that GPU.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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
from tile_tools.errors import InputError

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - dask is an optional extra
    raise InputError(
        "scheduler", "the Dask engine needs dask distributed: pip install 'geo-dfm[distributed]'"
    ) from exc

#: How often (seconds) the client looks for finished tasks and at the cancel flag.
POLL_SECONDS = 0.2
PLUGIN_NAME = "geo-dfm-model"
CONNECT_TIMEOUT = "20s"


class ModelPlugin(WorkerPlugin):
    """Loads the run's model once per worker process, when the worker starts (or joins later)."""

    name = PLUGIN_NAME

    def __init__(self, model: Any) -> None:
        self.model = model
        self.outcome: tuple[int, str] | None = None

    def setup(self, worker: Any) -> None:
        # a failure is kept, not raised: the client's check task reports it as a readable error
        self.outcome = load_model(self.model)


class DaskEngine:
    """Scene tasks on the Dask cluster at ``scheduler`` (an address, or a scheduler JSON file)."""

    def __init__(self, scheduler: str, cancel_event: threading.Event) -> None:
        self.scheduler = scheduler
        self.cancel_event = cancel_event
        self._client: distributed.Client | None = None
        self._futures: list[distributed.Future] = []
        self._token = uuid.uuid4().hex[:8]

    def _connect(self) -> distributed.Client:
        kwargs: dict[str, Any] = {"timeout": CONNECT_TIMEOUT, "set_as_default": False}
        if self.scheduler.endswith(".json") and Path(self.scheduler).is_file():
            kwargs["scheduler_file"] = self.scheduler
        else:
            kwargs["address"] = self.scheduler
        try:
            return distributed.Client(**kwargs)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                "scheduler", f"cannot reach the Dask scheduler at {self.scheduler} ({exc})"
            ) from None

    def start(self, model: Any) -> None:
        client = self._client = self._connect()
        client.register_plugin(ModelPlugin(model), name=PLUGIN_NAME)
        check = client.submit(load_model, model, pure=False, key=f"geo-dfm-model-{self._token}")
        while not check.done():
            self._sleep()
        raise_model_error(check.result())

    def _sleep(self) -> None:
        """Wait a little, watching the cancel flag (the client is never made the process default, so
        ``distributed.wait`` is not used: it needs one)."""
        if self.cancel_event.wait(POLL_SECONDS):
            raise JobCancelled("cancelled")

    def run(self, tasks: Sequence[SceneTask]) -> Iterator[SceneRecord]:
        if self._client is None:
            raise RuntimeError("DaskEngine.run before start")
        started = utc_now()
        futures = {
            self._client.submit(
                run_scene_task, task, key=f"geo-dfm-scene-{self._token}-{task.scene.id}", pure=False
            ): task
            for task in tasks
        }
        self._futures = list(futures)
        completed = distributed.as_completed(self._futures, loop=self._client.loop)
        while not completed.is_empty():
            batch = completed.next_batch(block=False)
            if not batch:
                self._sleep()
                continue
            for future in batch:
                task = futures.pop(future)
                if future.status == "finished":
                    record = future.result()
                else:
                    record = lost_task_record(task, _exception_of(future), started)
                future.release()
                yield record

    def close(self, aborted: bool = False) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if aborted and self._futures:
            client.cancel(self._futures, force=True)
        self._futures = []
        client.close()

    def describe(self) -> dict[str, Any]:
        return {"engine": "dask", "scheduler": self.scheduler}


def _exception_of(future: distributed.Future) -> BaseException:
    try:
        return future.exception() or RuntimeError(future.status)
    except BaseException as exc:  # a cancelled future raises instead of returning its exception
        return exc
