"""The plugin's worker client against the real ``geo-dfm worker`` of this checkout (no QGIS needed)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.environment import command_for, worker_environment
from geo_dfm_qgis.jobs import ChipChoice, JobSpec
from geo_dfm_qgis.worker_client import JobHandle, WorkerClient, request_for, run_once

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def geo_dfm(geo_dfm_under_test) -> str:
    return str(geo_dfm_under_test.launcher)


@pytest.fixture(scope="module")
def client(geo_dfm):
    """One worker for this module's tests (starting one imports torch: seconds)."""
    worker = WorkerClient(command_for(geo_dfm))
    yield worker
    worker.shutdown()


def chips_spec(scene: Path, output: Path, size: str = "32") -> JobSpec:
    return JobSpec("chips", (str(scene),), str(output), chips=ChipChoice(chip_size=size, overlap="0"))


def test_the_geo_dfm_the_plugin_starts_is_this_checkout(monkeypatch, geo_dfm_under_test):
    """The plugin strips PYTHONPATH; the tests' launcher still runs this checkout's geo_dfm/tile_tools."""
    under_test = geo_dfm_under_test
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    env = worker_environment()
    assert "PYTHONPATH" not in env
    code = (
        under_test.preamble
        + "import geo_dfm, tile_tools; print(geo_dfm.__file__); print(tile_tools.__file__)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    root = str(under_test.repo_root)
    assert [os.path.commonpath([p, root]) for p in out.stdout.split()] == [root, root]
    assert under_test.launcher.read_text().startswith(f"#!{sys.executable}\n{under_test.preamble}")


def test_the_ready_event_describes_jobs_presets_and_models(client):
    import torch

    ready = client.start()
    assert ready["cuda"] is torch.cuda.is_available() and ready["torch"] == torch.__version__
    caps = client.capabilities
    assert caps.protocol == ready["protocol"] >= 2
    assert set(caps.modes) == {"localize", "classify", "search", "annotate", "finetune"}
    assert "selo" in caps.choices("localize", "method")
    assert caps.help("localize", "chips.chip_size")
    assert "water" in caps.preset_labels("landcover")
    toy = caps.model("toy")
    assert toy is not None and toy.downloaded is True and toy.input_size == 64
    assert Capabilities.from_json(caps.to_json()) == caps  # what the settings remember


def test_client_sends_job_params_and_runs_jobs_in_one_worker(client, small_scene, tmp_path):
    client.start()
    pid = client.pid
    seen: list[dict] = []
    first_call = chips_spec(small_scene, tmp_path / "a").calls()[0]
    assert request_for("j", first_call, client.capabilities)["job"] == "chips"  # protocol 2 form
    first = client.run(first_call, on_event=seen.append)
    second = client.run(chips_spec(small_scene, tmp_path / "b", "48").calls()[0], on_event=seen.append)
    assert first.ok and second.ok, (first.message, second.message)
    assert first.summary["chips"] == 6 and second.summary["chips"] == 4  # 96×64 in 32 px / 48 px chips
    assert Path(first.summary["outputs"]["index"]).is_file()
    assert client.pid == pid  # same process for both jobs
    jobs = [e["job"] for e in seen]
    assert len(set(jobs)) == 2 and jobs == sorted(jobs)
    assert [e["event"] for e in seen if e["event"] in ("result", "error")] == ["result", "result"]


def test_a_protocol_1_worker_gets_the_same_job_as_argv(client, small_scene, tmp_path):
    client.start()
    call = chips_spec(small_scene, tmp_path / "argv").calls()[0]
    old = Capabilities.fallback()
    request = request_for("j", call, old)
    assert "job" not in request and request["argv"][-8:] == [
        "chips",
        str(small_scene),
        "-o",
        str(tmp_path / "argv"),
        "--chip-size",
        "32",
        "--overlap",
        "0",
    ]
    saved, client.capabilities = client.capabilities, old
    try:
        outcome = client.run(call)
    finally:
        client.capabilities = saved
    assert outcome.ok and outcome.summary["chips"] == 6


def test_models_are_listed_with_their_download_state(client):
    client.start()
    models = client.refresh_models()
    by_name = {m.name: m for m in models}
    assert by_name["toy"].downloaded is True
    assert any(m.downloaded is False for m in models)  # no weights are downloaded on the test machines
    client.capabilities, saved = replace(client.capabilities, protocol=1), client.capabilities
    try:  # protocol 1: `models list --json` says the same
        assert {m.name: m.downloaded for m in client.refresh_models()} == {
            m.name: m.downloaded for m in models
        }
    finally:
        client.capabilities = saved


def test_cancel_ends_the_job_with_130_and_removes_its_output(client, small_scene, tmp_path):
    client.start()
    events: list[dict] = []
    outcome = client.run(
        chips_spec(small_scene, tmp_path / "cancelled", "4").calls()[0],
        on_event=events.append,
        is_cancelled=lambda: any(e["event"] == "progress" for e in events),
    )
    assert outcome.cancelled and not outcome.ok
    assert events[-1]["event"] == "error" and events[-1]["code"] == 130
    assert not (tmp_path / "cancelled").exists()
    client.cancel(JobHandle("job-never-sent", {}))  # the worker answers an unknown id with an error event …
    after = client.run(chips_spec(small_scene, tmp_path / "after").calls()[0])
    assert after.ok, after.message  # … which reaches no job: the worker and the client carry on
    assert "job-never-sent" in client.stderr_text()


def test_cancel_without_grace_kills_the_worker_which_restarts_for_the_next_job(client, small_scene, tmp_path):
    client.start()
    pid = client.pid
    events: list[dict] = []
    outcome = client.run(
        chips_spec(small_scene, tmp_path / "killed", "4").calls()[0],
        on_event=events.append,
        is_cancelled=lambda: bool(events),
        cancel_grace=0.0,  # kill at once instead of waiting for the job's next step
    )
    assert outcome.cancelled
    assert not client.running
    restarted = client.run(chips_spec(small_scene, tmp_path / "restarted").calls()[0])
    assert restarted.ok, restarted.message
    assert client.pid != pid


def test_run_once_reports_progress_and_the_summary(geo_dfm, small_scene, tmp_path):
    events: list[dict] = []
    call = chips_spec(small_scene, tmp_path / "once").calls()[0]
    outcome = run_once(command_for(geo_dfm), [*call.argv, "--progress", "jsonl"], events.append)
    assert outcome.ok and outcome.summary["chips"] == 6
    assert events[0]["event"] == "start" and events[-1]["event"] == "result"
    assert [e["fraction"] for e in events if e["event"] == "progress"][-1] == 1.0
