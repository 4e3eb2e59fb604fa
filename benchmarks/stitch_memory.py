"""Peak memory of the streaming outputs: small vs huge, for the accumulator chain and for the writers alone.

Each case runs in a fresh subprocess that reports its peak RSS (``ru_maxrss``); the parent prints the
peaks side by side and their ratio.

- ``scene`` (5 000² vs 40 000² scenes): chips of 512 px with 25 % overlap (row by row), two channels of
  synthetic scores, Hann splats into a ``WeightedAccumulator`` (decimation 8, storage "auto"), then the
  jobs' block-wise outputs from the accumulator: pass 1 ``ChannelStats``; pass 2 normalised blocks into
  one 4-band COG (score + raw per channel, ``CogWriter``), a class raster (``ClassRasterWriter`` of the
  argmax, with ``ClassAreas``), a bounded overlay preview (``PreviewWriter``, long side ≤ 4096) and
  seam-merged polygons (``HeatRegions``).
- ``output`` (5 000² vs 20 000² full-resolution outputs by default; ``--outputs 5000 40000`` for the
  issue's largest size, about 30 min and 25 GB of temporary disk here): the same writers fed with
  synthetic 512-px blocks of one channel directly (no accumulator): a 2-band float32 COG, a class raster,
  the preview, polygons and statistics.

Targets (issues 4 and 11): each large case stays under 1.5 GB and within 10 % of its small case.
Usage: ``python benchmarks/stitch_memory.py [--scenes 5000 40000] [--outputs 5000 20000] [--only scene|output]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHIP, STRIDE, DECIMATION, CHANNELS = 512, 384, 8, 2
OUTPUT_BLOCK = 512
LIMIT_BYTES = 1.5e9
MAX_RATIO = 1.10


def _starts(size: int) -> list[int]:
    starts = list(range(0, max(size - CHIP, 0) + 1, STRIDE))
    if starts[-1] + CHIP < size:
        starts.append(size - CHIP)  # last chip flush with the border
    return starts


def _write_outputs(folder: Path, grid, blocks, stats, channels: int) -> dict[str, object]:
    """One pass over ``blocks()``: every streaming writer at once. Returns sizes and counts."""
    from contextlib import ExitStack

    import numpy as np

    from tile_tools.blocks import Block
    from tile_tools.class_blocks import ClassAreas, label_block
    from tile_tools.preview import PreviewGrid, PreviewWriter
    from tile_tools.raster_writers import ClassRasterWriter, CogWriter
    from tile_tools.vectorize import HeatRegions

    names = [f"c{i}" for i in range(max(channels, 2))]
    descriptions = [f"{kind}: {n}" for n in names[:channels] for kind in ("score", "raw")]
    preview = PreviewGrid.bounded(grid)
    areas = ClassAreas(grid, len(names))
    regions = HeatRegions(grid, 0.5, query="c0", min_area_m2=0.0)
    with ExitStack() as stack:
        cog = stack.enter_context(
            CogWriter(folder / "heat.tif", grid, 2 * channels, band_descriptions=descriptions)
        )
        classes = stack.enter_context(ClassRasterWriter(folder / "classes.tif", grid, names))
        overlay = stack.enter_context(PreviewWriter(folder / "overlay.png", preview))
        for window, raw in blocks():
            score = stats.normalize(raw)
            cog.write(window, np.stack([score, raw], axis=1).reshape(2 * channels, *raw.shape[1:]))
            probabilities = raw if channels > 1 else np.concatenate([score, 1.0 - score])
            labels = label_block(Block(window, probabilities))
            classes.write(window, labels.classes)
            areas.add(window, labels.classes)
            overlay.write(window, score[0])
            regions.add(window, score[0])
    frame = regions.frame()
    return {
        "cog_bytes": (folder / "heat.tif").stat().st_size,
        "preview": f"{preview.grid.width}x{preview.grid.height}",
        "regions": len(frame),
        "area_m2": float(areas.areas_m2().sum()),
    }


def scene_child(size: int) -> dict[str, object]:
    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    from tile_tools.accumulate import WeightedAccumulator
    from tile_tools.block_stats import ChannelStats
    from tile_tools.pixel_grid import PixelGrid

    grid = PixelGrid(size, size, Affine(0.5, 0, 500_000, 0, -0.5, 5_000_000), CRS.from_epsg(32633))
    started = time.perf_counter()
    chips = 0
    with (
        WeightedAccumulator(grid, CHANNELS, weight="hann", decimation=DECIMATION) as acc,
        tempfile.TemporaryDirectory() as folder,
    ):
        for row in _starts(size):
            for col in _starts(size):
                y, x = (row + CHIP / 2) / size, (col + CHIP / 2) / size
                acc.add(Window(col, row, CHIP, CHIP), np.array([np.sin(6 * x) * np.cos(4 * y), x * y]))
                chips += 1
        stitched = time.perf_counter()
        peak_stitch_kib = _peak_kib()
        stats = ChannelStats.from_blocks(acc.iter_blocks())
        result = _write_outputs(Path(folder), acc.output_grid, acc.iter_blocks, stats, CHANNELS)
        storage = acc.storage
    return {
        "case": f"scene {size}x{size}",
        "chips": chips,
        "output": f"{acc.output_grid.width}x{acc.output_grid.height}",
        "storage": storage,
        "peak_rss_bytes": _peak_kib() * 1024,
        "peak_rss_after_stitch_bytes": peak_stitch_kib * 1024,
        "stitch_s": round(stitched - started, 2),
        "write_s": round(time.perf_counter() - stitched, 2),
        **result,
    }


def output_child(size: int) -> dict[str, object]:
    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS

    from tile_tools.block_stats import ChannelStats
    from tile_tools.blocks import Block, block_windows
    from tile_tools.pixel_grid import PixelGrid

    grid = PixelGrid(size, size, Affine(0.3, 0, 500_000, 0, -0.3, 5_000_000), CRS.from_epsg(32633))

    def blocks():
        for window in block_windows(size, size, OUTPUT_BLOCK):
            rows, cols = window.toslices()
            y = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None] / size
            x = np.arange(cols.start, cols.stop, dtype=np.float32)[None, :] / size
            score = 0.5 + 0.5 * np.sin(40 * x) * np.cos(30 * y)
            yield Block(window, score[None].astype(np.float32))

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        stats = ChannelStats.from_blocks(blocks())
        result = _write_outputs(Path(folder), grid, blocks, stats, 1)
    return {
        "case": f"output {size}x{size}",
        "output": f"{size}x{size}",
        "peak_rss_bytes": _peak_kib() * 1024,
        "write_s": round(time.perf_counter() - started, 2),
        **result,
    }


def _peak_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_pair(kind: str, sizes: list[int]) -> bool:
    results = []
    for size in sizes:
        run = subprocess.run(
            [sys.executable, __file__, f"--{kind}-child", str(size)], capture_output=True, text=True
        )
        if run.returncode != 0:
            print(run.stderr[-4000:])
            return False
        result = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(result)
        extra = {k: v for k, v in result.items() if k not in ("case", "peak_rss_bytes")}
        print(f"{result['case']:<22} peak RSS {result['peak_rss_bytes'] / 2**20:7.1f} MiB  {extra}")
    small, large = (r["peak_rss_bytes"] for r in results)
    ratio = large / small
    ok = large < LIMIT_BYTES and ratio <= MAX_RATIO
    print(
        f"{kind}: peak RSS ratio large/small = {ratio:.3f} (target <= {MAX_RATIO}); large < 1.5 GB: {large < LIMIT_BYTES}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, nargs=2, default=[5_000, 40_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--outputs", type=int, nargs=2, default=[5_000, 20_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--only", choices=["scene", "output"])
    parser.add_argument("--scene-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scene_child:
        print(json.dumps(scene_child(args.scene_child)))
        return 0
    if args.output_child:
        print(json.dumps(output_child(args.output_child)))
        return 0
    ok = True
    if args.only in (None, "scene"):
        ok &= run_pair("scene", args.scenes)
    if args.only in (None, "output"):
        ok &= run_pair("output", args.outputs)
    print("stitch_memory:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
