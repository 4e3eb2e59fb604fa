"""Peak memory of the SeLo metrics on a large map: geo-dfm's row slabs vs the whole-image reference way.

A smooth synthetic probability map (float32, SIZE × SIZE) is written to a disk memmap; each side runs in
a fresh subprocess and reports its peak RSS (``ru_maxrss``) and its result:

- whole image: the reference's operations on full arrays (float64 map, float64 mask, uint8 filters);
- slabs: :func:`geo_dfm.evaluation.selo_metrics` reading the memmap row slab by row slab.

Both must give the same Rsu and peaks; target: slabs peak ≤ 0.5 × whole-image peak.
Usage: ``python benchmarks/selo_metrics_memory.py [SIZE]`` (default 6000).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = 0.5
REGIONS = [[[1000.0, 1200.0], [2600.0, 1100.0], [2400.0, 2900.0], [900.0, 2500.0]]]

CHILD = r"""
import json, resource, sys
import numpy as np
path, size, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
regions = json.loads(sys.argv[4])
probability = np.memmap(path, dtype=np.float32, mode="r", shape=(size, size))
if mode == "slabs":
    from geo_dfm.evaluation import selo_metrics
    scores = selo_metrics(probability, regions)
    rsu, peaks = scores.rsu, sorted(scores.peaks)
else:
    import cv2
    from scipy import ndimage
    p = np.asarray(probability, dtype=np.float64)
    mask = np.zeros(p.shape)
    cv2.fillPoly(mask, [np.array(r, np.int32) for r in regions], 1)
    inside, total, area = (p * mask).sum(), p.sum(), mask.sum()
    rsu = 1 - np.exp(-0.707 * inside / (total - inside + 1e-7) * (mask.size - area) / area)
    grey = np.asarray(p * 255.0, dtype=np.uint8)
    for _ in range(5):
        grey = cv2.boxFilter(grey, -1, (50, 50))
    top = ndimage.maximum_filter(grey, size=1000)
    labels, count = ndimage.label((top == grey) & (grey > 0), structure=np.ones((3, 3)))
    peaks = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        rows, cols = np.nonzero(labels[box] == index)
        x, y = int((cols + box[1].start).mean()), int((rows + box[0].start).mean())
        if p[y, x] >= 0.5:
            peaks.append([x, y])
    peaks = sorted(peaks)
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rsu": float(rsu), "peaks": [list(map(int, q)) for q in peaks], "peak_mb": peak_mb}))
"""


def make_map(path: Path, size: int) -> None:
    import numpy as np
    from scipy import ndimage

    out = np.memmap(path, dtype=np.float32, mode="w+", shape=(size, size))
    coarse = ndimage.gaussian_filter(np.random.default_rng(0).random((size // 50 + 1, size // 50 + 1)), 2)
    coarse = (coarse - coarse.min()) / (coarse.max() - coarse.min())
    for start in range(0, size, 500):  # bilinear upsampling, strip by strip
        rows = np.arange(start, min(size, start + 500)) / 50.0
        cols = np.arange(size) / 50.0
        grid = np.meshgrid(rows, cols, indexing="ij")
        out[start : start + len(rows)] = ndimage.map_coordinates(coarse, grid, order=1)
    out.flush()


def run(path: Path, size: int, mode: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(size), mode, json.dumps(REGIONS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 6000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "map.f32"
        make_map(path, size)
        whole, slabs = run(path, size, "whole"), run(path, size, "slabs")
    equal = abs(whole["rsu"] - slabs["rsu"]) < 1e-9 and whole["peaks"] == slabs["peaks"]
    ratio = slabs["peak_mb"] / whole["peak_mb"]
    print(
        f"SeLo metrics on a {size}² map: whole image {whole['peak_mb']:.0f} MB, slabs {slabs['peak_mb']:.0f} MB"
    )
    print(
        f"ratio slabs / whole = {ratio:.2f} (target ≤ {TARGET}); same Rsu and peaks: {equal} ({len(slabs['peaks'])} peaks)"
    )
    return 0 if equal and ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
