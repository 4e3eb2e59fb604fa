"""Planning streams and refuses what cannot run, before reading any chip (issue 10 items 4, 13)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.grid import ChipGridSpec, plan_chips, plan_windows
from tile_tools.reader import SceneReader
from tile_tools.window_array import WindowArray


@pytest.fixture
def huge_vrt(tmp_path, make_scene, rng):
    """A 1 000 000 × 1 000 000 px VRT (10 cm pixels) holding one small real tile at (400 000, 300 000)."""
    tile = make_scene(rng.integers(1, 255, (3, 64, 64), dtype=np.uint8), name="tile.tif")
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue><ComplexSource>'
        f'<SourceFilename relativeToVRT="0">{tile}</SourceFilename><SourceBand>{b}</SourceBand>'
        '<SrcRect xOff="0" yOff="0" xSize="64" ySize="64"/>'
        '<DstRect xOff="400000" yOff="300000" xSize="64" ySize="64"/></ComplexSource></VRTRasterBand>'
        for b in (1, 2, 3)
    )
    path = tmp_path / "huge.vrt"
    path.write_text(
        '<VRTDataset rasterXSize="1000000" rasterYSize="1000000"><SRS>EPSG:32632</SRS>'
        "<GeoTransform>500000, 0.1, 0, 5600000, 0, -0.1</GeoTransform>" + bands + "</VRTDataset>"
    )
    return path


def test_a_million_squared_scene_is_refused_up_front_with_the_numbers(huge_vrt):
    with pytest.raises(InputError) as info:
        plan_chips(huge_vrt, chip_size="224")
    error = info.value
    assert error.source == "max_grid_pixels"
    assert "1,000,000×1,000,000 px" in error.problem and "raise max_grid_pixels" in error.problem
    with pytest.raises(InputError) as info:  # counted, not listed (benchmarks/plan_scale.py: memory)
        plan_chips(huge_vrt, chip_size="224", max_grid_pixels=10**13, min_valid=0)
    assert info.value.source == "max_chips"
    assert "the plan has 35," in info.value.problem and "above the limit of 2,000,000" in info.value.problem


def test_an_aoi_on_a_huge_scene_enumerates_only_its_bounding_window(huge_vrt):
    # the AOI covers the real tile: pixels 400 000…400 064 × 300 000…300 064
    aoi = "540000,5569993.6,540006.4,5570000"
    with plan_chips(huge_vrt, chip_size="32", overlap="0", aoi=aoi, max_grid_pixels=10**13) as plan:
        assert isinstance(plan.windows, WindowArray)
        assert {(w.col_off, w.row_off) for w in plan.windows} == {
            (400000 + dc, 300000 + dr) for dc in (0, 32) for dr in (0, 32)
        }
        chip = plan.reader.read_chip(plan.windows[0])
        assert chip.mask.all()


def test_gsd_far_finer_than_the_scene_is_refused_before_the_grid_is_built(make_scene, rng):
    """``--gsd 0.01`` on a 30 m scene hung with memory growing."""
    data = rng.integers(1, 255, (3, 1000, 1000), dtype=np.uint8)
    path = make_scene(data, transform=rasterio.transform.from_origin(5e5, 5.6e6, 30, 30))
    with pytest.raises(InputError) as info:
        SceneReader(path, gsd=0.01)
    assert info.value.source == "max_grid_pixels"
    assert "0.01 m gsd" in info.value.problem and "3,000,000×3,000,000 px" in info.value.problem
    # a large upsampled grid below the limit opens at once: its mask overview is warped at 1024², not 30000²
    with SceneReader(path, gsd=1.0, mask_max_size=1024) as reader:
        assert reader.grid.shape == (30000, 30000)
        overview = reader.valid_mask_overview()
        assert overview.mask.shape == (1024, 1024) and overview.mask.all()


def test_a_huge_padded_chip_is_refused_instead_of_running_out_of_memory(make_scene, rng):
    """``--chip-size 100000 --edge pad --min-valid 0`` died with MemoryError (27.9 GiB)."""
    path = make_scene(rng.integers(1, 255, (3, 64, 64), dtype=np.uint8))
    with pytest.raises(InputError) as info:
        plan_chips(path, chip_size="100000", edge="pad", min_valid=0)
    assert info.value.source == "max_chip_size"
    assert "100000 px" in info.value.problem and "8192" in info.value.problem
    # the "smaller than a chip" hint leads to something that works
    with pytest.raises(InputError, match="at most 64 px or edge='pad'"):
        plan_chips(path, chip_size="128")
    with plan_chips(path, chip_size="128", edge="pad", min_valid=0) as plan:
        assert list(plan.windows) == [Window(0, 0, 128, 128)]
    with pytest.raises(InputError) as info:
        plan_chips(path, chip_size="32", overlap="0", max_chips=3)
    assert info.value.source == "max_chips" and "the plan has 4 chips" in info.value.problem


def test_plan_windows_filters_vectorised_like_the_one_by_one_rule(make_scene, rng):
    data = rng.integers(1, 255, (3, 300, 300), dtype=np.uint8)
    data[:, :, 140:] = 0
    path = make_scene(data, nodata=0)
    with SceneReader(path) as reader:
        spec = ChipGridSpec.from_options("50", "0.5", edge="pad")
        kept = plan_windows(reader, spec, min_valid=0.3)
        expected = [w for w in spec.windows(reader.grid) if reader.valid_fraction(w) >= 0.3]
        assert list(kept) == expected and len(kept) < len(spec.windows(reader.grid))


def test_limits_and_the_aoi_are_checked_before_any_pixel_is_read(make_scene, rng, monkeypatch):
    path = make_scene(rng.integers(1, 255, (3, 64, 64), dtype=np.uint8))
    reads = []
    original = SceneReader._read_whole_on
    monkeypatch.setattr(SceneReader, "_read_whole_on", lambda self, *a: reads.append(a) or original(self, *a))
    for options, source in [
        (dict(chip_size="32", overlap="0", max_chips=3), "max_chips"),
        (dict(chip_size="9000", edge="pad"), "max_chip_size"),
        (dict(chip_size="16", aoi="0,0,1,1"), "0,0,1,1"),  # a bbox far outside the scene
    ]:
        with pytest.raises(InputError) as info:
            plan_chips(path, **options)
        assert info.value.source == source
    assert reads == []  # no mask, no stretch sample, no chip
    with plan_chips(path, chip_size="32", overlap="0") as plan:
        assert len(plan.windows) == 4 and reads  # a plan that fits reads its mask


def test_kept_windows_live_in_one_compact_read_only_array(make_scene, rng):
    data = rng.integers(1, 255, (3, 200, 200), dtype=np.uint8)
    data[:, :, 100:] = 0
    with plan_chips(make_scene(data, nodata=0), chip_size="20", overlap="0", min_valid=0.5) as plan:
        array = plan.windows.array
        assert array.dtype == np.int64 and array.shape == (50, 4) and not array.flags.writeable
        assert array.base is None or array.base.nbytes <= 2 * array.nbytes  # the buffer is not 2× oversized
    with pytest.raises(ValueError, match="int64"):
        WindowArray.adopt(np.zeros((3, 4), np.int32))
