"""One loaded CLIP model: batched image and text embeddings with the reference preprocessing.

Preprocessing is exactly open_clip's eval transform (``image_transform(size, is_train=False)``):
bicubic resize of the short side to the input size (PIL, as torchvision does for PIL images),
centre crop, ``/255``, CLIP mean/std. Chips already at the input size skip the resize, as
torchvision does. Embeddings are float32 and L2-normalised.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geo_dfm.errors import InputError
from geo_dfm.models.prompts import fill_templates, get_templates
from geo_dfm.models.registry import ModelSpec


def resize_short_side_and_crop(image: np.ndarray, size: int) -> np.ndarray:
    """``Resize(size, bicubic)`` + ``CenterCrop(size)`` on one H×W×3 uint8 image, like torchvision on PIL."""
    height, width = image.shape[:2]
    if (height, width) != (size, size):
        short, long = (width, height) if width <= height else (height, width)
        if short != size:
            new_long = int(size * long / short)
            new_w, new_h = (size, new_long) if width <= height else (new_long, size)
            image = np.asarray(Image.fromarray(image, "RGB").resize((new_w, new_h), Image.BICUBIC))
            height, width = new_h, new_w
        top = int(round((height - size) / 2.0))
        left = int(round((width - size) / 2.0))
        image = image[top : top + size, left : left + size]
    return image


def check_image(image: np.ndarray, index: int) -> np.ndarray:
    """An H×W×3 uint8 array, or an :class:`InputError` saying what is wrong with image ``index``."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise InputError(
            "images",
            f"image {index} must be an H×W×3 uint8 array, got shape {array.shape} dtype {array.dtype}",
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError("images", f"image {index} is empty ({array.shape})")
    return array


class Encoder:
    """A loaded CLIP model on one device, ready to embed chips and texts.

    Built by :func:`geo_dfm.models.factory.load_encoder`; shared by every job in a process, so
    it keeps no per-job state apart from a bounded, thread-safe text-embedding cache.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        spec: ModelSpec,
        device: torch.device,
        autocast_dtype: torch.dtype | None = None,
        weights: Path | None = None,
        adapter: Path | None = None,
        input_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        batch_size: int = 32,
        text_batch_size: int = 256,
        text_cache_size: int = 65536,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.autocast_dtype = autocast_dtype
        self.weights = weights
        self.adapter = adapter
        self.input_size = int(input_size or spec.input_size)
        self.mean = tuple(float(v) for v in (mean or spec.mean))
        self.std = tuple(float(v) for v in (std or spec.std))
        self.batch_size = batch_size
        self.text_batch_size = text_batch_size
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.channels_last = device.type == "cuda" and not hasattr(
            getattr(model, "visual", None), "transformer"
        )
        if self.channels_last:  # convolutional image towers (RN50) run faster channels-last on GPUs
            self.model.to(memory_format=torch.channels_last)
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._text_cache_size = text_cache_size
        self._lock = threading.Lock()
        logit_scale = getattr(model, "logit_scale", None)
        self.logit_scale = float(logit_scale.exp().item()) if isinstance(logit_scale, torch.Tensor) else 100.0
        self.embed_dim = int(self._probe_dim())

    # --- description ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def architecture(self) -> str:
        return self.spec.architecture

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]

    def describe(self) -> dict[str, object]:
        """What a job summary records about the model."""
        return {
            "name": self.name,
            "architecture": self.architecture,
            "weights": str(self.weights) if self.weights else self.spec.source,
            "adapter": str(self.adapter) if self.adapter else None,
            "input_size": self.input_size,
            "embed_dim": self.embed_dim,
            "device": str(self.device),
            "precision": self.precision,
        }

    def __repr__(self) -> str:
        return f"Encoder({self.name!r}, {self.architecture}, {self.device}, {self.precision})"

    # --- images ---------------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The model input for ``images``: (N, 3, S, S) float32 on the encoder's device."""
        crops = [
            resize_short_side_and_crop(check_image(image, i), self.input_size)
            for i, image in enumerate(images)
        ]
        if not crops:
            return torch.empty((0, 3, self.input_size, self.input_size), device=self.device)
        batch = torch.from_numpy(np.stack(crops)).to(self.device, non_blocking=True)
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        batch = batch.permute(0, 3, 1, 2).contiguous(memory_format=memory_format)
        return batch.to(torch.float32).div(255).sub_(self._mean).div_(self._std)

    def encode_images(self, images: Iterable[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        """(N, D) float32 L2-normalised embeddings of H×W×3 uint8 images of any size."""
        size = batch_size or self.batch_size
        out = [self._encode_image_batch(batch) for batch in _batches(images, size)]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def _encode_image_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        pixels = self.preprocess(images)
        with torch.inference_mode(), self._autocast():
            features = self.model.encode_image(pixels)
        return F.normalize(features.float(), dim=-1).cpu().numpy()

    # --- texts ----------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str], normalize: bool = True) -> np.ndarray:
        """(N, D) float32 text embeddings, L2-normalised unless ``normalize=False`` (cached per text)."""
        texts = [str(text) for text in texts]
        with self._lock:
            todo = list(dict.fromkeys(text for text in texts if text not in self._text_cache))
        computed: dict[str, np.ndarray] = {}
        for start in range(0, len(todo), self.text_batch_size):
            chunk = todo[start : start + self.text_batch_size]
            computed.update(zip(chunk, self._encode_text_batch(chunk), strict=True))
        with self._lock:
            for text, vector in computed.items():
                self._text_cache[text] = vector
            rows = [computed[text] if text in computed else self._text_cache[text] for text in texts]
            for text in texts:
                self._text_cache.move_to_end(text)
            while len(self._text_cache) > self._text_cache_size:
                self._text_cache.popitem(last=False)
        raw = np.stack(rows) if rows else np.zeros((0, self.embed_dim), np.float32)
        return _l2_normalize(raw) if normalize else raw

    def _encode_text_batch(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self._autocast():
            features = self.model.encode_text(tokens)
        return features.float().cpu().numpy()

    def class_embeddings(
        self, labels: Sequence[str], templates: str | Sequence[str] | None = None
    ) -> np.ndarray:
        """(C, D): per label the mean of its *un-normalised* template embeddings, L2-normalised once.

        ``templates`` is anything :func:`geo_dfm.models.prompts.get_templates` accepts; default:
        the model's recommended set. Labels are normalised as the benchmarks do.
        """
        if not labels:
            raise InputError("labels", "no class labels given")
        template_list = get_templates(templates if templates is not None else self.spec.templates)
        prompts = [prompt for label in labels for prompt in fill_templates(label, template_list)]
        raw = torch.from_numpy(self.encode_texts(prompts, normalize=False))
        means = raw.view(len(labels), len(template_list), -1).mean(dim=1)
        return F.normalize(means, dim=-1).numpy()

    # --- helpers --------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _probe_dim(self) -> int:
        projection = getattr(self.model, "text_projection", None)
        if isinstance(projection, torch.Tensor):
            return projection.shape[-1]
        return self._encode_text_batch(["a"]).shape[-1]


def _l2_normalize(array: np.ndarray) -> np.ndarray:
    return F.normalize(torch.from_numpy(array), dim=-1).numpy()


def _batches(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
