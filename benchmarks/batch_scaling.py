"""Batch annotation (``geo-dfm annotate``) on the toy model: the batch's per-scene overhead over running
the single-scene jobs, and scenes per minute with 1 and 2 workers (local pool and Dask LocalCluster).

Scenes: ``--scenes`` synthetic 512² scenes (1 m, UTM), classify (4 labels) and localize (1 query) each.

- single-scene jobs: ``classify`` then ``localize`` on every scene, in this process through the job
  registry (what ``geo-dfm classify`` / ``localize`` run), one torch thread, model loaded beforehand;
- batch, inline (``--workers 1``): ``run_annotate`` over the same scenes in this process (model warm),
  end to end: journal, per-scene folders, run GeoPackage, mosaics, summary;
- scenes per minute in the ``annotate scenes`` stage (workers up, model loaded: their start-up is
  printed apart) with ``--workers 1`` (inline) and ``--workers 2`` (a pool), and on a Dask LocalCluster
  of 1 and 2 worker processes; one torch thread per worker process.

Targets (exit 1 when one is missed): single-scene time / inline batch time ≥ 0.85 (the batch adds at most
~15 %: journal, merge, mosaics); ``--workers 2`` ≥ 1.5 × the scenes per minute of ``--workers 1``
(needs 2 free cores).
The LocalCluster rows are printed beside them, not judged (``distributed`` is an optional extra).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

OVERHEAD_TARGET = 0.85
SCALING_TARGET = 1.5
SIZE = 512
LABELS = ("water", "forest", "farmland", "town")
QUERIES = ("water",)


def make_scenes(folder: Path, count: int) -> list[str]:
    from geo_dfm.synthetic import make_scene

    return [
        str(make_scene(folder / f"s{i:02d}.tif", width=SIZE, height=SIZE, seed=10 + i).path)
        for i in range(count)
    ]


def run_single_jobs(scenes: list[str], folder: Path, model) -> float:
    """Seconds for the single-scene jobs on every scene (the batch's per-scene work, run directly)."""
    from geo_dfm.jobs.annotate import AnnotateParams, plan_jobs
    from geo_dfm.jobs.registry import get_job
    from geo_dfm.progress import Progress

    plan = plan_jobs(
        AnnotateParams(scenes=tuple(scenes), output="", labels=LABELS, queries=QUERIES, model=model)
    )
    start = time.perf_counter()
    for i, scene in enumerate(scenes):
        for name, params in plan.jobs:  # the very parameters the batch gives each scene
            get_job(name).run(replace(params, scene=scene, output=str(folder / f"{i}-{name}")), Progress())
    return time.perf_counter() - start


def run_batch(scenes: list[str], out: Path, model, **engine) -> tuple[float, dict]:
    """Wall seconds and summary of one ``annotate`` run."""
    from geo_dfm.jobs.annotate import AnnotateParams, run_annotate
    from geo_dfm.progress import Progress

    params = AnnotateParams(
        scenes=tuple(scenes), output=str(out), labels=LABELS, queries=QUERIES, model=model, **engine
    )
    start = time.perf_counter()
    summary = run_annotate(params, Progress())
    seconds = time.perf_counter() - start
    assert summary["scenes"]["done"] == len(scenes), summary["failed"]
    return seconds, summary


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[str]:
    import distributed

    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        yield cluster.scheduler_address


def stage(summary: dict, name: str) -> float:
    return float(summary["timings"][name])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8, help="number of 512² scenes (default 8)")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster rows")
    args = parser.parse_args()
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)  # the cluster's own chatter

    from geo_dfm.jobs.params import ModelParams
    from geo_dfm.jobs.pipeline import load_job_encoder

    model = ModelParams(name="toy", threads=1)
    count = args.scenes
    failed = False
    with tempfile.TemporaryDirectory(prefix="geo-dfm-batch-") as tmp:
        folder = Path(tmp)
        scenes = make_scenes(folder / "scenes", count)
        load_job_encoder(model)  # warm: the single-scene and inline rows measure the jobs, not the load
        run_single_jobs(scenes[:1], folder / "warm", model)  # class/query embeddings cached
        single = run_single_jobs(scenes, folder / "single", model)
        inline, summary = run_batch(scenes, folder / "inline", model)
        ratio = single / inline
        ok = ratio >= OVERHEAD_TARGET
        failed |= not ok
        load = os.getloadavg()[0]
        print(f"batch annotation, toy model, {count} scenes of {SIZE}², classify + localize")
        print(f"  {os.cpu_count()} cores, load average {load:.1f} at the start")
        print(f"  single-scene jobs     {single:7.2f} s  ({single / count:.3f} s/scene)")
        print(
            f"  annotate, inline      {inline:7.2f} s  ({inline / count:.3f} s/scene; merge "
            f"{stage(summary, 'merge'):.2f} s, mosaics {stage(summary, 'mosaics'):.2f} s)"
        )
        print(
            f"  overhead per scene    {(inline - single) / count * 1000:7.1f} ms   ratio single/batch "
            f"{ratio:.3f} (target ≥ {OVERHEAD_TARGET}) {'ok' if ok else 'MISSED'}"
        )
        rates = {("pool", 1): count / stage(summary, "annotate scenes") * 60}  # --workers 1: inline
        print(f"  --workers 1 (inline)  {rates[('pool', 1)]:7.1f} scenes/min")
        wall, summary = run_batch(scenes, folder / "pool2", model, workers=2)
        rates[("pool", 2)] = count / stage(summary, "annotate scenes") * 60
        print(
            f"  --workers 2 (pool)    {rates[('pool', 2)]:7.1f} scenes/min  (start-up + model load "
            f"{stage(summary, 'load model'):.2f} s, wall {wall:.2f} s)"
        )
        scaling = rates[("pool", 2)] / rates[("pool", 1)]
        ok = scaling >= SCALING_TARGET
        failed |= not ok
        print(
            f"  pool 2 vs 1 workers   ratio {scaling:.2f} (target ≥ {SCALING_TARGET}) {'ok' if ok else 'MISSED'}"
        )
        try:
            import distributed  # noqa: F401
        except ImportError:
            args.no_dask = True
            print("  LocalCluster: distributed is not installed (pip install 'geo-dfm[distributed]')")
        if not args.no_dask:
            for n in (1, 2):
                start = time.perf_counter()
                with local_cluster(n) as address:
                    up = time.perf_counter() - start
                    _, summary = run_batch(scenes, folder / f"dask{n}", model, scheduler=address)
                rates[("dask", n)] = count / stage(summary, "annotate scenes") * 60
                print(
                    f"  LocalCluster × {n}      {rates[('dask', n)]:7.1f} scenes/min  (cluster up {up:.2f} s, "
                    f"model load {stage(summary, 'load model'):.2f} s)"
                )
            print(
                f"  LocalCluster 2 vs 1   ratio {rates[('dask', 2)] / rates[('dask', 1)]:.2f} (printed, not judged)"
            )
        shutil.rmtree(folder / "scenes", ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
