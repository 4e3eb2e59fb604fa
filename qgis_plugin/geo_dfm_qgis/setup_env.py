"""One-click set-up of a geo-dfm environment outside QGIS: a virtual environment (uv when it is on
PATH, else ``python -m venv`` + pip), torch for this machine (a CUDA build when ``nvidia-smi``
reports a driver, else the CPU build), then geo-dfm from a wheel, a checkout or the package index.

:func:`plan_setup` turns a :class:`SetupRequest` into the commands; :class:`SetupRunner` runs them
one by one, streaming their output, cancellable, and removes the environment again if it created
it and the set-up did not finish. It refuses a target folder that exists and is not empty, so it
never touches what it did not create. Pure Python; no Qt.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from geo_dfm_qgis.environment import BIN_DIR, IS_WINDOWS, worker_environment

PACKAGE_NAME = "geo-dfm"
TORCH_PACKAGES = ("torch", "torchvision")
PYTORCH_INDEX = "https://download.pytorch.org/whl"
#: (minimum NVIDIA driver, PyTorch wheel flavour), newest first: CUDA 12.x wheels need these drivers.
CUDA_WHEELS = ((570.0, "cu128"), (560.0, "cu126"), (525.0, "cu121"), (450.0, "cu118"))


class SetupError(RuntimeError):
    """The set-up cannot start (bad target, no Python) or one of its commands failed."""


@dataclass(frozen=True)
class GpuInfo:
    """What ``nvidia-smi`` says about the first GPU."""

    name: str
    driver: str

    @property
    def driver_major(self) -> float:
        try:
            return float(self.driver.split(".")[0])
        except ValueError:
            return 0.0


def detect_gpu(nvidia_smi: str | None = None, timeout: float = 20.0) -> GpuInfo | None:
    """The first NVIDIA GPU and its driver, or ``None`` (no ``nvidia-smi``, no driver, no GPU)."""
    executable = nvidia_smi or shutil.which("nvidia-smi")
    if not executable:
        return None
    try:
        out = subprocess.run(
            [executable, "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        name, _, driver = line.rpartition(",")
        if name.strip() and driver.strip():
            return GpuInfo(name.strip(), driver.strip())
    return None


def torch_index_url(gpu: GpuInfo | None) -> str:
    """The PyTorch wheel index for this machine: the newest CUDA build its driver runs, else CPU."""
    if gpu is not None:
        for minimum, flavour in CUDA_WHEELS:
            if gpu.driver_major >= minimum:
                return f"{PYTORCH_INDEX}/{flavour}"
    return f"{PYTORCH_INDEX}/cpu"


def default_base_python() -> str:
    """A Python 3.10+ to build the environment from: the newest ``python3.X`` on PATH, else ``python3``.

    Never QGIS's own interpreter on Windows/macOS (``sys.executable`` is QGIS there)."""
    for minor in range(14, 9, -1):
        found = shutil.which(f"python3.{minor}")
        if found:
            return found
    found = shutil.which("python3") or shutil.which("python")
    if found:
        return found
    return sys.executable if Path(sys.executable).name.lower().startswith("python") else ""


@dataclass(frozen=True)
class SetupRequest:
    """What to set up.

    ``source``: a wheel file, a geo-dfm checkout folder, or '' for the package index.
    ``torch``: ``auto`` (CUDA build when a driver is found, else CPU), ``cuda``, ``cpu``, or
    ``skip``; torch is not installed again when the environment can already import it.
    ``offline``: install only from what is on disk (no index, no build isolation, no dependency
    resolution): for machines without internet, with ``reuse_site_packages`` naming the
    site-packages of an environment that already has torch, pip, setuptools and geo-dfm's
    dependencies (the new environment sees them through a ``.pth`` file and installs only geo-dfm).
    """

    target: str
    source: str = ""
    base_python: str = ""
    torch: str = "auto"
    use_uv: bool | None = None  # None: uv when it is on PATH
    offline: bool = False
    reuse_site_packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetupStep:
    """One command of the set-up (``kind`` says what it does; ``argv`` empty for internal steps)."""

    kind: str
    title: str
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class SetupPlan:
    request: SetupRequest
    python: str  # the environment's interpreter
    steps: tuple[SetupStep, ...]
    uv: str = ""
    gpu: GpuInfo | None = None
    torch_index: str = ""


