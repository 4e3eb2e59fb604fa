"""`geo-dfm generate` end to end on a tiny random diffusers pipeline in GeoRSSD's published layout."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geo_dfm.cli.main import main

PROMPTS = ["a satellite image of a solar farm", "an aerial image of a heliport"]
FAST = ["--size", "32", "--steps", "2", "--threads", "1"]


def generate(capsys, *args: str) -> tuple[int, str]:
    """Run ``geo-dfm generate ARGS``; returns (exit code, stderr)."""
    capsys.readouterr()
    code = main(["generate", *args])
    return code, capsys.readouterr().err


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


def images_of(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p)) for p in sorted((folder / "images").glob("*.png"))}


def test_writes_the_requested_number_of_images_of_the_requested_size(tmp_path, tiny_pipeline, capsys):
    out = tmp_path / "out"
    code, err = generate(
        capsys, *PROMPTS, "-n", "3", "--size", "48", "--steps", "2", "--threads", "1", "--batch-size", "4",
        "--weights", str(tiny_pipeline), "-o", str(out),
    )  # fmt: skip
    assert code == 0, err
    images = images_of(out)
    assert len(images) == 6
    for name, pixels in images.items():
        assert pixels.shape == (48, 48, 3) and pixels.dtype == np.uint8, name
    columns, rows = read_csv(out / "pairs.csv")
    assert columns == ["image_path", "caption", "seed", "model"]
    assert [row["caption"] for row in rows] == [PROMPTS[0]] * 3 + [PROMPTS[1]] * 3
    assert [int(row["seed"]) for row in rows] == list(range(6))
    assert {row["model"] for row in rows} == {tiny_pipeline.name}
    for row in rows:  # paths relative to the CSV's folder
        png = Image.open(out / row["image_path"])
        assert png.text["prompt"] == row["caption"] and png.text["seed"] == row["seed"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["command"] == "generate" and summary["crs"] is None
    assert (summary["images"], summary["kept"], summary["removed"]) == (6, 6, 0)
    assert summary["prompts"] == PROMPTS and summary["seeds"] == [0, 5]
    assert summary["model"]["weights"] == str(tiny_pipeline)
    assert summary["model"]["scheduler"] == "DDIMScheduler" and summary["model"]["dtype"] == "float32"
    assert summary["outputs"]["pairs"] == str(out.absolute() / "pairs.csv")
    assert summary["parameters"]["size"] == 48 and summary["parameters"]["count"] == 3


def test_same_seed_same_images_another_seed_different_ones(tmp_path, tiny_pipeline, capsys):
    common = [*PROMPTS, "-n", "2", *FAST, "--weights", str(tiny_pipeline), "--batch-size", "4"]
    assert generate(capsys, *common, "--seed", "3", "-o", str(tmp_path / "a"))[0] == 0
    assert generate(capsys, *common, "--seed", "3", "-o", str(tmp_path / "again"))[0] == 0
    assert generate(capsys, *common, "--seed", "11", "-o", str(tmp_path / "other"))[0] == 0
    a, again, other = (list(images_of(tmp_path / name).values()) for name in ("a", "again", "other"))
    assert len(a) == len(again) == len(other) == 4
    for first, second in zip(a, again, strict=True):
        np.testing.assert_array_equal(first, second)
    for first, different in zip(a, other, strict=True):
        assert np.abs(first.astype(int) - different.astype(int)).mean() > 5


def test_an_image_depends_on_its_prompt_and_seed_not_on_its_batch(tmp_path, tiny_pipeline, capsys):
    """Each image has its own generator: another batch size, or the image made alone from its prompt
    and seed, gives the same image up to float summation order (at most one level of 255)."""
    common = [*FAST, "--weights", str(tiny_pipeline), "--seed", "3"]
    assert (
        generate(capsys, *PROMPTS, "-n", "2", *common, "--batch-size", "4", "-o", str(tmp_path / "a"))[0] == 0
    )
    assert (
        generate(capsys, *PROMPTS, "-n", "2", *common, "--batch-size", "1", "-o", str(tmp_path / "b"))[0] == 0
    )
    a, b = images_of(tmp_path / "a"), images_of(tmp_path / "b")
    assert a.keys() == b.keys()
    for name in a:
        assert np.abs(a[name].astype(int) - b[name].astype(int)).max() <= 1, name
    # the third image (2nd prompt, seed 3 + 2), made alone
    code, _ = generate(
        capsys, PROMPTS[1], "-n", "1", *FAST, "--weights", str(tiny_pipeline), "--seed", "5",
        "-o", str(tmp_path / "one"),
    )  # fmt: skip
    assert code == 0
    (alone,) = images_of(tmp_path / "one").values()
    third = a["an_aerial_image_of_a_heliport_s5.png"]
    assert np.abs(alone.astype(int) - third.astype(int)).max() <= 1


def test_registered_model_is_read_from_the_hugging_face_cache(tmp_path, georssd_cache, capsys):
    out = tmp_path / "out"
    code, err = generate(capsys, PROMPTS[0], "-n", "1", *FAST, "--model", "georssd-20p", "-o", str(out))
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["name"] == "georssd-20p"
    assert summary["model"]["source"] == "https://huggingface.co/Zilun/GeoRSSD folder checkpoint/20p/22000"
    weights = Path(summary["model"]["weights"])
    assert weights.is_relative_to(georssd_cache) and weights.parts[-3:] == ("checkpoint", "20p", "22000")
    _, rows = read_csv(out / "pairs.csv")
    assert [row["model"] for row in rows] == ["georssd-20p"]


@pytest.mark.parametrize(
    ("model", "folder"), [("georssd-20p", "checkpoint/20p/22000"), ("georssd-1p", "checkpoint/1p/17000")]
)
def test_offline_without_weights_fails_fast_naming_the_folder(tmp_path, empty_cache, capsys, model, folder):
    out = tmp_path / "out"
    code, err = generate(capsys, PROMPTS[0], "--model", model, "-o", str(out))
    assert code == 2
    for expected in (folder, "Zilun/GeoRSSD", str(empty_cache), "HF_HUB_OFFLINE", "hf download", "--weights"):
        assert expected in err
    assert not out.exists() and list(tmp_path.iterdir()) == [empty_cache]


def test_the_cache_holding_another_folder_of_the_repository_is_not_enough(tmp_path, georssd_cache, capsys):
    code, err = generate(capsys, PROMPTS[0], "--model", "georssd-1p", "-o", str(tmp_path / "out"))
    assert code == 2 and "checkpoint/1p/17000" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([""], "PROMPT"),
        (["   "], "PROMPT"),
        ([], "give at least one prompt"),
        ([PROMPTS[0], "-n", "0"], "--count"),
        ([PROMPTS[0], "--size", "100"], "--size: image size must be a multiple of 8"),
        ([PROMPTS[0], "--size", "0"], "--size"),
        ([PROMPTS[0], "--steps", "0"], "--steps"),
        ([PROMPTS[0], "--guidance", "-1"], "--guidance"),
        ([PROMPTS[0], "--batch-size", "0"], "--batch-size"),
        ([PROMPTS[0], "--seed", "-1"], "--seed"),
        ([PROMPTS[0], "--negative", " "], "--negative"),
        ([PROMPTS[0], PROMPTS[0]], "given twice"),
        ([PROMPTS[0], "--filter-against", "water"], "--filter MODEL"),
        ([PROMPTS[0], "--filter", "toy"], "--filter-against"),
        ([*PROMPTS, "--filter", "toy", "--filter-margin", "3"], "--filter-margin"),
        ([PROMPTS[0], "--model", "georssd-5p"], "unknown text-to-image model"),
    ],
)
def test_bad_input_exits_2_with_no_output(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, err = generate(capsys, *args, "-o", str(out))
    assert code == 2, err
    assert message in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_folder_that_is_no_pipeline_exits_2(tmp_path, tiny_pipeline, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline, broken)
    (broken / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not a checkpoint")
    cases = [
        (tmp_path / "missing", "pipeline folder not found"),
        (tiny_pipeline / "unet", "model_index.json is missing"),
        (broken, "could not load the diffusers pipeline"),
    ]
    for folder, message in cases:
        out = tmp_path / "out"
        code, err = generate(capsys, PROMPTS[0], *FAST, "--weights", str(folder), "-o", str(out))
        assert code == 2 and message in err and str(folder) in err, err
        assert not out.exists()


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, tiny_pipeline, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not geo-dfm's")
    code, err = generate(capsys, PROMPTS[0], *FAST, "--weights", str(tiny_pipeline), "-o", str(out))
    assert code == 2 and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_without_diffusers_generate_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # what `import diffusers` sees when it is absent
    out = tmp_path / "out"
    code, err = generate(capsys, PROMPTS[0], "-o", str(out))
    assert code == 2
    assert "pip install 'geo-dfm[generate]'" in err
    assert not out.exists()


def test_help_works_without_diffusers_and_imports_no_torch():
    script = (
        "import sys\n"
        "sys.modules['diffusers'] = None\n"
        "from geo_dfm.cli.main import main\n"
        "assert main(['--help']) == 0\n"
        "assert main(['generate', '--help']) == 0\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "generate" in done.stdout and "--filter-against" in done.stdout


def test_progress_events_and_filter_counts_with_the_toy_encoder(
    tmp_path, tiny_pipeline, toy_model_path, capsys
):
    out = tmp_path / "out"
    code = main(
        ["generate", *PROMPTS, "-n", "3", *FAST, "--weights", str(tiny_pipeline), "-o", str(out),
         "--filter", "toy", "--progress", "jsonl"]
    )  # fmt: skip
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert {"event": "stage", "stage": "generate images", "total": 6} in events
    summary = events[-1]["summary"]
    assert events[-1]["event"] == "result" and summary["images"] == 6
    _, pairs = read_csv(out / "pairs.csv")
    _, scores = read_csv(out / "filter.csv")
    assert len(scores) == 6 and summary["kept"] + summary["removed"] == 6
    assert len(pairs) == summary["kept"] == sum(row["kept"] == "1" for row in scores)
    assert len(list((out / "removed").glob("*.png"))) == summary["removed"]
    assert summary["filter"]["model"]["name"] == "toy"


def test_online_with_an_unreachable_hub_fails_naming_the_folder(tmp_path, empty_cache, capsys, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: connection refused
    out = tmp_path / "out"
    code, err = generate(capsys, PROMPTS[0], "-o", str(out))
    assert code == 2, err
    assert "checkpoint/20p/22000" in err and "no connection to the Hub" in err and "--weights" in err
    assert not out.exists() and list(tmp_path.iterdir()) == [empty_cache]
