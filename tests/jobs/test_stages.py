"""The job spine's stages on their own, with a fake encoder and fake scores (no CLI, no model).

Oracles: rasterio's own reads of the scene windows (for what the features stage feeds the model), a
naive numpy splat of the same scores (for the blend stitcher), and the whole-array SeLo functions of
tile_tools (for the SeLo stitcher), which their own tests hold against the reference.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from geo_dfm.errors import JobCancelled
from geo_dfm.jobs.params import ChipParams
from geo_dfm.jobs.pipeline import iter_features, open_chip_plan, plan_stride, start_job
from geo_dfm.jobs.stitch import BlendStitcher, SeloStitcher, chip_map_decimation
from geo_dfm.progress import Progress
from tile_tools.pixel_grid import PixelGrid


class MeanColourEncoder:
    """A fake encoder: the 'embedding' of a chip is its mean R, G, B (L2-normalised); it counts calls."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def encode_images(self, images, batch_size=None) -> np.ndarray:
        self.batches.append(len(images))
        means = np.array([image.reshape(-1, 3).mean(0) for image in images], dtype=np.float32)
        return means / np.linalg.norm(means, axis=1, keepdims=True)


class CountingProgress(Progress):
    def __init__(self, cancel_after: int | None = None) -> None:
        super().__init__()
        self.advanced: list[int] = []
        self.cancel_after = cancel_after

    def _on_advance(self) -> None:
        self.advanced.append(self.done)
        if self.cancel_after is not None and self.done >= self.cancel_after:
            self.cancel_event.set()


@pytest.fixture
def scene(synthetic_scene):
    return synthetic_scene(width=200, height=160, seed=5)


def test_features_are_the_scene_windows_in_plan_order_batch_by_batch(scene):
    encoder, progress = MeanColourEncoder(), CountingProgress()
    chips = ChipParams(chip_size="64", overlap="0.25")
    with open_chip_plan(str(scene.path), chips, 224) as plan:
        planned = list(plan.windows)
        batches = list(iter_features(plan, encoder, progress, batch_size=4))
    windows = [w for batch in batches for w in batch.windows]
    assert windows == planned and len(planned) == len({(w.col_off, w.row_off) for w in planned})
    assert encoder.batches == [len(b.windows) for b in batches] and max(encoder.batches) == 4
    assert progress.advanced[-1] == len(planned) and progress.total == len(planned)
    features = np.concatenate([b.features for b in batches])
    with rasterio.open(scene.path) as src:  # the oracle: rasterio's read of each window
        expected = np.stack([src.read(window=w).reshape(3, -1).mean(1) for w in planned]).astype(np.float32)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(features, expected, rtol=1e-5)


def test_features_stop_when_the_job_is_cancelled(scene):
    encoder, progress = MeanColourEncoder(), CountingProgress(cancel_after=8)
    with open_chip_plan(str(scene.path), ChipParams(chip_size="32", overlap="0"), 224) as plan:
        assert len(plan.windows) > 16
        with pytest.raises(JobCancelled):
            for _ in iter_features(plan, encoder, progress, batch_size=4):
                pass
    assert sum(encoder.batches) <= 12  # stopped within a batch of the request, not at the end


def test_plan_stride_and_the_default_chip_map_decimation(scene):
    with open_chip_plan(str(scene.path), ChipParams(chip_size="64", overlap="0.25"), 224) as plan:
        assert plan_stride(plan) == 48
        assert chip_map_decimation(plan.reader.grid, plan_stride(plan), None, 10**9) == 6
        assert chip_map_decimation(plan.reader.grid, plan_stride(plan), 1, 10**9) == 1
        # a cap on output values raises the factor: 200 × 160 px under 1000 values needs ≥ 6 → 32000/1000
        assert chip_map_decimation(plan.reader.grid, 8, None, 1000) == 6


def grid_of(width: int, height: int) -> PixelGrid:
    from affine import Affine
    from rasterio.crs import CRS

    return PixelGrid(width, height, Affine(2.0, 0, 500000.0, 0, -2.0, 4000000.0), CRS.from_epsg(32633))


