"""``pairs``: training pairs from the user's labelled map, and the RS5M filter for generic pairs.

From labels (:func:`run_pairs`): for each scene, chips on the grid of ``chips`` (or random windows),
each labelled by the majority label of the polygons rasterised on its window
(:mod:`geo_dfm.pairs.from_labels`), kept above ``min_coverage``; optional negatives from chips that
meet no polygon; every chip written as a georeferenced GeoTIFF with ``captions_per_chip`` template
captions. Output folder::

    pairs.csv          image_path (relative to the folder), caption, label, kind, coverage, scene, window
    chips/<scene>/     one GeoTIFF per chip (the scene's working CRS and the chip's transform)
    pairs.gpkg         layer "pairs": chip footprints in the labels' CRS with label, coverage, file
    class_counts.csv   label, chips, pairs, share
    summary.json

Filter (:func:`run_pairs_filter`): see :mod:`geo_dfm.pairs.rs_filter`.
"""

from __future__ import annotations

import contextlib
import csv
import logging
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.params import ChipParams, ModelParams, param
from geo_dfm.jobs.pipeline import check_scene, start_job
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

SAMPLINGS = ("grid", "random")
PAIRS_COLUMNS = (
    "image_path",
    "caption",
    "label",
    "kind",
    "coverage",
    "scene",
    "col_off",
    "row_off",
    "width",
    "height",
)


@dataclass(frozen=True)
class PairsParams:
    """Everything ``pairs`` needs to make training pairs from a labelled map."""

    scenes: tuple[str, ...] = param(help="The scenes (any GDAL rasters).")
    labels: str = param(help="The labelled polygons (any vector file GDAL reads, any CRS).")
    label_field: str = param(help="The labels' attribute holding the class name.")
    output: str = param(help="Output folder: pairs.csv, chips/, pairs.gpkg, class_counts.csv, summary.json.")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    layer: str | None = param(None, help="The layer of the labels file (default: its first).")
    min_coverage: float = param(0.5, help="Least share of a chip its majority label must cover.")
    templates: str = param("rs105", help="Caption templates: rs105, remoteclip, skyclip, none, or a file.")
    captions_per_chip: int = param(1, help="Captions (rows of pairs.csv) per chip, from distinct templates.")
    negatives: str | None = param(None, help="Label for chips outside every polygon (no negatives if unset).")
    max_negatives: int | None = param(None, help="Negatives per scene at most (default: its labelled chips).")
    max_per_class: int | None = param(None, help="Chips per label and scene at most (a seeded sample).")
    sampling: str = param("grid", help="Chip windows: the regular grid or random windows.", choices=SAMPLINGS)
    samples: int | None = param(None, help="Random windows per scene (with sampling=random).")
    seed: int = param(0, help="Seed of captions, negatives and random windows.")
    chips: ChipParams = field(default_factory=lambda: ChipParams(chip_size="224"))

    def inputs(self) -> tuple[str, ...]:
        return (*self.scenes, self.labels, *self.chips.input_files())


def check_pairs_params(params: PairsParams) -> PairsParams:
    """Checks that need no file (InputErrors name the parameter)."""
    if not params.scenes:
        raise InputError("scenes", "give at least one scene")
    if params.sampling not in SAMPLINGS:
        raise InputError("sampling", f"unknown sampling {params.sampling!r}; choose grid or random")
    if params.sampling == "random" and not (params.samples and params.samples > 0):
        raise InputError("samples", "random sampling needs the number of windows per scene (samples > 0)")
    if params.captions_per_chip < 1:
        raise InputError("captions_per_chip", f"needs at least 1, got {params.captions_per_chip}")
    if params.max_per_class is not None and params.max_per_class < 1:
        raise InputError("max_per_class", f"must be at least 1, got {params.max_per_class}")
    if params.max_negatives is not None and params.max_negatives < 0:
        raise InputError("max_negatives", f"must be 0 or more, got {params.max_negatives}")
    if params.negatives is not None and not params.negatives.strip():
        raise InputError("negatives", "the negatives' label is empty")
    if not 0.0 < params.min_coverage <= 1.0:
        raise InputError("min_coverage", f"must be in (0, 1], got {params.min_coverage}")
    return replace(params, scenes=tuple(check_scene(s) for s in params.scenes))


@dataclass
class _SceneChips:
    scene: str
    slug: str
    labelled: list  # LabelledWindow
    negatives: list  # Window
    below_coverage: int


def _scene_windows(plan, params: PairsParams, rng: np.random.Generator) -> list:
    if params.sampling == "grid":
        return plan.windows
    from tile_tools.samplers import sample_windows

    sizes = plan.spec.sizes_px(plan.reader.grid, plan.reader.path)
    return sample_windows(plan.reader, sizes, int(params.samples), rng, min_valid=params.chips.min_valid)


