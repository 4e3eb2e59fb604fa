"""The benchmark datasets as the published evaluation reads them: ImageFolder trees and caption CSVs.

- ImageFolder (AID, RESISC45, EuroSAT, any folder): one sub-folder per class, classes in sorted
  folder-name order, images found recursively (sorted) with torchvision's image extensions. Hidden
  folders are skipped. Class names for prompts are the folder names with ``_``/``/`` → space, lower
  case (:func:`geo_dfm.models.prompts.normalize_class_name`).
- Caption CSV (RSITMD ``filename,title``; RSICD the same, encoded gb18030): captions of one image are
  grouped; when an image appears more than once the images are ordered by file name, otherwise they
  keep the file's order (as the RS5M code does).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geo_dfm.models.presets import LABEL_PRESETS
from geo_dfm.models.prompts import normalize_class_name
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
ZEROSHOT_DATASETS = ("aid", "resisc45", "eurosat", "folder")
RETRIEVAL_DATASETS = ("rsitmd", "rsicd", "csv")


@dataclass(frozen=True, eq=False)
class ImageFolderDataset:
    """Images with class ids: ``files[i]`` shows class ``classes[labels[i]]`` ((N,) int64 ``labels``)."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[Path, ...]
    labels: np.ndarray

    @property
    def classnames(self) -> tuple[str, ...]:
        """The class names the prompts use (normalised folder names)."""
        return tuple(normalize_class_name(name) for name in self.classes)

    def __len__(self) -> int:
        return len(self.files)


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def zeroshot_root(dataset_dir: str | os.PathLike[str], dataset: str = "folder") -> Path:
    """The ImageFolder root of a zero-shot dataset folder (EuroSAT: ``eurosat-rgb/2750`` if present)."""
    if dataset not in ZEROSHOT_DATASETS:
        raise InputError("dataset", f"unknown dataset {dataset!r}; choose {', '.join(ZEROSHOT_DATASETS)}")
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    if dataset == "eurosat" and (root / "2750").is_dir():
        return root / "2750"
    return root


