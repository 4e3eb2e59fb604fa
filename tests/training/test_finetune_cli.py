"""`geo-dfm finetune` end to end on a tiny CLIP: outputs, reloading through --adapter/--weights, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geo_dfm.cli.main import main
from geo_dfm.models.factory import load_encoder
from tests.training.conftest import colour_images

IMAGES = [image for image, _, _ in colour_images(6, seed=9)]
TEXTS = ["red things", "blue things"]


def _finetune(tiny_config_path, tiny_weights, pairs, out, *extra: str) -> int:
    return main(
        [
            "finetune", "--pairs", str(pairs), "-o", str(out), "--model-config", str(tiny_config_path),
            "--weights", str(tiny_weights), "--batch-size", "8", "--device", "cpu", "--warmup-steps", "1", *extra,
        ]
    )  # fmt: skip


def _base(tiny_config_path, tiny_weights, **kw):
    return load_encoder(model_config=str(tiny_config_path), weights=str(tiny_weights), **kw)


@pytest.mark.parametrize("method", ["lora", "loha", "oft", "ia3"])
def test_adapter_methods_run_end_to_end_and_reload_through_adapter(
    tiny_config_path, tiny_weights, pairs_csv, tmp_path, method
):
    out = tmp_path / method
    extra = ("--oft-block-size", "8") if method == "oft" else ()
    assert (
        _finetune(
            tiny_config_path,
            tiny_weights,
            pairs_csv,
            out,
            "--method",
            method,
            "--steps",
            "3",
            "--lr",
            "5e-2",
            *extra,
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    card = json.loads((out / "model_card.json").read_text())
    assert summary["method"] == card["method"] == method
    assert 0 < summary["trainable_parameters"] == card["trainable_parameters"] < summary["base_parameters"]
    assert card["training"]["steps_done"] == 3 and card["data"]["pairs"] == 32
    log_rows = (out / "train_log.csv").read_text().splitlines()
    assert log_rows[0].startswith("step,epoch,loss") and len(log_rows) == 4
    assert (out / "train_plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    base = _base(tiny_config_path, tiny_weights)
    tuned = _base(tiny_config_path, tiny_weights, adapter=str(out))
    assert np.abs(tuned.encode_images(IMAGES) - base.encode_images(IMAGES)).max() > 1e-4
    assert not (tmp_path / f"{method}.checkpoints").exists()


def test_saved_adapter_reloads_to_the_trained_models_embeddings(
    tiny_clip, pairs_csv, tmp_path, tiny_config_path, tiny_weights
):
    """The adapter folder, loaded with load_encoder(adapter=...), embeds as the model did after training."""
    import open_clip

    from geo_dfm.pairs import open_pairs
    from geo_dfm.training import TrainConfig, train_contrastive
    from geo_dfm.training.adapter_files import save_adapter, save_full_weights
    from geo_dfm.training.base import load_base_model
    from geo_dfm.training.methods import MethodOptions, prepare_model

    base = load_base_model(model_config=str(tiny_config_path), weights=str(tiny_weights))
    prepared = prepare_model(base.model, "lora", MethodOptions(rank=4), seed=0)
    config = TrainConfig(steps=4, batch_size=8, lr=5e-2, device="cpu")
    train_contrastive(
        prepared.model, base.tokenizer, open_pairs(pairs_csv), config, preprocess=base.preprocess
    )
    folder = tmp_path / "adapter"
    folder.mkdir()
    save_adapter(prepared, folder)
    save_full_weights(prepared.model, tmp_path / "merged.safetensors")
    reloaded = _base(tiny_config_path, tiny_weights, adapter=str(folder))
    merged = load_encoder(model_config=str(tiny_config_path), weights=str(tmp_path / "merged.safetensors"))
    model = prepared.model.eval()
    with torch.no_grad():
        pixels = reloaded.preprocess(IMAGES)
        expected_images = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1).numpy()
        tokens = open_clip.get_tokenizer("ViT-B-32", context_length=16)(TEXTS)
        expected_texts = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1).numpy()
    for encoder in (reloaded, merged):
        assert np.abs(encoder.encode_images(IMAGES) - expected_images).max() <= 1e-5
        assert np.abs(encoder.encode_texts(TEXTS) - expected_texts).max() <= 1e-5
    assert reloaded.logit_scale == pytest.approx(float(model.logit_scale.detach().exp()), rel=1e-6)


def test_full_fine_tuning_writes_open_clip_weights(tiny_config_path, tiny_weights, pairs_csv, tmp_path):
    out = tmp_path / "full"
    assert (
        _finetune(
            tiny_config_path,
            tiny_weights,
            pairs_csv,
            out,
            "--method",
            "full",
            "--steps",
            "3",
            "--lr",
            "1e-3",
            "--accumulate",
            "2",
        )
        == 0
    )
    from safetensors.torch import load_file

    state, original = load_file(str(out / "model.safetensors")), load_file(str(tiny_weights))
    assert set(state) == set(original)  # open_clip key names: loads with --weights
    assert not torch.equal(state["visual.conv1.weight"], original["visual.conv1.weight"])
    tuned = load_encoder(model_config=str(tiny_config_path), weights=str(out / "model.safetensors"))
    assert tuned.encode_images(IMAGES).shape == (6, 16)


def test_frozen_image_tower_keeps_image_weights(tiny_config_path, tiny_weights, pairs_csv, tmp_path):
    out = tmp_path / "frozen"
    assert (
        _finetune(
            tiny_config_path,
            tiny_weights,
            pairs_csv,
            out,
            "--method",
            "frozen-image",
            "--steps",
            "2",
            "--lr",
            "1e-3",
        )
        == 0
    )
    from safetensors.torch import load_file

    state, original = load_file(str(out / "model.safetensors")), load_file(str(tiny_weights))
    assert all(torch.equal(state[k], original[k]) for k in original if k.startswith("visual."))
    assert not torch.equal(state["text_projection"], original["text_projection"])


def test_bad_input_exits_2_and_leaves_no_output(tiny_config_path, tiny_weights, pairs_csv, tmp_path, capsys):
    out = tmp_path / "bad"
    assert _finetune(tiny_config_path, tiny_weights, pairs_csv, out, "--method", "prefix") == 2
    assert _finetune(tiny_config_path, tiny_weights, tmp_path / "missing.csv", out) == 2
    assert "pairs not found" in capsys.readouterr().err
    assert _finetune(tiny_config_path, tiny_weights, pairs_csv, out, "--val-dir", str(tmp_path / "nope")) == 2
    assert "--val-dir" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "bad.checkpoints").exists()


def test_leftover_checkpoints_need_resume(tiny_config_path, tiny_weights, pairs_csv, tmp_path, capsys):
    out = tmp_path / "run"
    args = ("--method", "lora", "--steps", "4", "--checkpoint-every", "2", "--keep-checkpoints")
    assert _finetune(tiny_config_path, tiny_weights, pairs_csv, out, *args) == 0
    assert sorted(p.name for p in (tmp_path / "run.checkpoints").iterdir()) == [
        "step-000002.pt",
        "step-000004.pt",
    ]
    assert _finetune(tiny_config_path, tiny_weights, pairs_csv, tmp_path / "run", "--overwrite", *args) == 2
    assert "--resume" in capsys.readouterr().err
    assert (
        _finetune(tiny_config_path, tiny_weights, pairs_csv, out, "--overwrite", "--resume", *args[:-1]) == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from"] == 4 and summary["steps"] == 4
    assert not (tmp_path / "run.checkpoints").exists()  # removed after success (no --keep-checkpoints)


def test_retrieval_validation_is_what_eval_retrieval_gives_with_the_adapter_and_merge_is_the_adapter(
    tiny_config_path, tiny_weights, pairs_csv, tmp_path
):
    """--val-csv validates R@K with the evaluation code on the model being trained: after the last
    step it equals `geo-dfm eval retrieval --adapter OUT`; --merge writes weights that embed as the
    adapter does."""
    from PIL import Image

    val = tmp_path / "val"
    (val / "images").mkdir(parents=True)
    rows = ["filename,title"]
    for i, (image, caption, _) in enumerate(colour_images(10, seed=3)):
        Image.fromarray(image).save(val / "images" / f"v{i}.png")
        rows.append(f"v{i}.png,{caption} number {i}")
    (val / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "lora"
    assert (
        _finetune(
            tiny_config_path, tiny_weights, pairs_csv, out, "--method", "lora", "--steps", "3", "--lr", "5e-2",
            "--val-csv", str(val / "captions.csv"), "--val-images", str(val / "images"), "--merge",
        )
        == 0
    )  # fmt: skip
    validation = json.loads((out / "summary.json").read_text())["validations"][-1]
    assert validation["step"] == 3
    header = (out / "train_log.csv").read_text().splitlines()[0].split(",")
    for k in (1, 5, 10):
        assert f"retrieval_image_to_text_r{k}" in header and f"retrieval_text_to_image_r{k}" in header
    assert main(
        ["eval", "retrieval", str(val), "--csv", str(val / "captions.csv"), "--images", str(val / "images"),
         "--model-config", str(tiny_config_path), "--weights", str(tiny_weights), "--adapter", str(out),
         "--device", "cpu", "-o", str(tmp_path / "eval")]
    ) == 0  # fmt: skip
    (evaluated,) = json.loads((tmp_path / "eval" / "summary.json").read_text())["results"].values()
    for name in ("image_to_text_r1", "text_to_image_r1", "text_to_image_r5", "mean_recall"):
        assert validation[f"retrieval_{name}"] == pytest.approx(evaluated[name], abs=1e-9), name
    adapter = _base(tiny_config_path, tiny_weights, adapter=str(out))
    merged = load_encoder(model_config=str(tiny_config_path), weights=str(out / "model.safetensors"))
    assert np.abs(merged.encode_images(IMAGES) - adapter.encode_images(IMAGES)).max() <= 1e-5
    assert np.abs(merged.encode_texts(TEXTS) - adapter.encode_texts(TEXTS)).max() <= 1e-5
    assert (
        np.abs(
            merged.encode_images(IMAGES) - _base(tiny_config_path, tiny_weights).encode_images(IMAGES)
        ).max()
        > 1e-4
    )