def _sample(candidates: list, limit: int, rng: np.random.Generator) -> list:
    """At most ``limit`` of ``candidates`` (a seeded sample, in their order)."""
    if limit <= 0 or not candidates:
        return []
    if limit >= len(candidates):
        return list(candidates)
    picks = np.sort(rng.choice(len(candidates), size=limit, replace=False))
    return [candidates[i] for i in picks]


def _cap_per_class(labelled: list, limit: int | None, rng: np.random.Generator) -> list:
    if limit is None:
        return labelled
    by_label: dict[str, list] = {}
    for item in labelled:
        by_label.setdefault(item.label, []).append(item)
    kept = {id(item) for label in sorted(by_label) for item in _sample(by_label[label], limit, rng)}
    return [item for item in labelled if id(item) in kept]


def run_pairs(params: PairsParams, progress: Progress) -> dict[str, Any]:
    """Make training pairs from labelled polygons over ``params.scenes``; returns the summary."""
    from geo_dfm.pairs.captions import CaptionMaker
    from geo_dfm.pairs.from_labels import label_windows, read_label_layer

    params = check_pairs_params(params)
    maker = CaptionMaker(params.templates)
    rng = np.random.default_rng(params.seed)
    with start_job("pairs", params.output, params.overwrite, progress, params.inputs()) as job:
        with job.stage("read labels"):
            layer = read_label_layer(params.labels, params.label_field, params.layer)
        slugs = unique_slugs([Path(scene).stem for scene in params.scenes])
        rows: list[dict[str, Any]] = []
        footprints = []
        per_scene: dict[str, dict[str, int]] = {}
        below_total = 0
        for scene, slug in zip(params.scenes, slugs, strict=True):
            with job.plan(scene, params.chips, None) as plan:
                with job.stage("label chips"):
                    windows = _scene_windows(plan, params, rng)
                    found = label_windows(plan.reader.grid, windows, layer, params.min_coverage)
                labelled = _cap_per_class(found.labelled, params.max_per_class, rng)
                limit = len(labelled) if params.max_negatives is None else params.max_negatives
                negatives = _sample(found.unlabelled, limit, rng) if params.negatives else []
                below_total += found.below_coverage
                if not labelled:
                    log.warning("%s: no chip is labelled (the labels do not cover it enough)", scene)
                chips = _SceneChips(scene, slug, labelled, negatives, found.below_coverage)
                scene_rows, scene_footprints = _write_scene(job, plan, chips, params, maker, rng)
            rows += scene_rows
            footprints.append(scene_footprints)
            per_scene[scene] = dict(Counter(r["label"] for r in scene_rows if r["caption_index"] == 0))
        if not any(r["kind"] == "label" for r in rows):
            raise InputError(
                params.labels,
                f"no chip of the scene(s) has a label covering at least {params.min_coverage:.0%} of it: "
                "the labels and the scenes do not overlap (check their extents and CRSs)",
            )
        with job.stage("write tables"):
            outputs = _write_tables(job, rows, footprints, layer)
        counts = Counter(r["label"] for r in rows if r["caption_index"] == 0)
        return job.finish(
            model=None,
            parameters={
                "labels": str(layer.path),
                "label_field": params.label_field,
                "layer": params.layer,
                "min_coverage": params.min_coverage,
                "templates": params.templates,
                "captions_per_chip": params.captions_per_chip,
                "negatives": params.negatives,
                "max_negatives": params.max_negatives,
                "max_per_class": params.max_per_class,
                "sampling": params.sampling,
                "samples": params.samples,
                "seed": params.seed,
                "chips": params.chips.as_dict(),
            },
            crs=layer.crs,
            outputs=outputs,
            scenes=list(params.scenes),
            labels=list(layer.labels),
            class_counts=dict(sorted(counts.items())),
            per_scene=per_scene,
            chips=sum(counts.values()),
            pairs=len(rows),
            negatives=sum(1 for r in rows if r["kind"] == "negative" and r["caption_index"] == 0),
            below_coverage=below_total,
        )


