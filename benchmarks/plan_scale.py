"""Window planning at scale: flat memory, compact windows, and the up-front refusal of impossible plans.

Plans 32 px chips (no overlap, ``min_valid=0``: every window kept) over two sparse VRT scenes
(``--sizes``, default 11 000² and 45 000² px: about 0.12 M and 2 M windows, the default ``max_chips``),
each case in a fresh process, and measures with tracemalloc:

- ``plan_chips`` whole (open, valid-mask overview, plan): peak memory at both sizes;
- the windows alone on the largest size: ``plan_windows`` on an open reader (streamed blocks into one
  (N, 4) int64 array) against the former way, a list of ``rasterio.windows.Window`` objects for the same
  grid (``regular_windows``): bytes per window held afterwards and at the peak.

Then a 1 000 000² px scene (10¹² pixels) must be refused before any pixel is read.

Targets (exit 1 when missed): ``plan_windows`` peaks at most half the bytes per window of the list of
``Window`` objects; ``plan_chips`` on the largest size peaks at most 1.25 × the smallest and under
400 MiB; the 10¹² px scene is refused (``max_grid_pixels``, and with that limit raised, ``max_chips``)
in under 1 s each.

    python benchmarks/plan_scale.py [--sizes 11000 45000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

MAX_BYTES_RATIO = 0.5
MAX_GROWTH = 1.25
MAX_PEAK_MIB = 400.0
MAX_REFUSAL_S = 1.0
CHIP = 32


def write_vrt(folder: Path, size: int) -> Path:
    """A size² px VRT (UTM, 10 cm pixels, nodata 0) holding one small real tile."""
    tile = folder / "tile.tif"
    if not tile.exists():
        data = np.random.default_rng(0).integers(1, 255, (3, 64, 64), dtype=np.uint8)
        profile = dict(driver="GTiff", width=64, height=64, count=3, dtype="uint8", crs="EPSG:32632")
        with rasterio.open(tile, "w", transform=from_origin(500000, 5600000, 0.1, 0.1), **profile) as dst:
            dst.write(data)
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue><ComplexSource>'
        f'<SourceFilename relativeToVRT="0">{tile}</SourceFilename><SourceBand>{b}</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/>'
        f'<DstRect xOff="{size // 3}" yOff="{size // 4}" xSize="64" ySize="64"/></ComplexSource></VRTRasterBand>'
        for b in (1, 2, 3)
    )
    path = folder / f"scene_{size}.vrt"
    path.write_text(
        f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>EPSG:32632</SRS>'
        "<GeoTransform>500000, 0.1, 0, 5600000, 0, -0.1</GeoTransform>" + bands + "</VRTDataset>"
    )
    return path


def measure(kind: str, scene: str, size: int) -> dict[str, float]:
    """One case, in this process: windows, bytes held after the call and its peak, seconds."""
    from tile_tools.grid import ChipGridSpec, plan_chips, plan_windows, regular_windows
    from tile_tools.reader import SceneReader

    reader = None
    if kind == "windows":  # the reader and its mask overview are not counted
        reader = SceneReader(scene)
        reader.valid_mask_overview()
    tracemalloc.start()
    start = time.perf_counter()
    if kind == "plan_chips":
        with plan_chips(scene, chip_size=str(CHIP), overlap="0", min_valid=0) as plan:
            result = plan.windows
    elif kind == "windows":
        result = plan_windows(reader, ChipGridSpec.from_options(str(CHIP), "0"), min_valid=0)
    else:
        result = regular_windows(size, size, CHIP, CHIP)
    seconds = time.perf_counter() - start
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"windows": len(result), "held": held, "peak": peak, "seconds": seconds}


def in_subprocess(kind: str, scene: Path, size: int) -> dict[str, float]:
    here = str(Path(__file__).resolve().parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); from plan_scale import measure; "
        f"print(json.dumps(measure({kind!r}, {str(scene)!r}, {size})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def refusal_seconds(scene: Path, **limits: int) -> tuple[float, str]:
    from tile_tools.errors import InputError
    from tile_tools.grid import plan_chips

    start = time.perf_counter()
    try:
        plan_chips(scene, chip_size="224", min_valid=0, **limits).reader.close()
    except InputError as exc:
        return time.perf_counter() - start, str(exc.source)
    return time.perf_counter() - start, "not refused"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[11_000, 45_000])
    args = parser.parse_args()
    small, large = args.sizes
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        scenes = {size: write_vrt(folder, size) for size in (small, large)}
        whole = {size: in_subprocess("plan_chips", scenes[size], size) for size in (small, large)}
        alone = {kind: in_subprocess(kind, scenes[large], large) for kind in ("windows", "list")}
        huge = write_vrt(folder, 1_000_000)
        grid_s, grid_limit = refusal_seconds(huge)
        chips_s, chips_limit = refusal_seconds(huge, max_grid_pixels=10**13)
    for size, r in whole.items():
        print(
            f"plan_chips {size:>7,}² px: {int(r['windows']):>10,} windows, peak {r['peak'] / 2**20:7.1f} MiB, "
            f"{r['seconds']:.2f} s"
        )
    for kind, label in (("windows", "plan_windows (array)"), ("list", "list of Window     ")):
        r = alone[kind]
        print(
            f"{label} {large:,}² px: {r['held'] / r['windows']:5.1f} B/window held, "
            f"{r['peak'] / r['windows']:5.1f} B/window at the peak, {r['seconds']:.2f} s under tracemalloc"
        )
    ratio = (alone["windows"]["peak"] / alone["windows"]["windows"]) / (
        alone["list"]["peak"] / alone["list"]["windows"]
    )
    growth = whole[large]["peak"] / whole[small]["peak"]
    peak_mib = whole[large]["peak"] / 2**20
    print(f"peak bytes per window, array / list: {ratio:.3f} (target <= {MAX_BYTES_RATIO})")
    print(
        f"plan_chips peak {large:,}² / {small:,}²: {growth:.3f} (target <= {MAX_GROWTH}); "
        f"{peak_mib:.1f} MiB (target <= {MAX_PEAK_MIB:.0f})"
    )
    print(f"1 000 000² px scene refused by {grid_limit} in {grid_s:.3f} s (target <= {MAX_REFUSAL_S})")
    print(f"  with max_grid_pixels raised, refused by {chips_limit} in {chips_s:.3f} s")
    ok = (
        ratio <= MAX_BYTES_RATIO
        and growth <= MAX_GROWTH
        and peak_mib <= MAX_PEAK_MIB
        and grid_limit == "max_grid_pixels"
        and chips_limit == "max_chips"
        and max(grid_s, chips_s) <= MAX_REFUSAL_S
    )
    print("plan_scale:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
