"""The image boundary of ``generate``: prompts and seeds in, RGB uint8 images out.

:class:`TextToImage` is what the job talks to; :class:`DiffusersTextToImage` implements it with a
diffusers ``StableDiffusionPipeline`` loaded from a local folder (:mod:`geo_dfm.generate.weights`).
Every image has its own seeded CPU ``torch.Generator``, so an image depends only on its prompt, its
seed and the sampler settings — not on the batch it was generated in, nor (for the initial noise) on
the device. fp16/bf16 weights are used on CUDA (``precision``), fp32 elsewhere.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from geo_dfm.errors import InputError
from geo_dfm.generate.registry import DEFAULT_GENERATOR, GeneratorSpec, get_generator_spec

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'geo-dfm[generate]'"
PIPELINE_CACHE_SIZE = int(os.environ.get("GEO_DFM_PIPELINE_CACHE", "1"))
_pipelines: OrderedDict[tuple, Any] = OrderedDict()

StepCallback = Callable[[], None]


@dataclass(frozen=True)
class ImageRequest:
    """One image to generate: its prompt and its seed."""

    prompt: str
    seed: int


@dataclass(frozen=True)
class SamplerSettings:
    """How every image of a run is sampled: ``size`` px square, denoising ``steps``, classifier-free
    ``guidance`` scale (≤ 1 disables guidance and the negative prompt), ``negative`` prompt or None."""

    size: int
    steps: int
    guidance: float
    negative: str | None = None


class TextToImage(Protocol):
    """Generates RGB images from prompts (the seam tests replace with known images)."""

    name: str

    def describe(self) -> dict[str, Any]:
        """The ``model`` entry of the job summary."""
        ...

    def generate(
        self, requests: Sequence[ImageRequest], settings: SamplerSettings, on_step: StepCallback | None = None
    ) -> list[np.ndarray]:
        """One (size, size, 3) uint8 image per request, in order; ``on_step()`` after each denoising step."""
        ...


def require_diffusers() -> None:
    """An :class:`InputError` saying how to install the extra when ``diffusers`` is missing."""
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise InputError(
            "diffusers",
            f"geo-dfm generate needs the optional 'generate' extra ({exc.name or 'diffusers'} is not "
            f"installed): {INSTALL_HINT}",
        ) from None


@dataclass(frozen=True)
class PipelineChoice:
    """A resolved pipeline, before loading: its ``name``, local ``folder``, and registry ``spec``
    (None for a ``--weights`` folder)."""

    name: str
    folder: Path
    spec: GeneratorSpec | None

    @property
    def source(self) -> str:
        return self.spec.source if self.spec is not None else f"local folder {self.folder}"


def resolve_pipeline(model: str | None, weights: str | None, download: bool = True) -> PipelineChoice:
    """The pipeline folder for ``model`` (registry name) or ``weights`` (a local folder; wins when given).

    With ``weights`` alone the name is the folder's name. A registered model is looked up in the
    Hugging Face cache and downloaded when allowed (offline: a :class:`WeightsNotFoundError`).
    """
    from geo_dfm.generate.weights import check_pipeline_folder, resolve_pipeline_folder

    if weights is not None:
        spec = get_generator_spec(model) if model is not None else None
        folder = check_pipeline_folder(weights)
        return PipelineChoice(spec.name if spec is not None else folder.name, folder, spec)
    spec = get_generator_spec(model or DEFAULT_GENERATOR)
    return PipelineChoice(spec.name, resolve_pipeline_folder(spec, download=download), spec)


def to_uint8(images: np.ndarray) -> list[np.ndarray]:
    """(N, H, W, 3) floats in [0, 1] → N (H, W, 3) uint8 images; non-finite pixels are our error."""
    if not np.isfinite(images).all():
        raise ValueError(
            "the pipeline produced non-finite pixels (an fp16 overflow?); try --precision bf16 or fp32"
        )
    pixels = np.clip(np.rint(images * 255.0), 0, 255).astype(np.uint8)
    return list(pixels)


class DiffusersTextToImage:
    """A loaded diffusers ``StableDiffusionPipeline`` (see :func:`load_text_to_image`)."""

    def __init__(self, pipe: Any, choice: PipelineChoice, attention_slicing: bool) -> None:
        self._pipe = pipe
        self.choice = choice
        self.name = choice.name
        self.attention_slicing = attention_slicing

    @property
    def device(self) -> str:
        return str(self._pipe.device)

    @property
    def dtype(self) -> str:
        return str(self._pipe.unet.dtype).removeprefix("torch.")

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": str(self.choice.folder),
            "source": self.choice.source,
            "pipeline": type(self._pipe).__name__,
            "scheduler": type(self._pipe.scheduler).__name__,
            "device": self.device,
            "dtype": self.dtype,
            "attention_slicing": self.attention_slicing,
        }

    def generate(
        self, requests: Sequence[ImageRequest], settings: SamplerSettings, on_step: StepCallback | None = None
    ) -> list[np.ndarray]:
        import torch

        if not requests:
            return []
        generators = [torch.Generator(device="cpu").manual_seed(r.seed) for r in requests]

        def step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            if on_step is not None:
                on_step()
            return tensors

        negative = [settings.negative] * len(requests) if settings.negative else None
        result = self._pipe(
            prompt=[r.prompt for r in requests],
            negative_prompt=negative,
            height=settings.size,
            width=settings.size,
            num_inference_steps=settings.steps,
            guidance_scale=settings.guidance,
            generator=generators,
            output_type="np",
            callback_on_step_end=step_end,
        )
        images = to_uint8(np.asarray(result.images, dtype=np.float32))
        if len(images) != len(requests):
            raise ValueError(f"the pipeline returned {len(images)} images for {len(requests)} requests")
        return images


def safetensors_only(folder: Path) -> bool | None:
    """True when every weights component of ``folder`` has ``.safetensors`` files, False when none
    has (the published GeoRSSD folders: ``.bin``), None (let diffusers choose per component) when mixed.

    Telling diffusers spares the user its error-level log lines about a missing ``.safetensors``.
    """
    found = [any((folder / name).glob("*.safetensors")) for name in ("unet", "vae", "text_encoder")]
    return True if all(found) else (False if not any(found) else None)


def _folder_state(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, mtime_ns, size) of every file: a changed file is another pipeline."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return tuple((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in files)


def load_text_to_image(
    choice: PipelineChoice,
    device: str = "auto",
    precision: str = "auto",
    attention_slicing: bool = False,
    threads: int | None = None,
) -> DiffusersTextToImage:
    """Load the pipeline of ``choice`` on ``device`` (``auto``: CUDA, MPS, CPU) in ``precision``.

    ``precision`` ``auto`` is bf16 (or fp16) on CUDA and fp32 elsewhere; ``attention_slicing`` computes
    attention and VAE decoding in slices (less GPU memory, a little slower); ``threads`` sets torch's
    CPU threads (process-wide; None keeps torch's default). The last
    ``GEO_DFM_PIPELINE_CACHE`` (default 1, 0 = none) pipelines stay loaded in the process (the
    worker's next job reuses them), keyed by folder content, device, dtype and slicing.
    """
    require_diffusers()
    import torch

    from geo_dfm.models.device import resolve_device, resolve_precision, set_cpu_threads

    set_cpu_threads(threads)
    target = resolve_device(device)
    dtype = resolve_precision(precision, target) or torch.float32
    key = (str(choice.folder), _folder_state(choice.folder), str(target), str(dtype), attention_slicing)
    cached = _pipelines.get(key)
    if cached is not None:
        _pipelines.move_to_end(key)
        return DiffusersTextToImage(cached, choice, attention_slicing)
    while _pipelines and len(_pipelines) >= PIPELINE_CACHE_SIZE:  # free memory before loading
        _pipelines.popitem(last=False)
    pipe = _load_pipeline(choice, target, dtype, attention_slicing)
    if PIPELINE_CACHE_SIZE > 0:
        _pipelines[key] = pipe
    return DiffusersTextToImage(pipe, choice, attention_slicing)


def _load_pipeline(choice: PipelineChoice, target: Any, dtype: Any, attention_slicing: bool) -> Any:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # geo-dfm reports its own progress
    transformers_logging.disable_progress_bar()
    # diffusers warns "unsafe serialization" when it falls back from .safetensors to the .bin files of
    # the published folders; it reads them with torch.load(weights_only=True) all the same.
    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            str(choice.folder),
            dtype=dtype,
            safety_checker=None,
            requires_safety_checker=False,
            local_files_only=True,
            use_safetensors=safetensors_only(choice.folder),
        )
    except (OSError, ValueError) as exc:
        raise InputError(choice.folder, f"could not load the diffusers pipeline: {exc}") from exc
    finally:
        diffusers_logging.set_verbosity(verbosity)
    pipe = pipe.to(target)
    pipe.set_progress_bar_config(disable=True)
    if attention_slicing:
        pipe.enable_attention_slicing()
        pipe.vae.enable_slicing()
    log.info("loaded %s from %s on %s (%s)", choice.name, choice.folder, target, dtype)
    return pipe
