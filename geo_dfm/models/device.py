"""Device, precision and CPU-thread choices for inference (torch imported by the caller's need)."""

from __future__ import annotations

import re

import torch

from geo_dfm.errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` → CUDA, then Apple MPS, then CPU; an explicit device must exist on this machine."""
    name = (device or "auto").strip().lower()
    if not _DEVICE_PATTERN.match(name):
        raise InputError("--device", f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device", f"{device!r} requested but torch sees no CUDA GPU here")
        index = int(name.split(":")[1]) if ":" in name else torch.cuda.current_device()
        if index >= torch.cuda.device_count():
            raise InputError("--device", f"{device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index)
    if name == "mps" and not _mps_available():
        raise InputError("--device", "'mps' requested but Apple MPS is not available here")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; ``None`` means plain fp32.

    ``auto``: bf16 on CUDA GPUs that support it (else fp16), fp32 on MPS and CPU.
    """
    name = (precision or "auto").strip().lower()
    if name not in PRECISIONS:
        raise InputError(
            "--precision", f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}"
        )
    if name == "fp32":
        return None
    if device.type == "cpu":
        if name == "auto":
            return None
        raise InputError(
            "--precision", f"{name} needs a GPU; on the CPU geo-dfm runs fp32 (use auto or fp32)"
        )
    if name == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if name == "bf16" else torch.float16


def set_cpu_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch (process-wide); ``None`` keeps torch's default."""
    if threads is None:
        return
    if threads < 1:
        raise InputError("--threads", f"needs at least 1 thread, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
