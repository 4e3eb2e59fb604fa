"""Build the installable plugin zip: ``python3 qgis_plugin/build_zip.py --output dist``.

The zip holds one top-level folder ``geo_dfm_qgis/`` (what QGIS's "Install from ZIP" and the
plugins.qgis.org validator expect) with the plugin's sources, metadata.txt, icon, LICENSE and the
README; caches, hidden files and folders (``.DS_Store``, ``.idea``, ``.git``…) and editor or merge
leftovers (``*.orig``, ``*.rej``, ``*~``, ``*.swp``…) are left out.
"""

from __future__ import annotations

import argparse
import configparser
import sys
import zipfile
from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent / "geo_dfm_qgis"
REPO_ROOT = PLUGIN_DIR.parents[1]
EXCLUDED_PARTS = {"__pycache__", "__MACOSX"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".orig", ".rej", ".bak", ".swp", ".swo", ".tmp", ".partial"}
EXCLUDED_NAMES = {"Thumbs.db", "desktop.ini"}
REQUIRED_FILES = ("LICENSE", "__init__.py", "metadata.txt")
REQUIRED_METADATA = (
    "name",
    "qgisMinimumVersion",
    "description",
    "about",
    "version",
    "author",
    "email",
    "repository",
)


def is_packaged(relative: Path) -> bool:
    """Whether a file (path relative to the plugin folder) belongs in the zip."""
    parts = relative.parts
    return not (
        EXCLUDED_PARTS.intersection(parts)
        or any(part.startswith(".") for part in parts)
        or relative.suffix in EXCLUDED_SUFFIXES
        or relative.name in EXCLUDED_NAMES
        or relative.name.endswith("~")
    )


def plugin_files(plugin_dir: Path = PLUGIN_DIR) -> list[Path]:
    """The files that go into the zip, sorted."""
    return sorted(
        path for path in plugin_dir.rglob("*") if path.is_file() and is_packaged(path.relative_to(plugin_dir))
    )


def check_metadata(plugin_dir: Path = PLUGIN_DIR) -> configparser.ConfigParser:
    """Read metadata.txt and fail loudly when a field QGIS's repository requires is missing."""
    metadata = configparser.ConfigParser()
    metadata.read(plugin_dir / "metadata.txt", encoding="utf-8")
    missing = [key for key in REQUIRED_METADATA if not metadata.get("general", key, fallback="").strip()]
    if missing:
        raise SystemExit(f"{plugin_dir / 'metadata.txt'}: missing {', '.join(missing)}")
    icon = metadata.get("general", "icon", fallback="")
    if icon and not (plugin_dir / icon).is_file():
        raise SystemExit(f"{plugin_dir / 'metadata.txt'}: icon {icon} does not exist")
    absent = [name for name in REQUIRED_FILES if not (plugin_dir / name).is_file()]
    if absent:
        raise SystemExit(f"{plugin_dir}: missing {', '.join(absent)} (the plugin repository requires them)")
    return metadata


def build_zip(output_dir: Path, plugin_dir: Path = PLUGIN_DIR) -> Path:
    """Write ``output_dir/geo_dfm_qgis.zip``; returns its path."""
    check_metadata(plugin_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{plugin_dir.name}.zip"
    partial = target.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in plugin_files(plugin_dir):
            archive.write(path, f"{plugin_dir.name}/{path.relative_to(plugin_dir).as_posix()}")
        readme = REPO_ROOT / "README.md"
        if readme.is_file():
            archive.write(readme, f"{plugin_dir.name}/README.md")
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("dist"), help="folder for geo_dfm_qgis.zip")
    args = parser.parse_args(argv)
    print(build_zip(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
