"""What the user asked for, as a value object, and the geo-dfm requests that do it.

Shared by the dock panel (through the worker) and the Processing algorithms (one-shot CLI runs), so
both speak to geo-dfm the same way. A :class:`JobCall` carries both forms of one request: the job's
``params`` (worker protocol 2) and the equivalent command line (protocol 1, ``--progress jsonl``
runs). Pure Python; no Qt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JOB_MODES = ("localize", "classify", "search", "chips")


@dataclass(frozen=True)
class Problem:
    """Something that stops a job, tied to the input it is about (``scene``, ``queries``, ``labels``,
    ``extent``, ``model``), so a form can show it next to that field."""

    field: str
    message: str


@dataclass(frozen=True)
class JobCall:
    """One geo-dfm request: the registered ``job`` with its ``params``, the same as CLI ``argv``
    (without ``--progress``), a ``title`` for layer groups and logs."""

    title: str
    job: str
    params: Mapping[str, Any]
    argv: tuple[str, ...]


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

    def params(self) -> dict[str, Any]:
        values = {"name": self.name, "weights": self.weights, "adapter": self.adapter}
        if self.device and self.device != "auto":
            values["device"] = self.device
        return {key: value for key, value in values.items() if value}


@dataclass(frozen=True)
class ChipChoice:
    """How the scene is chipped: chip size and overlap as geo-dfm lengths, target GSD, RGB bands
    (``"4,3,2"``, 1-based; empty = geo-dfm's choice), AOI (a file or ``minx,miny,maxx,maxy``)."""

    chip_size: str = ""
    overlap: str = "0.25"
    gsd: float | None = None
    bands: str = ""
    aoi: str = ""

    def argv(self) -> list[str]:
        return [arg for key, value in self._values().items() for arg in (f"--{key.replace('_', '-')}", value)]

    def params(self) -> dict[str, Any]:
        values: dict[str, Any] = self._values()
        if self.gsd:
            values["gsd"] = float(self.gsd)
        return values

    def _values(self) -> dict[str, str]:
        values = {
            "chip_size": self.chip_size.strip(),
            "overlap": self.overlap.strip(),
            "gsd": repr(float(self.gsd)) if self.gsd else "",
            "bands": self.bands.strip(),
            "aoi": self.aoi,
        }
        return {key: value for key, value in values.items() if value}


@dataclass(frozen=True)
class JobSpec:
    """One run: mode, scenes (one, or several for search), texts, model, chipping, output.

    ``output`` is a folder (localize, classify, chips) or, for search, a folder that receives one
    GeoPackage per query (``search_file`` names one file for a single query instead).
    """

    mode: str
    scenes: tuple[str, ...]
    output: str
    queries: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    preset: str = ""
    method: str = ""
    top_k: int = 20
    region_threshold: float | None = None
    min_confidence: float | None = None
    overwrite: bool = False
    search_file: bool = False
    model: ModelChoice = field(default_factory=ModelChoice)
    chips: ChipChoice = field(default_factory=ChipChoice)

    def __post_init__(self) -> None:
        if self.mode not in JOB_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {', '.join(JOB_MODES)}")

    @property
    def scene(self) -> str:
        return self.scenes[0] if self.scenes else ""

    def problems(self) -> list[Problem]:
        """What stops this job from running (empty when it can run)."""
        problems = []
        if not self.scenes or not all(self.scenes):
            problems.append(Problem("scene", "choose a raster layer stored in a file"))
        if self.mode in ("localize", "search") and not self.queries:
            problems.append(Problem("queries", "type at least one query (one per line)"))
        if self.mode == "classify" and not (self.labels or self.preset):
            problems.append(Problem("labels", "give at least two labels or choose a preset"))
        if self.mode == "classify" and self.labels and not self.preset and len(self.labels) < 2:
            problems.append(Problem("labels", "zero-shot classification needs at least two labels"))
        if self.mode == "classify" and any("," in label for label in self.labels):
            problems.append(Problem("labels", "labels cannot contain commas"))
        return problems

    def calls(self) -> list[JobCall]:
        """The requests that run this job (search: one per query)."""
        common_argv = [*self.chips.argv(), *self.model.argv()]
        common = {"chips": self.chips.params(), "model": self.model.params()}
        overwrite_argv = ["--overwrite"] if self.overwrite else []
        if self.overwrite:
            common["overwrite"] = True
        if self.mode == "localize":
            params = {"scene": self.scene, "queries": list(self.queries), "output": self.output, **common}
            argv = ["localize", self.scene, *self.queries, "-o", self.output, *overwrite_argv]
            if self.method:
                params["method"] = self.method
                argv += ["--method", self.method]
            if self.region_threshold is not None:
                params["region_threshold"] = self.region_threshold
                argv += ["--region-threshold", repr(float(self.region_threshold))]
            return [JobCall(", ".join(self.queries), "localize", params, (*argv, *common_argv))]
        if self.mode == "classify":
            params = {"scene": self.scene, "output": self.output, **common}
            argv = ["classify", self.scene, "-o", self.output, *overwrite_argv]
            if self.preset:
                params["preset"] = self.preset
                argv += ["--preset", self.preset]
            else:
                params["labels"] = list(self.labels)
                argv += ["--labels", ",".join(self.labels)]
            if self.min_confidence is not None:
                params["min_confidence"] = self.min_confidence
                argv += ["--min-confidence", repr(float(self.min_confidence))]
            title = self.preset or ", ".join(self.labels)
            return [JobCall(title, "classify", params, (*argv, *common_argv))]
        if self.mode == "chips":
            chips = {"scene": self.scene, "output": self.output, **common}
            chips.pop("model")
            argv = ["chips", self.scene, "-o", self.output, *overwrite_argv, *self.chips.argv()]
            return [JobCall(self.scene, "chips", chips, tuple(argv))]
        calls = []
        for query in self.queries:
            output = self.output if self.search_file else f"{self.output.rstrip('/')}/{slug(query)}.gpkg"
            params = {
                "scenes": list(self.scenes),
                "query": query,
                "output": output,
                "top_k": self.top_k,
                **common,
            }
            argv = ["search", *self.scenes, query, "-o", output, *overwrite_argv, "--top-k", str(self.top_k)]
            calls.append(JobCall(query, "search", params, (*argv, *common_argv)))
        return calls


def list_models_call() -> JobCall:
    """The registry with download state (protocol 1: ``models list --json`` prints it)."""
    return JobCall("models", "list-models", {}, ("models", "list", "--json"))


def download_model_call(name: str) -> JobCall:
    """Download one registered model's weights into the Hugging Face cache."""
    return JobCall(name, "download-model", {"name": name}, ("models", "download", name))


def slug(text: str) -> str:
    """A file-name-safe short form of a query."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return cleaned[:60] or "query"


def split_lines(text: str) -> tuple[str, ...]:
    """Non-empty stripped lines (queries and labels are given one per line)."""
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def split_labels(text: str) -> tuple[str, ...]:
    """Labels given one per line or comma-separated."""
    return tuple(label.strip() for line in split_lines(text) for label in line.split(",") if label.strip())
