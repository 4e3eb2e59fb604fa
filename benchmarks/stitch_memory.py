"""Peak memory of stitching a synthetic scene into a decimated heatmap COG, small vs huge scene.

Each scene size runs in a fresh subprocess: chips of 512 px with 25 % overlap (row by row), two
channels of synthetic scores, Hann splats into a ``WeightedAccumulator`` (decimation 8, storage
"auto"), then the mean streamed block by block into a COG with ``write_cog``. The child reports its
peak RSS (``ru_maxrss``); the parent prints both peaks and their ratio.

Target (issue 4): the 40 000 × 40 000 scene stays under 1.5 GB and within 10 % of the 5 000 × 5 000 one.
Usage: ``python benchmarks/stitch_memory.py [--sizes 5000 40000]``.
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
LIMIT_BYTES = 1.5e9
MAX_RATIO = 1.10


def _starts(size: int) -> list[int]:
    starts = list(range(0, max(size - CHIP, 0) + 1, STRIDE))
    if starts[-1] + CHIP < size:
        starts.append(size - CHIP)  # last chip flush with the border
    return starts


def child(size: int) -> dict[str, object]:
    import resource

    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    from tile_tools.accumulate import WeightedAccumulator
    from tile_tools.pixel_grid import PixelGrid
    from tile_tools.raster_writers import write_cog

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
        peak_stitch_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = write_cog(
            Path(folder) / "heat.tif", acc.iter_blocks(), acc.output_grid, band_descriptions=["a", "b"]
        )
        cog_bytes = out.stat().st_size
        storage = acc.storage
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "size": size,
        "chips": chips,
        "output": f"{acc.output_grid.width}x{acc.output_grid.height}",
        "storage": storage,
        "peak_rss_bytes": peak_kib * 1024,
        "peak_rss_after_stitch_bytes": peak_stitch_kib * 1024,
        "stitch_s": round(stitched - started, 2),
        "write_s": round(time.perf_counter() - stitched, 2),
        "cog_bytes": cog_bytes,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[5_000, 40_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    results = []
    for size in args.sizes:
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(size)], capture_output=True, text=True, check=True
        )
        result = json.loads(run.stdout.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{size:>6} x {size:<6} chips={result['chips']:<6} output={result['output']:<11} "
            f"storage={result['storage']:<6} peak RSS={result['peak_rss_bytes'] / 2**20:7.1f} MiB "
            f"(after stitching {result['peak_rss_after_stitch_bytes'] / 2**20:.1f}) "
            f"stitch={result['stitch_s']}s write={result['write_s']}s"
        )
    small, large = (r["peak_rss_bytes"] for r in results)
    ratio = large / small
    ok = large < LIMIT_BYTES and ratio <= MAX_RATIO
    print(
        f"peak RSS ratio large/small = {ratio:.3f} (target <= {MAX_RATIO}); large < 1.5 GB: {large < LIMIT_BYTES}"
    )
    print("stitch_memory:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
