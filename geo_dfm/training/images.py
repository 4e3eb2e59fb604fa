"""The model's eval preprocessing, split so training can cache resized chips as uint8."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class EvalPreprocess:
    """open_clip's eval transform as two halves: PIL resize/crop, then scale and normalise.

    ``resize`` is the transform's geometric part (bicubic resize of the short side, centre crop);
    applying ``resize`` and then :meth:`normalise` gives exactly the full eval transform.
    """

    resize: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_transform(cls, transform) -> EvalPreprocess:
        """Split a torchvision ``Compose`` ending in ``ToTensor`` + ``Normalize``."""
        from torchvision.transforms import Compose, Normalize

        steps = list(getattr(transform, "transforms", [transform]))
        normalise = [s for s in steps if isinstance(s, Normalize)]
        if len(normalise) != 1 or steps[-1] is not normalise[0]:
            raise ValueError("the preprocessing must end with one Normalize step")
        geometric = [s for s in steps[:-1] if "ToTensor" not in type(s).__name__]
        return cls(Compose(geometric), tuple(normalise[0].mean), tuple(normalise[0].std))

    @classmethod
    def for_model(cls, model: torch.nn.Module) -> EvalPreprocess:
        """The eval transform open_clip builds for ``model`` (read from ``model.visual.preprocess_cfg``)."""
        from open_clip.transform import PreprocessCfg, image_transform_v2

        cfg = PreprocessCfg(**model.visual.preprocess_cfg)
        return cls.from_transform(image_transform_v2(cfg, is_train=False))

    def to_uint8(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Resize/crop H×W×3 uint8 arrays into one N×3×S×S uint8 tensor."""
        from PIL import Image

        arrays = [
            np.asarray(self.resize(Image.fromarray(np.ascontiguousarray(im)).convert("RGB"))) for im in images
        ]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()

    def normalise(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 N×3×S×S → float, scaled to 0-1 and normalised with the model's mean/std."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch.float() / 255.0 - mean) / std


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
