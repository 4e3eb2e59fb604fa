"""``pairs.csv``: the image–text pairs a generation writes, in the format fine-tuning reads.

Columns ``image_path,caption`` (the pairs format of ``geo-dfm finetune --pairs``) plus ``seed,model``,
which readers ignore. ``image_path`` is relative to the folder holding the CSV (so the output folder
can be moved), with ``/`` separators; UTF-8, one header line. ``filter.csv`` (written with
``--filter``) lists every generated image with its filter scores and whether it was kept.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

PAIRS_COLUMNS = ("image_path", "caption", "seed", "model")
FILTER_COLUMNS = ("image_path", "caption", "seed", "kept", "own_score", "rival", "rival_score", "margin")


class CsvRows:
    """A CSV file written row by row (context manager): header first, then one dict per row."""

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.count = 0
        self._file = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        self._writer.writeheader()

    def write(self, row: Mapping[str, Any]) -> None:
        """Append one row (exactly the file's columns)."""
        self._writer.writerow(dict(row))
        self.count += 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CsvRows:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
