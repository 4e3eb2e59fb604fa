"""Chip grids: count formula, full coverage (property test), SeLo reference loop, spec conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS
from rasterio.windows import Window

from tile_tools.errors import InputError
from tile_tools.grid import ChipGridSpec, axis_starts, chip_count, regular_windows, selo_windows
from tile_tools.pixel_grid import PixelGrid
from tile_tools.units import Length, parse_bands, parse_lengths
from tile_tools.window_array import WindowArray


def reference_selo(W: int, H: int, sizes=(256, 512, 768)) -> set[tuple[int, int, int, int]]:
    """The loop of ../shared/specs/selo.md, verbatim."""
    windows = set()
    for s in sizes:
        for off in (0, s // 2):
            for c in range(off, W, s):
                c0 = c if c + s < W else W - s
                for r in range(off, H, s):
                    r0 = r if r + s < H else H - s
                    windows.add((r0, r0 + s, c0, c0 + s))
    return windows


def as_keys(windows) -> list[tuple[int, int, int, int]]:
    return [(w.row_off, w.row_off + w.height, w.col_off, w.col_off + w.width) for w in windows]


@pytest.mark.parametrize("shape", [(768, 768), (1000, 1300), (2049, 777), (800, 3000), (1536, 1024)])
def test_selo_windows_match_the_reference_loop(shape):
    height, width = shape
    keys = as_keys(selo_windows(width, height))
    assert len(keys) == len(set(keys)), "duplicates must count once"
    assert set(keys) == reference_selo(width, height)


def test_selo_small_scene_rule():
    # 600 x 400: 512 and 768 do not fit the 400 rows → only the 256 windows (the reference's own)
    assert set(as_keys(selo_windows(600, 400))) == reference_selo(600, 400, sizes=(256,))
    # smaller than every size: one window, the whole scene
    assert as_keys(selo_windows(100, 80)) == [(0, 80, 0, 100)]


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(1, 400),
    height=st.integers(1, 400),
    size=st.integers(4, 200),
    overlap_fraction=st.floats(0, 0.9),
    edge=st.sampled_from(["shift", "pad"]),
)
def test_every_pixel_is_covered_and_count_follows_the_formula(width, height, size, overlap_fraction, edge):
    stride = max(1, size - math.floor(size * overlap_fraction))
    if edge == "shift" and (width < size or height < size):
        with pytest.raises(ValueError):
            regular_windows(width, height, size, stride, edge)
        return
    windows = regular_windows(width, height, size, stride, edge)
    assert len(windows) == chip_count(width, height, size, stride)
    covered = np.zeros((height, width), dtype=np.int32)
    for w in windows:
        assert (w.width, w.height) == (size, size)
        assert w.col_off >= 0 and w.row_off >= 0
        if edge == "shift":
            assert w.col_off + size <= width and w.row_off + size <= height
        else:
            assert w.col_off < width and w.row_off < height
        covered[w.row_off : w.row_off + size, w.col_off : w.col_off + size] += 1
    assert covered.min() >= 1


def test_axis_starts_examples():
    assert axis_starts(10, 4, 4, "shift") == [0, 4, 6]
    assert axis_starts(10, 4, 4, "pad") == [0, 4, 8]
    assert axis_starts(8, 4, 4, "shift") == [0, 4]
    assert axis_starts(3, 4, 2, "pad") == [0]


def test_units_parse():
    assert Length.parse("224") == Length(224, "px")
    assert Length.parse("32px") == Length(32, "px")
    assert Length.parse("100m") == Length(100, "m")
    assert Length.parse("0.25") == Length(0.25, "fraction")
    assert Length.parse("25%") == Length(0.25, "fraction")
    assert parse_lengths("256,512,768") == (Length(256, "px"), Length(512, "px"), Length(768, "px"))
    assert parse_bands("4,3,2") == (4, 3, 2)
    with pytest.raises(InputError, match="overlap"):
        Length.parse("a lot", "overlap")
    with pytest.raises(InputError, match="one band"):
        parse_bands("1,2")


UTM_GRID = PixelGrid(1000, 600, Affine(0.5, 0, 500000, 0, -0.5, 5e6), CRS.from_epsg(32632))
FEET_GRID = PixelGrid(1000, 600, Affine(2.0, 0, 1e6, 0, -2.0, 1e6), CRS.from_epsg(2263))


def test_spec_converts_metres_with_the_grid_resolution():
    spec = ChipGridSpec.from_options("100m", "10m")
    assert spec.uses_metres
    assert spec.sizes_px(UTM_GRID) == (200,)
    assert spec.stride_px(200, UTM_GRID) == 180
    # US survey feet: 2 ft = 0.6096 m per pixel
    assert spec.sizes_px(FEET_GRID) == (round(100 / (2 * 0.3048006096012192)),)


def test_spec_scales_and_count():
    spec = ChipGridSpec.from_options(None, "0.5", "100,200")
    windows = spec.windows(UTM_GRID)
    assert len(windows) == spec.count(UTM_GRID)
    assert {w.width for w in windows} == {100, 200}
    assert len(windows) == chip_count(1000, 600, 100, 50) + chip_count(1000, 600, 200, 100)


def test_spec_errors():
    with pytest.raises(InputError, match="smaller than a 2000 px chip"):
        ChipGridSpec.from_options("2000").windows(UTM_GRID, "scene.tif")
    assert len(ChipGridSpec.from_options("2000", edge="pad").windows(UTM_GRID)) == 1
    with pytest.raises(InputError, match="no step"):
        ChipGridSpec.from_options("100", "100%").windows(UTM_GRID)
    with pytest.raises(InputError, match="no CRS"):
        ChipGridSpec.from_options("100m").windows(PixelGrid(100, 100, Affine.identity(), None), "x.tif")
    degrees = PixelGrid(100, 100, Affine(0.001, 0, 9, 0, -0.001, 48), CRS.from_epsg(4326))
    with pytest.raises(InputError, match="not in metres"):
        ChipGridSpec.from_options("100m").windows(degrees, "x.tif")
    with pytest.raises(InputError, match="^chip_size: "):
        ChipGridSpec.from_options("0.5")


def test_selo_layout_spec_uses_the_default_sizes():
    spec = ChipGridSpec.from_options(layout="selo", overlap=None)
    grid = PixelGrid(1300, 1000, Affine.identity(), None)
    assert set(as_keys(spec.windows(grid))) == reference_selo(1300, 1000)


# --- streaming planning and its limits (issue 10 items 4, 13, 17) -----------------------------------
def meets(window, region) -> bool:
    return (
        window.col_off < region.col_off + region.width
        and window.col_off + window.width > region.col_off
        and window.row_off < region.row_off + region.height
        and window.row_off + window.height > region.row_off
    )


@settings(max_examples=40, deadline=None)
@given(
    width=st.integers(300, 2000),
    height=st.integers(300, 2000),
    layout=st.sampled_from(["regular", "selo"]),
    edge=st.sampled_from(["shift", "pad"]),
    region=st.tuples(st.integers(0, 1500), st.integers(0, 1500), st.integers(1, 600), st.integers(1, 600)),
)
def test_region_restricted_enumeration_equals_filtering_the_full_list(width, height, layout, edge, region):
    grid = PixelGrid(width, height, Affine.identity(), None)
    spec = ChipGridSpec.from_options(None, "0.3", "128,300" if layout == "regular" else None, edge, layout)
    window = Window(*region)
    full = list(spec.windows(grid))
    restricted = spec.windows(grid, region=window)
    assert list(restricted) == [w for w in full if meets(w, window)]  # same windows, same order
    assert spec.count(grid, region=window) == len(restricted)
    assert spec.count(grid) == len(full)
    blocks = list(spec.iter_blocks(grid, block=100))
    assert all(len(b) <= max(100, 2000) for b in blocks)
    assert WindowArray.concat(blocks) == full


def test_window_array_is_a_compact_sequence_of_windows():
    windows = ChipGridSpec.from_options("100", "0").windows(UTM_GRID)
    assert isinstance(windows, WindowArray) and windows.array.shape == (60, 4)
    assert windows[0] == Window(0, 0, 100, 100) and windows[-1] == Window(900, 500, 100, 100)
    assert isinstance(windows[2:5], WindowArray) and list(windows[2:5]) == [
        Window(c, 0, 100, 100) for c in (200, 300, 400)
    ]
    assert windows == regular_windows(1000, 600, 100, 100)
    assert WindowArray.from_windows(list(windows)) == windows
    with pytest.raises(ValueError, match="whole-pixel"):
        WindowArray.from_windows([Window(0.5, 0, 1, 1)])
    assert not windows.array.flags.writeable


def test_overlap_one_point_zero_is_100_percent_and_refused_like_it():
    assert Length.parse("1.0") == Length(1.0, "fraction") == Length.parse("100%")
    assert Length.parse("1") == Length(1, "px")  # a whole number stays pixels
    for text in ("1.0", "100%", "1e0"):
        with pytest.raises(InputError, match=r"^overlap: an overlap of 100% leaves no step"):
            ChipGridSpec.from_options("100", text).windows(UTM_GRID)
    assert ChipGridSpec.from_options("100", "1").stride_px(100, UTM_GRID) == 99


def test_errors_name_parameters_not_flags():
    cases = {
        "edge": lambda: ChipGridSpec.from_options("100", edge="middle"),
        "layout": lambda: ChipGridSpec.from_options("100", layout="spiral"),
        "chip_size": lambda: ChipGridSpec.from_options("lots"),
        "scales": lambda: ChipGridSpec.from_options(scales="a,b"),
        "overlap": lambda: ChipGridSpec.from_options("100", "much"),
        "bands": lambda: parse_bands("x"),
    }
    for name, make in cases.items():
        with pytest.raises(InputError) as info:
            make()
        assert info.value.source == name
