"""What the user asked for, as a value object, and the geo-dfm command lines that do it.

Shared by the dock panel (through the worker) and the Processing algorithms (one-shot runs), so
both speak the CLI the same way. Pure Python; no Qt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MODES = ("localize", "classify", "search")
LABEL_PRESETS = ("landcover", "aid", "resisc45", "eurosat")
# Used until the worker reports the registry (its ``ready`` event lists the registered names).
DEFAULT_MODELS = ("georsclip-vit-b-32", "remoteclip-vit-b-32", "skyclip-vit-b-32", "toy")


@dataclass(frozen=True)
class ModelChoice:
    """Which model: a registry name or open_clip architecture, optional weights and adapter."""

    name: str = ""
    weights: str = ""
    adapter: str = ""
    device: str = "auto"

    def argv(self) -> list[str]:
        args: list[str] = []
        if self.name:
            args += ["--model", self.name]
        if self.weights:
            args += ["--weights", self.weights]
        if self.adapter:
            args += ["--adapter", self.adapter]
        if self.device and self.device != "auto":
            args += ["--device", self.device]
        return args


@dataclass(frozen=True)
class ChipChoice:
    """How the scene is chipped: chip size and overlap as geo-dfm lengths, target GSD, AOI."""

    chip_size: str = ""
    overlap: str = "0.25"
    gsd: float | None = None
    aoi: str = ""

    def argv(self) -> list[str]:
        args: list[str] = []
        if self.chip_size.strip():
            args += ["--chip-size", self.chip_size.strip()]
        if self.overlap.strip():
            args += ["--overlap", self.overlap.strip()]
        if self.gsd:
            args += ["--gsd", repr(float(self.gsd))]
        if self.aoi:
            args += ["--aoi", self.aoi]
        return args


@dataclass(frozen=True)
class JobSpec:
    """One run of the panel: mode, scene, texts, model, chipping, output folder."""

    mode: str
    scene: str
    output: str
    queries: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    preset: str = ""
    top_k: int = 20
    model: ModelChoice = field(default_factory=ModelChoice)
    chips: ChipChoice = field(default_factory=ChipChoice)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {', '.join(MODES)}")

    def problems(self) -> list[str]:
        """What stops this job from running, in words (empty when it can run)."""
        problems = []
        if not self.scene:
            problems.append("choose a raster layer stored in a file")
        if self.mode in ("localize", "search") and not self.queries:
            problems.append("type at least one query (one per line)")
        if self.mode == "classify" and not (self.labels or self.preset):
            problems.append("give at least two labels or choose a preset")
        if self.mode == "classify" and self.labels and not self.preset and len(self.labels) < 2:
            problems.append("zero-shot classification needs at least two labels")
        if self.mode == "classify" and any("," in label for label in self.labels):
            problems.append("labels cannot contain commas")
        return problems

    def commands(self) -> list[tuple[str, list[str]]]:
        """``(title, argv)`` per geo-dfm run (search runs once per query), without ``--progress``."""
        common = [*self.chips.argv(), *self.model.argv()]
        if self.mode == "localize":
            argv = ["localize", self.scene, *self.queries, "-o", self.output, *common]
            return [(", ".join(self.queries), argv)]
        if self.mode == "classify":
            texts = ["--preset", self.preset] if self.preset else ["--labels", ",".join(self.labels)]
            title = self.preset or ", ".join(self.labels)
            return [(title, ["classify", self.scene, "-o", self.output, *texts, *common])]
        runs = []
        for query in self.queries:
            output = f"{self.output.rstrip('/')}/{slug(query)}.gpkg"
            argv = ["search", self.scene, query, "-o", output, "--top-k", str(self.top_k), *common]
            runs.append((query, argv))
        return runs


def slug(text: str) -> str:
    """A file-name-safe short form of a query."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return cleaned[:60] or "query"


def split_lines(text: str) -> tuple[str, ...]:
    """Non-empty stripped lines (queries and labels are given one per line)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())
