"""The journal: one fsynced line per finished scene; a torn last line (a kill mid-write) is ignored."""

from __future__ import annotations

from geo_dfm.batch.journal import DONE, FAILED, Journal, SceneRecord


def record(scene: str, status: str = DONE, **kw) -> SceneRecord:
    return SceneRecord(
        scene, f"/d/{scene}.tif", status, "2026-01-01T00:00:00", "2026-01-01T00:00:01", 1.0, **kw
    )


def test_records_round_trip_and_the_last_line_of_a_scene_wins(tmp_path):
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.read() == {}
    journal.append(record("a", chips=12, jobs={"classify": 0.5}, crs="EPSG:32633", footprint="POLYGON EMPTY"))
    journal.append(record("b", FAILED, code=2, error="b.tif: not a raster"))
    journal.append(record("b", chips=3))
    read = journal.read()
    assert read["a"] == record(
        "a", chips=12, jobs={"classify": 0.5}, crs="EPSG:32633", footprint="POLYGON EMPTY"
    )
    assert read["b"].done and read["b"].chips == 3


def test_a_torn_last_line_is_ignored_and_the_next_record_starts_on_a_new_line(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(record("a"))
    with path.open("ab") as handle:  # what a SIGKILL in the middle of a write leaves
        handle.write(b'{"scene": "b", "sta')
    assert set(journal.read()) == {"a"}
    journal.append(record("c"))
    assert set(journal.read()) == {"a", "c"}
    assert path.read_bytes().count(b"\n") == 3  # a, the terminated torn line, c
