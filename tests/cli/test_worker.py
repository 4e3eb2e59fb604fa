"""`geo-dfm worker`: the JSON-lines job server the QGIS plugin talks to.

In-process tests drive :class:`geo_dfm.cli.worker.Worker` with a click group defined here (a job
that counts and can be held at a step, so cancel can be tested deterministically); subprocess
tests run the real ``geo-dfm worker`` executable.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import pytest

from geo_dfm.cli.runner import run_job
from geo_dfm.cli.worker import Worker
from geo_dfm.errors import InputError

GEO_DFM = Path(sys.executable).parent / "geo-dfm"
STEP_REACHED = threading.Event()


@click.group()
def fake_cli() -> None:
    """A stand-in for the geo-dfm group with jobs whose timing the tests control."""


@fake_cli.command()
@click.argument("steps", type=int)
@click.option("--hold-at", type=int, default=None)
@click.option("--json", "print_json", is_flag=True)
def count(steps: int, hold_at: int | None, print_json: bool) -> None:
    def job(progress):
        progress.stage("counting", total=steps)
        for i in range(steps):
            if i == hold_at:  # wait here until the worker sets this job's cancel event
                STEP_REACHED.set()
                assert progress.cancel_event.wait(10)
            print("stray print from a library")  # must never reach the protocol stream
            progress.advance()
        return {"command": "count", "counted": steps}

    run_job("count", job, "jsonl", print_json)


@fake_cli.command()
@click.argument("path")
def bad(path: str) -> None:
    def job(progress):
        raise InputError(path, "is not a raster")

    run_job("bad", job)


class EventStream(io.TextIOBase):
    """A thread-safe stdout stand-in that parses every line it receives."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._pending = ""

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *complete, self._pending = self._pending.split("\n")
            self.lines.extend(complete)
        return len(text)

    def events(self) -> list[dict]:
        with self._lock:
            return [json.loads(line) for line in self.lines]

    def wait_for(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.01)
        raise AssertionError(f"no matching event in {self.events()}")


def serve_in_thread(lines: list[str]) -> tuple[EventStream, threading.Thread, FeedableInput]:
    out = EventStream()
    requests = FeedableInput(lines)
    thread = threading.Thread(target=Worker(fake_cli, out).serve, args=(requests,), daemon=True)
    thread.start()
    return out, thread, requests


class FeedableInput:
    """An iterable of request lines that the test can keep feeding (like a pipe)."""

    def __init__(self, lines: list[str]) -> None:
        self._queue: list[str] = list(lines)
        self._cond = threading.Condition()

    def feed(self, line: str) -> None:
        with self._cond:
            self._queue.append(line)
            self._cond.notify()

    def __iter__(self):
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                line = self._queue.pop(0)
            if line is None:
                return
            yield line


def request(**fields) -> str:
    return json.dumps(fields) + "\n"


def test_jobs_report_events_with_their_id_and_end_with_result():
    out, thread, _ = serve_in_thread(
        [
            request(id="a", argv=["count", "3"]),
            request(id=7, argv=["count", "2", "--json"]),
            None,  # end of input: queued jobs still finish
        ]
    )
    thread.join(10)
    assert not thread.is_alive()
    events = out.events()
    assert all("job" in e for e in events)
    by_job = {job: [e for e in events if e["job"] == job] for job in ("a", 7)}
    for job, steps in (("a", 3), (7, 2)):
        kinds = [e["event"] for e in by_job[job]]
        assert kinds[0] == "start" and by_job[job][0]["command"] == "count"
        assert kinds[-1] == "result" and kinds.count("result") == 1
        assert by_job[job][-1]["summary"] == {"command": "count", "counted": steps}
        assert by_job[job][-2] == {
            "event": "progress",
            "job": job,
            "stage": "counting",
            "done": steps,
            "total": steps,
            "fraction": 1.0,
        }
    # jobs run one after another, in the order they were sent
    assert [e["job"] for e in events if e["event"] == "result"] == ["a", 7]