def environment_python(target: str) -> str:
    return str(Path(target) / BIN_DIR / ("python.exe" if IS_WINDOWS else "python"))


def plan_setup(request: SetupRequest, gpu: GpuInfo | None = None, uv: str | None = None) -> SetupPlan:
    """The commands that set up ``request.target`` (``uv``: its path, '' to force venv + pip)."""
    uv = (shutil.which("uv") or "") if uv is None else uv
    if request.use_uv is False:
        uv = ""
    elif request.use_uv and not uv:
        raise SetupError("uv was asked for but is not on PATH")
    base = request.base_python or default_base_python()
    if not base and not uv:
        raise SetupError("no Python 3.10+ found to create the environment; choose one")
    python = environment_python(request.target)
    steps = []
    if uv:
        steps.append(
            SetupStep(
                "create",
                "Create the environment (uv)",
                (uv, "venv", request.target, *(("--python", base) if base else ())),
            )
        )
        install: tuple[str, ...] = (uv, "pip", "install", "--python", python)
        offline_flags: tuple[str, ...] = ("--offline", "--no-build-isolation", "--no-deps")
    else:
        # Offline with reused packages: pip and setuptools come from there too (a fresh venv's own
        # bundled setuptools would shadow them and cannot build wheels).
        without_pip = ("--without-pip",) if request.offline and request.reuse_site_packages else ()
        steps.append(
            SetupStep(
                "create", "Create the environment (venv)", (base, "-m", "venv", *without_pip, request.target)
            )
        )
        install = (python, "-m", "pip", "install", "--disable-pip-version-check")
        offline_flags = ("--no-index", "--no-build-isolation", "--no-deps")
    if request.reuse_site_packages:
        steps.append(SetupStep("reuse", "Reuse packages from " + ", ".join(request.reuse_site_packages)))
    index = ""
    if request.torch != "skip" and request.offline:
        steps.append(
            SetupStep(
                "torch", "Install torch (from local files)", (*install, *offline_flags, *TORCH_PACKAGES)
            )
        )
    elif request.torch != "skip":
        index = torch_index_url(gpu if request.torch in ("auto", "cuda") else None)
        if request.torch == "cuda" and index.endswith("/cpu"):
            raise SetupError("a CUDA build of torch was asked for, but nvidia-smi reports no usable driver")
        title = f"Install torch ({index.rsplit('/', 1)[-1]})"
        steps.append(SetupStep("torch", title, (*install, *TORCH_PACKAGES, "--index-url", index)))
    source = request.source or PACKAGE_NAME
    flags = offline_flags if request.offline else ()
    steps.append(SetupStep("geo-dfm", f"Install geo-dfm from {source}", (*install, *flags, source)))
    steps.append(SetupStep("check", "Check the environment"))
    return SetupPlan(request, python, tuple(steps), uv, gpu, index)


@dataclass
class SetupResult:
    """How the set-up ended; ``check`` is the environment check's report (when it ran)."""

    ok: bool
    cancelled: bool = False
    message: str = ""
    check: str = ""
    log: list[str] = field(default_factory=list)


