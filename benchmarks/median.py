"""SeLo's 251-pixel median: tile_tools' block-wise ``median_filter`` vs one ``cv2.medianBlur`` on the whole map.

For each size (default 4 000² and 10 000²), a synthetic uint8 SeLo map (smooth field plus noise) is
filtered with ``cv2.medianBlur(g, 251)`` on the whole array and with ``median_filter(g, 251)`` (OpenCV per
2048-pixel block with a 125-pixel halo, tile_tools' default). Prints both times, their ratio and the
maximum absolute difference; also the numpy fallback path on a 1024² map, for scale.

Targets: max abs difference 0 at every size; block-wise time ≤ 1.5 × the whole-array time (the halos
cost extra pixels; the whole-array call needs the whole map in memory, the block-wise one a block).
Usage: ``python benchmarks/median.py [--sizes 4000 10000]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import cv2
import numpy as np

from tile_tools.postprocess import median_filter

SIZE = 251
MAX_RATIO = 1.5


def selo_like(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axis = np.linspace(0, 6 * np.pi, size, dtype=np.float32)
    field = 0.5 + 0.25 * np.sin(axis)[None, :] * np.cos(0.7 * axis)[:, None]
    noisy = field + rng.normal(0, 0.08, (size, size)).astype(np.float32)
    return (255 * np.clip(noisy, 0, 1)).astype(np.uint8)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 10_000])
    args = parser.parse_args()
    ok = True
    for size in args.sizes:
        g = selo_like(size)
        whole, t_whole = timed(lambda g=g: cv2.medianBlur(g, SIZE))
        blocks, t_blocks = timed(lambda g=g: median_filter(g, SIZE))
        diff = int(np.abs(whole.astype(np.int16) - blocks.astype(np.int16)).max())
        ratio = t_blocks / t_whole
        ok &= diff == 0 and ratio <= MAX_RATIO
        print(
            f"{size:>6}²: cv2.medianBlur whole {t_whole:6.2f} s, median_filter block-wise {t_blocks:6.2f} s, "
            f"ratio {ratio:.2f} (target <= {MAX_RATIO}), max abs diff {diff} (target 0)"
        )
    small = selo_like(1024, seed=1)
    reference, t_cv = timed(lambda: median_filter(small, SIZE, backend="opencv"))
    numpy_path, t_np = timed(lambda: median_filter(small, SIZE, backend="numpy"))
    same = np.array_equal(reference, numpy_path)
    ok &= same
    print(
        f"  1024²: numpy fallback {t_np:.2f} s vs OpenCV {t_cv:.3f} s ({t_np / t_cv:.0f}x slower), identical: {same}"
    )
    print("median:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
