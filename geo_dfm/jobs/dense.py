"""The dense features head of the job spine: patch features of every window, batch by batch.

:func:`iter_patch_features` runs the spine's own :func:`~geo_dfm.jobs.pipeline.iter_features` (chips read
in background threads, each window once, timed as ``encode images``, cancellable) with the encoder's
dense head in place of its pooled ``encode_images``: each window is resized to the head's input size,
one forward runs up to the last ViT block, the variant's last block makes the patch features
(:func:`geo_dfm.models.dense.patch_features`). Memory: one batch of (n, D, h, w) features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from geo_dfm.jobs.pipeline import iter_features
from geo_dfm.jobs.summary import StageTimer
from geo_dfm.models.patch_head import DEFAULT_VARIANT, PatchHead
from geo_dfm.progress import Progress
from tile_tools.errors import InputError


def check_dense_options(params: Any, *dense_only: tuple[str, Any]) -> None:
    """Refuse the dense settings (``variant``, ``input_size``, ``cls_lambda`` and each ``(name, default)``
    of ``dense_only``) away from ``method="dense"``, unknown variants and sizes, and a negative λ."""
    if params.method != "dense":
        defaults = (("variant", DEFAULT_VARIANT), ("input_size", None), ("cls_lambda", 0.0), *dense_only)
        for name, default in defaults:
            if getattr(params, name) != default:
                raise InputError(name, "only applies to --method dense")
    PatchHead(params.variant, params.input_size)  # refuses unknown variants and sizes
    if params.cls_lambda < 0:
        raise InputError("cls_lambda", f"must be at least 0, got {params.cls_lambda}")


@dataclass(frozen=True, eq=False)
class PatchBatch:
    """Dense features of a batch of windows (:class:`geo_dfm.models.dense.PatchFeatures`, in window order)."""

    windows: list[Window]
    features: Any


@dataclass(frozen=True, eq=False)
class _PackedPatchEncoder:
    """``encoder``'s dense ``head`` in the call shape :func:`iter_features` uses: ``encode_images`` returns
    (n, D, 1 + h·w) float32 — the image embedding, then the patch features row-major — which
    :meth:`unpack` turns back into :class:`~geo_dfm.models.dense.PatchFeatures`."""

    encoder: Any
    head: PatchHead

    def encode_images(self, images: Sequence[np.ndarray], batch_size: int | None = None) -> np.ndarray:
        from geo_dfm.models.dense import patch_features

        found = patch_features(self.encoder, images, self.head)
        n, d = found.patches.shape[:2]
        return np.concatenate([found.image[:, :, None], found.patches.reshape(n, d, -1)], axis=2)

    def unpack(self, packed: np.ndarray, grid: tuple[int, int]) -> Any:
        from geo_dfm.models.dense import PatchFeatures

        n, d = packed.shape[:2]
        patches = np.ascontiguousarray(packed[:, :, 1:].reshape(n, d, *grid))
        return PatchFeatures(
            patches=patches, image=np.ascontiguousarray(packed[:, :, 0]), variant=self.head.variant
        )


def patch_grid_of(encoder: Any, head: PatchHead) -> tuple[int, int]:
    """(h, w) patches per window for ``head`` on ``encoder`` (checks the head's input size)."""
    from geo_dfm.models.dense import dense_input_size
    from geo_dfm.models.vit_tokens import dense_vision_tower

    size = dense_input_size(encoder, head)
    patch = int(dense_vision_tower(encoder.model, "model").patch_size[0])
    return size // patch, size // patch


def patch_footprint(plan: Any, encoder: Any, head: PatchHead) -> float:
    """Working-grid pixels a side that one patch covers in the plan's smallest windows."""
    if plan.spec is None:  # XYZ tiles
        size = int(plan.reader.tile_size)
    else:
        grid = plan.reader.grid
        size = min(plan.spec.sizes_px(grid, plan.reader.path))
    return size / patch_grid_of(encoder, head)[0]


def iter_patch_features(
    plan: Any,
    encoder: Any,
    head: PatchHead,
    progress: Progress,
    batch_size: int = 32,
    timer: StageTimer | None = None,
) -> Iterator[PatchBatch]:
    """:class:`PatchBatch` es of the plan's windows in plan order, each window once (see the module)."""
    grid = patch_grid_of(encoder, head)
    packed = _PackedPatchEncoder(encoder, head)
    for batch in iter_features(plan, packed, progress, batch_size, timer=timer):
        yield PatchBatch(batch.windows, packed.unpack(batch.features, grid))
