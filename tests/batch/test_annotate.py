"""`geo-dfm annotate` end to end with the toy model: 4 synthetic scenes in two CRSs and a corrupt one,
in this process, on a Dask LocalCluster, and killed (SIGKILL to the process group) then resumed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import from_bounds
from shapely.geometry import MultiPolygon, Point

from geo_dfm.cli.main import main

pytestmark = pytest.mark.slow

LABELS = "water,forest,farmland,town"
QUERY = "water"
#: Columns of the scenes layer that differ between runs by nature (clocks, processes).
VOLATILE = ("started", "finished", "seconds", "worker", "classify_seconds", "localize_seconds")
UTM_LATTICE = (500_000.0, 5_320_000.0)


def snap(path: Path, x0: float, y0: float) -> None:
    """Put a scene's top-left corner at (x0, y0) (1 m pixels): scenes on one lattice."""
    with rasterio.open(path, "r+") as ds:
        ds.transform = Affine(1.0, 0.0, x0, 0.0, -1.0, y0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory, toy_model_path):
    """a, b on one UTM lattice; c in UTM off it; d in EPSG:4326; bad is not a raster."""
    from geo_dfm.synthetic import make_scene

    folder = tmp_path_factory.mktemp("annotate")
    x0, y0 = UTM_LATTICE
    a = make_scene(folder / "a.tif", width=160, height=128, seed=3)
    snap(a.path, x0, y0)
    b = make_scene(folder / "b.tif", width=128, height=160, seed=4)
    snap(b.path, x0 + 192, y0)  # on a's lattice, also for outputs decimated by 2, 3, 4, 6, 8, 12, 16
    make_scene(folder / "c.tif", width=144, height=128, seed=5, centre_lonlat=(15.01, 48.0))
    make_scene(folder / "d.tif", width=128, height=144, seed=6, crs="EPSG:4326", centre_lonlat=(15.02, 48.0))
    (folder / "bad.tif").write_bytes(b"II*\x00" + b"not a tiff" * 20)
    return [str(folder / f"{name}.tif") for name in ("a", "b", "c", "d", "bad")]


def annotate_argv(scenes, out, *extra) -> list[str]:
    return [
        "annotate",
        *scenes,
        "-o",
        str(out),
        "--labels",
        LABELS,
        "--queries",
        QUERY,
        "--model",
        "toy",
        *extra,
    ]


@pytest.fixture(scope="module")
def reference(scenes):
    """The uninterrupted run, in this process, with JSON-lines progress."""
    out = Path(scenes[0]).parent / "reference"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(annotate_argv(scenes, out, "--progress", "jsonl"))
    events = [json.loads(line) for line in stdout.getvalue().splitlines() if line.startswith("{")]
    return out, code, events


def read_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    return pyogrio.read_dataframe(path, layer=layer)


def assert_same_run(expected: Path, actual: Path, rasters: int = 4 * 3) -> None:
    """Same GeoPackage contents (bar clocks), same per-scene rasters and mosaics, pixel for pixel."""
    layers = [name for name, _ in pyogrio.list_layers(expected / "annotations.gpkg")]
    assert layers == [name for name, _ in pyogrio.list_layers(actual / "annotations.gpkg")]
    for layer in layers:
        x, y = (read_layer(run / "annotations.gpkg", layer) for run in (expected, actual))
        assert x.crs == y.crs, layer
        drop = [c for c in VOLATILE if c in x]
        pd.testing.assert_frame_equal(
            pd.DataFrame(x.drop(columns=[*drop, "geometry"])),
            pd.DataFrame(y.drop(columns=[*drop, "geometry"])),
        )
        assert list(x.geometry.to_wkb()) == list(y.geometry.to_wkb()), layer
    files = sorted(p.relative_to(expected) for p in expected.glob("scenes/*/*/*.tif"))
    assert files == sorted(p.relative_to(actual) for p in actual.glob("scenes/*/*/*.tif"))
    assert len(files) == rasters  # e.g. classes, probabilities, one heatmap per good scene
    for rel in [*files, *sorted(p.relative_to(expected) for p in expected.glob("mosaics/*.vrt"))]:
        with rasterio.open(expected / rel) as x, rasterio.open(actual / rel) as y:
            assert (x.crs, x.transform, x.nodata) == (y.crs, y.transform, y.nodata), rel
            np.testing.assert_array_equal(x.read(), y.read(), err_msg=str(rel))