class SetupRunner:
    """Runs a :class:`SetupPlan`; ``cancel()`` from another thread stops the running command."""

    def __init__(
        self,
        plan: SetupPlan,
        on_line: Callable[[str], None] = lambda line: None,
        on_step: Callable[[int, SetupStep], None] = lambda index, step: None,
        check: Callable[[str], tuple[bool, str]] | None = None,
    ) -> None:
        self.plan = plan
        self.on_line = on_line
        self.on_step = on_step
        self.check = check
        self._cancel = threading.Event()
        self._process: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.log: list[str] = []
        self.check_message = ""

    def cancel(self) -> None:
        self._cancel.set()
        with self._lock:
            process = self._process
        if process is not None and process.poll() is None:
            _interrupt(process)

    def run(self) -> SetupResult:
        target = Path(self.plan.request.target)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            return SetupResult(False, message=f"{target} exists and is not empty; choose a new folder")
        created = not target.exists()
        try:
            for index, step in enumerate(self.plan.steps):
                if self._cancel.is_set():
                    break
                self.on_step(index, step)
                self._say(f"== {step.title}")
                self._run_step(step)
        except SetupError as exc:
            self._cleanup(target, created)
            return SetupResult(False, message=str(exc), check=self.check_message, log=self.log)
        if self._cancel.is_set():
            self._cleanup(target, created)
            return SetupResult(False, cancelled=True, message="set-up cancelled", log=self.log)
        return SetupResult(
            True, message=f"geo-dfm is set up in {target}", check=self.check_message, log=self.log
        )

    # --- steps ------------------------------------------------------------------------------------
    def _run_step(self, step: SetupStep) -> None:
        if step.kind == "reuse":
            self._write_reuse_pth()
        elif step.kind == "torch" and self._imports("torch"):
            self._say("torch is already available in this environment; not installing it again")
        elif step.kind == "check":
            if self.check is not None:
                ok, message = self.check(self.plan.request.target)
                self.check_message = message
                self._say(message)
                if not ok:
                    raise SetupError(message)
        else:
            self._command(step.argv)

    def _command(self, argv: Sequence[str]) -> None:
        self._say("$ " + " ".join(argv))
        env = worker_environment()
        env.pop("VIRTUAL_ENV", None)  # uv/pip must target the new environment, not the caller's
        try:
            process = subprocess.Popen(
                list(argv),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
                start_new_session=not IS_WINDOWS,
            )
        except OSError as exc:
            raise SetupError(f"cannot run {argv[0]}: {exc}") from exc
        with self._lock:
            self._process = process
        if self._cancel.is_set():  # cancelled while the command was starting
            _interrupt(process)
        assert process.stdout is not None
        for line in process.stdout:
            self._say(line.rstrip())
        code = process.wait()
        with self._lock:
            self._process = None
        if self._cancel.is_set():
            return
        if code != 0:
            raise SetupError(f"{Path(argv[0]).name} {' '.join(argv[1:3])} … failed (exit code {code})")

    def _imports(self, module: str) -> bool:
        try:
            return (
                subprocess.run(
                    [self.plan.python, "-c", f"import {module}"],
                    capture_output=True,
                    env=worker_environment(),
                    timeout=300,
                ).returncode
                == 0
            )
        except (OSError, subprocess.SubprocessError):
            return False

    def _write_reuse_pth(self) -> None:
        out = subprocess.run(
            [self.plan.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            env=worker_environment(),
            timeout=60,
        )
        if out.returncode != 0:
            raise SetupError(f"cannot find the new environment's site-packages: {out.stderr.strip()}")
        pth = Path(out.stdout.strip()) / "geo_dfm_reused_packages.pth"
        pth.write_text(
            "".join(f"{path}\n" for path in self.plan.request.reuse_site_packages), encoding="utf-8"
        )
        self._say(f"wrote {pth}")

    def _say(self, line: str) -> None:
        self.log.append(line)
        self.on_line(line)

    def _cleanup(self, target: Path, created: bool) -> None:
        """Remove the environment this run created (never a folder that existed before)."""
        if created and target.exists():
            shutil.rmtree(target, ignore_errors=True)
            self._say(f"removed the unfinished environment {target}")


def _interrupt(process: subprocess.Popen) -> None:
    """Stop a command and its children (pip builds, uv downloads)."""
    try:
        if IS_WINDOWS:
            process.terminate()
        else:
            os.killpg(process.pid, signal.SIGTERM)
    except (OSError, ProcessLookupError):
        pass
