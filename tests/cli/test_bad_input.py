"""A table of bad inputs run through the CLI and through the worker: each ends with the documented code
(2 = bad input), a one-line message naming the file or flag, no traceback, nothing left beside the
output or in the temp dir, and every input byte-identical afterwards.

Rows come from the bad-input sweep of issue 10 (data loss, hangs, crashes) and the cases handled before.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from geo_dfm.cli.main import cli, main
from geo_dfm.cli.worker import JobRequest, run_request


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    message: str  # a piece of the one-line message (a file name, a flag or the problem)
    code: int = 2


def _write(path: Path, width: int, height: int, res: float = 2.0, count: int = 3) -> Path:
    data = np.random.default_rng(0).integers(0, 255, (count, height, width), dtype=np.uint8)
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype="uint8")
    with rasterio.open(
        path, "w", crs="EPSG:32633", transform=from_origin(500000, 5300000, res, res), **profile
    ) as dst:
        dst.write(data)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, toy_model_path):
    """Inputs shared by the rows: a scene, a scene in a folder with the user's notes, a corrupt file,
    a 30 m scene, a huge virtual raster, labels files."""
    root = tmp_path_factory.mktemp("bad-input")
    scene = _write(root / "scene.tif", 128, 128)
    home = root / "project"
    home.mkdir()
    _write(home / "scene.tif", 128, 128)
    (home / "notes.txt").write_text("field notes\n")
    corrupt = root / "corrupt.tif"
    corrupt.write_bytes(scene.read_bytes()[: scene.stat().st_size // 2])
    coarse = _write(root / "landsat.tif", 512, 512, res=30.0)  # at 0.01 m: 1.5 million px a side
    huge = root / "huge.vrt"
    huge.write_text(
        '<VRTDataset rasterXSize="1000000" rasterYSize="1000000">'
        "<SRS>EPSG:32633</SRS><GeoTransform>500000, 1, 0, 5300000, 0, -1</GeoTransform>"
        + "".join(
            f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{c}</ColorInterp></VRTRasterBand>'
            for b, c in ((1, "Red"), (2, "Green"), (3, "Blue"))
        )
        + "</VRTDataset>"
    )
    many = root / "many-labels.txt"
    many.write_text("\n".join(f"class {i}" for i in range(300)))
    text = root / "notes.txt"
    text.write_text("not a raster\n")
    return {
        "root": root,
        "scene": scene,
        "home": home,
        "corrupt": corrupt,
        "coarse": coarse,
        "huge": huge,
        "many": many,
        "text": text,
    }


def cases(w: dict) -> list[Case]:
    s, out = str(w["scene"]), str(w["root"] / "out")
    toy = ("--model", "toy")
    home_scene = str(w["home"] / "scene.tif")
    return [
        Case(
            "missing-scene",
            ("localize", str(w["root"] / "nope.tif"), "water", "-o", out, *toy),
            "nope.tif: scene file not found",
        ),
        Case("not-a-raster", ("localize", str(w["text"]), "water", "-o", out, *toy), "notes.txt"),
        Case("corrupt-geotiff", ("localize", str(w["corrupt"]), "water", "-o", out, *toy), "corrupt.tif"),
        Case("empty-query", ("localize", s, " ", "-o", out, *toy), "empty query"),
        Case("repeated-query", ("localize", s, "water", "water", "-o", out, *toy), "given twice"),
        Case("unknown-model", ("localize", s, "water", "-o", out, "--model", "no-such-model"), "--model"),
        Case(
            "overwrite-folder-with-the-scene",
            ("localize", home_scene, "water", "-o", str(w["home"]), "--overwrite", *toy),
            str(w["home"]),
        ),
        Case(
            "overwrite-current-folder",
            ("localize", s, "water", "-o", ".", "--overwrite", *toy),
            "current folder",
        ),
        Case("existing-output", ("localize", s, "water", "-o", str(w["home"]), *toy), "--overwrite"),
        Case(
            "index-is-the-scene",
            ("search", s, "water", "-o", str(w["root"] / "hits.gpkg"), "--index", s, *toy),
            "scene.tif",
        ),
        Case("huge-grid", ("localize", str(w["huge"]), "water", "-o", out, *toy), "max"),
        Case(
            "gsd-far-below-the-scene",
            ("localize", str(w["coarse"]), "water", "-o", out, "--gsd", "0.01", *toy),
            "raise --max-grid-pixels",
        ),
        Case(
            "chip-larger-than-allowed",
            (
                "localize",
                s,
                "water",
                "-o",
                out,
                "--chip-size",
                "100000",
                "--edge",
                "pad",
                "--min-valid",
                "0",
                *toy,
            ),
            "raise --max-chip-size",
        ),
        Case("overlap-of-one", ("localize", s, "water", "-o", out, "--overlap", "1.0", *toy), "--overlap"),
        Case(
            "bad-bands",
            ("localize", s, "water", "-o", out, "--bands", "4,5,6", *toy),
            "band 4 does not exist",
        ),
        Case(
            "aoi-outside",
            ("localize", s, "water", "-o", out, "--aoi", "0,0,10,10", *toy),
            "area of interest lies outside",
        ),
        Case("exact-without-selo", ("localize", s, "water", "-o", out, "--exact", *toy), "--exact"),
        Case("too-many-labels", ("classify", s, "--labels-file", str(w["many"]), "-o", out, *toy), "254"),
        Case("duplicate-labels", ("classify", s, "--labels", "water,Water", "-o", out, *toy), "duplicate"),
        Case(
            "labels-and-preset",
            ("classify", s, "--labels", "a,b", "--preset", "landcover", "-o", out, *toy),
            "--labels",
        ),
        Case("unknown-preset", ("classify", s, "--preset", "nope", "-o", out, *toy), "nope"),
        Case("search-not-gpkg", ("search", s, "water", "-o", str(w["root"] / "x.txt"), *toy), ".gpkg"),
        Case(
            "unwritable-output",
            ("localize", s, "water", "-o", "/proc/geo-dfm-out", *toy),
            "/proc/geo-dfm-out",
        ),
        Case("chips-missing", ("chips", str(w["root"] / "nope.tif"), "-o", out), "nope.tif"),
    ]


CASE_IDS = [
    c.id
    for c in cases(
        {k: Path("/x") for k in ("root", "scene", "home", "corrupt", "coarse", "huge", "many", "text")}
    )
]


def _digest(path: Path) -> str:
    if path.is_dir():
        return ";".join(f"{p.relative_to(path)}:{_digest(p)}" for p in sorted(path.rglob("*")) if p.is_file())
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def isolated_tmp(tmp_path, monkeypatch):
    """A private temp dir (what tempfile hands out) to check that nothing is left in it."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def _check_nothing_changed(world: dict, before: dict[str, str], tmp: Path) -> None:
    root = world["root"]
    after = {p.name: _digest(p) for p in root.iterdir()}
    assert after == before  # inputs byte-identical, no output, no hidden twin beside them
    # torch keeps its own compile cache there once it is imported; that is not ours to remove
    assert [p.name for p in tmp.iterdir() if not p.name.startswith("torchinductor_")] == []


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_input_through_the_cli(case_id, world, capsys, isolated_tmp, monkeypatch):
    case = next(c for c in cases(world) if c.id == case_id)
    monkeypatch.chdir(world["home"] if case.id == "overwrite-current-folder" else world["root"])
    before = {p.name: _digest(p) for p in world["root"].iterdir()}
    code = main(list(case.argv))
    err = capsys.readouterr().err
    assert code == case.code, err
    assert case.message in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3, err
    _check_nothing_changed(world, before, isolated_tmp)


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_bad_input_through_the_worker(case_id, world, isolated_tmp, monkeypatch):
    case = next(c for c in cases(world) if c.id == case_id)
    monkeypatch.chdir(world["home"] if case.id == "overwrite-current-folder" else world["root"])
    before = {p.name: _digest(p) for p in world["root"].iterdir()}
    out = io.StringIO()
    code = run_request(cli, JobRequest("bad", argv=case.argv), out)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == case.code and events[-1]["event"] == "error", events
    assert events[-1]["code"] == case.code and case.message in events[-1]["message"], events[-1]
    assert "Traceback" not in events[-1]["message"]
    _check_nothing_changed(world, before, isolated_tmp)


def test_a_virtual_gdal_path_reaches_gdal_verbatim(world, tmp_path, capsys):
    """``/vsizip//…`` keeps its double slash (pathlib would fold it)."""
    import zipfile

    archive = tmp_path / "scene.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(world["scene"], "scene.tif")
    out = tmp_path / "chips"
    code = main(
        ["chips", f"/vsizip/{archive}/scene.tif", "-o", str(out), "--size", "64", "--overlap", "0", "--json"]
    )
    assert code == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out)
    assert summary["scene"] == f"/vsizip/{archive}/scene.tif" and summary["chips"] == 4


def test_two_runs_on_one_target_the_second_is_refused(world, tmp_path, capsys):
    from tile_tools.locks import TargetLock

    out = tmp_path / "maps"
    with TargetLock(out):  # another run holds the target
        code = main(["localize", str(world["scene"]), "water", "-o", str(out), "--model", "toy"])
    assert code == 2 and "another geo-dfm run" in capsys.readouterr().err
    assert not out.exists() and os.listdir(tmp_path) == []
