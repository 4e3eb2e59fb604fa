"""``generate``: remote-sensing images from text prompts (GeoRSSD), optionally filtered by an RS CLIP.

Image ``k`` (0-based; prompts in the order given, ``count`` images each) has seed ``seed + k``, and
each image has its own seeded generator: the same parameters give the same images, whatever the
batch size, and one image is reproduced alone with its prompt, ``count=1`` and its seed. Images are
written as they are generated (memory holds one batch) into the spine's output folder
(:func:`geo_dfm.jobs.pipeline.start_job`: locked, checked, in place only when the run succeeds):
``images/<prompt-slug>_s<seed>.png`` (prompt, seed and model in the PNG's text chunks), ``pairs.csv``
(:mod:`geo_dfm.generate.pairs`) and ``summary.json``. Generated images are not georeferenced (no CRS).

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
from geo_dfm.generate.registry import list_generator_specs
from geo_dfm.jobs.naming import unique_slugs
from geo_dfm.jobs.params import ModelParams, param
from geo_dfm.jobs.pipeline import load_job_encoder, start_job
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

LATENT_FACTOR = 8  # Stable Diffusion's VAE halves the size three times
MAX_SIZE = 4096
MAX_STEPS = 1000
MAX_SEED = 2**63 - 1


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class GenerateParams:
    """Everything ``generate`` needs (field names are the CLI's option names).

    ``count`` images per prompt of ``size``×``size`` px; ``model`` a registered text-to-image model
    (default ``georssd-20p``) or ``weights`` a local diffusers pipeline folder; ``filter_model`` an RS
    CLIP (registry name, e.g. ``georsclip-vit-b-32`` or ``toy``) or None for no filter.
    """

    prompts: tuple[str, ...] = param(help="Prompts, used verbatim; each one gets `count` images.")
    output: str = param(help="Output folder.")
    count: int = param(4, help="Images per prompt.")
    model: str | None = param(
        None, help=f"Registered text-to-image model: {', '.join(s.name for s in list_generator_specs())}."
    )
    weights: str | None = param(None, help="A local diffusers Stable Diffusion pipeline folder.")
    steps: int = param(30, help="Denoising steps.")
    guidance: float = param(7.5, help="Classifier-free guidance scale (<= 1: no guidance).")
    size: int = param(512, help="Image width and height in pixels (a multiple of 8).")
    seed: int = param(0, help="Seed of the first image; image k has seed + k.")
    negative: str | None = param(None, help="Negative prompt, shared by every image.")
    batch_size: int = param(4, help="Images per pipeline call.")
    device: str = param("auto", help="auto, cpu, cuda, cuda:N or mps.")
    precision: str = param("auto", help="fp32 on CPU; bf16/fp16 weights on GPU.", choices=PRECISIONS)
    threads: int | None = param(None, help="CPU threads for torch.")
    attention_slicing: bool = param(False, help="Attention and VAE decoding in slices (less GPU memory).")
    overwrite: bool = param(False, help="Replace an existing output folder written by geo-dfm.")
    filter_model: str | None = param(None, help="RS CLIP that keeps images matching their own prompt.")
    filter_against: tuple[str, ...] = param((), help="Competing texts for the filter.")
    filter_margin: float = param(0.01, help="Keep when cos(own prompt) - max cos(other texts) >= this.")

    def inputs(self) -> tuple[str, ...]:
        """Files the job reads (an output must never replace them)."""
        return (self.weights,) if self.weights else ()


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
    if params.precision not in PRECISIONS:
        raise InputError("precision", f"unknown precision {params.precision!r}; use {', '.join(PRECISIONS)}")
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

    params = check_generate_params(params)
    if text_to_image is None:
        require_diffusers()
    planned = plan_images(params.prompts, params.count, params.seed)
    settings = SamplerSettings(params.size, params.steps, params.guidance, params.negative)
    with start_job("generate", params.output, params.overwrite, progress, params.inputs()) as job:
        choice = None
        if text_to_image is None:  # the pipeline folder first: a missing one fails before any load
            with job.stage("find model"):
                choice = resolve_pipeline(params.model, params.weights)
        prompt_filter = None
        if params.filter_model is not None:
            with job.stage("load filter model"):
                prompt_filter = _load_filter(params)
        if choice is not None:
            with job.stage("load model"):
                text_to_image = load_text_to_image(
                    choice, params.device, params.precision, params.attention_slicing, params.threads
                )
        assert text_to_image is not None
        model_name = text_to_image.name
        timer = job.timer
        with GeneratedImages(job.path("."), params.prompts, prompt_filter is not None, model_name) as written:
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
        filtered = prompt_filter is not None
        return job.finish(
            model=text_to_image.describe(),
            parameters={
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
                "filter_margin": params.filter_margin if filtered else None,
            },
            crs=None,
            outputs={
                "images": job.final("images"),
                "pairs": job.final("pairs.csv"),
                "filter_scores": job.final("filter.csv") if filtered else None,
                "removed": job.final("removed") if filtered else None,
            },
            prompts=list(params.prompts),
            images=len(planned),
            kept=kept_total,
            removed=len(planned) - kept_total,
            seeds=[params.seed, params.seed + len(planned) - 1],
            per_prompt=per_prompt,
            filter=prompt_filter.describe() if prompt_filter is not None else None,
        )


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
