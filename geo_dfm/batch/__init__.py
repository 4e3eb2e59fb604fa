"""Batch map annotation: ``localize`` and/or ``classify`` over many scenes, resumable, on a local
process pool or a Dask cluster (``geo-dfm annotate``; the job is :mod:`geo_dfm.jobs.annotate`).

One module per job:

- :mod:`~geo_dfm.batch.sources`: scene inputs (paths, globs, text lists of paths/URLs, STAC
  ItemCollections) → :class:`~geo_dfm.batch.sources.SceneRef` s with stable ids;
- :mod:`~geo_dfm.batch.folder`: the run's output folder (lock, resume/overwrite rules, ``run.json``,
  the manifest written at the end);
- :mod:`~geo_dfm.batch.journal`: ``journal.jsonl``, one fsynced line per finished scene;
- :mod:`~geo_dfm.batch.tasks`: one scene = the registered single-scene jobs run into its subfolders;
- :mod:`~geo_dfm.batch.engines`: where tasks run (this process, a local process pool) and
  :mod:`~geo_dfm.batch.dask_engine` (a Dask distributed cluster; the only module importing dask);
- :mod:`~geo_dfm.batch.merge` and :mod:`~geo_dfm.batch.mosaic`: the single writer's run GeoPackage
  and mosaic VRTs; :mod:`~geo_dfm.batch.progress`: scenes done/failed, chips/s, ETA.

Nothing here imports torch or dask at import time.
"""
