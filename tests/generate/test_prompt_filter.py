"""The RS CLIP filter: the documented rule on known embeddings, then the toy encoder on images whose
content is known (synthetic-world chips standing in for generations, behind the TextToImage seam)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geo_dfm.generate.backend import ImageRequest, SamplerSettings
from geo_dfm.generate.prompt_filter import score_images
from geo_dfm.jobs.generate import GenerateParams, run_generate
from geo_dfm.progress import Progress
from tile_tools.errors import InputError

WATER = "a satellite image of water"
FARMLAND = "a satellite image of farmland"
CONTENT = {WATER: "water", FARMLAND: "farmland"}
OTHER = {"water": "farmland", "farmland": "water"}


class KnownChips:
    """A text-to-image stand-in: the synthetic-world chip of the prompt's class, except for the seeds in
    ``wrong``, which get the other class (a generation that missed its prompt)."""

    name = "known-chips"

    def __init__(self, wrong: Sequence[int] = ()) -> None:
        self.wrong = set(wrong)
        self.steps_reported = 0

    def describe(self) -> dict[str, str]:
        return {"name": self.name}

    def generate(self, requests: Sequence[ImageRequest], settings: SamplerSettings, on_step=None):
        from geo_dfm.synthetic import render_scene

        for _ in range(settings.steps):
            if on_step is not None:
                on_step()
                self.steps_reported += 1
        images = []
        for request in requests:
            content = CONTENT[request.prompt]
            if request.seed in self.wrong:
                content = OTHER[content]
            images.append(render_scene(settings.size, settings.size, request.seed, classes=[content]).image)
        return images


def run(tmp_path: Path, name: str, backend: KnownChips, **params) -> dict:
    values = {
        "prompts": (WATER, FARMLAND),
        "count": 4,
        "size": 96,
        "steps": 1,
        "filter_model": "toy",
        "threads": 1,
    }
    values.update(params)
    return run_generate(GenerateParams(output=str(tmp_path / name), **values), Progress(), backend)


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_rule_on_known_embeddings():
    texts = ["own", "rival a", "rival b"]
    text_embeddings = np.eye(3)
    images = np.asarray([[0.9, 0.3, 0.1], [0.2, 0.1, 0.7], [0.5, 0.5, 0.0]])
    scores = score_images(images, [0, 0, 1], text_embeddings, texts)
    assert [s.rival for s in scores] == ["rival a", "rival b", "own"]
    np.testing.assert_allclose([s.margin for s in scores], [0.6, -0.5, 0.0])
    np.testing.assert_allclose([s.own_score for s in scores], [0.9, 0.2, 0.5])


def test_filter_keeps_images_of_their_prompt_and_removes_the_others(tmp_path, toy_model_path):
    backend = KnownChips(wrong=[2, 5])  # seed 2: farmland for the water prompt; seed 5: water for farmland
    summary = run(tmp_path, "out", backend)
    out = tmp_path / "out"
    pairs = read_rows(out / "pairs.csv")
    assert [int(r["seed"]) for r in pairs] == [0, 1, 3, 4, 6, 7]
    assert all(r["model"] == "known-chips" for r in pairs)
    assert all((out / r["image_path"]).is_file() and r["image_path"].startswith("images/") for r in pairs)
    assert sorted(p.name for p in (out / "removed").iterdir()) == [
        "a_satellite_image_of_farmland_s5.png",
        "a_satellite_image_of_water_s2.png",
    ]
    assert (summary["kept"], summary["removed"]) == (6, 2)
    assert summary["per_prompt"][WATER] == {"generated": 4, "kept": 3, "removed": 1}
    scores = read_rows(out / "filter.csv")
    assert [r["kept"] for r in scores] == ["1", "1", "0", "1", "1", "0", "1", "1"]
    assert {r["rival"] for r in scores if r["caption"] == WATER} == {FARMLAND}
    assert backend.steps_reported == 2  # on_step is the job's cancellation check, called every step
    assert json.loads((out / "summary.json").read_text())["filter"]["margin"] == 0.01


def test_margins_follow_the_documented_rule_and_threshold(tmp_path, toy_model_path):
    from geo_dfm.models.factory import load_encoder

    run(tmp_path, "all", KnownChips(wrong=[2, 5]), filter_margin=-2.0)
    scores = read_rows(tmp_path / "all" / "filter.csv")
    assert all(r["kept"] == "1" for r in scores)
    # the margins recomputed from the written PNGs with the encoder itself
    encoder = load_encoder(model="toy", device="cpu")
    texts = encoder.encode_texts([WATER, FARMLAND])
    images = [np.asarray(Image.open(tmp_path / "all" / r["image_path"])) for r in scores]
    cosines = encoder.encode_images(images) @ texts.T
    own = np.asarray([0 if r["caption"] == WATER else 1 for r in scores])
    expected = cosines[np.arange(len(own)), own] - cosines[np.arange(len(own)), 1 - own]
    margins = np.asarray([float(r["margin"]) for r in scores])
    np.testing.assert_allclose(margins, expected, atol=1e-5)
    assert (margins[[2, 5]] < 0).all() and (np.delete(margins, [2, 5]) > 0.5).all()
    # a threshold between the margins keeps exactly those at or above it
    threshold = float(np.sort(margins)[4])
    summary = run(tmp_path, "half", KnownChips(wrong=[2, 5]), filter_margin=threshold)
    kept = {int(r["seed"]) for r in read_rows(tmp_path / "half" / "pairs.csv")}
    assert kept == {i for i, m in enumerate(margins) if m >= threshold - 1e-6}
    assert summary["kept"] == len(kept) == 4


def test_a_single_prompt_is_filtered_against_the_given_texts(tmp_path, toy_model_path):
    summary = run(
        tmp_path, "out", KnownChips(wrong=[1]), prompts=(WATER,), count=3, filter_against=(FARMLAND,)
    )
    assert [int(r["seed"]) for r in read_rows(tmp_path / "out" / "pairs.csv")] == [0, 2]
    assert summary["filter"]["against"] == [FARMLAND] and summary["removed"] == 1


def test_a_single_prompt_without_rival_texts_is_refused_before_any_work(tmp_path):
    backend = KnownChips()
    with pytest.raises(InputError, match="filter_against"):
        run(tmp_path, "out", backend, prompts=(WATER,))
    assert backend.steps_reported == 0 and not (tmp_path / "out").exists()
