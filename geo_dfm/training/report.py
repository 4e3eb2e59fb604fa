"""The training log of a run: one CSV row per step, and a PNG of the loss and validation curves.

The plot is drawn with Pillow (no plotting library): the loss per step on the left, each validation
metric per validation step on the right (retrieval's per-K recalls only in the CSV, their mean plotted), with axis ranges written on the axes.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path

from geo_dfm.training.config import TrainResult

STEP_COLUMNS = ("step", "epoch", "loss", "lr", "logit_scale", "images_per_second")
_PER_K = re.compile(r"_r\d+$")
_COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189))


def metric_names(result: TrainResult) -> list[str]:
    """Validation metric names in first-seen order."""
    names: dict[str, None] = {}
    for row in result.validations:
        names.update(dict.fromkeys(k for k in row if k not in ("step", "epoch")))
    return list(names)


def write_log_csv(result: TrainResult, path: Path) -> Path:
    """``path``: the step columns, then one column per validation metric (empty between validations)."""
    metrics = metric_names(result)
    by_step = {int(row["step"]): row for row in result.validations}
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*STEP_COLUMNS, *metrics])
        for record in result.history:
            values = record.as_dict()
            row = [values[c] for c in STEP_COLUMNS]
            validation = by_step.get(record.step, {})
            writer.writerow([*(_fmt(v) for v in row), *(_fmt(validation.get(m, "")) for m in metrics)])
    return path


def _fmt(value: object) -> object:
    return f"{value:.6g}" if isinstance(value, float) else value


def write_plot_png(result: TrainResult, path: Path, width: int = 960, height: int = 360) -> Path:
    """``path``: loss per step (left panel) and validation metrics per step (right panel)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    half = width // 2
    steps = [float(r.step) for r in result.history]
    _panel(draw, (0, 0, half, height), "training loss", [("loss", steps, [r.loss for r in result.history])])
    series = [
        (
            name,
            [float(v["step"]) for v in result.validations if name in v],
            [float(v[name]) for v in result.validations if name in v],
        )
        for name in metric_names(result)
        if not _PER_K.search(name)  # R@K per direction: in the CSV; the plot shows their mean
    ]
    _panel(draw, (half, 0, width, height), "validation", series)
    image.save(path, format="PNG")
    return path


def _panel(
    draw, box: tuple[int, int, int, int], title: str, series: Sequence[tuple[str, list[float], list[float]]]
) -> None:
    left, top, right, bottom = box
    x0, y0, x1, y1 = left + 60, top + 30, right - 20, bottom - 40
    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    draw.text((x0, top + 8), title, fill=(0, 0, 0))
    points = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    if not points:
        draw.text((x0 + 10, (y0 + y1) // 2), "nothing recorded", fill=(120, 120, 120))
        return
    xmin, xmax = min(p[0] for p in points), max(p[0] for p in points)
    ymin, ymax = min(p[1] for p in points), max(p[1] for p in points)
    xmax, ymax = (xmax if xmax > xmin else xmin + 1), (ymax if ymax > ymin else ymin + 1)

    def place(x: float, y: float) -> tuple[float, float]:
        return x0 + (x - xmin) / (xmax - xmin) * (x1 - x0), y1 - (y - ymin) / (ymax - ymin) * (y1 - y0)

    draw.text((x0 - 55, y0 - 5), f"{ymax:.4g}", fill=(0, 0, 0))
    draw.text((x0 - 55, y1 - 8), f"{ymin:.4g}", fill=(0, 0, 0))
    draw.text((x0, y1 + 6), f"step {xmin:.0f}", fill=(0, 0, 0))
    draw.text((x1 - 60, y1 + 6), f"step {xmax:.0f}", fill=(0, 0, 0))
    for index, (name, xs, ys) in enumerate(series):
        colour = _COLOURS[index % len(_COLOURS)]
        line = [place(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for x, y in line if len(line) < 50 else ():
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
        draw.text((x0 + 10 + 160 * index, y1 + 22), name, fill=colour)
