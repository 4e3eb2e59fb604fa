"""One entry point for every pairs format: :func:`open_pairs`.

- a ``.csv``/``.tsv``/``.txt`` table or a ``.parquet`` file → :class:`FilePairs` (CSV: UTF-8, else GB18030);
- a folder of class sub-folders (ImageFolder) → :class:`FilePairs` captioned from templates;
- a ``.tar`` shard, a folder of shards or a brace pattern → :class:`ShardPairs` (streamed).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from geo_dfm.pairs.files import FilePairs, image_folder_pairs, table_pairs
from geo_dfm.pairs.shards import ShardPairs, is_shard_spec
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")

PairSource = FilePairs | ShardPairs


@dataclass(frozen=True)
class PairsFormat:
    """How to read pairs: ``images_dir`` (root of relative image paths in a table), the table's
    ``image_column``/``caption_column`` (default: found by name), its text ``encoding`` (default UTF-8,
    else GB18030), and for an ImageFolder the caption ``templates``, ``gsd`` (m/px, in the captions)
    and ``seed`` (which template each image gets)."""

    images_dir: str | None = None
    image_column: str | None = None
    caption_column: str | None = None
    encoding: str | None = None
    templates: str = "rs105"
    gsd: float | None = None
    seed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def open_pairs(
    path: str | os.PathLike[str], fmt: PairsFormat = PairsFormat(), progress: Progress | None = None
) -> PairSource:
    """The pairs at ``path`` (format from the path; see the module docstring)."""
    text = str(path)
    if is_shard_spec(text):
        return ShardPairs(text)
    source = Path(text).expanduser()
    if not source.exists():
        raise InputError(path, "pairs not found (a CSV/Parquet table, an ImageFolder or tar shards)")
    if source.is_dir():
        return image_folder_pairs(source.absolute(), fmt.templates, fmt.gsd, fmt.seed, progress)
    if source.suffix.lower() in TABLE_SUFFIXES:
        return table_pairs(
            source.absolute(), fmt.images_dir, fmt.image_column, fmt.caption_column, fmt.encoding, progress
        )
    raise InputError(
        path, "unknown pairs format: give a .csv/.tsv/.parquet table, an ImageFolder or .tar shards"
    )
