"""Output folders and files: nothing geo-dfm did not write is ever deleted; one run per target; killed
runs leave nothing that the next run does not sweep (issue 10 items 1, 2, 5, 6, 11)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from tile_tools.atomic import atomic_directory
from tile_tools.errors import InputError
from tile_tools.locks import TargetLock, lock_path
from tile_tools.manifest import MANIFEST_NAME, PARTIAL_MARKER, read_manifest
from tile_tools.output import OutputFile, OutputFolder, check_output_location, sweep_stale_twins


@pytest.fixture(autouse=True)
def lock_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("GEO_DFM_CACHE", str(cache))
    return cache


def tree(folder: Path) -> dict[str, str]:
    """Every entry below ``folder`` → sha256 of its bytes ("dir" for folders): byte-identity oracle."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            out[os.path.relpath(os.path.join(root, name), folder)] = "dir"
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def write_output(target: Path, files: dict[str, str], **options) -> None:
    with OutputFolder(target, command="test", **options) as out:
        for name, text in files.items():
            (out.path / name).parent.mkdir(parents=True, exist_ok=True)
            (out.path / name).write_text(text)


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- item 1: safe overwrite -------------------------------------------------------------------------
def test_overwrite_never_deletes_a_folder_holding_the_input_scene(tmp_path):
    """The data-loss repro: ``mkdir d; cp scene.tif d/; … -o d --overwrite`` deleted the scene."""
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "scene.tif").write_bytes(b"precious scene bytes")
    before = tree(folder)
    with (
        pytest.raises(InputError) as info,
        OutputFolder(folder, overwrite=True, inputs=[folder / "scene.tif"]),
    ):
        pytest.fail("must not open")
    assert str(folder) in str(info.value) and "input" in str(info.value)
    # without being told the inputs, the missing manifest refuses it too, naming what would be lost
    with (
        pytest.raises(InputError, match=r"not written by geo-dfm.*scene\.tif"),
        atomic_directory(folder, overwrite=True),
    ):
        pass
    assert tree(folder) == before and hidden(tmp_path) == []


def test_our_own_output_is_replaced_and_carries_a_manifest(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "old", "sub/b.gpkg": "old"})
    manifest = read_manifest(out)
    assert manifest is not None and manifest.command == "test"
    assert manifest.files == ("a.tif", "sub/b.gpkg") and manifest.folders == ("sub",)
    write_output(out, {"c.tif": "new"}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_NAME, "c.tif"]
    assert read_manifest(out).files == ("c.tif",)
    assert hidden(tmp_path) == []


def test_a_foreign_file_inside_our_output_blocks_the_overwrite(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "ours"})
    (out / "notes.txt").write_text("the user's notes")
    (out / "extra").mkdir()
    before = tree(out)
    with pytest.raises(InputError, match=r"did not write \(.*notes\.txt"):
        write_output(out, {"a.tif": "new"}, overwrite=True)
    assert tree(out) == before and hidden(tmp_path) == []


def test_a_failed_overwrite_run_leaves_the_old_output_byte_identical(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"heat.tif": "v1", "regions/r.gpkg": "v1"})
    before = tree(out)
    with pytest.raises(RuntimeError, match="model crashed"), OutputFolder(out, overwrite=True) as run:
        (run.path / "heat.tif").write_text("half-written v2")
        raise RuntimeError("model crashed")
    assert tree(out) == before
    assert hidden(tmp_path) == []  # no temporary twin left


def test_files_added_to_the_old_output_during_the_run_stop_the_replacement(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "v1"})
    with pytest.raises(InputError, match="late.txt"), OutputFolder(out, overwrite=True) as run:
        (run.path / "a.tif").write_text("v2")
        (out / "late.txt").write_text("added by the user meanwhile")
    assert (out / "a.tif").read_text() == "v1" and (out / "late.txt").exists()
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("where", ["cwd", "cwd_parent", "home"])
def test_current_folder_its_parents_and_home_are_never_replaced(tmp_path, monkeypatch, where):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "ours"})
    inner = out / "work"
    inner.mkdir()
    manifest_path = out / MANIFEST_NAME  # list the inner folder so only the location rule can refuse
    manifest_path.write_text(manifest_path.read_text().replace('"folders": []', '"folders": ["work"]'))
    if where == "cwd":
        monkeypatch.chdir(out)
    elif where == "cwd_parent":
        monkeypatch.chdir(inner)
    else:
        monkeypatch.setenv("HOME", str(out))
    before = tree(out)
    expected = {"cwd": "current folder", "cwd_parent": "holds the current folder", "home": "home folder"}[
        where
    ]
    with pytest.raises(InputError, match=expected):
        write_output(out, {"b.tif": "new"}, overwrite=True)
    assert tree(out) == before


