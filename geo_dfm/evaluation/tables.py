"""Result tables: ours beside the published numbers (Markdown + CSV), per-class and per-sample CSVs."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geo_dfm.evaluation.published import PublishedRow, published_value

#: Metrics shown per benchmark kind, in order.
ZEROSHOT_METRICS = ("top1", "top5", "mean_per_class")
RETRIEVAL_METRICS = (
    "image_to_text_r1",
    "image_to_text_r5",
    "image_to_text_r10",
    "text_to_image_r1",
    "text_to_image_r5",
    "text_to_image_r10",
    "mean_recall",
)
SELO_METRICS = ("rsu", "ras", "rda", "rmi")
METRIC_LABELS = {
    "top1": "top-1 %",
    "top5": "top-5 %",
    "mean_per_class": "mean per-class %",
    "image_to_text_r1": "image→text R@1 %",
    "image_to_text_r5": "image→text R@5 %",
    "image_to_text_r10": "image→text R@10 %",
    "text_to_image_r1": "text→image R@1 %",
    "text_to_image_r5": "text→image R@5 %",
    "text_to_image_r10": "text→image R@10 %",
    "mean_recall": "mR %",
    "rsu": "Rsu ↑",
    "ras": "Ras ↓",
    "rda": "Rda ↑",
    "rmi": "Rmi ↑",
}


@dataclass(frozen=True)
class ComparisonRow:
    """One line of the table: our value beside the published one (``None`` where there is none)."""

    benchmark: str
    metric: str
    ours: float | None
    published: float | None = None
    published_in: str | None = None

    @property
    def difference(self) -> float | None:
        if self.ours is None or self.published is None:
            return None
        return self.ours - self.published


def comparison_rows(
    measured: Mapping[str, Mapping[str, float]], published: tuple[PublishedRow, ...]
) -> list[ComparisonRow]:
    """Rows for ``measured[benchmark][metric]`` (benchmarks in the given order, metrics as measured)."""
    rows = []
    for benchmark, values in measured.items():
        for metric, value in values.items():
            found = published_value(published, benchmark, metric)
            ours = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
            rows.append(ComparisonRow(benchmark, metric, ours, *(found or (None, None))))
    return rows


def pick(values: Mapping[str, Any], metrics: Sequence[str]) -> dict[str, float]:
    """``values`` restricted to ``metrics`` (in that order)."""
    return {metric: values[metric] for metric in metrics if metric in values}


def _format(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "–"
    digits = 4 if metric in SELO_METRICS else 2
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def write_comparison(
    rows: Sequence[ComparisonRow], folder: Path, title: str, lines: Iterable[str] = ()
) -> tuple[Path, Path]:
    """``folder/results.md`` and ``folder/results.csv``; ``lines`` are printed under the title."""
    markdown = [f"# {title}", "", *lines, ""]
    markdown += [
        "| benchmark | metric | ours | published | difference | published in |",
        "|---|---|---:|---:|---:|---|",
    ]
    for row in rows:
        markdown.append(
            f"| {row.benchmark} | {METRIC_LABELS.get(row.metric, row.metric)} | {_format(row.ours, row.metric)} | "
            f"{_format(row.published, row.metric)} | {_format(row.difference, row.metric, signed=True)} | "
            f"{row.published_in or '–'} |"
        )
    md_path, csv_path = folder / "results.md", folder / "results.csv"
    md_path.write_text("\n".join(markdown) + "\n", encoding="utf-8")
    with open(csv_path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["benchmark", "metric", "ours", "published", "difference", "published_in"])
        for row in rows:
            writer.writerow(
                [row.benchmark, row.metric, _plain(row.ours), _plain(row.published), _plain(row.difference)]
                + [row.published_in or ""]
            )
    return md_path, csv_path


def _plain(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def write_rows_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV file with ``header`` and ``rows``."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_confusion_csv(path: Path, confusion: np.ndarray, classes: Sequence[str]) -> Path:
    """Counts with the true class down the rows and the predicted class across."""
    rows = ([name, *map(int, counts)] for name, counts in zip(classes, confusion, strict=True))
    return write_rows_csv(path, ["true \\ predicted", *classes], rows)