def _write_scene(job, plan, chips: _SceneChips, params: PairsParams, maker, rng) -> tuple[list[dict], Any]:
    """Write the scene's chips (GeoTIFF) and return their pairs rows and footprints (working CRS)."""
    import geopandas as gpd

    from tile_tools.chip_writer import ChipRecord, chip_filename, write_chip_geotiff
    from tile_tools.prefetch import iter_chips

    entries = [(w.window, w.label, w.coverage, "label") for w in chips.labelled]
    entries += [(window, params.negatives, 0.0, "negative") for window in chips.negatives]
    folder = job.path("chips") / chips.slug
    folder.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    with job.stage("write chips", total=len(entries)):
        windows = [entry[0] for entry in entries]
        with contextlib.closing(iter_chips(plan.reader, windows)) as read:
            for chip, (window, label, coverage, kind) in zip(read, entries, strict=True):
                name = chip_filename(chip)
                relative = f"chips/{chips.slug}/{name}"
                write_chip_geotiff(chip, folder / name)
                records.append((ChipRecord.of(chip, relative), label, coverage, kind))
                for index, text in enumerate(maker.draw(label, params.captions_per_chip, rng)):
                    rows.append(
                        {
                            "image_path": relative,
                            "caption": text,
                            "label": label,
                            "kind": kind,
                            "coverage": round(coverage, 6),
                            "scene": chips.scene,
                            "col_off": int(window.col_off),
                            "row_off": int(window.row_off),
                            "width": int(window.width),
                            "height": int(window.height),
                            "caption_index": index,
                        }
                    )
                job.progress.advance()
    frame = gpd.GeoDataFrame(
        {
            "image_path": [r.file for r, *_ in records],
            "label": [label for _, label, _, _ in records],
            "kind": [kind for *_, kind in records],
            "coverage": [round(c, 6) for _, _, c, _ in records],
            "scene": chips.scene,
        },
        geometry=[r.footprint for r, *_ in records],
        crs=plan.reader.grid.crs,
    )
    return rows, frame


def _write_tables(job, rows: list[dict], footprints: list, layer) -> dict[str, str]:
    import pandas as pd

    from tile_tools.vector_io import write_geopackage

    with open(job.path("pairs.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=PAIRS_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    frames = [frame.to_crs(layer.crs) for frame in footprints if len(frame)]
    index = pd.concat(frames, ignore_index=True) if frames else None
    if index is not None:
        write_geopackage({"pairs": index}, job.path("pairs.gpkg"))
    chips = Counter(r["label"] for r in rows if r["caption_index"] == 0)
    pairs = Counter(r["label"] for r in rows)
    total = sum(chips.values())
    with open(job.path("class_counts.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "chips", "pairs", "share"])
        for label in sorted(chips):
            writer.writerow([label, chips[label], pairs[label], round(chips[label] / total, 6)])
    return {
        "pairs": job.final("pairs.csv"),
        "chips": job.final("chips"),
        "index": job.final("pairs.gpkg") if index is not None else None,
        "class_counts": job.final("class_counts.csv"),
    }


# --- the RS5M filter ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairsFilterParams:
    """Everything ``pairs --filter`` needs: keep the remote-sensing pairs of a generic image–text set."""

    pairs: str = param(help="The pairs to filter: a CSV/Parquet table, an ImageFolder or tar shards.")
    output: str = param(help="Output folder: pairs.csv (or shards/), scores.csv, summary.json.")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    rs_threshold: float = param(
        0.5, help="Least probability of the RS prompts (vs the non-RS ones) to keep a pair."
    )
    min_similarity: float | None = param(None, help="Least image–caption cosine similarity to keep a pair.")
    rs_prompts: tuple[str, ...] = param(
        (), help="Prompts describing remote-sensing images (default: built in)."
    )
    non_rs_prompts: tuple[str, ...] = param((), help="Prompts describing other images (default: built in).")
    images_dir: str | None = param(None, help="Root of relative image paths in a table.")
    image_column: str | None = param(None, help="The table's image path column.")
    caption_column: str | None = param(None, help="The table's caption column.")
    encoding: str | None = param(None, help="The table's text encoding (default UTF-8, else GB18030).")
    model: ModelParams = field(default_factory=ModelParams)

    def inputs(self) -> tuple[str, ...]:
        return (self.pairs, *self.model.input_files())


def run_pairs_filter(params: PairsFilterParams, progress: Progress) -> dict[str, Any]:
    """Score every pair and keep the remote-sensing ones; returns the summary."""
    from geo_dfm.pairs.rs_filter import FilterRule, filter_pairs
    from geo_dfm.pairs.sources import PairsFormat, open_pairs

    rule = FilterRule.of(params.rs_threshold, params.min_similarity, params.rs_prompts, params.non_rs_prompts)
    fmt = PairsFormat(params.images_dir, params.image_column, params.caption_column, params.encoding)
    with start_job("pairs", params.output, params.overwrite, progress, params.inputs()) as job:
        with job.stage("read pairs"):
            source = open_pairs(params.pairs, fmt, progress)
        encoder = job.load_encoder(params.model)
        report = filter_pairs(source, encoder, rule, job.folder, progress, params.model.batch_size)
        outputs = {name: job.final(path) for name, path in report.outputs.items()}
        return job.finish(
            model=encoder.describe(),
            parameters={
                "pairs": params.pairs,
                "rs_threshold": rule.rs_threshold,
                "min_similarity": rule.min_similarity,
                "rs_prompts": list(rule.rs_prompts),
                "non_rs_prompts": list(rule.non_rs_prompts),
                **fmt.as_dict(),
            },
            crs=None,
            outputs=outputs,
            source=source.describe(),
            thresholds={"rs_probability": rule.rs_threshold, "similarity": rule.min_similarity},
            kept=report.kept,
            removed=report.removed,
            removed_by=report.removed_by,
            scores=report.score_summary,
        )
