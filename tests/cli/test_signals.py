"""Signals and killed runs: SIGTERM ends a job like Ctrl-C, and a run killed at any moment leaves the
output either absent or complete, nothing half-written, and the next run succeeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

GEO_DFM = Path(sys.executable).parent / "geo-dfm"


@pytest.fixture(scope="module")
def scene(tmp_path_factory, toy_model_path):
    from geo_dfm.synthetic import make_scene

    return make_scene(
        tmp_path_factory.mktemp("signals") / "scene.tif", width=384, height=384, gsd=2.0, seed=31
    )


def start(args: list[str], tmp: Path) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmp))
    return subprocess.Popen(
        [str(GEO_DFM), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def localize_args(scene, out: Path) -> list[str]:
    return [
        "localize",
        str(scene.path),
        "water",
        "forest",
        "-o",
        str(out),
        "--model",
        "toy",
        "--progress",
        "jsonl",
    ]


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_sigterm_ends_a_run_like_ctrl_c(scene, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "maps"
    proc = start(localize_args(scene, out), temp)
    events = []
    for line in proc.stdout:  # wait until the job really works, then terminate it
        events.append(json.loads(line))
        if events[-1].get("event") == "stage" and events[-1].get("stage") == "encode images":
            proc.send_signal(signal.SIGTERM)
            break
    rest, stderr = proc.communicate(timeout=60)
    events += [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert proc.returncode == 130, stderr
    assert events[-1] == {"event": "error", "code": 130, "message": "cancelled"}
    assert leftovers(tmp_path, {"tmp"}) == []  # no output, no hidden twin beside it
    assert list(temp.iterdir()) == []  # nothing left in the temp dir


@pytest.mark.slow
def test_runs_killed_at_random_moments_leave_nothing_half_written(scene, tmp_path):
    """Seeded fault injection: SIGTERM or SIGKILL after a random delay, then a clean run on the same target."""
    rng = random.Random(7)
    temp = tmp_path / "tmp"
    temp.mkdir()
    out = tmp_path / "maps"
    started = time.monotonic()
    complete = start(localize_args(scene, tmp_path / "reference"), temp)
    complete.communicate(timeout=120)
    assert complete.returncode == 0
    duration = time.monotonic() - started
    expected = sorted(p.name for p in (tmp_path / "reference").iterdir())
    for attempt in range(4):
        kind = (signal.SIGTERM, signal.SIGKILL)[attempt % 2]
        proc = start([*localize_args(scene, out), "--overwrite"], temp)
        time.sleep(rng.uniform(0.2, 0.9) * duration)
        if proc.poll() is None:
            os.killpg(proc.pid, kind)
        proc.communicate(timeout=60)
        names = leftovers(tmp_path, {"tmp", "reference"})
        # a killed run never leaves a half-written output: the folder is absent or complete
        if "maps" in names:
            assert sorted(p.name for p in out.iterdir()) == expected
        if kind == signal.SIGTERM:
            assert names in ([], ["maps"])
            assert list(temp.iterdir()) == []
    # the next run on the same target succeeds and sweeps what a SIGKILL left
    final = start([*localize_args(scene, out), "--overwrite"], temp)
    _, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    assert leftovers(tmp_path, {"tmp", "reference"}) == ["maps"]
    assert sorted(p.name for p in out.iterdir()) == expected
