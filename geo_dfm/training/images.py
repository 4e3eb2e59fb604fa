"""The model's eval preprocessing for training, split so chips can be cached resized as uint8.

Training and inference share one preprocessing: the geometric half is
:func:`geo_dfm.models.encoder.resize_short_side_and_crop` (what :meth:`Encoder.preprocess` runs, equal
to open_clip's eval transform), the arithmetic half the same ``/255 − mean, / std`` in float32.
Random flips and 90° rotations (:func:`dihedral_augment`) permute pixels, so applying them to the
uint8 crops before normalising equals applying them after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geo_dfm.models.encoder import resize_short_side_and_crop


@dataclass(frozen=True)
class EvalPreprocess:
    """Bicubic short-side resize + centre crop to ``size`` px, then normalisation with ``mean``/``std``."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> EvalPreprocess:
        """The eval preprocessing open_clip records for ``model`` (``model.visual.preprocess_cfg``)."""
        from open_clip.transform import PreprocessCfg

        cfg = PreprocessCfg(**getattr(model.visual, "preprocess_cfg", {}))
        if cfg.interpolation != "bicubic" or cfg.resize_mode != "shortest":
            raise ValueError(
                f"only bicubic shortest-side preprocessing is supported, got {cfg.interpolation}/{cfg.resize_mode}"
            )
        size = cfg.size if isinstance(cfg.size, int) else cfg.size[0]
        if not isinstance(cfg.size, int) and cfg.size[0] != cfg.size[1]:
            raise ValueError(f"only square model inputs are supported, got {cfg.size}")
        return cls(int(size), tuple(cfg.mean), tuple(cfg.std))  # type: ignore[arg-type]

    def crop(self, image: np.ndarray) -> np.ndarray:
        """One H×W×3 uint8 image → ``size``×``size``×3 uint8 (the encoder's geometric preprocessing)."""
        return resize_short_side_and_crop(np.ascontiguousarray(image), self.size)

    def to_uint8(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize/crop H×W×3 uint8 arrays into one N×3×S×S uint8 tensor."""
        if not images:
            return torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        crops = np.stack([self.crop(image) for image in images])
        return torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S → float32, scaled to 0-1 and normalised (the arithmetic of ``Encoder.preprocess``)."""
        mean = torch.tensor(self.mean, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
        return batch.to(torch.float32).div(255).sub_(mean).div_(std)


def dihedral_augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply one random flip/90° rotation (of the 8 square symmetries) to each image of the batch."""
    choice = torch.randint(0, 8, (batch.shape[0],), generator=generator)
    out = batch.clone()
    for k in range(8):
        index = (choice == k).nonzero(as_tuple=True)[0]
        if index.numel() == 0 or k == 0:
            continue
        part = batch[index.to(batch.device)]
        if k >= 4:
            part = torch.flip(part, dims=(3,))
        out[index.to(batch.device)] = torch.rot90(part, k % 4, dims=(2, 3))
    return out
