"""One loaded CLIP model: batched image and text embeddings with the reference preprocessing.

Preprocessing is exactly open_clip's eval transform (``image_transform(size, is_train=False)``):
bicubic resize of the short side to the input size (PIL, as torchvision does for PIL images),
centre crop, ``/255``, CLIP mean/std. Chips already at the input size skip the resize, as
torchvision does. Embeddings are float32 and L2-normalised.

Texts: prompts are tokenised, sorted by length and encoded in batches whose token tensors are cut to
the longest prompt of the batch (open_clip pads to 77 tokens; with the causal text tower the tokens
before the end token never see the padding, so the embeddings are the same). Class embeddings (prompt
ensembles) are also kept on disk, keyed by the weights' identity, the templates and the labels, so a
second run with the same labels encodes no text (``$GEO_DFM_CACHE/text-embeddings``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
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

log = logging.getLogger(__name__)


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
        self.text_tokens_encoded = 0  # prompts put through the text tower (not served from a cache)
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
        computed = self._encode_new_texts(todo) if todo else {}
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

    def _encode_new_texts(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Un-normalised embeddings of ``texts``, encoded in length-sorted, trimmed batches."""
        tokens = self.tokenizer(list(texts))
        lengths = token_lengths(tokens)
        self._warn_truncated(texts, lengths, tokens.shape[1])
        order = np.argsort(-lengths, kind="stable")
        computed: dict[str, np.ndarray] = {}
        for start in range(0, len(order), self.text_batch_size):
            chunk = order[start : start + self.text_batch_size]
            vectors = self._encode_tokens(tokens[torch.from_numpy(chunk)], int(lengths[chunk].max()))
            computed.update(zip((texts[i] for i in chunk), vectors, strict=True))
        self.text_tokens_encoded += len(texts)
        return computed

    def _warn_truncated(self, texts: Sequence[str], lengths: np.ndarray, context: int) -> None:
        """Say so when a text is longer than the model's context (the tokenizer silently cuts it)."""
        encode = getattr(self.tokenizer, "encode", None)
        for text, length in zip(texts, lengths, strict=True):
            if length < context:
                continue
            if encode is not None and len(encode(text)) <= context - 2:
                continue
            log.warning(
                "text %r is longer than the model's %d-token context: its end is ignored",
                text[:60] + ("…" if len(text) > 60 else ""),
                context,
            )

    def _encode_text_batch(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts))
        return self._encode_tokens(tokens, int(token_lengths(tokens).max()))

    def _encode_tokens(self, tokens: torch.Tensor, length: int) -> np.ndarray:
        """Embeddings of a (n, 77) token batch, computed on its first ``length`` positions when the
        text tower allows it (causal attention, end-token pooling), on all of them otherwise."""
        tokens = tokens.to(self.device)
        with torch.inference_mode(), self._autocast():
            if self._can_trim_tokens() and length < tokens.shape[1]:
                features = _encode_text_trimmed(self.model, tokens[:, :length])
            else:
                features = self.model.encode_text(tokens)
        return features.float().cpu().numpy()

    def _can_trim_tokens(self) -> bool:
        model = self.model
        return (
            all(hasattr(model, name) for name in ("token_embedding", "positional_embedding", "ln_final"))
            and getattr(model, "attn_mask", None) is not None
            and getattr(model, "text_pool_type", "argmax") == "argmax"
        )

    def class_embeddings(
        self, labels: Sequence[str], templates: str | Sequence[str] | None = None
    ) -> np.ndarray:
        """(C, D): per label the mean of its *un-normalised* template embeddings, L2-normalised once.

        ``templates`` is anything :func:`geo_dfm.models.prompts.get_templates` accepts; default:
        the model's recommended set. Labels are normalised as the benchmarks do. The result is kept
        on disk (see the module docstring) and read back by later calls with the same inputs.
        """
        if not labels:
            raise InputError("labels", "no class labels given")
        template_list = get_templates(templates if templates is not None else self.spec.templates)
        cache = self._class_cache_file(labels, template_list)
        if cache is not None and cache.is_file():
            try:
                cached = np.load(cache, allow_pickle=False)
                if cached.shape == (len(labels), self.embed_dim):
                    return cached
            except (OSError, ValueError) as exc:
                log.warning("%s: unreadable class-embedding cache (%s); encoding again", cache, exc)
        prompts = [prompt for label in labels for prompt in fill_templates(label, template_list)]
        raw = torch.from_numpy(self.encode_texts(prompts, normalize=False))
        means = raw.view(len(labels), len(template_list), -1).mean(dim=1)
        result = F.normalize(means, dim=-1).numpy().astype(np.float32)
        if cache is not None:
            _save_quietly(cache, result)
        return result

    def identity(self) -> dict[str, object] | None:
        """What this encoder's outputs depend on (architecture, weights and adapter files, device type,
        precision); ``None`` when the weights are not a file on disk."""
        if self.weights is None or not Path(self.weights).is_file():
            return None
        return {
            "architecture": self.architecture,
            "weights": _file_stamp(Path(self.weights)),
            "adapter": _file_stamp(Path(self.adapter) / "adapter_config.json") if self.adapter else None,
            "device": self.device.type,
            "precision": self.precision,
            "embed_dim": self.embed_dim,
        }

    def _class_cache_file(self, labels: Sequence[str], templates: Sequence[str]) -> Path | None:
        identity = self.identity()
        if identity is None or os.environ.get("GEO_DFM_TEXT_CACHE", "1") == "0":
            return None
        key = json.dumps(
            {"model": identity, "templates": list(templates), "labels": list(labels)}, sort_keys=True
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        return text_cache_dir() / f"{digest}.npy"

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


def token_lengths(tokens: torch.Tensor) -> np.ndarray:
    """Per row of a padded (n, L) token tensor: the number of positions up to the last non-zero token."""
    nonzero = (tokens != 0).to(torch.int64)
    positions = torch.arange(1, tokens.shape[1] + 1).expand_as(nonzero)
    return (nonzero * positions).max(dim=1).values.clamp(min=1).numpy()


def _encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` on tokens cut to their first ``L`` positions (positional embedding
    and causal mask cut to match)."""
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection
    return x


def text_cache_dir() -> Path:
    """Where class embeddings are kept: ``$GEO_DFM_CACHE/text-embeddings`` (default ``~/.cache/geo-dfm``)."""
    root = Path(os.environ.get("GEO_DFM_CACHE") or Path.home() / ".cache" / "geo-dfm")
    return root / "text-embeddings"


def _file_stamp(path: Path) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _save_quietly(path: Path, array: np.ndarray) -> None:
    """Write a cache file atomically; a cache that cannot be written is only a warning."""
    from tile_tools.atomic import atomic_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, array)
    except OSError as exc:
        log.warning("cannot write the class-embedding cache %s (%s)", path, exc)


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
