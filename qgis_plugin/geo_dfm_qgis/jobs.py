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

JOB_MODES = ("localize", "classify", "search", "annotate", "finetune", "chips")
#: Inside a fine-tune run folder: the training pairs and the adapter (the folder ``--adapter`` takes).
PAIRS_FOLDER = "pairs"
ADAPTER_FOLDER = "adapter"


@dataclass(frozen=True)
class Problem:
    """Something that stops a job, tied to the input it is about (``scene``, ``scenes``, ``queries``,
    ``labels``, ``extent``, ``model``, ``chip_size``, ``overlap``, ``bands``, ``label_layer``,
    ``label_field``), so a form can show it next to that field."""

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
    """One run: mode, scenes (one, or several for search and annotate), texts, model, chipping, output.

    ``output`` is a folder (localize, classify, annotate, chips) or, for search, a folder that receives
    one GeoPackage per query (``search_file`` names one file for a single query instead). A fine-tune
    (``label_layer`` polygons with their ``label_field`` over the scene) writes the training pairs to
    ``output/pairs`` and the adapter to ``output/adapter`` (:attr:`adapter_folder`).
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
    label_layer: str = ""
    label_field: str = ""
    steps: int | None = None
    model: ModelChoice = field(default_factory=ModelChoice)
    chips: ChipChoice = field(default_factory=ChipChoice)

    def __post_init__(self) -> None:
        if self.mode not in JOB_MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {', '.join(JOB_MODES)}")

    @property
    def scene(self) -> str:
        return self.scenes[0] if self.scenes else ""

    @property
    def pairs_folder(self) -> str:
        return f"{self.output.rstrip('/')}/{PAIRS_FOLDER}"

    @property
    def adapter_folder(self) -> str:
        return f"{self.output.rstrip('/')}/{ADAPTER_FOLDER}"

    def problems(self) -> list[Problem]:
        """What stops this job from running (empty when it can run)."""
        problems = []
        several = self.mode in ("search", "annotate")
        if not self.scenes or not all(self.scenes):
            problems.append(
                Problem("scenes", "choose at least one raster layer or a folder of rasters")
                if several
                else Problem("scene", "choose a raster layer stored in a file")
            )
        if self.mode in ("localize", "search") and not self.queries:
            problems.append(Problem("queries", "type at least one query (one per line)"))
        classifies = self.mode == "classify" or (self.mode == "annotate" and (self.labels or self.preset))
        if self.mode == "annotate" and not (self.queries or self.labels or self.preset):
            problems.append(
                Problem("queries", "type queries to localize, or give labels or a preset, or both")
            )
        if self.mode == "classify" and not (self.labels or self.preset):
            problems.append(Problem("labels", "give at least two labels or choose a preset"))
        if classifies and self.labels and not self.preset and len(self.labels) < 2:
            problems.append(Problem("labels", "zero-shot classification needs at least two labels"))
        if classifies and any("," in label for label in self.labels):
            problems.append(Problem("labels", "labels cannot contain commas"))
        if self.mode == "finetune":
            if not self.label_layer:
                problems.append(Problem("label_layer", "choose a polygon layer with the labels"))
            if not self.label_field:
                problems.append(Problem("label_field", "choose the field that holds the class names"))
            if self.model.adapter:
                problems.append(
                    Problem("model", "fine-tuning starts from a base model: choose one without an adapter")
                )
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
            if self.method:
                params["method"] = self.method
                argv += ["--method", self.method]
            title = self.preset or ", ".join(self.labels)
            return [JobCall(title, "classify", params, (*argv, *common_argv))]
        if self.mode == "annotate":
            return [self._annotate_call(common, [*overwrite_argv, *common_argv])]
        if self.mode == "finetune":
            return self._finetune_calls(overwrite_argv)
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

    def _annotate_call(self, common: dict[str, Any], common_argv: list[str]) -> JobCall:
        params: dict[str, Any] = {"scenes": list(self.scenes), "output": self.output, **common}
        argv = ["annotate", *self.scenes, "-o", self.output]
        if self.queries:
            params["queries"] = list(self.queries)
            argv += [arg for query in self.queries for arg in ("--queries", query)]
        if self.preset:
            params["preset"] = self.preset
            argv += ["--preset", self.preset]
        elif self.labels:
            params["labels"] = list(self.labels)
            argv += ["--labels", ",".join(self.labels)]
        if self.method and self.queries:
            params["method"] = self.method
            argv += ["--method", self.method]
        if self.region_threshold is not None:
            params["region_threshold"] = self.region_threshold
            argv += ["--region-threshold", repr(float(self.region_threshold))]
        if self.min_confidence is not None:
            params["min_confidence"] = self.min_confidence
            argv += ["--min-confidence", repr(float(self.min_confidence))]
        title = ", ".join([*self.queries, *([self.preset] if self.preset else self.labels)])
        return JobCall(title, "annotate", params, (*argv, *common_argv))

    def _finetune_calls(self, overwrite_argv: list[str]) -> list[JobCall]:
        """``pairs`` (chips of the scene captioned with their polygons' labels), then ``finetune``."""
        labels, _, layer = self.label_layer.partition("|layername=")
        pairs: dict[str, Any] = {
            "scenes": [self.scene],
            "labels": labels,
            "label_field": self.label_field,
            "output": self.pairs_folder,
            "chips": self.chips.params(),
        }
        pairs_argv = ["pairs", self.scene, labels, "--label-field", self.label_field, "-o", self.pairs_folder]
        if layer:
            pairs["layer"] = layer.split("|", 1)[0]
            pairs_argv += ["--layer", pairs["layer"]]
        if self.overwrite:
            pairs["overwrite"] = True
        pairs_argv += [*overwrite_argv, *self.chips.argv()]
        train: dict[str, Any] = {
            "pairs": f"{self.pairs_folder}/pairs.csv",
            "output": self.adapter_folder,
            "model": self.model.params(),
        }
        train_argv = ["finetune", "--pairs", train["pairs"], "-o", self.adapter_folder, *overwrite_argv]
        if self.overwrite:
            train["overwrite"] = True
        if self.method:
            train["method"] = self.method
            train_argv += ["--method", self.method]
        if self.steps:
            train["steps"] = int(self.steps)
            train_argv += ["--steps", str(int(self.steps))]
        return [
            JobCall(self.label_field, "pairs", pairs, tuple(pairs_argv)),
            JobCall(self.method or "finetune", "finetune", train, (*train_argv, *self.model.argv())),
        ]


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
