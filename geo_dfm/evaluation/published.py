"""The published numbers our evaluations are compared with (RS5M / GeoRSCLIP paper and its sources).

Zero-shot: top-1 % with the 105 templates (RemoteCLIP: its own one-template protocol); retrieval: mean
recall mR (%); AIR-SLT: Rsu, Ras, Rda, Rmi. Values as collected in ``docs/evaluation.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tile_tools.errors import InputError

#: Benchmark → metrics reported, in table order.
BENCHMARK_METRICS: dict[str, tuple[str, ...]] = {
    "AID": ("top1",),
    "RESISC45": ("top1",),
    "EuroSAT": ("top1",),
    "RSITMD": ("mean_recall",),
    "RSICD": ("mean_recall",),
    "AIR-SLT": ("rsu", "ras", "rda", "rmi"),
}


@dataclass(frozen=True)
class PublishedRow:
    """One published result row: ``values[(benchmark, metric)]``."""

    name: str
    values: Mapping[tuple[str, str], float]
    note: str = ""


def _row(name: str, note: str = "", selo: tuple[float, float, float] | None = None, **values: float | None):
    keys = {
        "aid": ("AID", "top1"),
        "resisc45": ("RESISC45", "top1"),
        "eurosat": ("EuroSAT", "top1"),
        "rsicd": ("RSICD", "mean_recall"),
        "rsitmd": ("RSITMD", "mean_recall"),
        "rmi": ("AIR-SLT", "rmi"),
    }
    table = {keys[key]: value for key, value in values.items() if value is not None}
    if selo is not None:
        table.update(zip((("AIR-SLT", "rsu"), ("AIR-SLT", "ras"), ("AIR-SLT", "rda")), selo, strict=True))
    return PublishedRow(name, table, note)


PUBLISHED_ROWS: tuple[PublishedRow, ...] = (
    _row(
        "CLIP ViT-B-32 (OpenAI)",
        "105 templates",
        selo=(0.7188, 0.3006, 0.6992),
        aid=66.22,
        resisc45=60.90,
        eurosat=47.21,
        rsicd=15.74,
        rsitmd=24.19,
        rmi=0.7071,
    ),
    _row(
        "GeoRSCLIP B-32, paper run",
        selo=(0.7546, 0.2610, 0.7180),
        aid=73.72,
        resisc45=71.89,
        eurosat=61.49,
        rsicd=26.18,
        rsitmd=35.68,
        rmi=0.7400,
    ),
    _row("GeoRSCLIP B-32, released checkpoint", aid=74.42, resisc45=72.74, eurosat=61.40, rmi=0.7447),
    _row(
        "GeoRSCLIP H-14",
        selo=(0.7595, 0.2566, 0.7418),
        aid=76.33,
        resisc45=73.83,
        eurosat=67.47,
        rsicd=28.48,
        rsitmd=40.38,
        rmi=0.7494,
    ),
    _row("GeoRSCLIP B-32 RET-2", "tuned on RSICD+RSITMD", rsicd=38.87, rsitmd=51.81),
    _row(
        "RemoteCLIP B-32",
        "its own protocol (1 template); Rmi from a third party",
        aid=91.30,
        resisc45=70.33,
        eurosat=35.96,
        rsicd=35.26,
        rsitmd=49.38,
        rmi=0.7125,
    ),
    _row("B-32 Pfeiffer adapter", "PEFT on RS5M", aid=72.76, resisc45=68.07, eurosat=61.41, rmi=0.7308),
    _row("B-32 prefix tuning", "PEFT on RS5M", aid=69.17, resisc45=63.11, eurosat=61.59, rmi=0.7336),
    _row("B-32 LoRA", "PEFT on RS5M", aid=72.33, resisc45=66.82, eurosat=60.10, rmi=0.7218),
    _row("B-32 UniPELT", "PEFT on RS5M", aid=71.51, resisc45=65.37, eurosat=60.46, rmi=0.7358),
    _row("AMFMN (SeLo v1)", "supervised on RSITMD", selo=(0.6920, 0.3323, 0.6667), rmi=0.6772),
    _row("SeLo v2", selo=(0.7199, 0.2925, 0.6658), rmi=0.7021),
)

#: Registry model → published rows to compare with, first match per metric wins.
MODEL_ROWS: dict[str, tuple[str, ...]] = {
    "georsclip-vit-b-32": ("GeoRSCLIP B-32, released checkpoint", "GeoRSCLIP B-32, paper run"),
    "georsclip-vit-h-14": ("GeoRSCLIP H-14",),
    "georsclip-vit-b-32-ret2": ("GeoRSCLIP B-32 RET-2",),
    "remoteclip-vit-b-32": ("RemoteCLIP B-32",),
    "clip-vit-b-32-openai": ("CLIP ViT-B-32 (OpenAI)",),
}


def published_row(name: str) -> PublishedRow:
    """The row called ``name`` (case-insensitive)."""
    for row in PUBLISHED_ROWS:
        if row.name.lower() == name.strip().lower():
            return row
    names = "; ".join(row.name for row in PUBLISHED_ROWS)
    raise InputError("published", f"unknown published row {name!r}; choose one of: {names}")


def rows_for(model_name: str | None, row_name: str | None = None) -> tuple[PublishedRow, ...]:
    """The rows to compare ``model_name`` with (``row_name`` overrides; none for unpublished models)."""
    if row_name:
        return (published_row(row_name),)
    return tuple(published_row(name) for name in MODEL_ROWS.get(model_name or "", ()))


def published_value(rows: tuple[PublishedRow, ...], benchmark: str, metric: str) -> tuple[float, str] | None:
    """``(value, row name)`` of the first row reporting ``benchmark``/``metric``."""
    for row in rows:
        if (benchmark, metric) in row.values:
            return row.values[(benchmark, metric)], row.name
    return None