def test_inputs_are_resolved_through_symlinks_and_archives(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"scene.tif": "a scene the demo wrote", "scenes.zip": "zip"})
    link = tmp_path / "link.tif"
    link.symlink_to(out / "scene.tif")
    before = tree(out)
    with pytest.raises(InputError, match="holds an input"):
        write_output(out, {"x": "y"}, overwrite=True, inputs=[link])
    with pytest.raises(InputError, match="holds an input"):
        write_output(
            out, {"x": "y"}, overwrite=True, inputs=[f"/vsizip/{out / 'scenes.zip'}/inner/scene.tif"]
        )
    write_output(
        out, {"x": "y"}, overwrite=True, inputs=["https://example.invalid/scene.tif", "/vsimem/a.tif"]
    )
    assert (out / "x").exists() and not (out / "scene.tif").exists()
    assert before != tree(out)


def test_a_symlinked_target_or_a_file_is_not_replaced(tmp_path):
    real = tmp_path / "real"
    write_output(real, {"a": "1"})
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with pytest.raises(InputError, match="symbolic link"):
        write_output(link, {"a": "2"}, overwrite=True)
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        write_output(file, {"a": "2"}, overwrite=True)
    assert (real / "a").read_text() == "1" and file.read_text() == "x"


def test_without_overwrite_an_existing_folder_is_refused_and_an_empty_one_can_be_replaced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InputError, match="exists.*overwrite"):
        write_output(out, {"a": "1"})
    write_output(out, {"a": "1"}, overwrite=True)  # nothing could be lost
    assert (out / "a").read_text() == "1"


def test_missing_parents_are_created_and_removed_again_on_failure(tmp_path):
    out = tmp_path / "x" / "y" / "out"
    with pytest.raises(RuntimeError), OutputFolder(out):
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    write_output(out, {"a": "1"})
    assert (out / "a").exists()


# --- items 5, 6: one run per target, stale twins swept ----------------------------------------------
def test_a_second_run_on_the_same_target_fails_at_once(tmp_path, monkeypatch, lock_cache):
    out = tmp_path / "out"
    with OutputFolder(out) as first:
        (first.path / "a").write_text("first")
        monkeypatch.chdir(tmp_path)
        start = time.monotonic()
        with pytest.raises(InputError, match=r"another geo-dfm run \(pid \d+\) is writing"):
            OutputFolder("out").open()  # another spelling of the same target
        assert time.monotonic() - start < 1.0
    assert (out / "a").read_text() == "first"
    assert lock_path(out).parent == lock_cache / "locks"
    monkeypatch.delenv("GEO_DFM_CACHE")
    default = lock_path(out)  # neither beside the output nor in the temp dir
    assert default.parent == Path.home() / ".cache" / "geo-dfm" / "locks"
    assert default.parent != out.parent and Path(tempfile.gettempdir()) not in default.parents
    monkeypatch.setenv("GEO_DFM_CACHE", str(lock_cache))
    write_output(out, {"a": "second"}, overwrite=True)  # the lock was released


