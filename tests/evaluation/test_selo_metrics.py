"""SeLo metrics: known answers on hand-built maps, the undefined cases, and slab-wise == whole-image."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy import ndimage

from geo_dfm.evaluation import UndefinedMetricWarning, selo_metrics
from geo_dfm.evaluation.metrics import RSU_BETA, RSU_EPSILON
from tile_tools.errors import InputError

H, W = 600, 800
RECTANGLE = [[100.0, 100.0], [700.0, 100.0], [700.0, 500.0], [100.0, 500.0]]
# centre (400, 300); mean vertex distance sqrt(300² + 200²) = 360.555 → radius int(540.83) = 540
RADIUS = 540


def squares(*centres, half=20, value=1.0, shape=(H, W)) -> np.ndarray:
    """A zero map with (2·half+1)² squares of ``value`` at ``(x, y)`` centres."""
    probability = np.zeros(shape)
    for x, y in centres:
        probability[y - half : y + half + 1, x - half : x + half + 1] = value
    return probability


def whole_image_reference(probability, regions):
    """The selo.md §2 definitions transliterated on whole arrays (independent of the slab code)."""
    mask = np.zeros(probability.shape)
    cv2.fillPoly(mask, [np.array(points, np.int32) for points in regions], 1)
    inside, total, area = (probability * mask).sum(), probability.sum(), mask.sum()
    rsu = 1 - np.exp(-RSU_BETA * inside / (total - inside + RSU_EPSILON) * (mask.size - area) / area)
    grey = np.asarray(probability * 255.0, dtype=np.uint8)
    for _ in range(5):
        grey = cv2.boxFilter(grey, ddepth=-1, ksize=(50, 50))
    top = ndimage.maximum_filter(grey, size=1000)
    labels, count = ndimage.label((top == grey) & (grey > 0), structure=np.ones((3, 3)))
    peaks = []
    for index in range(1, count + 1):
        rows, cols = np.nonzero(labels == index)
        x, y = int(cols.mean()), int(rows.mean())
        if probability[y, x] >= 0.5:
            peaks.append((x, y))
    return rsu, sorted(peaks)


def test_a_perfect_map_has_rsu_one():
    probability = np.zeros((H, W))
    probability[100:501, 100:701] = 1.0  # fillPoly includes the boundary
    scores = selo_metrics(probability, [RECTANGLE])
    assert scores.rsu == pytest.approx(1.0, abs=1e-12)
    assert set(scores) == {"rsu", "ras", "rda", "rmi"} and dict(scores)["rsu"] == scores.rsu


def test_a_uniform_map_has_rsu_of_chance():
    uniform = np.full((H, W), 0.3)
    area = 401 * 601
    inside = 0.3 * area
    expected = 1 - math.exp(-RSU_BETA * inside / (0.3 * (H * W - area) + RSU_EPSILON) * (H * W - area) / area)
    with pytest.warns(UndefinedMetricWarning, match="constant map"):
        scores = selo_metrics(uniform, [RECTANGLE])
    assert scores.rsu == pytest.approx(expected, rel=1e-12)
    assert scores.rsu == pytest.approx(1 - math.exp(-RSU_BETA), abs=1e-6)
    assert (scores.ras, scores.rda, scores.peaks) == (1.0, 0.0, ())  # a flat map points nowhere


def test_a_single_peak_inside_its_circle():
    scores = selo_metrics(squares((400, 300)), [RECTANGLE])
    assert len(scores.peaks) == 1 and scores.circles[0].radius == RADIUS
    (x, y), circle = scores.peaks[0], scores.circles[0]
    distance = math.hypot(x - circle.x, y - circle.y)
    assert distance <= 5  # the even 50-px box filter shifts the bump by at most half a pixel a pass
    assert scores.ras == pytest.approx((math.exp(3 * distance / RADIUS) - 1) / (math.exp(3) - 1))
    assert scores.rda == 1.0
    assert scores.rmi == pytest.approx(0.4 * scores.rsu + 0.35 * (1 - scores.ras) + 0.25)


def test_no_peaks_give_ras_one_and_rda_zero():
    faint = squares((400, 300), value=0.4)  # its peak is below P = 0.5
    scores = selo_metrics(faint, [RECTANGLE])
    assert (scores.ras, scores.rda, scores.peaks) == (1.0, 0.0, ())
    assert scores.rmi == pytest.approx(0.4 * scores.rsu)


def test_two_peaks_in_one_circle_follow_the_rda_formula():
    # two equal bumps 200 px apart: both are maxima of their 1000-px window; their centre lies midway
    scores = selo_metrics(squares((300, 300), (500, 300)), [RECTANGLE])
    assert len(scores.peaks) == 2
    (x0, y0), (x1, y1) = sorted(scores.peaks)
    assert (x1 - x0, y1 - y0) == (200, 0)
    spread = 100 / RADIUS  # each peak is 100 px from their mean
    assert scores.rda == pytest.approx(0.5 * (1 - spread) + math.exp(-0.5 * (2 + 2)))
    shift = np.mean([math.hypot(x - 400, y - 300) for x, y in scores.peaks]) / RADIUS
    assert scores.ras == pytest.approx((math.exp(3 * shift) - 1) / (math.exp(3) - 1))


def test_peaks_outside_every_circle_count_as_misses():
    small = [[380.0, 280.0], [420.0, 280.0], [420.0, 320.0], [380.0, 320.0]]  # radius int(1.5·28.28) = 42
    scores = selo_metrics(squares((650, 300)), [small])
    assert len(scores.peaks) == 1 and scores.circles[0].radius == 42
    assert scores.ras == pytest.approx(1.0) and scores.rda == 0.0


def test_an_empty_mask_gives_rsu_zero_with_a_warning():
    outside = [[-50.0, -50.0], [-10.0, -50.0], [-10.0, -10.0], [-50.0, -10.0]]
    with pytest.warns(UndefinedMetricWarning, match="empty mask"):
        scores = selo_metrics(squares((400, 300)), [outside])
    assert scores.rsu == 0.0 and any("empty mask" in note for note in scores.notes)


def test_a_zero_radius_region_is_hit_only_at_its_centre():
    point = [[400.2, 300.3]] * 3  # mean distance 0.36 px to the centre (400, 300): radius 0
    with pytest.warns(UndefinedMetricWarning, match="radius 0"):
        scores = selo_metrics(squares((600, 300)), [point, RECTANGLE])
    assert scores.circles[0].radius == 0
    # region 0 missed (term 1), region 1 holds the peak 200 px from its centre
    (x, y) = scores.peaks[0]
    shift = (1.0 + math.hypot(x - 400, y - 300) / RADIUS) / 2
    assert scores.ras == pytest.approx((math.exp(3 * shift) - 1) / (math.exp(3) - 1))
    assert scores.rda == pytest.approx(0.5)


def test_an_all_zero_map_scores_zero():
    with pytest.warns(UndefinedMetricWarning, match="constant map"):
        scores = selo_metrics(np.zeros((H, W)), [RECTANGLE])
    assert (scores.rsu, scores.ras, scores.rda, scores.rmi) == (0.0, 1.0, 0.0, 0.0)


@pytest.mark.parametrize("block_rows", [64, 333, None])
def test_slabs_give_the_whole_image_results(block_rows):
    rng = np.random.default_rng(3)
    height, width = 1700, 420  # taller than one slab plus both halos
    noise = ndimage.gaussian_filter(rng.random((height, width)), 40)
    probability = (noise - noise.min()) / (noise.max() - noise.min())
    probability[900:1300, 50:350] = 1.0  # smoothed, a flat top ~150 rows high: across several slabs
    regions = [
        [[30.5, 1050.2], [380.9, 1070.0], [300.0, 1400.7]],
        [[-20.0, 40.0], [200.0, -30.0], [260.0, 500.0]],
    ]
    scores = selo_metrics(probability, regions, block_rows=block_rows)
    rsu, peaks = whole_image_reference(probability, regions)
    assert scores.rsu == pytest.approx(rsu, rel=1e-9)
    assert sorted(scores.peaks) == peaks and len(peaks) >= 2


def test_bad_input_is_refused():
    with pytest.raises(InputError, match="regions"):
        selo_metrics(np.zeros((10, 10)), [])
    with pytest.raises(InputError, match="polygon 0"):
        selo_metrics(np.zeros((10, 10)), [[[1.0, 2.0, 3.0]]])
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        selo_metrics(np.full((10, 10), 1.5), [RECTANGLE])
    with pytest.raises(InputError, match="probability"):
        selo_metrics(np.zeros((10, 10), np.uint8), [RECTANGLE])