def test_the_run_reports_progress_and_records_the_corrupt_scene(reference, scenes):
    out, code, events = reference
    assert code == 3  # some scenes failed
    status = [e for e in events if e["event"] == "scenes"]
    assert [e["scene"] for e in status] == ["a", "b", "c", "d", "bad"]  # one engine process: input order
    assert status[-1] | {"chips_per_s": 0, "eta_s": 0} == {
        "event": "scenes", "scene": "bad", "status": "failed", "done": 4, "failed": 1, "total": 5,
        "skipped": 0, "chips": 4 * 2 * 9, "chips_per_s": 0, "eta_s": 0,
    }  # fmt: skip
    assert status[-1]["chips_per_s"] > 0 and status[0]["eta_s"] > 0
    summary = events[-1]["summary"]
    assert events[-1]["event"] == "result" and summary["scenes"] == {
        "total": 5,
        "done": 4,
        "failed": 1,
        "ran": 5,
    }
    (failure,) = summary["failed"]
    assert failure["scene"] == "bad" and failure["code"] == 2 and scenes[-1] in failure["error"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert summary["outputs"]["geopackage"] == str(out / "annotations.gpkg")
    assert summary["model"]["name"] == "toy" and summary["crs"] == "EPSG:32633"


def test_geopackage_layers_carry_every_scene_in_the_run_crs(reference, scenes):
    out, _, _ = reference
    gpkg = out / "annotations.gpkg"
    assert [name for name, _ in pyogrio.list_layers(gpkg)] == ["chips", "regions", "hotspots", "scenes"]
    for layer, (job, file, source_layer) in {
        "chips": ("classify", "labels.gpkg", "chips"),
        "regions": ("classify", "labels.gpkg", "regions"),
        "hotspots": ("localize", "regions.gpkg", "regions"),
    }.items():
        merged = read_layer(gpkg, layer)
        assert merged.crs == "EPSG:32633" and merged.columns[0] == "scene"
        for scene in "abcd":
            own = read_layer(out / "scenes" / scene / job / file, source_layer)
            mine = merged[merged["scene"] == scene].reset_index(drop=True)
            assert len(mine) == len(own) > 0, (layer, scene)
            assert list(mine.columns[1:]) == list(own.columns)
            expected = as_multi(own.to_crs("EPSG:32633").geometry)  # PROJ's own reprojection of each vertex
            assert mine.geometry.normalize().geom_equals_exact(expected.normalize(), 1e-6).all(), (
                layer,
                scene,
            )
    table = read_layer(gpkg, "scenes")
    assert list(table["scene"]) == ["a", "b", "c", "d", "bad"]
    assert list(table["status"]) == ["done"] * 4 + ["failed"]
    assert list(table["code"]) == [0, 0, 0, 0, 2] and list(table["chips"]) == [18] * 4 + [0]
    assert table["geometry"].iloc[-1] is None and "not a raster" in table["error"].iloc[-1]
    assert list(table["classify_folder"][:4]) == [f"scenes/{s}/classify" for s in "abcd"]
    centre = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True).transform(15.02, 48.0)
    assert table.geometry.iloc[3].contains(Point(centre))  # d's footprint, reprojected from degrees
    with rasterio.open(scenes[0]) as src:
        assert table.geometry.iloc[0].equals(
            gpd.GeoSeries.from_wkt([f"POLYGON (({_ring(src.bounds)}))"]).iloc[0]
        )


def as_multi(series: gpd.GeoSeries) -> gpd.GeoSeries:
    return series.apply(lambda g: MultiPolygon([g]) if g.geom_type == "Polygon" else g)


def _ring(bounds) -> str:
    left, bottom, right, top = bounds
    return f"{left} {top}, {right} {top}, {right} {bottom}, {left} {bottom}, {left} {top}"


def on_lattice(src, mosaic) -> bool:
    """Whether ``src``'s pixels are cells of the mosaic's grid (same CRS and size, corner on a cell)."""
    col = (src.transform.c - mosaic.transform.c) / mosaic.res[0]
    row = (mosaic.transform.f - src.transform.f) / mosaic.res[1]
    return src.crs == mosaic.crs and src.res == mosaic.res and col.is_integer() and row.is_integer()


