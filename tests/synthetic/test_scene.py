"""Synthetic scenes: georeferencing (checked with rasterio/pyproj), truth files, determinism, bad input."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from pyproj import Geod, Transformer
from rasterio.crs import CRS
from rasterio.features import rasterize
from scipy import ndimage

from geo_dfm.synthetic import CLASS_NAMES, NODATA_CLASS, landcover_class, make_scene, render_scene
from tile_tools.errors import InputError


def _rasterized_truth(scene) -> np.ndarray:
    """The truth polygons burnt back into the scene grid with rasterio (255 where no polygon)."""
    frame = gpd.read_file(scene.truth_path, layer="truth")
    shapes = zip(frame.geometry, frame["class_id"], strict=True)
    return rasterize(
        shapes, out_shape=scene.truth.shape, transform=scene.transform, fill=NODATA_CLASS, dtype="uint8"
    )


def test_scene_is_georeferenced_in_a_projected_crs(synthetic_scene):
    scene = synthetic_scene(width=160, height=96, crs="EPSG:32633", gsd=2.0, seed=3)
    with rasterio.open(scene.path) as src:
        assert src.crs == CRS.from_epsg(32633)
        assert (src.width, src.height, src.count, src.dtypes[0]) == (160, 96, 3, "uint8")
        assert src.res == pytest.approx((2.0, 2.0))
        assert src.transform == scene.transform
        image = np.moveaxis(src.read(), 0, 2)
        centre_x, centre_y = src.xy(src.height / 2, src.width / 2, offset="ul")
    lon, lat = Transformer.from_crs("EPSG:32633", "EPSG:4326", always_xy=True).transform(centre_x, centre_y)
    assert (lon, lat) == pytest.approx((15.0, 48.0), abs=1e-6)
    assert image.min() >= 1  # 0 is reserved for nodata
    assert len(np.unique(scene.truth)) >= 3


def test_scene_in_epsg_4326_has_ground_square_pixels(synthetic_scene):
    scene = synthetic_scene(width=64, height=64, crs="EPSG:4326", gsd=10.0, seed=1)
    with rasterio.open(scene.path) as src:
        assert src.crs == CRS.from_epsg(4326)
        left, bottom, right, top = src.bounds
    geod = Geod(ellps="WGS84")
    mid_lat = (top + bottom) / 2
    width_m = geod.inv(left, mid_lat, right, mid_lat)[2]
    height_m = geod.inv(left, top, left, bottom)[2]
    assert width_m / 64 == pytest.approx(10.0, rel=0.01)
    assert height_m / 64 == pytest.approx(10.0, rel=0.01)
    truth = gpd.read_file(scene.truth_path, layer="truth")
    assert truth.crs.to_epsg() == 4326
    assert np.array_equal(_rasterized_truth(scene), scene.truth)


def test_truth_polygons_match_the_truth_raster(synthetic_scene):
    scene = synthetic_scene(width=192, height=160, gsd=0.5, seed=11)
    frame = gpd.read_file(scene.truth_path, layer="truth")
    assert frame.crs == scene.crs
    assert set(frame["class_name"]) == {CLASS_NAMES[i] for i in np.unique(scene.truth)}
    assert (frame["class_name"] == [CLASS_NAMES[i] for i in frame["class_id"]]).all()
    pixel_area = abs(scene.transform.a * scene.transform.e)
    for name, group in frame.groupby("class_name"):
        assert group.area.sum() == pytest.approx(
            scene.mask(name).sum() * pixel_area, abs=scene.width * pixel_area
        )
    assert np.array_equal(_rasterized_truth(scene), scene.truth)
    with rasterio.open(scene.truth_raster_path) as src:
        assert src.crs == scene.crs and src.transform == scene.transform
        assert np.array_equal(src.read(1), scene.truth)
        assert src.nodata == NODATA_CLASS
        assert src.colormap(1)[landcover_class("water").id][:3] == landcover_class("water").colour


def test_same_seed_same_scene_other_seed_other_scene(tmp_path):
    first = make_scene(tmp_path / "a.tif", width=96, height=96, seed=5)
    again = make_scene(tmp_path / "b.tif", width=96, height=96, seed=5)
    other = make_scene(tmp_path / "c.tif", width=96, height=96, seed=6)
    with rasterio.open(first.path) as a, rasterio.open(again.path) as b, rasterio.open(other.path) as c:
        assert np.array_equal(a.read(), b.read())
        assert not np.array_equal(a.read(), c.read())
    assert np.array_equal(first.truth, again.truth)


def test_nodata_border(synthetic_scene):
    scene = synthetic_scene(width=80, height=72, nodata_border=6, seed=2)
    with rasterio.open(scene.path) as src:
        assert src.nodata == 0
        valid = src.dataset_mask() > 0
    inner = np.zeros_like(valid)
    inner[6:-6, 6:-6] = True
    assert np.array_equal(valid, inner)
    assert (scene.truth[~inner] == NODATA_CLASS).all()
    assert (scene.truth[inner] != NODATA_CLASS).all()
    assert np.array_equal(_rasterized_truth(scene), scene.truth)


def test_class_subset_and_synonyms(synthetic_scene):
    scene = synthetic_scene(classes=("lake", "fields"), seed=4)
    assert set(np.unique(scene.truth)) == {landcover_class("water").id, landcover_class("farmland").id}
    assert scene.mask("lake").sum() == scene.mask("water").sum() > 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lake_layout_has_one_large_lake(seed):
    rendered = render_scene(256, 256, seed, layout="lake")
    water = rendered.truth == landcover_class("water").id
    assert 0.2 <= water.mean() <= 0.4
    assert ndimage.label(water)[1] == 1


def test_scene_with_a_runway_has_a_long_strip():
    rendered = render_scene(256, 256, 9, layout="patchwork")
    assert rendered.runway is not None
    runway = rendered.truth == landcover_class("runway").id
    assert runway.sum() == pytest.approx(rendered.runway.length * rendered.runway.width, rel=0.1)


@pytest.mark.parametrize(
    ("kwargs", "source"),
    [
        ({"classes": ("volcano",)}, "classes"),
        ({"classes": ("runway",)}, "classes"),
        ({"layout": "maze"}, "layout"),
        ({"width": 8}, "width/height"),
        ({"gsd": 0}, "gsd"),
        ({"crs": "EPSG:0"}, "crs"),
        ({"nodata_border": 40}, "nodata_border"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, kwargs, source):
    with pytest.raises(InputError) as raised:
        make_scene(tmp_path / "bad.tif", **{"width": 64, "height": 64, **kwargs})
    assert raised.value.source == source
    assert list(tmp_path.iterdir()) == []
