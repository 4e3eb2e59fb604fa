"""The fine-tuning methods by name and their adapter settings, checked without importing torch.

Read by the job's parameters (:class:`geo_dfm.jobs.finetune.FinetuneParams`, listed by the job registry
and the CLI) and by :mod:`geo_dfm.training.methods`, which applies them to a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from tile_tools.errors import InputError

METHODS = ("lora", "ia3", "loha", "oft", "full", "frozen-text", "frozen-image")
ADAPTER_METHODS = ("lora", "ia3", "loha", "oft")
TOWERS = ("both", "image", "text")


@dataclass(frozen=True)
class MethodOptions:
    """Adapter settings (ignored by ``full``/``frozen-*``).

    ``rank``: LoRA/LoHa rank; ``alpha``: their scaling numerator (update = alpha/rank · ΔW; default
    ``2 × rank``); ``dropout``: LoRA/LoHa dropout; ``towers``: ``both``, ``image`` or ``text``;
    ``oft_block_size``: OFT's orthogonal block size (must divide every adapted layer's input width).
    """

    rank: int = 8
    alpha: float | None = None
    dropout: float = 0.0
    towers: str = "both"
    oft_block_size: int = 16

    @property
    def scaling_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else 2 * self.rank)


def check_method(method: str) -> str:
    """``method`` lower-cased, or an InputError listing the methods."""
    name = (method or "").strip().lower()
    if name not in METHODS:
        raise InputError("method", f"unknown fine-tuning method {method!r}; choose from {', '.join(METHODS)}")
    return name


def check_options(options: MethodOptions) -> MethodOptions:
    """Refuse nonsensical adapter settings with an InputError naming the parameter."""
    if options.towers not in TOWERS:
        raise InputError("towers", f"unknown towers {options.towers!r}; choose from {', '.join(TOWERS)}")
    if options.rank < 1:
        raise InputError("rank", f"the adapter rank must be at least 1, got {options.rank}")
    if options.alpha is not None and not options.alpha > 0:
        raise InputError("alpha", f"alpha must be positive, got {options.alpha}")
    if not 0.0 <= options.dropout < 1.0:
        raise InputError("dropout", f"dropout must be in [0, 1), got {options.dropout}")
    if options.oft_block_size < 1:
        raise InputError("oft_block_size", f"must be at least 1, got {options.oft_block_size}")
    return options
