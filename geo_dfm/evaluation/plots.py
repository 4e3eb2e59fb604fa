"""A confusion-matrix picture (PNG, drawn with Pillow): rows = true class, columns = predicted class.

Cells are shaded by the row-normalised share (white 0 → dark blue 1) and, when large enough, show the
count. Columns are numbered like the rows; the diagonal is outlined.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

_DARK = np.array([8, 48, 107], dtype=np.float64)
_WHITE = np.array([255, 255, 255], dtype=np.float64)


def write_confusion_png(path: Path, confusion: np.ndarray, classes: Sequence[str], title: str = "") -> Path:
    """Draw ``confusion`` ((C, C) counts) with its class names into ``path``."""
    confusion = np.asarray(confusion, dtype=np.int64)
    count = len(classes)
    cell = int(np.clip(900 // max(1, count), 6, 40))
    font = ImageFont.load_default()
    labels = [f"{i + 1}. {name}" for i, name in enumerate(classes)]
    label_width = max(_text_width(font, text) for text in labels) + 12 if cell >= 10 else 8
    top = 40 if cell >= 10 else 24
    width, height = label_width + count * cell + 10, top + count * cell + 10
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text(
        (4, 4), title or "confusion matrix (rows: true class, columns: predicted)", fill="black", font=font
    )
    totals = confusion.sum(axis=1, keepdims=True)
    shares = np.divide(confusion, np.maximum(totals, 1))
    for row in range(count):
        y = top + row * cell
        if cell >= 10:
            draw.text((4, y + (cell - 10) // 2), labels[row], fill="black", font=font)
        for col in range(count):
            x = label_width + col * cell
            colour = tuple(int(v) for v in _WHITE + (_DARK - _WHITE) * shares[row, col])
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(200, 200, 200))
            if row == col:
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline=(200, 30, 30))
            text = str(int(confusion[row, col]))
            if cell >= 22 and confusion[row, col]:
                ink = "white" if shares[row, col] > 0.5 else "black"
                draw.text((x + 2, y + (cell - 10) // 2), text, fill=ink, font=font)
    if cell >= 10:
        for col in range(count):
            draw.text((label_width + col * cell + 1, top - 14), str(col + 1), fill="black", font=font)
    image.save(path)
    return path


def _text_width(font, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)