def test_mosaics_open_as_one_layer_and_line_up_with_each_scene(reference):
    out, _, _ = reference
    assert sorted(p.name for p in (out / "mosaics").glob("*.vrt")) == [
        "classes.vrt", "heatmap_water.vrt", "probabilities.vrt",
    ]  # fmt: skip
    exact = []
    for kind, job, file in (
        ("classes", "classify", "classes.tif"),
        ("probabilities", "classify", "probabilities.tif"),
        ("heatmap_water", "localize", "water.tif"),
    ):
        with rasterio.open(out / "mosaics" / f"{kind}.vrt") as mosaic:
            with rasterio.open(out / "scenes" / "a" / job / file) as first:  # the first scene sets the grid
                assert mosaic.crs == first.crs == "EPSG:32633" and mosaic.res == first.res
                assert (mosaic.transform.c, mosaic.transform.f) == UTM_LATTICE
            for scene in "abcd":
                with rasterio.open(out / "scenes" / scene / job / file) as src:
                    assert mosaic.count == src.count and mosaic.nodata == src.nodata
                    if on_lattice(src, mosaic):  # the very pixels
                        window = (
                            from_bounds(*src.bounds, transform=mosaic.transform)
                            .round_offsets()
                            .round_lengths()
                        )
                        np.testing.assert_array_equal(mosaic.read(window=window), src.read(), err_msg=kind)
                        exact.append((kind, scene))
                        continue
                    # off the lattice or another CRS: what GDAL's warper gives on the mosaic's cells
                    bounds = transform_bounds(src.crs, mosaic.crs, *src.bounds, densify_pts=21)
                    window = from_bounds(*bounds, transform=mosaic.transform)
                    window = window.round_offsets(op="floor").round_lengths(op="ceil")
                    shape = (src.count, int(window.height), int(window.width))
                    expected = np.full(shape, src.nodata, src.dtypes[0])
                    reproject(
                        rasterio.band(src, list(range(1, src.count + 1))), expected, src_nodata=src.nodata,
                        dst_nodata=src.nodata, dst_transform=mosaic.window_transform(window), dst_crs=mosaic.crs,
                        resampling=Resampling.nearest,
                    )  # fmt: skip
                    valid = expected != src.nodata
                    assert valid.mean() > 0.5, (kind, scene)
                    np.testing.assert_array_equal(mosaic.read(window=window)[valid], expected[valid])
            if kind == "classes":
                assert mosaic.colormap(1)[0][:3] != (0, 0, 0)
                text = (out / "mosaics" / "classes.vrt").read_text(encoding="utf-8")
                assert all(f"<Category>{label}</Category>" in text for label in LABELS.split(","))
    assert {("classes", "a"), ("classes", "b"), ("heatmap_water", "a")} <= set(exact)
    assert not {scene for _, scene in exact} & {"c", "d"}  # those went through the warper


@contextlib.contextmanager
def local_cluster():
    """A LocalCluster of 2 worker processes on localhost. Its workers are forked from a fork server that
    imported torch and open_clip once (as distributed's own test suite does with its dependencies), so
    the test pays one import, not two; each worker still loads the model itself (the worker plugin)."""
    import multiprocessing

    import dask
    import distributed
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # distributed sets its preload list once; ours replaces it (the server starts later)
        preload = ["distributed", "torch", "open_clip", "geo_dfm.batch.tasks"]
        multiprocessing.get_context("forkserver").set_forkserver_preload(preload)
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster:
            yield cluster


