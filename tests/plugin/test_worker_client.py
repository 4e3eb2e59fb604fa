"""The plugin's worker client against the real ``geo-dfm worker`` (no QGIS needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from geo_dfm_qgis.environment import command_for
from geo_dfm_qgis.worker_client import WorkerClient, run_once

GEO_DFM = Path(sys.executable).parent / "geo-dfm"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not GEO_DFM.exists(), reason="geo-dfm is not installed next to this Python"),
]


@pytest.fixture(scope="module")
def client():
    """One worker for this module's tests (starting one imports torch: seconds)."""
    worker = WorkerClient(command_for(str(GEO_DFM)))
    yield worker
    worker.shutdown()


def chips_argv(scene: Path, output: Path, size: str = "32") -> list[str]:
    return ["chips", str(scene), "-o", str(output), "--chip-size", size, "--overlap", "0"]


def test_client_runs_jobs_in_one_worker_with_events_for_each_job(client, small_scene, tmp_path):
    import torch

    ready = client.start()
    assert ready["cuda"] is torch.cuda.is_available() and ready["torch"] == torch.__version__
    assert "toy" in ready["models"]
    pid = client.pid
    seen: list[dict] = []
    first = client.run(chips_argv(small_scene, tmp_path / "a"), on_event=seen.append)
    second = client.run(chips_argv(small_scene, tmp_path / "b", "48"), on_event=seen.append)
    assert first.ok and second.ok
    assert first.summary["chips"] == 6 and second.summary["chips"] == 4  # 96×64 in 32 px / 48 px chips
    assert Path(first.summary["outputs"]["index"]).is_file()
    assert client.pid == pid  # same process for both jobs
    jobs = [e["job"] for e in seen]
    assert len(set(jobs)) == 2 and jobs == sorted(jobs)
    assert [e["event"] for e in seen if e["event"] in ("result", "error")] == ["result", "result"]


def test_cancel_ends_the_job_with_130_and_removes_its_output(client, small_scene, tmp_path):
    client.start()
    events: list[dict] = []
    outcome = client.run(
        chips_argv(small_scene, tmp_path / "cancelled", "4"),
        on_event=events.append,
        is_cancelled=lambda: any(e["event"] == "progress" for e in events),
    )
    assert outcome.cancelled and not outcome.ok
    assert events[-1]["event"] == "error" and events[-1]["code"] == 130
    assert not (tmp_path / "cancelled").exists()
    after = client.run(chips_argv(small_scene, tmp_path / "after"))
    assert after.ok, after.message  # the worker carries on


def test_cancel_without_grace_kills_the_worker_which_restarts_for_the_next_job(client, small_scene, tmp_path):
    client.start()
    pid = client.pid
    events: list[dict] = []
    outcome = client.run(
        chips_argv(small_scene, tmp_path / "killed", "4"),
        on_event=events.append,
        is_cancelled=lambda: bool(events),
        cancel_grace=0.0,  # kill at once instead of waiting for the job's next step
    )
    assert outcome.cancelled
    assert not client.running
    restarted = client.run(chips_argv(small_scene, tmp_path / "restarted"))
    assert restarted.ok, restarted.message
    assert client.pid != pid


def test_run_once_reports_progress_and_the_summary(small_scene, tmp_path):
    events: list[dict] = []
    outcome = run_once(
        command_for(str(GEO_DFM)),
        [*chips_argv(small_scene, tmp_path / "once"), "--progress", "jsonl"],
        events.append,
    )
    assert outcome.ok and outcome.summary["chips"] == 6
    assert events[0]["event"] == "start" and events[-1]["event"] == "result"
    assert [e["fraction"] for e in events if e["event"] == "progress"][-1] == 1.0
