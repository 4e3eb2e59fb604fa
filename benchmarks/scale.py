"""Scene-scale jobs: peak memory stays flat and wall time grows linearly from 2 000² to 40 000² pixels.

Runs ``localize --method blend``, ``localize --method selo`` and ``classify`` (toy model, 256 px chips)
on synthetic scenes of growing size, each case in a fresh process (peak RSS = ``ru_maxrss`` of that
process), plus ``localize --method blend --decimate 1`` (a full-resolution output) on the largest.
Scenes larger than the base tile are VRT mosaics of it, so making them costs nothing.

Targets (exit 1 when missed): for every job, peak RSS of the largest scene ≤ 1.25 × the smallest, and
the exponent of wall time vs pixels fitted on the two largest sizes within [0.9, 1.1].

    python benchmarks/scale.py                     # 2000 10000 40000
    python benchmarks/scale.py --sizes 2000 6000 12000 --jobs blend
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE = 2000
JOBS = {
    "blend": ["localize", "{scene}", "water", "forest", "--method", "blend"],
    "selo": ["localize", "{scene}", "water", "--method", "selo"],
    "classify": ["classify", "{scene}", "--preset", "landcover"],
}
MEMORY_RATIO = 1.25
EXPONENT = (0.9, 1.1)

RUNNER = r"""
import json, resource, sys, time
from geo_dfm.cli.main import main
start = time.perf_counter()
code = main(sys.argv[1:])
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"code": code, "wall": wall, "peak": peak}))
"""


def mosaic(base: Path, size: int, folder: Path) -> Path:
    """A ``size``² VRT made of copies of the ``BASE``² scene ``base`` (size a multiple of BASE)."""
    import rasterio

    if size == BASE:
        return base
    with rasterio.open(base) as src:
        t = src.transform
        srs = src.crs.to_wkt()
    tiles = size // BASE
    bands = []
    for band, colour in ((1, "Red"), (2, "Green"), (3, "Blue")):
        sources = "".join(
            f"<SimpleSource><SourceFilename relativeToVRT='0'>{base}</SourceFilename>"
            f"<SourceBand>{band}</SourceBand>"
            f"<SrcRect xOff='0' yOff='0' xSize='{BASE}' ySize='{BASE}'/>"
            f"<DstRect xOff='{j * BASE}' yOff='{i * BASE}' xSize='{BASE}' ySize='{BASE}'/></SimpleSource>"
            for i in range(tiles)
            for j in range(tiles)
        )
        bands.append(
            f"<VRTRasterBand dataType='Byte' band='{band}'><ColorInterp>{colour}</ColorInterp>{sources}</VRTRasterBand>"
        )
    path = folder / f"scene-{size}.vrt"
    path.write_text(
        f"<VRTDataset rasterXSize='{size}' rasterYSize='{size}'><SRS>{srs}</SRS>"
        f"<GeoTransform>{t.c}, {t.a}, {t.b}, {t.f}, {t.d}, {t.e}</GeoTransform>{''.join(bands)}</VRTDataset>"
    )
    return path


def run_case(args: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"case failed: {' '.join(args)}\n{result.stderr[-3000:]}")
    measured = json.loads(lines[-1])
    if measured["code"] != 0:
        raise SystemExit(f"geo-dfm exited {measured['code']}: {' '.join(args)}\n{result.stderr[-3000:]}")
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    parser.add_argument("--no-full-resolution", action="store_true", help="skip blend --decimate 1")
    options = parser.parse_args()
    if any(size % BASE for size in options.sizes):
        raise SystemExit(f"sizes must be multiples of {BASE}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from geo_dfm.synthetic import ensure_toy_model, make_scene

    ensure_toy_model()
    failed = False
    with tempfile.TemporaryDirectory(prefix="geo-dfm-scale-") as tmp:
        folder = Path(tmp)
        base = make_scene(folder / "base.tif", width=BASE, height=BASE, gsd=1.0, seed=5).path
        scenes = {size: mosaic(base, size, folder) for size in options.sizes}
        cases = [(job, size, []) for job in options.jobs for size in options.sizes]
        if "blend" in options.jobs and not options.no_full_resolution:
            cases.append(("blend", max(options.sizes), ["--decimate", "1"]))
        results: dict[tuple[str, int, str], dict] = {}
        print(f"{'job':<22}{'pixels':>16}{'wall s':>10}{'peak MiB':>10}")
        for job, size, extra in cases:
            out = folder / f"out-{job}-{size}-{len(extra)}"
            argv = [a.format(scene=scenes[size]) for a in JOBS[job]]
            argv += ["-o", str(out), "--model", "toy", "--chip-size", "256", "--progress", "none", *extra]
            started = time.perf_counter()
            measured = run_case(argv)
            label = job + (" full-res" if extra else "")
            results[(job, size, label)] = measured
            print(
                f"{label:<22}{size * size:>16,}{measured['wall']:>10.1f}{measured['peak'] / 2**20:>10.0f}"
                f"   (process {time.perf_counter() - started:.1f} s)",
                flush=True,
            )
            subprocess.run(["rm", "-rf", str(out)], check=False)
        small, large = min(options.sizes), max(options.sizes)
        two = sorted(options.sizes)[-2:]
        for job in options.jobs:
            base_peak = results[(job, small, job)]["peak"]
            for label in {k[2] for k in results if k[0] == job}:
                big = results.get((job, large, label))
                if big is None:
                    continue
                ratio = big["peak"] / base_peak
                ok = ratio <= MEMORY_RATIO
                failed |= not ok
                print(
                    f"{label}: peak RSS {large}² / {small}² = {ratio:.3f} (target ≤ {MEMORY_RATIO}) {'ok' if ok else 'MISSED'}"
                )
            if len(two) == 2 and two[0] != two[1]:
                w0, w1 = (results[(job, s, job)]["wall"] for s in two)
                exponent = math.log(w1 / w0) / math.log((two[1] / two[0]) ** 2)
                ok = EXPONENT[0] <= exponent <= EXPONENT[1]
                failed |= not ok
                print(
                    f"{job}: wall-time exponent {two[0]}²→{two[1]}² = {exponent:.3f} "
                    f"(target {EXPONENT[0]}–{EXPONENT[1]}) {'ok' if ok else 'MISSED'}"
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
