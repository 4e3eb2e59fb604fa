"""The generate job without diffusers: seeds and names, cancellation, the backend's contract."""

from __future__ import annotations

import numpy as np
import pytest

from geo_dfm.errors import JobCancelled
from geo_dfm.jobs.generate import GenerateParams, plan_images, run_generate
from geo_dfm.progress import Progress


class FlatImages:
    """Grey images whose level is the seed; ``cancel`` is set after the first call."""

    name = "flat"

    def __init__(self, progress: Progress | None = None, size_off: int = 0) -> None:
        self.progress, self.size_off, self.calls = progress, size_off, 0

    def describe(self):
        return {"name": self.name}

    def generate(self, requests, settings, on_step=None):
        self.calls += 1
        if self.progress is not None and self.calls == 2:
            self.progress.cancel_event.set()
        if on_step is not None:
            on_step()
        size = settings.size + self.size_off
        return [np.full((size, size, 3), r.seed % 256, np.uint8) for r in requests]


def test_image_k_has_seed_plus_k_and_a_name_from_its_prompt_and_seed():
    planned = plan_images(["Solar farm!", "solar farm"], 2, 10)
    assert [(p.request.prompt, p.request.seed) for p in planned] == [
        ("Solar farm!", 10),
        ("Solar farm!", 11),
        ("solar farm", 12),
        ("solar farm", 13),
    ]
    assert [p.name for p in planned] == [
        "solar_farm_s10.png",
        "solar_farm_s11.png",
        "solar_farm_2_s12.png",
        "solar_farm_2_s13.png",
    ]


def test_a_cancelled_run_stops_at_the_next_step_and_leaves_nothing(tmp_path):
    progress = Progress()
    backend = FlatImages(progress)
    params = GenerateParams(prompts=("a", "b"), output=str(tmp_path / "out"), count=4, size=16, batch_size=2)
    with pytest.raises(JobCancelled):
        run_generate(params, progress, backend)
    assert backend.calls == 2
    assert list(tmp_path.iterdir()) == []


def test_images_of_the_wrong_size_are_our_bug_not_the_users(tmp_path):
    params = GenerateParams(prompts=("a",), output=str(tmp_path / "out"), count=1, size=16)
    with pytest.raises(ValueError, match=r"expected \(16, 16, 3\) uint8"):
        run_generate(params, Progress(), FlatImages(size_off=8))
    assert list(tmp_path.iterdir()) == []
