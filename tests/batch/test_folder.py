"""The batch output folder: locked, resumable only by the same run, replaced only where geo-dfm wrote."""

from __future__ import annotations

import pytest

from geo_dfm.batch.folder import JOURNAL, MOSAICS, RUN_RECORD, BatchFolder, RunRecord, written_manifest
from geo_dfm.batch.sources import SceneRef
from tile_tools.errors import InputError
from tile_tools.manifest import MANIFEST_NAME, foreign_entries, read_manifest
from tile_tools.output import OutputFolder, check_folder_replaceable

SCENES = (SceneRef("a", "/data/a.tif"), SceneRef("b", "/data/b.tif"))


def make_record(**parameters) -> RunRecord:
    return RunRecord.of(
        ("classify",), {"classify": {"labels": ["water", "town"]}, **parameters}, SCENES, ("classes",)
    )


def write_scene_output(folder: BatchFolder, scene: str) -> None:
    """What a single-scene job leaves: a committed output folder with a manifest."""
    with OutputFolder(folder.job_folder(scene, "classify"), command="classify") as out:
        (out.path / "classes.tif").write_bytes(b"x")


def test_a_new_run_creates_the_folder_and_a_second_run_is_refused(tmp_path):
    out = tmp_path / "out"
    with BatchFolder(out, make_record()) as folder:
        assert (out / RUN_RECORD).is_file() and not folder.resumed
        with pytest.raises(InputError, match="another geo-dfm run .* is writing this output"):
            BatchFolder(out, make_record()).open()
        (out / JOURNAL).write_text("", encoding="utf-8")
    with pytest.raises(
        InputError, match=r"output folder exists \(use --resume to continue it, or --overwrite"
    ):
        BatchFolder(out, make_record()).open()
    assert RunRecord.read(out) == make_record()


def test_resume_continues_only_the_same_run(tmp_path):
    out = tmp_path / "out"
    with BatchFolder(out, make_record()) as folder:
        write_scene_output(folder, "a")
        (out / JOURNAL).write_text("", encoding="utf-8")
    with BatchFolder(out, make_record(), resume=True) as folder:
        assert folder.resumed
    with pytest.raises(InputError, match=r"resume: .*other settings \(crs null then, \"EPSG:4326\" now\)"):
        BatchFolder(out, make_record(crs="EPSG:4326"), resume=True).open()
    other_scenes = RunRecord.of(("classify",), make_record().parameters, SCENES[:1], ("classes",))
    with pytest.raises(InputError, match=r"scenes \(1 differ: #2 /data/b.tif then, - now\)"):
        BatchFolder(out, other_scenes, resume=True).open()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(InputError, match="cannot resume: not the output folder of a geo-dfm annotate run"):
        BatchFolder(plain, make_record(), resume=True).open()


def test_the_finished_manifest_lists_exactly_what_the_run_wrote(tmp_path):
    out = tmp_path / "out"
    with BatchFolder(out, make_record()) as folder:
        write_scene_output(folder, "a")
        (out / JOURNAL).write_text("{}\n", encoding="utf-8")
        (out / MOSAICS).mkdir()
        (out / MOSAICS / "classes.vrt").write_text("<VRTDataset/>", encoding="utf-8")
        folder.commit()
    manifest = read_manifest(out)
    assert manifest is not None and manifest.command == "annotate"
    assert (
        "scenes/a/classify/classes.tif" in manifest.files
        and f"scenes/a/classify/{MANIFEST_NAME}" in manifest.files
    )
    assert foreign_entries(out, manifest) == []
    check_folder_replaceable(out)  # any geo-dfm command may now replace it with --overwrite


def test_overwrite_removes_what_geo_dfm_wrote_and_nothing_else(tmp_path):
    out = tmp_path / "out"
    with BatchFolder(out, make_record()) as folder:  # an unfinished run: no manifest yet
        write_scene_output(folder, "a")
        (out / JOURNAL).write_text("{}\n", encoding="utf-8")
    (out / "scenes" / "a" / "notes.txt").write_text("the user's", encoding="utf-8")
    with pytest.raises(
        InputError, match=r"not replaced: it holds files geo-dfm did not write \(scenes/a/notes.txt\)"
    ):
        BatchFolder(out, make_record(), overwrite=True).open()
    assert (out / "scenes" / "a" / "classify" / "classes.tif").is_file()  # nothing was removed
    (out / "scenes" / "a" / "notes.txt").unlink()
    assert written_manifest(out, make_record()).files  # what overwrite will remove
    with BatchFolder(out, make_record(labels=1), overwrite=True) as folder:
        assert sorted(p.name for p in out.iterdir()) == [RUN_RECORD]
        assert not folder.resumed
    user = tmp_path / "user"
    user.mkdir()
    (user / "photo.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match="not written by geo-dfm"):
        BatchFolder(user, make_record(), overwrite=True).open()


def test_a_run_that_fails_before_any_scene_leaves_nothing(tmp_path):
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), BatchFolder(out, make_record()):
        raise RuntimeError("the scheduler is unreachable")
    assert not out.exists() and not out.parent.exists()
