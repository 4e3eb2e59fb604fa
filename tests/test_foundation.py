"""The package installs, the CLI answers, errors become exit codes, outputs are atomic."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading

import pytest

import geo_dfm
from geo_dfm.cli.main import SUBCOMMANDS, main
from geo_dfm.errors import JobCancelled
from geo_dfm.progress import JsonlProgress
from tile_tools import InputError, atomic_directory, atomic_file


def test_version_and_help_list_every_subcommand(capsys):
    assert main(["--version"]) == 0
    assert geo_dfm.__version__ in capsys.readouterr().out
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_console_script_runs_in_a_fresh_process():
    result = subprocess.run([sys.executable, "-m", "geo_dfm", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert geo_dfm.__version__ in result.stdout


def test_usage_error_is_exit_2(capsys):
    assert main(["no-such-command"]) == 2


def test_tile_tools_never_imports_torch():
    code = "import sys, tile_tools; import tile_tools.atomic; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_input_error_names_the_source():
    err = InputError("scene.tif", "no CRS")
    assert str(err) == "scene.tif: no CRS"
    assert isinstance(err, ValueError)


def test_atomic_file_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_replaces_on_success(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_file(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == tmp_path
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_directory_refuses_existing_and_cleans_up(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError), atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("x")
        raise ValueError("fail mid-way")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(out) as tmp:
        (tmp / "a.txt").write_text("x")
    assert (out / "a.txt").read_text() == "x"
    assert out.stat().st_mode & 0o777 == 0o777 & ~_umask()
    with pytest.raises(InputError, match="exists"), atomic_directory(out):
        pass
    with atomic_directory(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("y")
    assert sorted(p.name for p in out.iterdir()) == [".geo-dfm-output.json", "b.txt"]  # + the manifest
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_jsonl_progress_events_parse_and_cancel():
    stream = io.StringIO()
    cancel = threading.Event()
    progress = JsonlProgress(stream, cancel_event=cancel, job=7, min_interval=0)
    progress.stage("encode", total=2)
    progress.advance()
    cancel.set()
    with pytest.raises(JobCancelled):
        progress.advance()
    progress.error(130, "cancelled")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in events] == ["stage", "progress", "progress", "error"]
    assert all(e["job"] == 7 for e in events)
    assert events[1]["fraction"] == 0.5
