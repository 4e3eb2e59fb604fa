"""The CLIP / InfoNCE loss, with optional groups of pairs that count as positives of each other."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of L2-normalised image and text features.

    Without ``groups`` pair *i* is the only positive of row *i* (CLIP). With ``groups`` (one integer
    per pair, e.g. a class id) the target of row *i* is spread evenly over every pair of the same
    group, so duplicates of a class are not pushed apart as false negatives.
    """
    logits = logit_scale * image_features @ text_features.t()
    if groups is None:
        targets = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    same = (groups[:, None] == groups[None, :]).to(logits.dtype)
    targets = same / same.sum(dim=1, keepdim=True)
    image_loss = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    text_loss = -(targets * F.log_softmax(logits.t(), dim=1)).sum(dim=1).mean()
    return (image_loss + text_loss) / 2
