"""``generate``: remote-sensing images from text prompts (GeoRSSD), optionally filtered by an RS CLIP.

Image ``k`` (0-based; prompts in the order given, ``count`` images each) has seed ``seed + k``, and
each image has its own seeded generator: the same parameters give the same images, whatever the
batch size, and one image is reproduced alone with its prompt, ``count=1`` and its seed. Images are
written as they are generated (memory holds one batch), into an output folder that appears only when
the run succeeds: ``images/<prompt-slug>_s<seed>.png`` (prompt, seed and model in the PNG's text
chunks), ``pairs.csv`` (:mod:`geo_dfm.generate.pairs`) and ``summary.json``. Generated images are
not georeferenced (no CRS).

With ``filter_model`` every image is scored by :class:`geo_dfm.generate.prompt_filter.PromptFilter`;
kept images go to ``images/`` and ``pairs.csv``, removed ones to ``removed/``, and ``filter.csv``
lists every image with its scores.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.generate.backend import ImageRequest, SamplerSettings, TextToImage
from geo_dfm.generate.pairs import FILTER_COLUMNS, PAIRS_COLUMNS, CsvRows
from geo_dfm.generate.prompt_filter import FilterScore, PromptFilter, check_filter_texts
from geo_dfm.jobs.common import check_output_free
from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.summary import StageTimer, make_summary, write_summary
from geo_dfm.progress import Progress
from tile_tools.errors import InputError
from tile_tools.output import check_output_location

log = logging.getLogger(__name__)

LATENT_FACTOR = 8  # Stable Diffusion's VAE halves the size three times
MAX_SIZE = 4096
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class GenerateParams:
    """Everything ``generate`` needs (field names are the CLI's option names).

    ``count`` images per prompt of ``size``×``size`` px; ``model`` a registered text-to-image model
    (default ``georssd-20p``) or ``weights`` a local diffusers pipeline folder; ``filter_model`` an RS
    CLIP (registry name, e.g. ``georsclip-vit-b-32`` or ``toy``) or None for no filter.
    """

    prompts: tuple[str, ...]
    output: str
    count: int = 4
    model: str | None = None
    weights: str | None = None
    steps: int = 30
    guidance: float = 7.5
    size: int = 512
    seed: int = 0
    negative: str | None = None
    batch_size: int = 4
    device: str = "auto"
    precision: str = "auto"
    threads: int | None = None
    attention_slicing: bool = False
    overwrite: bool = False
    filter_model: str | None = None
    filter_against: tuple[str, ...] = ()
    filter_margin: float = 0.01


def check_prompts(prompts: Sequence[str]) -> tuple[str, ...]:
    """At least one prompt, none blank, none twice (more images of one prompt: ``count``)."""
    if not prompts:
        raise InputError("prompts", "give at least one prompt text")
    for prompt in prompts:
        if not prompt.strip():
            raise InputError("prompts", "empty prompt text")
    repeated = [p for i, p in enumerate(prompts) if p in prompts[:i]]
    if repeated:
        raise InputError("prompts", f"prompt {repeated[0]!r} is given twice (use --count for more images)")
    return tuple(prompts)


def check_generate_params(params: GenerateParams) -> GenerateParams:
    """Every parameter checked before any model work; returns them with tuples normalised."""
    prompts = check_prompts(tuple(params.prompts))
    if params.count < 1:
        raise InputError("count", f"needs at least 1 image per prompt, got {params.count}")
    if params.size < LATENT_FACTOR or params.size > MAX_SIZE or params.size % LATENT_FACTOR:
        raise InputError(
            "size", f"image size must be a multiple of {LATENT_FACTOR} px up to {MAX_SIZE}, got {params.size}"
        )
    if not 1 <= params.steps <= MAX_STEPS:
        raise InputError("steps", f"needs 1 to {MAX_STEPS} denoising steps, got {params.steps}")
    if not (math.isfinite(params.guidance) and params.guidance >= 0):
        raise InputError("guidance", f"needs a guidance scale >= 0, got {params.guidance}")
    if params.threads is not None and params.threads < 1:
        raise InputError("threads", f"needs at least 1 CPU thread, got {params.threads}")
    if params.batch_size < 1:
        raise InputError("batch_size", f"needs at least 1 image per batch, got {params.batch_size}")
    total = len(prompts) * params.count
    if params.seed < 0 or params.seed + total - 1 > MAX_SEED:
        raise InputError("seed", f"seeds run from --seed to --seed + {total - 1}; keep them in 0 … 2^63-1")
    if params.negative is not None and not params.negative.strip():
        raise InputError("negative", "empty negative prompt (leave the option out for none)")
    against = tuple(params.filter_against)
    if params.filter_model is not None:
        if not params.filter_model.strip():
            raise InputError("filter_model", "empty model name")
        if not (math.isfinite(params.filter_margin) and -2.0 <= params.filter_margin <= 2.0):
            raise InputError("filter_margin", f"a cosine margin lies in -2 … 2, got {params.filter_margin}")
        against = check_filter_texts(prompts, against)
    elif against:
        raise InputError("filter_against", "competing texts need a filter model (--filter MODEL)")
    return replace(params, prompts=prompts, filter_against=against)


@dataclass(frozen=True)
class PlannedImage:
    """One image of the run: what to generate and the file name it gets."""

    request: ImageRequest
    name: str


def plan_images(prompts: Sequence[str], count: int, seed: int) -> list[PlannedImage]:
    """Image ``k`` = prompt ``k // count`` with seed ``seed + k``, named ``<slug>_s<seed>.png``."""
    slugs = unique_slugs(prompts)
    planned = []
    for p, (prompt, slug) in enumerate(zip(prompts, slugs, strict=True)):
        for j in range(count):
            image_seed = seed + p * count + j
            planned.append(PlannedImage(ImageRequest(prompt, image_seed), f"{slug}_s{image_seed}.png"))
    return planned


def batches(items: Sequence[PlannedImage], size: int) -> Iterator[Sequence[PlannedImage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_png(path: Path, image: np.ndarray, text: dict[str, str]) -> None:
    """An RGB PNG with ``text`` as tEXt chunks (prompt, seed, model…)."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    Image.fromarray(image, mode="RGB").save(path, pnginfo=info)


def check_images(images: list[np.ndarray], expected: int, size: int) -> None:
    """The backend's contract; a break is our bug (``ValueError``), not the user's."""
    if len(images) != expected:
        raise ValueError(f"the text-to-image model returned {len(images)} images for {expected}")
    for image in images:
        if image.shape != (size, size, 3) or image.dtype != np.uint8:
            raise ValueError(f"expected ({size}, {size}, 3) uint8 images, got {image.shape} {image.dtype}")


class GeneratedImages:
    """The output folder's images and tables, written image by image (context manager).

    Kept images go to ``images/`` and a ``pairs.csv`` row; with ``filtered``, removed ones go to
    ``removed/`` and every image gets a ``filter.csv`` row. ``per_prompt`` counts them.
    """

    def __init__(self, folder: Path, prompts: Sequence[str], filtered: bool, model: str) -> None:
        self.folder, self.model = folder, model
        self.per_prompt = {prompt: {"generated": 0, "kept": 0, "removed": 0} for prompt in prompts}
        self._files = contextlib.ExitStack()
        (folder / "images").mkdir()
        self.pairs = self._files.enter_context(CsvRows(folder / "pairs.csv", PAIRS_COLUMNS))
        self.scores = None
        if filtered:
            (folder / "removed").mkdir()
            self.scores = self._files.enter_context(CsvRows(folder / "filter.csv", FILTER_COLUMNS))

    def add(
        self,
        item: PlannedImage,
        image: np.ndarray,
        text: dict[str, str],
        score: FilterScore | None,
        kept: bool,
    ) -> None:
        """Write ``image`` (PNG text chunks ``text``) and its table rows."""
        request = item.request
        relative = f"{'images' if kept else 'removed'}/{item.name}"
        write_png(self.folder / relative, image, text)
        counts = self.per_prompt[request.prompt]
        counts["generated"] += 1
        counts["kept" if kept else "removed"] += 1
        row = {"image_path": relative, "caption": request.prompt, "seed": request.seed}
        if kept:
            self.pairs.write({**row, "model": self.model})
        if self.scores is not None and score is not None:
            self.scores.write({**row, **_score_columns(score, kept)})

    def __enter__(self) -> GeneratedImages:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._files.close()


def _load_filter(params: GenerateParams) -> PromptFilter:
    from geo_dfm.jobs.common import load_job_encoder
    from geo_dfm.jobs.params import ModelParams

    encoder = load_job_encoder(
        ModelParams(
            name=params.filter_model, device=params.device, precision=params.precision, threads=params.threads
        )
    )
    return PromptFilter(encoder, params.prompts, params.filter_against, params.filter_margin)


def run_generate(
    params: GenerateParams, progress: Progress, text_to_image: TextToImage | None = None
) -> dict[str, Any]:
    """Run ``generate`` and return its summary (also written to ``OUT/summary.json``).

    ``text_to_image`` replaces the pipeline that ``model``/``weights`` name (a caller that keeps one
    loaded, or a test that knows the images it returns).
    """
    from geo_dfm.generate.backend import load_text_to_image, require_diffusers, resolve_pipeline
    from tile_tools.atomic import atomic_directory

    timer = StageTimer()
    params = check_generate_params(params)
    target = check_output_location(check_output_free(params.output, params.overwrite), "folder")
    planned = plan_images(params.prompts, params.count, params.seed)
    settings = SamplerSettings(params.size, params.steps, params.guidance, params.negative)
    choice = None
    if text_to_image is None:
        require_diffusers()
        with timer.stage("find model"):
            choice = resolve_pipeline(params.model, params.weights)
    prompt_filter = None
    if params.filter_model is not None:
        with timer.stage("load filter model"):
            progress.stage("load filter model")
            prompt_filter = _load_filter(params)
    if text_to_image is None:
        assert choice is not None
        with timer.stage("load model"):
            progress.stage("load model")
            text_to_image = load_text_to_image(
                choice, params.device, params.precision, params.attention_slicing, params.threads
            )
    model_name = text_to_image.name
    inputs = [choice.folder] if choice is not None else []
    with atomic_directory(target, overwrite=params.overwrite, inputs=inputs, command="generate") as folder:
        filtered = prompt_filter is not None
        with GeneratedImages(folder, params.prompts, filtered, model_name) as written:
            progress.stage("generate images", total=len(planned))
            for batch in batches(planned, params.batch_size):
                requests = [item.request for item in batch]
                with timer.stage("generate"):
                    images = text_to_image.generate(requests, settings, on_step=progress.check_cancelled)
                check_images(images, len(batch), params.size)
                scores: list[FilterScore | None] = [None] * len(batch)
                if prompt_filter is not None:
                    with timer.stage("filter"):
                        scores = list(prompt_filter.score(images, [r.prompt for r in requests]))
                with timer.stage("write images"):
                    for item, image, score in zip(batch, images, scores, strict=True):
                        kept = prompt_filter is None or score is None or prompt_filter.keeps(score)
                        written.add(item, image, _png_text(item.request, settings, model_name), score, kept)
                progress.advance(len(batch))
        per_prompt = written.per_prompt
        kept_total = sum(c["kept"] for c in per_prompt.values())
        outputs = {
            "images": str(target / "images"),
            "pairs": str(target / "pairs.csv"),
            "filter_scores": str(target / "filter.csv") if prompt_filter is not None else None,
            "removed": str(target / "removed") if prompt_filter is not None else None,
            "summary": str(target / "summary.json"),
        }
        summary = make_summary(
            "generate",
            text_to_image.describe(),
            {
                "count": params.count,
                "size": params.size,
                "steps": params.steps,
                "guidance": params.guidance,
                "seed": params.seed,
                "negative": params.negative,
                "batch_size": params.batch_size,
                "device": params.device,
                "precision": params.precision,
                "threads": params.threads,
                "attention_slicing": params.attention_slicing,
                "filter_model": params.filter_model,
                "filter_against": list(params.filter_against),
                "filter_margin": params.filter_margin if prompt_filter is not None else None,
            },
            timer,
            None,
            outputs,
            prompts=list(params.prompts),
            images=len(planned),
            kept=kept_total,
            removed=len(planned) - kept_total,
            seeds=[params.seed, params.seed + len(planned) - 1],
            per_prompt=per_prompt,
            filter=prompt_filter.describe() if prompt_filter is not None else None,
        )
        write_summary(summary, folder / "summary.json")
    return summary


def _png_text(request: ImageRequest, settings: SamplerSettings, model: str) -> dict[str, str]:
    text = {
        "prompt": request.prompt,
        "seed": str(request.seed),
        "model": model,
        "steps": str(settings.steps),
        "guidance": str(settings.guidance),
        "Software": "geo-dfm generate",
    }
    if settings.negative:
        text["negative_prompt"] = settings.negative
    return text


def _score_columns(score: FilterScore, kept: bool) -> dict[str, Any]:
    return {
        "kept": int(kept),
        "own_score": round(score.own_score, 6),
        "rival": score.rival,
        "rival_score": round(score.rival_score, 6),
        "margin": round(score.margin, 6),
    }
