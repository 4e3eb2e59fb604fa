"""The folder layout of the GeoRSCLIP test data (HF ``Zilun/GeoRSCLIP``, ``data/rs5m_test_data.zip``).

Unzipped, ``rs5m_test_data/`` holds::

    AID/<class>/…                  ImageFolder, 30 classes ("Bare Land", …)
    RESISC45/<class>/…             ImageFolder, 45 classes ("baseball diamond", …)
    eurosat-rgb/2750/<class>/…     ImageFolder, 10 classes ("AnnualCrop", …)
    rsitmd/rsitmd_test.csv, rsitmd/images/
    rsicd/rsicd_test.csv (gb18030), rsicd/RSICD_images/
    AIR-SLT/annotations/anno.json, AIR-SLT/imgs/

(the zip also carries split files and a ``selo_cache`` folder, which are not used).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from geo_dfm.evaluation.datasets import CAPTION_FORMATS
from tile_tools.errors import InputError

#: Zero-shot benchmark → (folder, ``--dataset`` kind).
ZEROSHOT_FOLDERS: dict[str, tuple[str, str]] = {
    "AID": ("AID", "aid"),
    "RESISC45": ("RESISC45", "resisc45"),
    "EuroSAT": ("eurosat-rgb", "eurosat"),
}
#: Retrieval benchmark → (folder, ``--dataset`` kind).
RETRIEVAL_FOLDERS: dict[str, tuple[str, str]] = {"RSITMD": ("rsitmd", "rsitmd"), "RSICD": ("rsicd", "rsicd")}
SELO_FOLDER = "AIR-SLT"
BENCHMARKS = (*ZEROSHOT_FOLDERS, *RETRIEVAL_FOLDERS, "AIR-SLT")


@dataclass(frozen=True)
class TestDataLayout:
    """The benchmarks found under ``root`` (each a folder) and those ``missing``."""

    __test__ = False  # not a pytest class

    root: Path
    zeroshot: dict[str, tuple[Path, str]] = field(default_factory=dict)
    retrieval: dict[str, tuple[Path, str]] = field(default_factory=dict)
    selo: Path | None = None
    missing: tuple[str, ...] = ()


def find_test_data(root: str | os.PathLike[str], only: tuple[str, ...] | None = None) -> TestDataLayout:
    """Find the benchmarks of an unzipped ``rs5m_test_data`` folder (``only``: a subset of :data:`BENCHMARKS`)."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise InputError(folder, "test data folder not found")
    wanted = _wanted(only)
    zeroshot, retrieval, missing = {}, {}, []
    selo = None
    for name, (sub, kind) in ZEROSHOT_FOLDERS.items():
        if name not in wanted:
            continue
        if (folder / sub).is_dir():
            zeroshot[name] = (folder / sub, kind)
        else:
            missing.append(name)
    for name, (sub, kind) in RETRIEVAL_FOLDERS.items():
        if name not in wanted:
            continue
        if (folder / sub / CAPTION_FORMATS[kind].csv_name).is_file():
            retrieval[name] = (folder / sub, kind)
        else:
            missing.append(name)
    if "AIR-SLT" in wanted:
        path = folder / SELO_FOLDER
        if (path / "annotations" / "anno.json").is_file() or (path / "anno.json").is_file():
            selo = path
        else:
            missing.append("AIR-SLT")
    layout = TestDataLayout(folder.absolute(), zeroshot, retrieval, selo, tuple(missing))
    if not zeroshot and not retrieval and selo is None:
        raise InputError(
            folder,
            "none of the benchmarks of rs5m_test_data found (AID/, RESISC45/, eurosat-rgb/2750/, "
            "rsitmd/rsitmd_test.csv, rsicd/rsicd_test.csv, AIR-SLT/annotations/anno.json)",
        )
    return layout


def _wanted(only: tuple[str, ...] | None) -> set[str]:
    if not only:
        return set(BENCHMARKS)
    lookup = {name.lower(): name for name in BENCHMARKS}
    unknown = [name for name in only if name.lower() not in lookup]
    if unknown:
        raise InputError(
            "only", f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return {lookup[name.lower()] for name in only}