def test_cancel_stops_the_running_job_with_code_130_and_the_next_job_still_runs():
    STEP_REACHED.clear()
    out, thread, requests = serve_in_thread(
        [request(id="slow", argv=["count", "5", "--hold-at", "2"]), request(id="next", argv=["count", "1"])]
    )
    assert STEP_REACHED.wait(10)
    requests.feed(request(cancel="slow"))
    error = out.wait_for(lambda e: e["event"] == "error" and e["job"] == "slow")
    assert error["code"] == 130
    slow_progress = [e["done"] for e in out.events() if e["job"] == "slow" and e["event"] == "progress"]
    assert max(slow_progress, default=0) <= 3  # stopped at the next step, not at the end
    assert out.wait_for(lambda e: e["event"] == "result" and e["job"] == "next")["summary"]["counted"] == 1
    requests.feed(request(id="queued", argv=["count", "5", "--hold-at", "0"]))
    out.wait_for(lambda e: e["event"] == "start" and e["job"] == "queued")
    requests.feed(request(shutdown=True))  # shutdown cancels what is still running
    thread.join(10)
    assert not thread.is_alive()
    assert out.wait_for(lambda e: e["event"] == "error" and e["job"] == "queued")["code"] == 130


def test_failures_and_bad_requests_become_error_events():
    out, thread, _ = serve_in_thread(
        [
            "this is not json\n",
            request(argv=["count", "1"]),
            request(id="bad", argv=["bad", "scene.tif"]),
            request(id="usage", argv=["count", "not-a-number"]),
            request(id="unknown", argv=["no-such-command"]),
            None,
        ]
    )
    thread.join(10)
    events = out.events()
    anonymous = [e for e in events if e["event"] == "error" and e["job"] is None]
    assert [e["code"] for e in anonymous] == [2, 2]
    assert "bad request" in anonymous[0]["message"] and "needs an 'id'" in anonymous[1]["message"]
    errors = {e["job"]: e for e in events if e["event"] == "error"}
    assert errors["bad"] == {
        "event": "error",
        "job": "bad",
        "code": 2,
        "message": "scene.tif: is not a raster",
    }
    assert errors["usage"]["code"] == 2 and "not-a-number" in errors["usage"]["message"]
    assert errors["unknown"]["code"] == 2 and "no-such-command" in errors["unknown"]["message"]
    assert not [e for e in events if e["event"] == "result"]


@dataclasses.dataclass(frozen=True)
class CountParams:
    steps: int = 1
    fail: bool = False


def run_count(params: CountParams, progress) -> dict:
    progress.stage("counting", total=params.steps)
    for _ in range(params.steps):
        progress.advance()
    if params.fail:
        raise InputError("steps", "told to fail")
    return {"command": "count-job", "counted": params.steps}


@pytest.fixture
def count_job():
    from geo_dfm.jobs.registry import JOBS, JobEntry, register_job

    register_job(JobEntry("count-job", "Counts.", CountParams, run_count))
    yield
    JOBS.pop("count-job", None)


def test_protocol_2_runs_registered_jobs_from_their_parameters(count_job):
    out, thread, _ = serve_in_thread(
        [
            request(id="p2", job="count-job", params={"steps": 3}),
            request(id="bad-params", job="count-job", params={"steps": "three"}),
            request(id="fails", job="count-job", params={"fail": True}),
            request(id="no-such", job="nope", params={}),
            None,
        ]
    )
    thread.join(10)
    events = out.events()
    result = [e for e in events if e["job"] == "p2"][-1]
    assert result == {"event": "result", "job": "p2", "summary": {"command": "count-job", "counted": 3}}
    assert [e["event"] for e in events if e["job"] == "p2"][0] == "start"
    errors = {e["job"]: e for e in events if e["event"] == "error"}
    assert (
        errors["bad-params"]["code"] == 2 and "steps: must be an integer" in errors["bad-params"]["message"]
    )
    assert errors["fails"] == {"event": "error", "job": "fails", "code": 2, "message": "steps: told to fail"}
    assert errors["no-such"]["code"] == 2 and "unknown job 'nope'" in errors["no-such"]["message"]


