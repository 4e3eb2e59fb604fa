"""Chip reading with and without the background prefetcher, beside a simulated model.

Writes a synthetic 16-bit scene, cuts it into 224 px chips (25 % overlap) and consumes them in
batches of 32 with a fixed "model" time per batch. Prints the wall time of sequential reads
(workers=0) and of prefetched reads (workers=2), their ratio, and the peak of numpy memory
(tracemalloc) against the size of the scene's RGB bands.

Targets: prefetching at least 1.10x faster than sequential reads at the default 40 ms per batch (the
reads then hide behind the model), and a numpy peak of at most 0.5 x the scene's RGB bands (memory is
O(chips), not O(scene)). Exits non-zero when one is missed.

Run: .venv/bin/python benchmarks/chip_prefetch.py [--size 3072] [--model-ms 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from tile_tools.grid import ChipGridSpec
from tile_tools.prefetch import iter_chip_batches
from tile_tools.reader import SceneReader


def write_scene(path: Path, size: int) -> None:
    rng = np.random.default_rng(0)
    profile = dict(
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint16",
        crs="EPSG:32632",
        transform=from_origin(500000, 5600000, 1, 1),
        tiled=True,
        compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as dst:
        for row in range(0, size, 512):
            rows = min(512, size - row)
            block = rng.integers(0, 4000, (3, rows, size)).astype(np.uint16)
            dst.write(block, window=rasterio.windows.Window(0, row, size, rows))


def run(path: Path, workers: int, model_seconds: float) -> tuple[float, int, int]:
    with SceneReader(path) as reader:
        windows = ChipGridSpec.from_options("224", "0.25").windows(reader.grid)
        tracemalloc.start()
        start = time.perf_counter()
        for _batch in iter_chip_batches(reader, windows, 32, workers=workers, prefetch=2):
            time.sleep(model_seconds)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return elapsed, peak, len(windows)


MIN_SPEEDUP = 1.10
MAX_PEAK_FRACTION = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3072)
    parser.add_argument("--model-ms", type=float, default=40.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scene.tif"
        write_scene(path, args.size)
        seq, seq_peak, n = run(path, 0, args.model_ms / 1000)
        pre, pre_peak, _ = run(path, 2, args.model_ms / 1000)
    scene_mb = 3 * args.size**2 * 2 / 2**20
    print(
        f"scene {args.size}x{args.size} px, 3 bands uint16 ({scene_mb:.0f} MiB), {n} chips of 224 px, batch 32"
    )
    print(f"model time per batch: {args.model_ms:.0f} ms")
    print(f"sequential reads : {seq:.2f} s, numpy peak {seq_peak / 2**20:.1f} MiB")
    print(f"prefetch (2 thr) : {pre:.2f} s, numpy peak {pre_peak / 2**20:.1f} MiB")
    speedup, fraction = seq / pre, pre_peak / 2**20 / scene_mb
    print(f"speed-up sequential/prefetch: {speedup:.2f}x (target >= {MIN_SPEEDUP})")
    print(f"prefetch numpy peak / scene size: {fraction:.3f} (target <= {MAX_PEAK_FRACTION})")
    ok = speedup >= MIN_SPEEDUP and fraction <= MAX_PEAK_FRACTION
    print("chip_prefetch:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
