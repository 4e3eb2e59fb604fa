"""The diagnostics report (QGIS, Python, geo-dfm, torch, CUDA, GPU, paths) that users paste into an issue."""

from __future__ import annotations

import configparser
import os
import platform
import sys
from collections.abc import Mapping
from typing import Any

from qgis.core import Qgis
from qgis.PyQt.QtCore import PYQT_VERSION_STR, QT_VERSION_STR

from geo_dfm_qgis import settings
from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.environment import command_for
from geo_dfm_qgis.setup_env import detect_gpu

PLUGIN_DIR = os.path.dirname(__file__)


def plugin_version() -> str:
    metadata = configparser.ConfigParser()
    metadata.read(os.path.join(PLUGIN_DIR, "metadata.txt"), encoding="utf-8")
    return metadata.get("general", "version", fallback="?")


def hugging_face_cache() -> str:
    """Where geo-dfm's downloads go (the standard Hugging Face cache, as the worker resolves it)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.join(home, "hub")


def diagnostics_report(environment: str, ready: Mapping[str, Any] | None, problem: str = "") -> str:
    """A plain-text report; ``ready`` is the worker's ``ready`` event (``None`` if it did not start)."""
    gpu = detect_gpu()
    lines = [
        "geo-dfm diagnostics",
        f"QGIS: {Qgis.QGIS_VERSION} (Qt {QT_VERSION_STR}, PyQt {PYQT_VERSION_STR})",
        f"QGIS Python: {platform.python_version()} ({sys.executable})",
        f"Platform: {platform.platform()}",
        f"Plugin: geo_dfm_qgis {plugin_version()} ({PLUGIN_DIR})",
        f"geo-dfm environment: {environment or '(none chosen)'}",
    ]
    if environment:
        lines.append(f"geo-dfm command: {' '.join(command_for(environment))}")
    if ready:
        caps = Capabilities.from_ready(ready)
        lines += [
            f"geo-dfm: {ready.get('version', '?')} (worker protocol {caps.protocol})",
            f"geo-dfm Python: {ready.get('python', '?')}",
            f"torch: {ready.get('torch') or 'missing: ' + str(ready.get('torch_error', ''))}",
            f"CUDA available to torch: {'yes' if ready.get('cuda') else 'no'}",
        ]
        known = [m for m in caps.models if m.downloaded is not None]
        if known:
            lines.append("Models downloaded: " + (", ".join(m.name for m in known if m.downloaded) or "none"))
            lines.append(
                "Models not downloaded: " + (", ".join(m.name for m in known if not m.downloaded) or "none")
            )
    else:
        lines.append(f"geo-dfm: not running ({problem or 'not checked'})")
    lines += [
        f"GPU: {gpu.name}, NVIDIA driver {gpu.driver}" if gpu else "GPU: no NVIDIA driver found (nvidia-smi)",
        f"Output folder: {settings.output_folder()}",
        f"Hugging Face cache: {hugging_face_cache()}",
        f"GEO_DFM_CACHE: {os.environ.get('GEO_DFM_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'geo-dfm')}",
        f"HF_HUB_OFFLINE: {os.environ.get('HF_HUB_OFFLINE') or 'not set'}",
    ]
    return "\n".join(lines)
