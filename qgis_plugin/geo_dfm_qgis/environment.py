"""Where geo-dfm lives: finding a ``geo-dfm`` executable and the command line that starts it.

The plugin never imports geo_dfm, torch or GDAL-Python: it runs geo-dfm from the Python environment
the user picks (a ``geo-dfm`` executable, a Python interpreter with geo-dfm installed, or a venv
folder) in a separate process. Pure Python; no Qt.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

IS_WINDOWS = sys.platform.startswith("win")
EXECUTABLE_NAME = "geo-dfm.exe" if IS_WINDOWS else "geo-dfm"
BIN_DIR = "Scripts" if IS_WINDOWS else "bin"

# Variables QGIS sets for its own Python and GDAL; geo-dfm's Python must not inherit them.
QGIS_ONLY_VARIABLES = (
    "PYTHONHOME",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "GDAL_DATA",
    "GDAL_DRIVER_PATH",
    "PROJ_LIB",
    "PROJ_DATA",
    "QT_PLUGIN_PATH",
)

INSTALL_HELP = """geo-dfm runs outside QGIS, in a Python environment of its own (so torch never loads inside QGIS).

One click: "Set up geo-dfm" below creates that environment (uv, or venv + pip), installs torch
(a CUDA build when an NVIDIA driver is found, else the CPU build) and geo-dfm from a wheel or a
source checkout (geo-dfm is not on PyPI yet), then checks it.

By hand, in a terminal:
    python3 -m venv ~/geo-dfm-env
    ~/geo-dfm-env/bin/pip install /path/to/geo-dfm        (a checkout or a wheel)
On Windows (OSGeo4W shell or a normal Python):  py -m venv %USERPROFILE%\\geo-dfm-env
    %USERPROFILE%\\geo-dfm-env\\Scripts\\pip install C:\\path\\to\\geo-dfm

Then choose the environment here: the geo-dfm executable
(~/geo-dfm-env/bin/geo-dfm), its Python, or the environment folder."""


def command_for(path: str) -> list[str]:
    """The command that runs geo-dfm from ``path`` (an executable, a Python or an environment folder)."""
    candidate = Path(path).expanduser()
    if candidate.is_dir():
        for name in (EXECUTABLE_NAME, "geo-dfm"):
            executable = candidate / BIN_DIR / name
            if executable.exists():
                return [str(executable)]
        return [str(candidate / BIN_DIR / EXECUTABLE_NAME)]
    if candidate.name.lower().startswith("python"):
        return [str(candidate), "-m", "geo_dfm"]
    return [str(candidate)]


def candidate_paths() -> list[str]:
    """``geo-dfm`` executables found on PATH and in the usual virtual-environment places."""
    found: list[str] = []
    on_path = shutil.which("geo-dfm")
    if on_path:
        found.append(on_path)
    home = Path.home()
    environment_roots = [
        os.environ.get("VIRTUAL_ENV"),
        os.environ.get("CONDA_PREFIX"),
        home / "geo-dfm-env",
        home / ".venvs" / "geo-dfm",
        home / ".virtualenvs" / "geo-dfm",
        home / "geo-dfm" / ".venv",
        home / ".local" / "pipx" / "venvs" / "geo-dfm",
        home / ".local" / "share" / "pipx" / "venvs" / "geo-dfm",
    ]
    for root in environment_roots:
        if root:
            executable = Path(root) / BIN_DIR / EXECUTABLE_NAME
            if executable.is_file():
                found.append(str(executable))
    local_bin = home / ".local" / "bin" / EXECUTABLE_NAME
    if local_bin.is_file():
        found.append(str(local_bin))
    unique: list[str] = []
    for path in found:
        if os.path.realpath(path) not in {os.path.realpath(p) for p in unique}:
            unique.append(path)
    return unique


def worker_environment() -> dict[str, str]:
    """The process environment for geo-dfm: QGIS's own Python/GDAL variables removed, unbuffered UTF-8."""
    env = {k: v for k, v in os.environ.items() if k not in QGIS_ONLY_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env