def test_the_lock_excludes_another_process(tmp_path):
    out = tmp_path / "out"
    code = (
        "import sys, time; from tile_tools.locks import TargetLock\n"
        f"lock = TargetLock({str(out)!r}).acquire(); print('locked', flush=True); time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=os.environ)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(InputError, match=f"pid {child.pid}"):
            write_output(out, {"a": "1"})
    finally:
        child.kill()
        child.wait()
    write_output(out, {"a": "1"})  # the OS released the lock of the killed process


def test_a_sigkilled_run_leaves_a_twin_that_the_next_run_sweeps(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "v1"})
    before = tree(out)
    code = (
        "import os, signal; from tile_tools.output import OutputFolder\n"
        f"run = OutputFolder({str(out)!r}, overwrite=True).open()\n"
        "(run.path / 'a.tif').write_bytes(b'x' * 100000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=os.environ)
    assert result.returncode == -signal.SIGKILL
    twins = [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    assert len(twins) == 1 and (twins[0] / PARTIAL_MARKER).exists()
    assert tree(out) == before  # the killed run changed nothing
    write_output(out, {"a.tif": "v2"}, overwrite=True)
    assert hidden(tmp_path) == [] and (out / "a.tif").read_text() == "v2"


def test_sweep_restores_an_interrupted_rename_and_leaves_unknown_folders_alone(tmp_path):
    out = tmp_path / "out"
    write_output(out, {"a.tif": "complete"})
    twin = tmp_path / ".out.0123456789ab.old"
    os.replace(out, twin)  # a kill between "target → old" and "new → target"
    stranger = tmp_path / ".out.abcdefabcdef.tmp"
    stranger.mkdir()
    (stranger / "mine.txt").write_text("not geo-dfm's")
    with TargetLock(out):
        handled = sweep_stale_twins(out)
    assert handled == [twin.name]
    assert (out / "a.tif").read_text() == "complete" and (stranger / "mine.txt").exists()
    # a complete twin beside an existing target: only its listed files go
    write_output(tmp_path / "other", {"b": "1"})
    os.replace(tmp_path / "other", tmp_path / ".out.ffffffffffff.old")
    with TargetLock(out):
        sweep_stale_twins(out)
    assert not (tmp_path / ".out.ffffffffffff.old").exists() and (out / "a.tif").exists()


# --- item 11: unwritable or full --------------------------------------------------------------------
def test_an_unwritable_location_fails_fast_without_naming_the_temporary_folder(tmp_path):
    readonly = Path("/sys/geo-dfm-test-output")  # sysfs refuses new files, even to root
    if os.access("/sys", os.W_OK) and os.geteuid() != 0:
        pytest.skip("/sys is writable here")
    start = time.monotonic()
    with pytest.raises(InputError) as info:
        write_output(readonly, {"a": "1"})
    assert time.monotonic() - start < 1.0
    message = str(info.value)
    assert str(readonly) in message and "cannot write" in message and ".tmp" not in message
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_location(blocker / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_a_full_disk_is_an_input_error_naming_the_target(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="disk is full") as info, OutputFolder(out) as run:
        (run.path / "a").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(out) in str(info.value) and ".tmp" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


# --- single files ------------------------------------------------------------------------------------
def is_index(path: Path) -> bool:
    return path.read_bytes().startswith(b"INDEX")


def test_output_file_replaces_only_its_own_kind_and_never_an_input(tmp_path):
    scene = tmp_path / "scene.tif"
    scene.write_bytes(b"TIFF scene")
    with (
        pytest.raises(InputError, match="input of this run"),
        OutputFile(scene, overwrite=True, is_ours=is_index, inputs=[scene]),
    ):
        pass
    with (
        pytest.raises(InputError, match="not a embedding index"),
        OutputFile(scene, overwrite=True, is_ours=is_index, what="embedding index"),
    ):
        pass
    assert scene.read_bytes() == b"TIFF scene"
    index = tmp_path / "index.npz"
    with OutputFile(index, is_ours=is_index) as tmp:
        tmp.write_bytes(b"INDEX v1")
    with pytest.raises(InputError, match="exists.*overwrite"), OutputFile(index, is_ours=is_index):
        pass
    with pytest.raises(RuntimeError), OutputFile(index, overwrite=True, is_ours=is_index) as tmp:
        tmp.write_bytes(b"INDEX half")
        raise RuntimeError("crash")
    assert index.read_bytes() == b"INDEX v1"
    with OutputFile(index, overwrite=True, is_ours=is_index) as tmp:
        tmp.write_bytes(b"INDEX v2")
    assert index.read_bytes() == b"INDEX v2"
    assert hidden(tmp_path) == []


def test_output_file_is_locked_and_sweeps_its_stale_twins(tmp_path):
    target = tmp_path / "results.gpkg"
    stale = tmp_path / ".results.0123456789ab.tmp.gpkg"
    stale.write_bytes(b"killed run")
    (tmp_path / ".results.0123456789ab.tmp.gpkg-wal").write_bytes(b"wal")
    with OutputFile(target, is_ours=lambda p: True) as tmp:
        with (
            pytest.raises(InputError, match="another geo-dfm run"),
            OutputFile(target, is_ours=lambda p: True),
        ):
            pass
        tmp.write_bytes(b"gpkg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.gpkg"]


def test_archive_inputs_are_found_on_disk(tmp_path):
    archive = tmp_path / "scenes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.tif", b"x")
    with (
        pytest.raises(InputError, match="input of this run"),
        OutputFile(archive, overwrite=True, is_ours=lambda p: True, inputs=[f"/vsizip/{archive}/a.tif"]),
    ):
        pass
    assert zipfile.is_zipfile(archive)