class AllValid:
    """A mask overview that says every pixel is valid (the stitchers ask it per block)."""

    def sample(self, grid, window):
        return np.ones((int(window.height), int(window.width)), bool)


def test_blend_stitcher_uniform_equals_a_naive_splat_and_min_max():
    rng = np.random.default_rng(0)
    grid = grid_of(90, 70)
    windows = [Window(c, r, 32, 32) for r in (0, 20, 38) for c in (0, 24, 48, 58)]
    values = rng.normal(size=(len(windows), 2)).astype(np.float32)
    with BlendStitcher(grid, 2, "uniform", block_size=32) as stitcher:
        stitcher.add(windows[:5], values[:5])
        stitcher.add(windows[5:], values[5:])
        blocks = list(stitcher.maps(AllValid()))
    total, weight = np.zeros((2, 70, 90)), np.zeros((70, 90))
    for w, v in zip(windows, values, strict=True):
        rows, cols = slice(w.row_off, w.row_off + 32), slice(w.col_off, w.col_off + 32)
        total[:, rows, cols] += v[:, None, None]
        weight[rows, cols] += 1
    mean = np.where(weight > 0, total / np.maximum(weight, 1), np.nan)
    lo, hi = np.nanmin(mean, axis=(1, 2)), np.nanmax(mean, axis=(1, 2))
    score = (mean - lo[:, None, None]) / (hi - lo)[:, None, None]
    got = np.full((4, 70, 90), np.nan)
    for window, data in blocks:
        got[
            :, window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width
        ] = data
    np.testing.assert_allclose(got[2:], mean, rtol=1e-5, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(got[:2], score, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_selo_stitcher_equals_the_whole_array_selo_chain():
    from tile_tools.accumulate import selo_mean
    from tile_tools.postprocess import selo_postprocess

    rng = np.random.default_rng(1)
    grid = grid_of(300, 260)
    windows = [Window(c, r, 128, 128) for r in range(0, 140, 64) for c in range(0, 180, 64)]
    scores = rng.uniform(0.1, 0.4, size=(len(windows), 1))
    with SeloStitcher(grid, 1, block_size=64) as stitcher:
        stitcher.add(windows, scores)
        blocks = list(stitcher.maps(AllValid()))
    mean = selo_mean(windows, scores[:, 0], 260, 300)
    expected = selo_postprocess(mean, np.isfinite(mean), median_size=251)
    got = np.full((2, 260, 300), np.nan, np.float32)
    for window, data in blocks:
        got[
            :, window.row_off : window.row_off + window.height, window.col_off : window.col_off + window.width
        ] = data
    np.testing.assert_allclose(got[1], mean, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(np.nan_to_num(got[0], nan=-1), np.nan_to_num(expected, nan=-1))


def test_start_job_commits_only_a_finished_job_and_keeps_what_was_there(tmp_path):
    target = tmp_path / "out"
    with start_job("test", target, False, Progress()) as run:
        run.path("a.txt").write_text("first")
        run.finish(model=None, parameters={}, crs=None, outputs={"a": run.final("a.txt")})
    assert (target / "a.txt").read_text() == "first" and (target / "summary.json").is_file()
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    with pytest.raises(RuntimeError), start_job("test", target, True, Progress()) as run:
        run.path("a.txt").write_text("second")
        raise RuntimeError("the job failed half-way")
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # old output byte-identical
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no twin left beside it
    with (
        pytest.raises(ValueError, match="without finish"),
        start_job("test", target, True, Progress()) as run,
    ):
        run.path("a.txt").write_text("third")
    assert (target / "a.txt").read_text() == "first"


def test_a_cancelled_job_leaves_nothing(tmp_path):
    progress = Progress(threading.Event())
    with pytest.raises(JobCancelled), start_job("test", tmp_path / "out", False, progress) as run:
        run.path("a.txt").write_text("x")
        progress.cancel_event.set()
        progress.advance()
    assert list(tmp_path.iterdir()) == []
