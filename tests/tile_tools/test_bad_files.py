"""Truncated and corrupt GeoTIFFs, and GDAL virtual paths (issue 10 items 7 and 10).

A damaged file was exit 1 "internal error: RasterioIOError" without its name: it must be an
``InputError`` naming the file (and the block GDAL names), at open time, at chip-read time, and from
the prefetch threads. ``/vsizip//…``, ``/vsicurl/…`` and URLs were mangled by ``Path()``.
"""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile
from rasterio.transform import from_origin
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.grid import regular_windows
from tile_tools.prefetch import iter_chip_batches
from tile_tools.reader import SceneReader

SIZE, BLOCK = 512, 128


def _cog(make_scene, rng, name: str, nodata: float | None = None):
    """A deflate COG of 128 px tiles: its directory comes first, so a cut keeps it readable."""
    data = rng.integers(1, 255, (3, SIZE, SIZE), dtype=np.uint8)
    plain = make_scene(data, f"{name}.plain.tif", nodata=nodata)
    path = plain.with_name(f"{name}.tif")
    rasterio.shutil.copy(plain, path, driver="COG", compress="deflate", blocksize=BLOCK, overviews="none")
    return path


def _truncated(make_scene, rng, nodata=None):
    path = _cog(make_scene, rng, "cut", nodata)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def _corrupt(make_scene, rng):
    path = _cog(make_scene, rng, "corrupt")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 2000] = b"\xab" * 2000
    path.write_bytes(bytes(data))
    return path


def _read_every_chip(reader: SceneReader) -> None:
    for window in regular_windows(SIZE, SIZE, BLOCK, BLOCK):
        reader.read_chip(window)


@pytest.mark.parametrize("damage", [_truncated, _corrupt])
def test_a_damaged_file_fails_at_chip_read_naming_the_file_and_the_block(make_scene, rng, damage):
    path = damage(make_scene, rng)
    reader = SceneReader(path)  # no nodata: opening reads no pixel
    with reader, pytest.raises(InputError) as info:
        _read_every_chip(reader)
    error = info.value
    assert error.source == str(path)
    text = str(error)
    assert str(path) in text and "truncated or corrupt" in text and "\n" not in text
    assert "IReadBlock failed at X offset" in text  # GDAL's own block coordinates
    assert "window" in text


def test_a_damaged_file_fails_at_open_when_opening_reads_pixels(make_scene, rng):
    path = _truncated(make_scene, rng, nodata=0)  # the valid-data mask is read at open
    with pytest.raises(InputError) as info:
        SceneReader(path)
    assert info.value.source == str(path)
    assert "cannot read the valid-data mask" in str(info.value) and "offset" in str(info.value)


def test_a_file_cut_inside_its_header_fails_at_open(make_scene, rng):
    path = _cog(make_scene, rng, "head")
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError) as info:
        SceneReader(path)
    assert info.value.source == str(path) and "not a raster GDAL can read" in str(info.value)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_prefetch_threads_raise_the_same_input_error_in_the_consumer(make_scene, rng, workers):
    path = _truncated(make_scene, rng)
    windows = regular_windows(SIZE, SIZE, BLOCK, BLOCK)
    reader = SceneReader(path)
    with reader, pytest.raises(InputError) as info:
        for _ in iter_chip_batches(reader, windows, batch_size=2, workers=workers):
            pass
    assert info.value.source == str(path) and "IReadBlock failed" in str(info.value)


def test_gdal_virtual_paths_are_kept_verbatim(tmp_path, make_scene, rng):
    data = rng.integers(1, 255, (3, 40, 60), dtype=np.uint8)
    scene = make_scene(data)
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(scene, "inner/scene.tif")
    zipped = f"/vsizip/{archive}/inner/scene.tif"  # "/vsizip//tmp/…": Path() would fold the "//"
    assert "//" in zipped
    with SceneReader(zipped) as reader:
        assert reader.path == zipped and reader.scene == zipped
        chip = reader.read_chip(Window(0, 0, 60, 40))
        assert chip.scene == zipped
        np.testing.assert_array_equal(chip.image.transpose(2, 0, 1), data)
    with MemoryFile() as memory:
        with memory.open(
            driver="GTiff", width=60, height=40, count=3, dtype="uint8", transform=from_origin(0, 40, 1, 1)
        ) as dst:
            dst.write(data)
        with SceneReader(memory.name) as reader:
            assert reader.read_chip(Window(0, 0, 60, 40)).scene == memory.name
    # not found: the message names the path exactly as given (a refused local port: no network needed)
    for virtual in (
        f"/vsizip/{tmp_path}/missing.zip/a//b.tif",
        "/vsicurl/http://127.0.0.1:9/a//scene.tif",
        "https://127.0.0.1:9/a//scene.tif?token=x",
    ):
        with pytest.raises(InputError) as info:
            SceneReader(virtual)
        assert info.value.source == virtual and str(info.value).startswith(virtual + ":")
