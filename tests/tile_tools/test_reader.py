"""SceneReader against rasterio's own reads, transforms and masks."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from tile_tools.errors import InputError
from tile_tools.grid import ChipGridSpec, plan_chips, plan_windows
from tile_tools.reader import SceneReader, utm_crs_for

WINDOWS = [Window(0, 0, 64, 64), Window(37, 11, 50, 70), Window(150, 90, 50, 30)]


def test_chip_transform_pixels_and_mask_equal_rasterio(make_scene, rng):
    data = rng.integers(0, 256, (3, 120, 200), dtype=np.uint8)
    data[:, :10, :20] = 0  # nodata corner (all bands 0 → invalid)
    path = make_scene(data, nodata=0, photometric="RGB")
    with SceneReader(path) as reader, rasterio.open(path) as src:
        assert reader.stretch.is_identity  # 8-bit: untouched
        for window in WINDOWS:
            chip = reader.read_chip(window)
            assert chip.transform == window_transform(window, src.transform)
            assert chip.crs == src.crs
            assert chip.bounds == pytest.approx(rasterio.windows.bounds(window, src.transform))
            expected_mask = src.dataset_mask(window=window) > 0
            np.testing.assert_array_equal(chip.mask, expected_mask)
            direct = src.read([1, 2, 3], window=window).transpose(1, 2, 0)
            np.testing.assert_array_equal(chip.image, np.where(expected_mask[..., None], direct, 0))
            assert chip.valid_fraction == pytest.approx(reader.valid_fraction(window))
            assert chip.scale == max(window.width, window.height)


def test_16bit_percentile_stretch_is_per_scene_and_chip_independent(make_scene, rng):
    data = rng.integers(100, 5000, (3, 160, 160)).astype(np.uint16)
    data[0, :80] += 3000  # the top half of band 1 is much brighter
    path = make_scene(data)
    with SceneReader(path) as reader:
        low = np.percentile(data.reshape(3, -1).astype(float), 2, axis=1)
        high = np.percentile(data.reshape(3, -1).astype(float), 98, axis=1)
        np.testing.assert_allclose(reader.stretch.low, low)
        np.testing.assert_allclose(reader.stretch.high, high)
        window = Window(0, 96, 64, 64)  # a dark chip of band 1: not stretched to its own range
        chip = reader.read_chip(window)
        expected = np.clip(
            np.rint((data[:, 96:160, 0:64] - low[:, None, None]) * 255 / (high - low)[:, None, None]), 0, 255
        )
        np.testing.assert_array_equal(chip.image.transpose(2, 0, 1), expected.astype(np.uint8))
        assert chip.image[..., 0].max() < 200
        # the stretch of a chip does not depend on which other chips exist or were read
        all_chips = [reader.read_chip(w) for w in ChipGridSpec.from_options("64", "0").windows(reader.grid)]
    with SceneReader(path) as alone:
        np.testing.assert_array_equal(alone.read_chip(window).image, chip.image)
    assert any(np.array_equal(c.image, chip.image) for c in all_chips)


def test_13_band_scene_band_selection_and_raw(make_scene, rng):
    data = rng.integers(0, 10000, (13, 64, 64)).astype(np.uint16)
    path = make_scene(data)
    with SceneReader(path, stretch="none") as reader:
        assert reader.bands == (1, 2, 3)
    with SceneReader(path, bands=(4, 3, 2), read_raw=True, stretch="percentile") as reader:
        chip = reader.read_chip(Window(8, 8, 32, 32))
        np.testing.assert_array_equal(chip.raw, data[:, 8:40, 8:40])
        assert chip.raw.dtype == np.uint16
        # band order: red channel is band 4
        red = reader.stretch.apply(data[[3, 2, 1], 8:40, 8:40])[0]
        np.testing.assert_array_equal(chip.image[..., 0], red)
    with SceneReader(path, bands=(8,)) as reader:  # one band → grey RGB
        chip = reader.read_chip(Window(0, 0, 16, 16))
        assert reader.bands == (8, 8, 8)
        assert (chip.image[..., 0] == chip.image[..., 2]).all()
    with pytest.raises(InputError, match="band 14 does not exist"):
        SceneReader(path, bands=(4, 3, 14))


def test_colour_interpretation_picks_rgb_and_ignores_alpha(make_scene, rng):
    data = rng.integers(1, 255, (4, 32, 32), dtype=np.uint8)
    data[3] = 255
    data[3, :16] = 0
    path = make_scene(data, photometric="RGB", alpha="YES")
    with rasterio.open(path, "r+") as dst:
        dst.colorinterp = [
            rasterio.enums.ColorInterp.blue,
            rasterio.enums.ColorInterp.green,
            rasterio.enums.ColorInterp.red,
            rasterio.enums.ColorInterp.alpha,
        ]
    with SceneReader(path) as reader:
        assert reader.bands == (3, 2, 1)
        chip = reader.read_chip(Window(0, 0, 32, 32))
        assert chip.mask[:16].sum() == 0 and chip.mask[16:].all()
        np.testing.assert_array_equal(chip.image[16:, :, 0], data[2, 16:])


def test_nodata_scene_and_pad_edge(make_scene, rng):
    data = rng.integers(1, 1000, (3, 100, 90)).astype(np.int16)
    data[:, 50:, :] = -9999
    path = make_scene(data, nodata=-9999)
    with SceneReader(path, read_raw=True) as reader, rasterio.open(path) as src:
        chip = reader.read_chip(Window(60, 30, 64, 64))  # reaches past the right and bottom borders
        assert chip.image.shape == (64, 64, 3)
        assert not chip.mask[:, 30:].any() and not chip.mask[20:, :].any()
        np.testing.assert_array_equal(chip.mask[:20, :30], True)
        np.testing.assert_array_equal(chip.raw[:, :20, :30], src.read(window=Window(60, 30, 30, 20)))
        assert (chip.raw[:, 20:, :] == -9999).all()
        assert (chip.image[~chip.mask] == 0).all()
        assert chip.valid_fraction == pytest.approx(20 * 30 / 64**2)
        assert reader.valid_fraction(Window(60, 30, 64, 64)) == pytest.approx(20 * 30 / 64**2)
        spec = ChipGridSpec.from_options("32", "0")
        kept = plan_windows(reader, spec, min_valid=0.5)
        assert all(w.row_off + 16 <= 50 for w in kept)


def test_epsg4326_scene_with_metres_goes_to_utm(make_scene, rng):
    data = rng.integers(1, 255, (3, 100, 100), dtype=np.uint8)
    path = make_scene(data, crs="EPSG:4326", transform=from_origin(9.0, 48.0, 0.0001, 0.0001))
    with plan_chips(path, chip_size="50m", overlap="0") as plan, rasterio.open(path) as src:
        reader = plan.reader
        assert reader.grid.crs == utm_crs_for(9.005, 47.995) == rasterio.crs.CRS.from_epsg(32632)
        with WarpedVRT(src, crs="EPSG:32632", resampling=Resampling.bilinear) as vrt:
            assert reader.grid.transform.almost_equals(vrt.transform)  # GDAL's origin and resolution
            # GDAL rounds its suggested size (117 rows, half a row short of the scene); the grid covers it all
            assert (reader.grid.width, reader.grid.height) == (79, 118) and (vrt.width, vrt.height) == (
                79,
                117,
            )
            left, bottom, right, top = transform_bounds(src.crs, "EPSG:32632", *src.bounds, densify_pts=101)
            grid_left, grid_bottom, grid_right, grid_top = reader.grid.bounds
            assert (
                grid_left <= left + 1e-6
                and grid_bottom <= bottom
                and grid_right >= right
                and grid_top >= top - 1e-6
            )
            assert vrt.bounds[1] > bottom  # what GDAL's suggestion would have lost
        assert {w.width for w in plan.windows} == {round(50 / reader.grid.res[0])}
    with pytest.raises(InputError, match="no CRS"):
        SceneReader(make_scene(data, crs=None), gsd=10)


def test_gsd_resampling_equals_a_warped_vrt_read(make_scene, rng):
    data = rng.integers(0, 255, (3, 100, 100), dtype=np.uint8)
    path = make_scene(data)  # 10 m pixels
    with SceneReader(path, gsd=20) as reader, rasterio.open(path) as src:
        assert (reader.grid.width, reader.grid.height) == (50, 50)
        assert reader.grid.res == (20.0, 20.0)
        with WarpedVRT(
            src,
            crs=src.crs,
            transform=reader.grid.transform,
            width=50,
            height=50,
            resampling=Resampling.bilinear,
        ) as vrt:
            window = Window(10, 5, 20, 20)
            np.testing.assert_array_equal(
                reader.read_chip(window).image.transpose(2, 0, 1), vrt.read(window=window)
            )


def test_float_nan_is_invalid(make_scene, rng):
    data = rng.random((1, 40, 40)).astype(np.float32)
    data[0, :, :10] = np.nan
    with SceneReader(make_scene(data)) as reader:
        chip = reader.read_chip(Window(0, 0, 40, 40))
        assert not chip.mask[:, :10].any() and chip.mask[:, 10:].all()
        assert reader.valid_fraction(Window(0, 0, 40, 40)) == pytest.approx(0.75)


def test_no_crs_is_fine_for_pixel_jobs(make_scene, rng):
    path = make_scene(rng.integers(0, 255, (3, 64, 64), dtype=np.uint8), crs=None)
    with plan_chips(path, chip_size="32") as plan:
        assert plan.reader.grid.crs is None
        assert plan.reader.read_chip(plan.windows[0]).crs is None
    with pytest.raises(InputError, match="no CRS"):
        plan_chips(path, chip_size="100m")


def test_one_handle_per_thread(make_scene, rng):
    data = rng.integers(0, 255, (3, 128, 128), dtype=np.uint8)
    with SceneReader(make_scene(data)) as reader:
        windows = ChipGridSpec.from_options("16", "0").windows(reader.grid)
        results: dict[int, np.ndarray] = {}

        def work(k: int) -> None:
            for i in range(k, len(windows), 4):
                results[i] = reader.read_chip(windows[i]).image

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, w in enumerate(windows):
            expected = data[:, w.row_off : w.row_off + 16, w.col_off : w.col_off + 16].transpose(1, 2, 0)
            np.testing.assert_array_equal(results[i], expected)
        assert len(reader._handles) >= 2


def test_bad_inputs_are_one_line_input_errors(tmp_path, make_scene, rng):
    cases = []
    missing = tmp_path / "missing.tif"
    cases.append((lambda: SceneReader(missing), "file not found"))
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    cases.append((lambda: SceneReader(junk), "not a raster GDAL can read"))
    empty = make_scene(np.zeros((3, 32, 32), dtype=np.uint8), nodata=0)
    cases.append((lambda: SceneReader(empty), "no valid data"))
    small = make_scene(np.ones((3, 32, 32), dtype=np.uint8))
    cases.append((lambda: plan_chips(small, chip_size="64"), "smaller than a 64 px chip"))
    cases.append((lambda: SceneReader(small, stretch="fancy"), "unknown stretch"))
    for make, message in cases:
        with pytest.raises(InputError) as info:
            make()
        text = str(info.value)
        assert message in text and "\n" not in text
    assert str(missing) in str(pytest.raises(InputError, SceneReader, missing).value)


def test_zero_size_scene_is_an_input_error(tmp_path):
    vrt = tmp_path / "empty.vrt"
    vrt.write_text(
        '<VRTDataset rasterXSize="0" rasterYSize="10"><VRTRasterBand dataType="Byte" band="1"/></VRTDataset>'
    )
    with pytest.raises(InputError, match="empty.vrt: not a raster GDAL can read.*0 x 10"):
        SceneReader(vrt)


@pytest.mark.parametrize("gsd", [None, 20.0])
def test_internal_mask_and_alpha_survive_resampling(tmp_path, make_scene, gsd):
    data = np.full((4, 100, 100), 50, np.uint8)
    data[3] = 255
    data[3, :, :50] = 0
    alpha = make_scene(data, photometric="RGB", alpha="YES")
    masked = tmp_path / "masked.tif"
    with rasterio.open(alpha) as src, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        profile = {**src.profile, "count": 3}
        profile.pop("alpha", None)
        with rasterio.open(masked, "w", **profile) as dst:
            dst.write(data[:3])
            dst.write_mask(data[3])
    for path in (alpha, masked):
        with SceneReader(path, gsd=gsd) as reader:
            whole = Window(0, 0, reader.grid.width, reader.grid.height)
            chip = reader.read_chip(whole)
            assert reader.bands == (1, 2, 3)
            assert chip.valid_fraction == pytest.approx(0.5)
            assert reader.valid_fraction(whole) == pytest.approx(0.5)
            assert not chip.mask[:, : reader.grid.width // 2].any()


def test_chipping_modules_never_import_torch():
    import subprocess
    import sys

    modules = ["units", "chip", "grid", "reader", "stretch", "aoi", "xyz", "prefetch", "chip_writer"]
    modules += [
        "pixel_grid",
        "window_array",
        "mask_overview",
        "source",
        "output",
        "locks",
        "manifest",
        "atomic",
    ]
    code = (
        "import sys\n"
        + "".join(f"import tile_tools.{m}\n" for m in modules)
        + "assert 'torch' not in sys.modules and 'geo_dfm' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
