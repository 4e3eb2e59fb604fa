"""The plugin's settings (QgsSettings) and the environment check behind the settings dialog."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from qgis.core import QgsSettings

from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.environment import INSTALL_HELP, candidate_paths, command_for
from geo_dfm_qgis.worker_client import WorkerClient, WorkerError

PREFIX = "geo_dfm_qgis/"
ENVIRONMENT_KEY = "environment"
OUTPUT_FOLDER_KEY = "output_folder"
DEFAULT_MODEL_KEY = "default_model"
CAPABILITIES_KEY = "capabilities"
ADAPTERS_KEY = "adapters"
ENV_OVERRIDE = "GEO_DFM_EXECUTABLE"  # e.g. for qgis_process in CI


def read(key: str, default: Any = "", type_: type = str) -> Any:
    value = QgsSettings().value(PREFIX + key, default)
    if type_ is bool:
        return value in (True, "true", "True", "1", 1)
    try:
        return type_(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def write(key: str, value: Any) -> None:
    QgsSettings().setValue(PREFIX + key, value)


def environment_path() -> str:
    """The geo-dfm the user chose, else $GEO_DFM_EXECUTABLE, else the first one auto-detected."""
    chosen = read(ENVIRONMENT_KEY, "")
    if chosen:
        return chosen
    if os.environ.get(ENV_OVERRIDE):
        return os.environ[ENV_OVERRIDE]
    found = candidate_paths()
    return found[0] if found else ""


def geo_dfm_command() -> list[str]:
    """The command line that runs geo-dfm; raises :class:`WorkerError` with install help if none."""
    path = environment_path()
    if not path:
        raise WorkerError(
            "geo-dfm was not found. Choose its environment in the geo-dfm settings.\n\n" + INSTALL_HELP
        )
    return command_for(path)


def output_folder() -> str:
    """Where the panel's runs write their output folders."""
    return read(OUTPUT_FOLDER_KEY, "") or os.path.join(os.path.expanduser("~"), "geo-dfm-output")


def default_model() -> str:
    """The model chosen as default in the model manager ('' = geo-dfm's own default)."""
    return read(DEFAULT_MODEL_KEY, "")


def capabilities() -> Capabilities:
    """What the last geo-dfm worker reported (the protocol-1 lists before any worker ran)."""
    text = read(CAPABILITIES_KEY, "")
    return Capabilities.from_json(text) if text else Capabilities.fallback()


def store_capabilities(caps: Capabilities) -> None:
    """Remember a worker's capabilities for the next session (the Processing provider reads them)."""
    write(CAPABILITIES_KEY, caps.to_json())


def adapters() -> list[dict[str, str]]:
    """The adapters fine-tuned from the panel whose folders still exist: ``{"name", "model", "adapter"}``."""
    try:
        entries = json.loads(read(ADAPTERS_KEY, "") or "[]")
    except ValueError:
        return []
    return [
        {key: str(entry.get(key) or "") for key in ("name", "model", "adapter")}
        for entry in entries
        if isinstance(entry, dict) and entry.get("name") and os.path.isdir(str(entry.get("adapter") or ""))
    ]


def add_adapter(name: str, model: str, adapter: str) -> None:
    """Remember a fine-tuned adapter for the model choice (a same-named entry is replaced)."""
    entries = [entry for entry in adapters() if entry["name"] != name]
    entries.append({"name": name, "model": model, "adapter": adapter})
    write(ADAPTERS_KEY, json.dumps(entries))


@dataclass(frozen=True)
class EnvironmentReport:
    """The result of checking a geo-dfm environment."""

    ok: bool
    message: str
    info: dict[str, Any] | None = None


def check_environment(path: str, timeout: float = 120.0) -> EnvironmentReport:
    """Start ``geo-dfm worker`` from ``path``, read its ``ready`` event, stop it and say what was found."""
    if not path:
        return EnvironmentReport(False, "No geo-dfm environment chosen.\n\n" + INSTALL_HELP)
    client = WorkerClient(command_for(path), ready_timeout=timeout)
    try:
        info = client.start()
    except WorkerError as exc:
        return EnvironmentReport(False, f"geo-dfm could not be started from {path}:\n{exc}\n\n{INSTALL_HELP}")
    finally:
        client.shutdown()
    store_capabilities(client.capabilities)
    cuda = "yes" if info.get("cuda") else "no"
    message = f"geo-dfm {info.get('version')} found, torch CUDA available: {cuda}"
    if info.get("torch"):
        message += f"\ntorch {info['torch']}, Python {info.get('python', '?')}"
    else:
        message += f"\ntorch is missing: {info.get('torch_error', '')}\n\n{INSTALL_HELP}"
    return EnvironmentReport(bool(info.get("torch")), message, info)