def test_a_dask_local_cluster_gives_identical_outputs(reference, scenes, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "dask"
    with local_cluster() as cluster:
        code = main(
            annotate_argv(scenes, out, "--scheduler", cluster.scheduler_address, "--progress", "none")
        )
    assert code == 3
    assert_same_run(reference[0], out)
    workers = set(read_layer(out / "annotations.gpkg", "scenes")["worker"])
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # the scenes ran on the cluster


def test_a_killed_pool_run_resumes_to_the_uninterrupted_output(reference, scenes, tmp_path):
    out = tmp_path / "killed"
    journal = out / "journal.jsonl"
    argv = [
        sys.executable,
        "-m",
        "geo_dfm",
        *annotate_argv(scenes, out, "--workers", "2", "--progress", "none"),
    ]
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while _done_lines(journal) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no two scenes finished in time"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and its pool workers, at once
        proc.wait(timeout=60)
        _wait_until_gone(proc.pid)
        # the definitive sign that no process of the killed run still writes: every lock it could hold is free
        _wait_until_unlocked(
            [out, *(out / "scenes" / Path(s).stem / j for s in scenes for j in ("classify", "localize"))]
        )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    lines = [json.loads(line) for line in journal.read_text().splitlines() if line.endswith("}")]
    before = {line["scene"] for line in lines if line["status"] == "done"}  # a failed one is run again
    state = (
        f"journal: {journal.read_text()!r}, OUT: {sorted(str(p.relative_to(out)) for p in out.rglob('*'))}"
    )
    assert not (out / "annotations.gpkg").exists() and not (out / ".geo-dfm-output.json").exists(), state
    visible = [p for p in out.glob("scenes/*/*") if not p.name.startswith(".")]
    assert all((p / ".geo-dfm-output.json").is_file() for p in visible), state  # only committed job folders
    kept = {s: (out / "scenes" / s / "classify" / "summary.json").stat().st_mtime_ns for s in before}

    assert main(annotate_argv(scenes, out, "--progress", "none")) == 2  # no new run over an unfinished one
    assert main(annotate_argv(scenes, out, "--resume", "--progress", "none")) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenes"]["ran"] == 5 - len(before)  # scenes journaled as done are not done again
    assert {s: (out / "scenes" / s / "classify" / "summary.json").stat().st_mtime_ns for s in before} == kept
    assert not list(out.glob("scenes/*/.*")), list(out.glob("scenes/*/.*"))  # the killed run's twins are gone
    assert_same_run(reference[0], out)


def _wait_until_gone(group: int, timeout: float = 60) -> None:
    """Wait until every process of ``group`` has exited (a killed worker may take a moment to die, and
    until then it holds its output's lock); zombies count as gone."""
    deadline = time.monotonic() + timeout
    while _alive_in_group(group):
        assert time.monotonic() < deadline, f"process group {group} still alive {timeout} s after SIGKILL"
        time.sleep(0.05)


def _wait_until_unlocked(targets, timeout: float = 60) -> None:
    """Wait until the :class:`~tile_tools.locks.TargetLock` of every target can be taken (and release it)."""
    from tile_tools.errors import InputError
    from tile_tools.locks import TargetLock

    deadline = time.monotonic() + timeout
    for target in targets:
        while True:
            try:
                TargetLock(target).acquire().release()
                break
            except InputError as exc:
                assert time.monotonic() < deadline, f"still locked {timeout} s after SIGKILL: {exc}"
                time.sleep(0.05)


def _alive_in_group(group: int) -> bool:
    if not Path("/proc").is_dir():
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            return True
    return False


def _done_lines(journal: Path) -> int:
    try:
        text = journal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if '"status": "done"' in line)


