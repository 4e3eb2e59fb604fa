"""Job parameters as frozen dataclasses: which model to run, how to cut a scene into chips, and the
tools every job's parameters share (a self-describing schema and construction from plain data).

A job's parameters are one frozen dataclass whose fields are plain values (str, int, float, bool,
tuples of str) or nested parameter dataclasses (``chips``, ``model``). Each field may carry ``help``
and ``choices`` metadata (:func:`param`); from that, :func:`params_schema` describes the job to other
programs (the worker's ``ready`` event, the QGIS plugin) and :func:`params_from_mapping` builds the
dataclass from JSON-like data (worker requests, batch runs), checking names and types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tile_tools.errors import InputError

_MISSING = dataclasses.MISSING


def param(default: Any = _MISSING, *, help: str = "", choices: Sequence[Any] | None = None, **kwargs: Any):
    """A dataclass field with ``help`` and ``choices`` metadata (what the schema reports)."""
    metadata = {"help": help, "choices": None if choices is None else tuple(choices)}
    if default is _MISSING:
        return dataclasses.field(metadata=metadata, **kwargs)
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


@dataclass(frozen=True)
class ModelParams:
    """Which encoder to load and how to run it (the CLI's ``model_options``)."""

    name: str | None = param(None, help="Registered model name or open_clip architecture.")
    weights: str | None = param(None, help="Checkpoint file (.pt/.pth/.safetensors).")
    model_config: str | None = param(None, help="A custom open_clip model config (JSON).")
    adapter: str | None = param(None, help="A peft adapter folder applied on top of the model.")
    device: str = param("auto", help="auto, cpu, cuda, cuda:N or mps.")
    precision: str = param(
        "auto", help="fp32 on CPU; autocast bf16/fp16 on GPU.", choices=("auto", "fp32", "bf16", "fp16")
    )
    batch_size: int = param(32, help="Images per model call.")
    threads: int | None = param(None, help="CPU threads for torch.")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def input_files(self) -> tuple[str, ...]:
        """Files this model reads (an output must never replace them)."""
        return tuple(p for p in (self.weights, self.model_config, self.adapter) if p)


@dataclass(frozen=True)
class ChipParams:
    """How a scene is cut into chips: the CLI's ``chip_options`` as given (text).

    Lengths stay text (``"224"`` px, ``"100m"`` metres, ``"0.25"`` fraction) and are interpreted
    by :func:`tile_tools.grid.plan_chips` against the scene's working grid. ``chip_size=None``
    means the model's input size in pixels.
    """

    chip_size: str | None = param(
        None, help="Chip size: pixels (224) or metres (100m); default: the model's input size."
    )
    overlap: str = param(
        "0.25", help="Overlap: fraction (0.25), percent (25%), pixels (32px) or metres (10m)."
    )
    scales: str | None = param(None, help="Several chip sizes, comma-separated (256,512 or 50m,100m).")
    gsd: float | None = param(None, help="Resample to this ground resolution (metres/pixel).")
    bands: str | None = param(None, help="Bands used as RGB, 1-based (e.g. 4,3,2).")
    aoi: str | None = param(None, help="Area of interest: a vector file or minx,miny,maxx,maxy[@EPSG:4326].")
    min_valid: float = param(0.5, help="Skip chips with less than this fraction of valid pixels.")
    stretch: str = param("auto", help="Conversion to 8 bit.", choices=("auto", "none", "percentile"))
    edge: str = param(
        "shift",
        help="Last chip of a row/column: shifted flush to the border or padded.",
        choices=("shift", "pad"),
    )
    xyz_zoom: int | None = param(None, help="Chip along the XYZ web-map tiles of this zoom (0-24).")
    max_chips: int = param(
        2_000_000, help="Refuse plans with more chips than this (before any pixel is read)."
    )
    max_chip_size: int = param(8192, help="Refuse chips larger than this many pixels a side.")
    max_grid_pixels: int = param(
        100_000_000_000, help="Refuse working grids (after --gsd) above this many pixels."
    )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def input_files(self) -> tuple[str, ...]:
        """Files these settings read (the AOI, when it is a file)."""
        return (self.aoi,) if self.aoi and not _looks_like_bbox(self.aoi) else ()


def _looks_like_bbox(text: str) -> bool:
    return text.split("@", 1)[0].count(",") == 3


# --- schema and construction from plain data ----------------------------------------------------------

_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``(inner type, optional)`` for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(annotation: Any) -> str:
    inner, _ = _unwrap_optional(annotation)
    if dataclasses.is_dataclass(inner):
        return "object"
    if typing.get_origin(inner) in (tuple, list) or inner in (tuple, list):
        return "array"
    return _TYPE_NAMES.get(inner, "string")


def _default_of(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:  # type: ignore[misc]
        value = field.default_factory()  # type: ignore[misc]
        return asdict(value) if dataclasses.is_dataclass(value) else value
    return None


def params_schema(cls: type) -> list[dict[str, Any]]:
    """The fields of a parameter dataclass as JSON-ready dicts: ``name, type, default, required,
    choices, help`` and, for nested parameter objects, their ``fields``."""
    hints = _field_types(cls)
    fields = []
    for field in dataclasses.fields(cls):
        annotation = hints[field.name]
        inner, _ = _unwrap_optional(annotation)
        entry: dict[str, Any] = {
            "name": field.name,
            "type": _type_name(annotation),
            "default": _default_of(field),
            "required": field.default is _MISSING and field.default_factory is _MISSING,  # type: ignore[misc]
            "choices": list(field.metadata["choices"]) if field.metadata.get("choices") else None,
            "help": field.metadata.get("help", ""),
        }
        if dataclasses.is_dataclass(inner):
            entry["fields"] = params_schema(inner)
        fields.append(entry)
    return fields


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    inner, optional = _unwrap_optional(annotation)
    if value is None:
        if optional:
            return None
        raise InputError(name, "must not be null")
    if dataclasses.is_dataclass(inner):
        if isinstance(value, inner):
            return value
        if not isinstance(value, Mapping):
            raise InputError(name, f"must be an object, got {type(value).__name__}")
        return params_from_mapping(inner, value, prefix=f"{name}.")
    if typing.get_origin(inner) in (tuple, list) or inner in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputError(name, f"must be a list, got {type(value).__name__}")
        (item_type, *_) = typing.get_args(inner) or (str,)
        return tuple(_coerce(item, item_type, f"{name}[{i}]") for i, item in enumerate(value))
    if inner is bool:
        if not isinstance(value, bool):
            raise InputError(name, f"must be true or false, got {value!r}")
        return value
    if inner is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(name, f"must be an integer, got {value!r}")
        return value
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(name, f"must be a number, got {value!r}")
        return float(value)
    if inner is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError(name, f"must be a string, got {value!r}")
        return str(value)
    return value


def params_from_mapping(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    """Build the parameter dataclass ``cls`` from JSON-like ``data`` (unknown or missing required
    names and wrong types are :class:`InputError` s naming the parameter)."""
    if not isinstance(data, Mapping):
        raise InputError(prefix.rstrip(".") or "params", "parameters must be a JSON object")
    hints = _field_types(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise InputError(f"{prefix}{unknown[0]}", f"unknown parameter (known: {', '.join(known)})")
    values = {}
    for name, field in known.items():
        if name in data:
            values[name] = _coerce(data[name], hints[name], prefix + name)
        elif field.default is _MISSING and field.default_factory is _MISSING:  # type: ignore[misc]
            raise InputError(prefix + name, "missing required parameter")
    return cls(**values)


def params_from_options(
    cls: type, options: Mapping[str, Any], aliases: Mapping[str, str] | None = None, prefix: str = ""
) -> Any:
    """Build ``cls`` from flat keyword values (a CLI command's options): each field takes the value of
    the option of the same name, or of ``aliases["<dotted.path>"]`` (e.g. ``{"model.name": "model_name"}``);
    nested parameter dataclasses are filled from the same flat options. Options that are absent or
    ``None`` keep the field's default."""
    aliases = aliases or {}
    hints = _field_types(cls)
    values = {}
    for field in dataclasses.fields(cls):
        path = prefix + field.name
        inner, _ = _unwrap_optional(hints[field.name])
        if dataclasses.is_dataclass(inner):
            values[field.name] = params_from_options(inner, options, aliases, prefix=path + ".")
            continue
        key = aliases.get(path, field.name)
        if options.get(key) is not None:
            value = options[key]
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return cls(**values)