@pytest.mark.parametrize(
    "line",
    [
        request(cancel=[1]),
        request(cancel={"a": 1}),
        request(id=[1], argv=["count", "1"]),
        request(id={"x": 1}, job="count-job"),
        request(id="both", argv=["count", "1"], job="count-job"),
        request(id="p", job="count-job", params=[1, 2]),
        request(id="w", argv=["worker"]),
        request(id="w2", argv=["-v", "worker"]),
        "[1, 2]\n",
        "null\n",
    ],
)
def test_a_bad_request_is_answered_and_the_worker_carries_on(line):
    out, thread, _ = serve_in_thread([line, request(id="after", argv=["count", "2"]), None])
    thread.join(10)
    assert not thread.is_alive()
    events = out.events()
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1 and errors[0]["code"] == 2, events
    assert [e for e in events if e["job"] == "after"][-1]["event"] == "result"


def test_cancel_of_an_unknown_job_gets_an_answer():
    out, thread, _ = serve_in_thread([request(cancel="ghost"), None])
    thread.join(10)
    (event,) = out.events()
    assert event["event"] == "error" and event["job"] == "ghost" and event["code"] == 2
    assert "no queued or running job" in event["message"]


def test_stray_prints_never_reach_the_protocol():
    out, thread, _ = serve_in_thread([request(id="p", argv=["count", "2"]), None])
    thread.join(10)
    assert all(line.startswith("{") for line in out.lines)
    assert "stray print" not in "".join(out.lines)


# --- the real executable ------------------------------------------------------------------------


def start_worker() -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return subprocess.Popen(
        [str(GEO_DFM), "worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_event(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    assert line, f"worker closed stdout; stderr: {proc.stderr.read()}"
    return json.loads(line)


@pytest.mark.skipif(not GEO_DFM.exists(), reason="geo-dfm is not installed next to this Python")
def test_real_worker_says_ready_runs_commands_and_exits_at_end_of_input():
    import torch

    from geo_dfm import __version__

    proc = start_worker()
    try:
        ready = read_event(proc)
        assert ready["event"] == "ready"
        assert ready["version"] == __version__
        assert ready["torch"] == torch.__version__
        assert ready["cuda"] is torch.cuda.is_available()
        assert ready["protocol"] == 2
        assert {"localize", "classify", "search", "chips", "list-models"} <= set(ready["jobs"])
        assert "water" in ready["presets"]["landcover"]
        assert "toy" in ready["models"] and any(m["name"] == "toy" for m in ready["model_info"])
        proc.stdin.write(request(id="v", argv=["--version"]))
        proc.stdin.write(request(id="missing", argv=["chips", "/no/such/scene.tif", "-o", "/tmp/x"]))
        proc.stdin.close()  # end of input: the queued jobs finish, then the worker exits
        events = [json.loads(line) for line in proc.stdout]
        assert proc.wait(30) == 0
    finally:
        proc.kill()
    version = [e for e in events if e.get("job") == "v"]
    assert version[-1]["event"] == "result"
    assert version[-1]["stdout"].strip() == f"geo-dfm, version {__version__}"
    missing = [e for e in events if e.get("job") == "missing"]
    assert missing[0]["event"] == "start" and missing[-1]["event"] == "error"
    assert missing[-1]["code"] in (1, 2)
    assert events[-1] == {"event": "shutdown"}


@pytest.mark.slow
@pytest.mark.skipif(not GEO_DFM.exists(), reason="geo-dfm is not installed next to this Python")
def test_two_jobs_in_one_worker_load_the_model_once(synthetic_scene, toy_model_path, tmp_path):
    """The factory logs "loading <model>" each time it builds one: the second job reuses the first's."""
    scene = synthetic_scene("reuse", width=128, height=128, seed=11)
    proc = start_worker()
    try:
        assert read_event(proc)["event"] == "ready"
        for job in ("first", "second"):
            argv = ["-v", "localize", str(scene.path), "water", "-o", str(tmp_path / job), "--model", "toy"]
            proc.stdin.write(request(id=job, argv=argv))
        proc.stdin.close()
        events = [json.loads(line) for line in proc.stdout]
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    for job in ("first", "second"):
        outcome = [e for e in events if e.get("job") == job][-1]
        assert outcome["event"] == "result", outcome
        assert Path(outcome["summary"]["outputs"]["heatmaps"]["water"]).is_file()
    loading = [e for e in events if e["event"] == "log" and e["message"].startswith("loading toy")]
    assert [e["job"] for e in loading] == ["first"]
