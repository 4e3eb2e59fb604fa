"""Pairs whose images are files: a CSV/Parquet table (``image_path,caption``) or a captioned ImageFolder.

Both become a :class:`FilePairs` — a list of :class:`PairRecord` (image path, caption, group) that the
trainer reads on demand (:class:`geo_dfm.training.PairDataset`). Opening checks every record once:
a missing file or one whose header no decoder recognises is reported (logged with its path, listed
in ``skipped``) and left out; an image that fails later, while decoding, is skipped by the trainer.

Groups: rows with the same ``label`` column value (pairs made from labels), else rows of the same
image (several captions of one image, as in RSICD), are positives of each other in the loss.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from geo_dfm.pairs.captions import CaptionMaker
from geo_dfm.pairs.images import RASTER_SUFFIXES, is_image_name, read_image
from geo_dfm.progress import Progress
from geo_dfm.training.data import ImageTextPair, UnreadableImage
from tile_tools.errors import InputError

log = logging.getLogger(__name__)

IMAGE_COLUMNS = ("image_path", "filepath", "filename", "image", "file", "path")
CAPTION_COLUMNS = ("caption", "title", "text", "sentence", "raw")
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class PairRecord:
    """One pair on disk: the image file, its caption, its group (None: a group of its own)."""

    image: Path
    caption: str
    group: int | None = None


class FilePairs:
    """Pairs read from image files on demand (a :class:`geo_dfm.training.PairDataset`)."""

    def __init__(self, path: Path, kind: str, records: Sequence[PairRecord], skipped: dict[str, str]) -> None:
        self.path, self.kind = path, kind
        self.records = list(records)
        self.skipped = dict(skipped)
        if not self.records:
            raise InputError(path, f"no readable image-text pair ({len(self.skipped)} unreadable)")

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> ImageTextPair:
        record = self.records[index]
        return ImageTextPair(read_image(record.image), record.caption, record.group)

    def iter_ordered(self) -> Iterator[tuple[PairRecord, ImageTextPair | UnreadableImage]]:
        """Every record in file order with its decoded pair (or the decoding error)."""
        for index, record in enumerate(self.records):
            try:
                yield record, self.load(index)
            except UnreadableImage as error:
                yield record, error

    def describe(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "format": self.kind,
            "pairs": len(self.records),
            "images": len({r.image for r in self.records}),
            "skipped_images": len(self.skipped),
        }


def check_records(
    records: Sequence[PairRecord], progress: Progress | None = None
) -> tuple[list[PairRecord], dict[str, str]]:
    """The records whose image exists and opens (header only), and ``{path: problem}`` for the rest."""
    progress = progress or Progress()
    progress.stage("check images", total=len(records))
    verdicts: dict[Path, str | None] = {}
    kept = []
    for record in records:
        if record.image not in verdicts:
            verdicts[record.image] = _header_problem(record.image)
            if verdicts[record.image]:
                log.warning("skipping %s: %s", record.image, verdicts[record.image])
        if verdicts[record.image] is None:
            kept.append(record)
        progress.advance()
    skipped = {str(path): problem for path, problem in verdicts.items() if problem}
    return kept, skipped


def _header_problem(path: Path) -> str | None:
    if not path.is_file():
        return "image file not found"
    if path.suffix.lower() in RASTER_SUFFIXES:
        import rasterio

        try:
            with rasterio.open(path) as src:
                return None if src.count >= 1 else "no band"
        except Exception as exc:
            return (
                f"not an image GDAL can read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            )
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        return f"not a readable image ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    return None


# --- tables ------------------------------------------------------------------------------------------
def read_table(path: Path, encoding: str | None = None):  # -> pandas.DataFrame of str
    """A CSV/TSV (UTF-8, else GB18030 as RSICD ships) or Parquet file as a frame of strings."""
    import pandas as pd

    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path).astype(str)
        except Exception as exc:
            raise InputError(path, f"not a readable Parquet file ({exc})") from None
    encodings = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for index, name in enumerate(encodings):
        try:
            with open(path, encoding=name) as handle:
                header = handle.readline()
            separator = "\t" if "\t" in header and "," not in header else ","
            frame = pd.read_csv(path, sep=separator, dtype=str, keep_default_na=False, encoding=name)
        except UnicodeDecodeError:
            if index + 1 < len(encodings):
                continue
            raise InputError(
                path, f"cannot decode the table as {' or '.join(encodings)} (use --encoding)"
            ) from None
        except LookupError:
            raise InputError("encoding", f"unknown text encoding {name!r}") from None
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise InputError(path, f"not a readable CSV table ({str(exc).splitlines()[0]})") from None
        if name == "gb18030":
            log.info("%s: read as GB18030 (not UTF-8)", path)
        return frame
    raise AssertionError("unreachable")


def _pick_column(
    frame, wanted: str | None, candidates: tuple[str, ...], what: str, path: Path, flag: str
) -> str:
    columns = list(frame.columns)
    if wanted is not None:
        if wanted not in columns:
            raise InputError(
                flag, f"{path} has no column {wanted!r}; its columns: {', '.join(map(str, columns))}"
            )
        return wanted
    lowered = {str(c).strip().lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise InputError(
        path,
        f"no {what} column (looked for {', '.join(candidates)}; columns: {', '.join(map(str, columns))}); "
        f"name it with {flag}",
    )


def table_pairs(
    path: Path,
    images_dir: str | os.PathLike[str] | None = None,
    image_column: str | None = None,
    caption_column: str | None = None,
    encoding: str | None = None,
    progress: Progress | None = None,
) -> FilePairs:
    """Pairs from a table; relative image paths are resolved against ``images_dir`` (default: the
    table's folder)."""
    frame = read_table(path, encoding)
    image_col = _pick_column(frame, image_column, IMAGE_COLUMNS, "image path", path, "--image-column")
    caption_col = _pick_column(frame, caption_column, CAPTION_COLUMNS, "caption", path, "--caption-column")
    root = Path(images_dir).expanduser() if images_dir else path.parent
    if images_dir and not root.is_dir():
        raise InputError("images_dir", f"{root}: images folder not found")
    images = [(root / str(p).strip()).absolute() for p in frame[image_col]]
    captions = [str(c).strip() for c in frame[caption_col]]
    label_col = next((c for c in frame.columns if str(c).strip().lower() == LABEL_COLUMN), None)
    keys = [str(v) for v in frame[label_col]] if label_col is not None else [str(p) for p in images]
    group_of = {key: i for i, key in enumerate(dict.fromkeys(keys))}
    records, empty = [], 0
    for image, text, key in zip(images, captions, keys, strict=True):
        if not text:
            empty += 1
            continue
        records.append(PairRecord(image, text, group_of[key]))
    if empty:
        log.warning("%s: %d rows without caption left out", path, empty)
    if not records:
        raise InputError(path, "the table holds no row with an image path and a caption")
    kept, skipped = check_records(records, progress)
    return FilePairs(path, "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv", kept, skipped)


# --- ImageFolder ---------------------------------------------------------------------------------
def image_folder_pairs(
    root: Path,
    templates: str | Sequence[str] = "rs105",
    gsd: float | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> FilePairs:
    """Pairs from ``root/<class>/<image>``: each image captioned from one template (chosen by its path
    and ``seed``) and its class name (folder name, ``_`` → space, lower case); group = class."""
    from geo_dfm.models.prompts import normalize_class_name

    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise InputError(root, "not an ImageFolder: no class sub-folders")
    maker = CaptionMaker(templates, gsd, seed)
    records = []
    for group, folder in enumerate(classes):
        label = normalize_class_name(folder.name)
        for file in sorted(folder.rglob("*")):
            if file.is_file() and is_image_name(file.name):
                relative = file.relative_to(root).as_posix()
                records.append(PairRecord(file.absolute(), maker.for_key(label, relative), group))
    if not records:
        raise InputError(root, "the ImageFolder holds no image")
    kept, skipped = check_records(records, progress)
    return FilePairs(root, "imagefolder", kept, skipped)
