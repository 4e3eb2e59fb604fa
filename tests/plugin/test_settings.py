"""The settings dialog: finding geo-dfm, the environment check, diagnostics, and the one-click set-up."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis


def fake_environment(root: Path) -> Path:
    """``root/bin/geo-dfm`` (an empty executable: enough for finding it)."""
    executable = root / "bin" / "geo-dfm"
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    return executable


def test_command_for_accepts_an_executable_a_python_or_an_environment_folder(tmp_path):
    from geo_dfm_qgis.environment import command_for

    executable = fake_environment(tmp_path / "env")
    assert command_for(str(executable)) == [str(executable)]
    assert command_for(str(tmp_path / "env")) == [str(executable)]
    assert command_for(sys.executable) == [sys.executable, "-m", "geo_dfm"]


def test_auto_detection_finds_geo_dfm_on_path(monkeypatch, tmp_path):
    from geo_dfm_qgis.environment import candidate_paths

    executable = fake_environment(tmp_path / "env")
    monkeypatch.setenv("PATH", str(executable.parent))
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    assert candidate_paths()[0] == str(executable)


@pytest.mark.slow
def test_check_button_reports_version_and_cuda_and_diagnostics_reach_the_clipboard(
    qgis_app, plugin_settings, geo_dfm_under_test
):
    import torch
    from qgis.core import Qgis
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest
    from qgis.PyQt.QtWidgets import QApplication

    from geo_dfm import __version__
    from geo_dfm_qgis.settings_dialog import SettingsDialog

    dialog = SettingsDialog()
    dialog.show()
    assert dialog.environment.currentText() == str(geo_dfm_under_test.launcher)  # from the settings
    QTest.mouseClick(dialog.check_button, Qt.MouseButton.LeftButton)
    cuda = "yes" if torch.cuda.is_available() else "no"
    first_line = dialog.report.toPlainText().splitlines()[0]
    assert first_line == f"geo-dfm {__version__} found, torch CUDA available: {cuda}"

    QApplication.clipboard().clear()
    QTest.mouseClick(dialog.diagnostics_button, Qt.MouseButton.LeftButton)
    report = dict(line.split(": ", 1) for line in QApplication.clipboard().text().splitlines()[1:])
    assert report["QGIS"].startswith(Qgis.QGIS_VERSION)
    assert report["geo-dfm"].startswith(f"{__version__} (worker protocol ")
    assert report["torch"] == torch.__version__
    assert report["CUDA available to torch"] == cuda
    assert report["geo-dfm environment"] == str(geo_dfm_under_test.launcher)
    assert report["GPU"] and report["Output folder"] == plugin_settings.value("geo_dfm_qgis/output_folder")
    assert "toy" in report["Models downloaded"]
    assert {"QGIS Python", "Platform", "Plugin", "geo-dfm Python", "Hugging Face cache"} <= set(report)

    dialog.environment.setEditText("/nonexistent/bin/geo-dfm")
    dialog.accept()
    assert plugin_settings.value("geo_dfm_qgis/environment") == "/nonexistent/bin/geo-dfm"


def test_a_missing_environment_is_reported_with_set_up_help(qgis_app, plugin_settings):
    from geo_dfm_qgis.settings import check_environment

    report = check_environment("/nonexistent/bin/geo-dfm")
    assert not report.ok
    assert "/nonexistent/bin/geo-dfm" in report.message
    assert '"Set up geo-dfm"' in report.message and "not on PyPI" in report.message
    assert "pip install geo-dfm" not in report.message  # it is not on the index yet


# --- the set-up plan -------------------------------------------------------------------------------
def fake_nvidia_smi(folder: Path, output: str) -> str:
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '{output}'\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("driver", "flavour"), [("570.124.06", "cu128"), ("535.183.01", "cu121"), ("470.256.02", "cu118")]
)
def test_the_torch_build_follows_the_nvidia_driver(tmp_path, driver, flavour):
    from geo_dfm_qgis.setup_env import SetupRequest, detect_gpu, plan_setup

    gpu = detect_gpu(fake_nvidia_smi(tmp_path, f"NVIDIA H200, {driver}\\n"))
    assert gpu is not None and gpu.name == "NVIDIA H200" and gpu.driver == driver
    plan = plan_setup(SetupRequest(str(tmp_path / "env"), base_python=sys.executable), gpu=gpu, uv="")
    (torch_step,) = [s for s in plan.steps if s.kind == "torch"]
    assert torch_step.argv[-2:] == ("--index-url", f"https://download.pytorch.org/whl/{flavour}")


def test_without_a_driver_the_cpu_build_is_installed_and_a_cuda_request_is_refused(tmp_path):
    from geo_dfm_qgis.setup_env import SetupError, SetupRequest, detect_gpu, plan_setup

    assert detect_gpu(fake_nvidia_smi(tmp_path, "")) is None  # nvidia-smi without a GPU or driver
    assert detect_gpu(str(tmp_path / "no-such-nvidia-smi")) is None
    plan = plan_setup(SetupRequest(str(tmp_path / "env"), base_python=sys.executable), gpu=None, uv="")
    assert plan.torch_index == "https://download.pytorch.org/whl/cpu"
    with pytest.raises(SetupError, match="CUDA"):
        plan_setup(
            SetupRequest(str(tmp_path / "env"), base_python=sys.executable, torch="cuda"), gpu=None, uv=""
        )


def test_uv_is_used_when_available_else_venv_and_pip(tmp_path):
    from geo_dfm_qgis.setup_env import SetupRequest, plan_setup

    request = SetupRequest(str(tmp_path / "env"), source="/src/geo-dfm", base_python="/usr/bin/python3.11")
    python = str(tmp_path / "env" / "bin" / "python")
    with_uv = plan_setup(request, gpu=None, uv="/opt/uv")
    assert [s.argv[:3] for s in with_uv.steps if s.argv] == [
        ("/opt/uv", "venv", str(tmp_path / "env")),
        ("/opt/uv", "pip", "install"),
        ("/opt/uv", "pip", "install"),
    ]
    assert with_uv.steps[-2].argv == ("/opt/uv", "pip", "install", "--python", python, "/src/geo-dfm")
    plain = plan_setup(request, gpu=None, uv="")
    assert plain.steps[0].argv == ("/usr/bin/python3.11", "-m", "venv", str(tmp_path / "env"))
    assert plain.steps[-2].argv == (
        python,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "/src/geo-dfm",
    )
    assert [s.kind for s in plain.steps] == ["create", "torch", "geo-dfm", "check"]
    from_index = plan_setup(SetupRequest(str(tmp_path / "env"), base_python=sys.executable), gpu=None, uv="")
    assert from_index.steps[-2].argv[-1] == "geo-dfm"


def test_set_up_refuses_a_folder_that_is_not_empty_and_leaves_it_alone(tmp_path):
    from geo_dfm_qgis.setup_env import SetupRequest, SetupRunner, plan_setup

    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    result = SetupRunner(
        plan_setup(SetupRequest(str(target), base_python=sys.executable), gpu=None, uv="")
    ).run()
    assert not result.ok and "not empty" in result.message
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_cancelling_the_set_up_removes_the_environment_it_created(tmp_path):
    from geo_dfm_qgis.setup_env import SetupRequest, SetupRunner, plan_setup

    target = tmp_path / "env"
    plan = plan_setup(SetupRequest(str(target), base_python=sys.executable), gpu=None, uv="")
    runner = SetupRunner(plan, on_line=lambda line: runner.cancel() if line.startswith("$") else None)
    result = runner.run()
    assert result.cancelled and not result.ok
    assert not target.exists()


def checkout_copy(repo_root: Path, target: Path) -> Path:
    """The parts of this checkout a geo-dfm install needs (a copy: the build leaves the tree alone)."""
    target.mkdir()
    for name in ("geo_dfm", "tile_tools"):
        shutil.copytree(repo_root / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root / name, target / name)
    return target


@pytest.mark.slow
def test_set_up_builds_an_environment_from_this_checkout_and_checks_it(
    qgis_app, plugin_settings, wait_until, geo_dfm_under_test, tmp_path
):
    """The whole flow from the dialog, offline: a venv reusing this venv's packages (no torch
    download), geo-dfm built from a copy of the checkout, the environment check, the setting."""
    from qgis.PyQt.QtCore import Qt
    from qgis.PyQt.QtTest import QTest

    from geo_dfm import __version__
    from geo_dfm_qgis.settings_dialog import SettingsDialog

    site_packages = sysconfig.get_paths()["purelib"]
    installed = next(Path(site_packages).glob("geo_dfm-*.dist-info"), None)
    installed_mtime = installed.stat().st_mtime_ns if installed else None
    source = checkout_copy(geo_dfm_under_test.repo_root, tmp_path / "geo-dfm-src")
    target = tmp_path / "geo-dfm-env"
    dialog = SettingsDialog()
    dialog.show()
    dialog.setup_target.setFilePath(str(target))
    dialog.setup_source.setFilePath(str(source))
    dialog.setup_python.setText(sys.executable)
    dialog.setup_reuse.setText(site_packages)
    dialog.setup_offline.setChecked(True)
    steps = []
    QTest.mouseClick(dialog.setup_button, Qt.MouseButton.LeftButton)
    assert dialog.setup_task is not None and not dialog.setup_button.isEnabled()
    dialog.setup_task.stepStarted.connect(lambda index, count, title: steps.append(title))
    wait_until(lambda: dialog.setup_task is None, timeout=300)
    log = dialog.setup_log.toPlainText()
    assert "geo-dfm is set up in" in log, log[-3000:]
    assert "torch is already available" in log  # reused, not downloaded
    assert steps[-1] == "Check the environment" and dialog.setup_progress.value() == 100
    assert dialog.report.toPlainText().startswith(f"geo-dfm {__version__} found")
    assert plugin_settings.value("geo_dfm_qgis/environment") == str(target)
    assert dialog.environment.currentText() == str(target)
    python = target / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import geo_dfm; print(geo_dfm.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        cwd=tmp_path,
    ).stdout.strip()
    assert Path(where).is_relative_to(target)  # installed into the new environment, not linked
    if installed is not None:  # the environment it reused is untouched
        assert installed.stat().st_mtime_ns == installed_mtime