def test_a_clean_run_exits_0_and_resuming_a_finished_run_redoes_nothing(scenes, tmp_path, capsys):
    out = tmp_path / "clean"
    argv = ["annotate", scenes[0], "-o", str(out), "--labels", LABELS, "--model", "toy", "--progress", "none"]
    assert main(argv) == 0
    first = read_layer(out / "annotations.gpkg", "chips")
    assert main([*argv, "--json"]) == 2
    assert "use --resume to continue it, or --overwrite" in capsys.readouterr().err
    assert main([*argv, "--resume", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scenes"] == {"total": 1, "done": 1, "failed": 0, "ran": 0}
    pd.testing.assert_frame_equal(read_layer(out / "annotations.gpkg", "chips"), first)
    assert main([*argv, "--overwrite"]) == 0
    assert main([*argv, "--preset", "landcover"]) == 2  # labels and a preset: refused before anything runs
    assert "give exactly one of" in capsys.readouterr().err


#: Run ``geo-dfm`` with the run GeoPackage's writer killed (SIGKILL, no clean-up) after its 2nd layer append.
KILLED_WHILE_MERGING = """
import os, signal, sys
import geo_dfm.batch.merge as merge
real, calls = merge._append, []
def dying(*args, **kwargs):
    real(*args, **kwargs)
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
merge._append = dying
from geo_dfm.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_run_killed_while_writing_the_geopackage_leaves_the_old_one_and_resumes(scenes, tmp_path):
    out, expected = tmp_path / "merging", tmp_path / "expected"
    argv = ["annotate", scenes[0], scenes[2], "-o", str(out), "--labels", LABELS, "--model", "toy"]
    argv += ["--progress", "none"]
    assert main(argv) == 0
    shutil.copytree(out, expected)
    before = (out / "annotations.gpkg").read_bytes()
    resume = [*argv, "--resume"]  # a finished run: nothing to compute, the merge is written again
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_MERGING, *resume], capture_output=True, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert (out / "annotations.gpkg").read_bytes() == before  # never half-written: the old file, whole
    assert not (out / ".geo-dfm-output.json").exists()  # and the run is marked unfinished
    assert [p.name for p in out.glob(".annotations.*.tmp.gpkg*")]  # the killed writer's temporary twin
    assert main(resume) == 0
    assert json.loads((out / "summary.json").read_text())["scenes"]["ran"] == 0  # nothing recomputed
    assert not list(out.glob(".annotations.*")) and (out / ".geo-dfm-output.json").is_file()
    assert_same_run(expected, out, rasters=2 * 2)


def test_each_scene_is_the_single_scene_commands_output(reference, scenes, tmp_path):
    """The batch runs the registered jobs themselves: `geo-dfm classify` / `localize` on one scene, with
    the batch's one torch thread, write the very same rasters and vectors."""
    out, _, _ = reference
    common = ["--model", "toy", "--threads", "1", "--progress", "none"]
    assert main(["classify", scenes[2], "-o", str(tmp_path / "classify"), "--labels", LABELS, *common]) == 0
    assert main(["localize", scenes[2], QUERY, "-o", str(tmp_path / "localize"), *common]) == 0
    for job, files, vectors in (
        ("classify", ("classes.tif", "probabilities.tif"), ("labels.gpkg", ("chips", "regions"))),
        ("localize", ("water.tif",), ("regions.gpkg", ("regions",))),
    ):
        for file in files:
            with rasterio.open(tmp_path / job / file) as x, rasterio.open(out / "scenes/c" / job / file) as y:
                assert (x.crs, x.transform, x.nodata, x.dtypes) == (y.crs, y.transform, y.nodata, y.dtypes)
                np.testing.assert_array_equal(x.read(), y.read(), err_msg=file)
        gpkg, layers = vectors
        for layer in layers:
            pd.testing.assert_frame_equal(
                read_layer(tmp_path / job / gpkg, layer), read_layer(out / "scenes/c" / job / gpkg, layer)
            )


def test_the_worker_runs_annotate_from_plain_json_like_the_command(reference, scenes, tmp_path):
    """The registry entry, as the QGIS plugin's worker calls it: plain JSON parameters, scene events."""
    from geo_dfm.cli.main import cli
    from geo_dfm.cli.worker import Worker
    from geo_dfm.jobs.registry import describe_jobs

    schema = {f["name"]: f for f in describe_jobs()["annotate"]["params"]}
    assert schema["scenes"]["required"] and schema["scenes"]["type"] == "array"
    assert schema["method"]["choices"] == ["blend", "selo", "dense"] and all(
        f["help"] for f in schema.values() if f["type"] != "object"
    )
    out = tmp_path / "worker"
    request = {
        "id": 7,
        "job": "annotate",
        "params": {
            "scenes": [scenes[1], scenes[3]], "output": str(out), "labels": LABELS.split(","),
            "queries": [QUERY], "model": {"name": "toy"},
        },
    }  # fmt: skip
    stream = io.StringIO()
    Worker(cli, stream).serve(io.StringIO(json.dumps(request) + "\n"))
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert sorted(e["scene"] for e in events if e["event"] == "scenes") == ["b", "d"]
    (result,) = [e for e in events if e["event"] == "result"]
    assert result["job"] == 7 and result["summary"]["scenes"] == {
        "total": 2,
        "done": 2,
        "failed": 0,
        "ran": 2,
    }
    for rel in ("scenes/b/classify/classes.tif", "scenes/d/localize/water.tif"):
        with rasterio.open(out / rel) as x, rasterio.open(reference[0] / rel) as y:
            assert (x.crs, x.transform) == (y.crs, y.transform)
            np.testing.assert_array_equal(x.read(), y.read(), err_msg=rel)