def read_image_folder(root: str | os.PathLike[str], dataset: str = "folder") -> ImageFolderDataset:
    """The images of an ImageFolder tree; an empty tree or class folder is an :class:`InputError`."""
    folder = zeroshot_root(root, dataset)
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise InputError(
            folder, "no class folders (ImageFolder layout: one folder per class with its images)"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        found = _images_below(folder / name)
        if not found:
            raise InputError(folder / name, f"class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        files += found
        labels += [label] * len(found)
    if dataset in LABEL_PRESETS:
        _compare_with_preset(folder, classes, dataset)
    return ImageFolderDataset(folder.absolute(), tuple(classes), tuple(files), np.asarray(labels, np.int64))


def _images_below(folder: Path) -> list[Path]:
    found = []
    for current, _, names in sorted(os.walk(folder, followlinks=True)):
        if any(part.startswith(".") for part in Path(current).relative_to(folder).parts):
            continue
        found += [Path(current, name).absolute() for name in sorted(names) if is_image_file(name)]
    return found


def _compare_with_preset(folder: Path, classes: Sequence[str], dataset: str) -> None:
    expected = {normalize_class_name(name) for name in LABEL_PRESETS[dataset]}
    found = {normalize_class_name(name) for name in classes}
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        log.warning(
            "%s: the class folders differ from the published %s classes (missing: %s; extra: %s); "
            "numbers are not comparable with the paper's",
            folder,
            dataset,
            ", ".join(missing) or "none",
            ", ".join(extra) or "none",
        )


@dataclass(frozen=True)
class CaptionFormat:
    """Where a published retrieval test set keeps its CSV and images, and the CSV's encoding."""

    csv_name: str
    images_dir: str
    encoding: str


CAPTION_FORMATS: dict[str, CaptionFormat] = {
    "rsitmd": CaptionFormat("rsitmd_test.csv", "images", "utf-8"),
    "rsicd": CaptionFormat("rsicd_test.csv", "RSICD_images", "gb18030"),
}


@dataclass(frozen=True, eq=False)
class CaptionDataset:
    """Images and their captions: ``captions[t]`` describes ``files[image_of_text[t]]`` ((T,) int64)."""

    csv_path: Path
    images_dir: Path
    files: tuple[Path, ...]
    captions: tuple[str, ...]
    image_of_text: np.ndarray


def caption_paths(
    dataset_dir: str | os.PathLike[str],
    dataset: str = "csv",
    csv_path: str | os.PathLike[str] | None = None,
    images_dir: str | os.PathLike[str] | None = None,
    encoding: str | None = None,
) -> tuple[Path, Path, str]:
    """``(csv file, images folder, encoding)`` of a retrieval dataset folder (explicit paths win)."""
    if dataset not in RETRIEVAL_DATASETS:
        raise InputError("dataset", f"unknown dataset {dataset!r}; choose {', '.join(RETRIEVAL_DATASETS)}")
    root = Path(dataset_dir).expanduser()
    if not root.is_dir():
        raise InputError(root, "dataset folder not found")
    known = CAPTION_FORMATS.get(dataset)
    if csv_path is None:
        if known is None:
            candidates = sorted(root.glob("*.csv"))
            if len(candidates) != 1:
                raise InputError(
                    root, f"give the caption table with --csv (found {len(candidates)} .csv files)"
                )
            csv_path = candidates[0]
        else:
            csv_path = root / known.csv_name
    if images_dir is None:
        images_dir = root / known.images_dir if known else root
    return Path(csv_path), Path(images_dir), encoding or (known.encoding if known else "utf-8")


def read_caption_csv(
    csv_path: str | os.PathLike[str],
    images_dir: str | os.PathLike[str],
    encoding: str = "utf-8",
    image_column: str = "filename",
    caption_column: str = "title",
) -> CaptionDataset:
    """The images and grouped captions of a caption CSV; every listed image must exist."""
    table, folder = Path(csv_path), Path(images_dir)
    if not table.is_file():
        raise InputError(table, "caption table (CSV) not found")
    if not folder.is_dir():
        raise InputError(folder, "images folder not found")
    rows = _read_rows(table, encoding, image_column, caption_column)
    if not rows:
        raise InputError(table, "the caption table has no rows")
    names = [name for name, _ in rows]
    order = sorted(set(names)) if len(set(names)) != len(names) else names
    index = {name: i for i, name in enumerate(order)}
    grouped: list[list[str]] = [[] for _ in order]
    for name, caption in rows:
        grouped[index[name]].append(caption)
    files = tuple((folder / name).absolute() for name in order)
    for file in files:
        if not file.is_file():
            raise InputError(file, f"image listed in {table.name} not found")
    captions = tuple(caption for group in grouped for caption in group)
    image_of_text = np.repeat(np.arange(len(order)), [len(group) for group in grouped]).astype(np.int64)
    return CaptionDataset(table.absolute(), folder.absolute(), files, captions, image_of_text)


def _read_rows(table: Path, encoding: str, image_column: str, caption_column: str) -> list[tuple[str, str]]:
    try:
        with open(table, encoding=encoding, newline="") as handle:
            reader = csv.DictReader(handle)
            fields = [name.lstrip("\ufeff") for name in (reader.fieldnames or [])]
            reader.fieldnames = fields
            if image_column not in fields or caption_column not in fields:
                raise InputError(
                    table, f"needs columns {image_column!r} and {caption_column!r}, found {', '.join(fields)}"
                )
            rows = []
            for line, row in enumerate(reader, start=2):
                name, caption = (row.get(image_column) or "").strip(), row.get(caption_column) or ""
                if not name or not caption.strip():
                    raise InputError(
                        table, f"line {line}: empty {image_column if not name else caption_column}"
                    )
                rows.append((name, caption))
            return rows
    except UnicodeDecodeError as exc:
        raise InputError(table, f"cannot be read as {encoding} text ({exc}); set the encoding") from exc
    except LookupError as exc:
        raise InputError("encoding", f"unknown text encoding {encoding!r}") from exc
