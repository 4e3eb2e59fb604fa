"""What the geo-dfm in use can do, read from the worker's ``ready`` event: jobs and their parameters,
label presets, registered models with their download state.

Protocol 2 workers describe all of it; for older ones (protocol 1) :meth:`Capabilities.fallback`
supplies the lists geo-dfm 0.1 had. The panel and the Processing algorithms build their choices
(modes, methods, presets, models) from here, never from lists of their own. Pure Python; no Qt.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: The panel's modes, in the order shown; a mode appears when the worker has every job it runs.
PANEL_MODES = ("localize", "classify", "search", "annotate", "finetune")
#: The registry jobs behind each panel mode, in the order they run (fine-tune: pairs, then training).
MODE_JOBS = {"finetune": ("pairs", "finetune")}
#: The job whose parameters (``method`` included) a mode's form shows.
MODE_FORM_JOB = {"finetune": "finetune"}
#: What a protocol-1 geo-dfm (no job descriptions) runs from the panel.
_FALLBACK_MODES = ("localize", "classify", "search")

# geo-dfm 0.1 (protocol 1), whose ready event lists no jobs, presets or model details.
_FALLBACK_MODELS = ("georsclip-vit-b-32", "remoteclip-vit-b-32", "skyclip-vit-b-32", "toy")
_FALLBACK_PRESETS = ("landcover", "aid", "resisc45", "eurosat")
_FALLBACK_METHODS = {"localize": ("blend", "selo")}


@dataclass(frozen=True)
class FieldInfo:
    """One parameter of a job, as the worker describes it."""

    name: str
    type: str = "string"
    default: Any = None
    required: bool = False
    choices: tuple[Any, ...] | None = None
    help: str = ""
    fields: tuple[FieldInfo, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldInfo:
        choices = data.get("choices")
        return cls(
            name=str(data["name"]),
            type=str(data.get("type") or "string"),
            default=data.get("default"),
            required=bool(data.get("required")),
            choices=tuple(choices) if choices else None,
            help=str(data.get("help") or ""),
            fields=tuple(cls.from_dict(f) for f in data.get("fields") or ()),
        )


@dataclass(frozen=True)
class JobInfo:
    """A job the worker runs from ``{"job": name, "params": {...}}``."""

    name: str
    summary: str = ""
    params: tuple[FieldInfo, ...] = ()

    def field(self, path: str) -> FieldInfo | None:
        """The parameter at ``path`` (``"method"``, ``"chips.bands"``), or ``None``."""
        fields = self.params
        found = None
        for part in path.split("."):
            found = next((f for f in fields if f.name == part), None)
            if found is None:
                return None
            fields = found.fields
        return found


@dataclass(frozen=True)
class ModelInfo:
    """A registered model. ``downloaded`` is ``None`` when the worker did not say."""

    name: str
    architecture: str = ""
    family: str = ""
    input_size: int | None = None
    dense: bool = False
    downloaded: bool | None = None
    licence: str = ""
    description: str = ""
    default: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelInfo:
        downloaded = data.get("downloaded")
        if isinstance(downloaded, str):  # `geo-dfm models list --json`: "yes", "no", "built on demand"
            downloaded = downloaded != "no"
        size = data.get("input_size")
        return cls(
            name=str(data["name"]),
            architecture=str(data.get("architecture") or ""),
            family=str(data.get("family") or ""),
            input_size=int(size) if isinstance(size, (int, float)) else None,
            dense=bool(data.get("dense")),
            downloaded=None if downloaded is None else bool(downloaded),
            licence=str(data.get("licence") or ""),
            description=str(data.get("description") or ""),
            default=bool(data.get("default")),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "family": self.family,
            "input_size": self.input_size,
            "dense": self.dense,
            "downloaded": self.downloaded,
            "licence": self.licence,
            "description": self.description,
            "default": self.default,
        }


@dataclass(frozen=True)
class Capabilities:
    """The geo-dfm behind a worker: protocol, version, jobs, presets (name → labels or ``None`` when
    unknown) and models."""

    protocol: int = 1
    version: str = ""
    jobs: Mapping[str, JobInfo] = field(default_factory=dict)
    presets: Mapping[str, tuple[str, ...] | None] = field(default_factory=dict)
    models: tuple[ModelInfo, ...] = ()

    @classmethod
    def fallback(cls, version: str = "") -> Capabilities:
        """What a protocol-1 geo-dfm offers (no job descriptions: requests go as argv)."""
        return cls(
            protocol=1,
            version=version,
            presets=dict.fromkeys(_FALLBACK_PRESETS),
            models=tuple(ModelInfo(name) for name in _FALLBACK_MODELS),
        )

    @classmethod
    def from_ready(cls, event: Mapping[str, Any]) -> Capabilities:
        """Read a worker's ``ready`` event (any protocol)."""
        protocol = int(event.get("protocol") or 1)
        version = str(event.get("version") or "")
        if protocol < 2:
            caps = cls.fallback(version)
            names = event.get("models")
            if names:
                caps = cls(1, version, caps.jobs, caps.presets, tuple(ModelInfo(str(n)) for n in names))
            return caps
        jobs = {
            str(name): JobInfo(
                str(name),
                str(entry.get("summary") or ""),
                tuple(FieldInfo.from_dict(f) for f in entry.get("params") or ()),
            )
            for name, entry in (event.get("jobs") or {}).items()
        }
        presets = {str(name): tuple(labels) for name, labels in (event.get("presets") or {}).items()}
        info = event.get("model_info")
        models = (
            tuple(ModelInfo.from_dict(m) for m in info)
            if info
            else tuple(ModelInfo(str(n)) for n in event.get("models") or ())
        )
        return cls(protocol, version, jobs, presets, models)

    # --- what the front ends ask ----------------------------------------------------------------
    def supports(self, job: str) -> bool:
        """Whether ``job`` can be sent as ``{"job", "params"}`` (else as argv)."""
        return self.protocol >= 2 and job in self.jobs

    @property
    def modes(self) -> tuple[str, ...]:
        """The panel modes this geo-dfm runs."""
        if self.protocol < 2:
            return _FALLBACK_MODES
        return tuple(
            mode for mode in PANEL_MODES if all(job in self.jobs for job in MODE_JOBS.get(mode, (mode,)))
        )

    @staticmethod
    def form_job(mode: str) -> str:
        """The registry job whose parameters (method, help texts) a panel mode shows."""
        return MODE_FORM_JOB.get(mode, mode)

    def choices(self, job: str, path: str) -> tuple[Any, ...]:
        """The allowed values of a job parameter (``choices("localize", "method")``), else ``()``."""
        info = self.jobs.get(job)
        found = info.field(path) if info else None
        if found is not None and found.choices:
            return found.choices
        if self.protocol < 2 and path == "method":
            return _FALLBACK_METHODS.get(job, ())
        return ()

    def help(self, job: str, path: str) -> str:
        """The worker's help text for a job parameter ('' when unknown)."""
        info = self.jobs.get(job)
        found = info.field(path) if info else None
        return found.help if found else ""

    @property
    def preset_names(self) -> tuple[str, ...]:
        return tuple(self.presets)

    def preset_labels(self, name: str) -> tuple[str, ...] | None:
        """The classes of a preset, or ``None`` when this geo-dfm does not say."""
        return self.presets.get(name)

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def model(self, name: str) -> ModelInfo | None:
        return next((m for m in self.models if m.name == name), None)

    def with_models(self, models: Sequence[ModelInfo]) -> Capabilities:
        """The same capabilities with a refreshed model list."""
        return Capabilities(self.protocol, self.version, self.jobs, self.presets, tuple(models))

    # --- cache (the Processing provider starts before any worker) ------------------------------
    def to_json(self) -> str:
        """These capabilities in the shape of a ``ready`` event (read back by :meth:`from_json`)."""
        return json.dumps(
            {
                "protocol": self.protocol,
                "version": self.version,
                "jobs": {
                    name: {"summary": job.summary, "params": [_field_dict(f) for f in job.params]}
                    for name, job in self.jobs.items()
                },
                "presets": {k: list(v or ()) for k, v in self.presets.items()},
                "models": list(self.model_names),
                "model_info": [m.as_dict() for m in self.models],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Capabilities:
        """Read :meth:`to_json`'s output (malformed text gives the fallback)."""
        try:
            data = json.loads(text)
            return cls.from_ready(data if isinstance(data, dict) else {})
        except (ValueError, TypeError, KeyError, AttributeError):
            return cls.fallback()


def _field_dict(info: FieldInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "type": info.type,
        "default": info.default,
        "required": info.required,
        "choices": list(info.choices) if info.choices else None,
        "help": info.help,
        "fields": [_field_dict(f) for f in info.fields],
    }
