"""The generate job: seeds and names, cancellation, the backend's contract, the registry (worker) entry, and
the fine-tuning reader on its pairs.csv."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geo_dfm.errors import InputError, JobCancelled
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


def test_the_registry_entry_describes_every_parameter_and_runs_from_plain_data(tmp_path, tiny_pipeline):
    from geo_dfm.jobs.registry import describe_jobs, run_job_by_name

    schema = {f["name"]: f for f in describe_jobs()["generate"]["params"]}
    assert schema["prompts"]["required"] and schema["prompts"]["type"] == "array"
    assert schema["precision"]["choices"] == ["auto", "fp32", "bf16", "fp16"]
    assert all(field["help"] for field in schema.values())
    out = tmp_path / "out"
    request = {  # what a worker request carries (JSON: lists, no tuples)
        "prompts": ["a satellite image of a solar farm"],
        "output": str(out),
        "count": 2,
        "size": 32,
        "steps": 2,
        "threads": 1,
        "weights": str(tiny_pipeline),
    }
    summary = run_job_by_name("generate", request, Progress())
    assert summary["images"] == 2 and len(list((out / "images").glob("*.png"))) == 2
    assert json.loads((out / "summary.json").read_text())["model"]["weights"] == str(tiny_pipeline)
    with pytest.raises(InputError, match="precision"):
        run_job_by_name(
            "generate", {**request, "output": str(tmp_path / "x"), "precision": "fp8"}, Progress()
        )
    assert not (tmp_path / "x").exists()


def test_the_fine_tuning_reader_takes_pairs_csv_as_it_is(tmp_path):
    """``geo-dfm finetune --pairs OUT/pairs.csv``: every kept image with its prompt, seed and model ignored."""
    from geo_dfm.pairs.sources import open_pairs

    out = tmp_path / "gen"
    prompts = ("a satellite image of a solar farm", "an aerial image of a heliport")
    run_generate(GenerateParams(prompts=prompts, output=str(out), count=3, size=16), Progress(), FlatImages())
    moved = tmp_path / "moved"
    out.rename(moved)  # paths are relative to the CSV's folder
    pairs = open_pairs(moved / "pairs.csv")
    assert len(pairs) == 6 and not pairs.skipped
    assert [r.caption for r in pairs.records] == [prompts[0]] * 3 + [prompts[1]] * 3
    assert [r.image.parent for r in pairs.records] == [moved / "images"] * 6
    first = pairs.load(0)
    assert first.caption == prompts[0]
    np.testing.assert_array_equal(np.asarray(first.image), np.full((16, 16, 3), 0, np.uint8))
