"""AIR-SLT semantic localization: a map per sample (from ``localize`` or from files), then Rsu/Ras/Rda/Rmi.

Maps come from the localize job itself (no second implementation): each image is localized once for
its captions (``method`` ``selo`` by default, ``exact`` for the reference's JPEG round trips, or any
other localize method), at full resolution, into a temporary folder; band 1 of each heatmap COG is
scored. ``maps_dir`` instead scores maps made by any tool: one grey PNG/TIF/JPEG per sample index
(``0.png``, ``1.tif``, … or ``probmap_0.jpg``), the size of the sample's image. Every map is scored
as an 8-bit grey image, the reference's storage (:class:`~geo_dfm.evaluation.selo_maps.GreyRasterMap`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.evaluation.air_slt import SeloSample, read_air_slt
from geo_dfm.evaluation.metrics import SELO_KEYS, SeloScores, UndefinedMetricWarning, selo_scores
from geo_dfm.evaluation.selo_maps import GreyRasterMap
from geo_dfm.jobs.params import ChipParams, ModelParams
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

MAP_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: Captions of one image are localized together while captions × pixels stays below this.
GROUP_VALUES = 64_000_000


@dataclass(frozen=True)
class SeloSampleResult:
    """The scores of one AIR-SLT sample (``saved_map``: where its grey map was kept, if asked)."""

    index: int
    image: str
    caption: str
    scores: SeloScores
    saved_map: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "image": self.image,
            "caption": self.caption,
            **dict(self.scores),
            "peaks": len(self.scores.peaks),
            "notes": list(self.scores.notes),
            "map": self.saved_map,
        }


@dataclass(frozen=True)
class SeloResult:
    """Per-sample scores and their means (each metric averaged over samples, as the reference does)."""

    root: Path
    source: str
    samples: tuple[SeloSampleResult, ...] = field(default=())

    @property
    def means(self) -> dict[str, float]:
        return {key: float(np.mean([s.scores[key] for s in self.samples])) for key in SELO_KEYS}

    def as_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "source": self.source, "samples": len(self.samples), **self.means}


def evaluate_selo(
    air_slt_dir: str | os.PathLike[str],
    *,
    model: ModelParams | None = None,
    method: str = "selo",
    exact: bool = False,
    scales: str | None = None,
    maps_dir: str | os.PathLike[str] | None = None,
    save_maps_dir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
    block_rows: int | None = None,
) -> SeloResult:
    """Rsu, Ras, Rda, Rmi of every AIR-SLT sample and their means.

    ``model``/``method``/``exact``/``scales`` go to ``localize`` (``scales``: window sizes, default the
    reference's 256,512,768); with ``maps_dir`` no model runs. ``save_maps_dir`` keeps each scored
    map as ``<index>.tif`` (8-bit grey), which ``maps_dir`` accepts later.
    """
    progress = progress or Progress()
    root = Path(air_slt_dir).expanduser()
    samples = read_air_slt(root)
    if maps_dir is not None:
        source = f"maps: {Path(maps_dir).absolute()}"
        pairs = _file_maps(samples, Path(maps_dir))
    else:
        source = f"localize --method {method}" + (" --exact" if exact else "")
        pairs = _localized_maps(samples, model or ModelParams(), method, exact, scales, progress)
    progress.stage("score maps", total=len(samples))
    results = []
    for sample, map_path in pairs:
        scores = _score(sample, map_path, block_rows)
        saved = _save_grey(map_path, Path(save_maps_dir), sample.index) if save_maps_dir else None
        results.append(SeloSampleResult(sample.index, sample.image.name, sample.caption, scores, saved))
        progress.advance()
    return SeloResult(root.absolute(), source, tuple(sorted(results, key=lambda r: r.index)))


def _score(sample: SeloSample, map_path: Path, block_rows: int | None) -> SeloScores:
    with GreyRasterMap(map_path) as probability:
        expected = _image_shape(sample.image)
        if expected is not None and probability.shape != expected:
            raise InputError(
                map_path,
                f"map of sample {sample.index} is {probability.shape[1]}×{probability.shape[0]} px, "
                f"its image {sample.image.name} is {expected[1]}×{expected[0]} px",
            )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UndefinedMetricWarning)
            scores = selo_scores(probability, [list(region) for region in sample.regions], block_rows)
    for warning in caught:
        log.warning("AIR-SLT sample %d (%s): %s", sample.index, sample.caption, warning.message)
    return scores


def _image_shape(image: Path) -> tuple[int, int] | None:
    """(H, W) of an image file from its header, or ``None`` when the image is absent."""
    if not image.exists():
        return None
    from PIL import Image

    try:
        with Image.open(image) as opened:
            width, height = opened.size
    except OSError as exc:
        raise InputError(image, f"cannot read the image: {exc}") from exc
    return height, width


def _file_maps(samples: Sequence[SeloSample], folder: Path) -> Iterator[tuple[SeloSample, Path]]:
    if not folder.is_dir():
        raise InputError(folder, "maps folder not found")
    found = {}
    for path in folder.iterdir():
        stem = path.stem.removeprefix("probmap_")
        if path.suffix.lower() in MAP_EXTENSIONS and stem.isdigit():
            found.setdefault(int(stem), path)
    missing = [s.index for s in samples if s.index not in found]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise InputError(folder, f"no map for sample(s) {shown} (expected e.g. {missing[0]}.png)")
    for sample in samples:
        yield sample, found[sample.index]


def _localized_maps(
    samples: Sequence[SeloSample],
    model: ModelParams,
    method: str,
    exact: bool,
    scales: str | None,
    progress: Progress,
) -> Iterator[tuple[SeloSample, Path]]:
    """Run ``localize`` image by image (captions of one image together) and yield each sample's map."""
    from geo_dfm.jobs.localize import LocalizeParams, run_localize

    for sample in samples:
        if not sample.image.is_file():
            raise InputError(sample.image, f"image of AIR-SLT sample {sample.index} not found")
    quiet = Progress(cancel_event=progress.cancel_event)  # localize's own stages stay out of our bar
    with tempfile.TemporaryDirectory(prefix="geo-dfm-eval-selo-") as scratch:
        for number, group in enumerate(_caption_groups(samples)):
            output = Path(scratch) / f"image{number}"
            params = LocalizeParams(
                scene=str(group[0].image),
                queries=tuple(dict.fromkeys(sample.caption for sample in group)),
                output=str(output),
                method=method,
                exact=exact,
                decimate=1,
                chips=ChipParams(scales=scales),
                model=model,
            )
            heatmaps = run_localize(params, quiet)["outputs"]["heatmaps"]
            for sample in group:
                yield sample, Path(heatmaps[sample.caption])  # scored before the next one is asked for
            shutil.rmtree(output, ignore_errors=True)


def _caption_groups(samples: Sequence[SeloSample]) -> list[list[SeloSample]]:
    """Samples grouped by image (in order of first appearance), split where captions × pixels gets large."""
    by_image: dict[Path, list[SeloSample]] = {}
    for sample in samples:
        by_image.setdefault(sample.image, []).append(sample)
    groups = []
    for image, members in by_image.items():
        shape = _image_shape(image) or (1, 1)
        per_group = max(1, GROUP_VALUES // (shape[0] * shape[1]))
        captions = list(dict.fromkeys(s.caption for s in members))
        for start in range(0, len(captions), per_group):
            chosen = set(captions[start : start + per_group])
            groups.append([s for s in members if s.caption in chosen])
    return groups


def _save_grey(map_path: Path, folder: Path, index: int) -> str:
    """Write a map's 8-bit grey levels to ``folder/<index>.tif`` (tiled, row block by row block)."""
    import rasterio
    import rasterio.errors
    from rasterio.windows import Window

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{index}.tif"
    with GreyRasterMap(map_path) as source:
        height, width = source.shape
        profile = {
            "driver": "GTiff",
            "height": height,
            "width": width,
            "count": 1,
            "dtype": "uint8",
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            out = rasterio.open(target, "w", **profile)
        with out:
            step = max(256, 8_000_000 // max(1, width)) // 256 * 256
            for start in range(0, height, step):
                stop = min(height, start + step)
                out.write(source.grey_rows(start, stop), 1, window=Window(0, start, width, stop - start))
    return str(target)
