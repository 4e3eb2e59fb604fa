"""`geo-dfm pairs --filter`: keep pairs by CLIP scores, decisions checked against scores computed here."""

from __future__ import annotations

import json
import tarfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geo_dfm.cli.main import main

RS = ("forest", "water")
OTHER = ("bare soil", "town")


@pytest.fixture(scope="module")
def chips(tmp_path_factory, toy_model_path):
    """Pure 64 px chips of a fresh synthetic scene, half captioned with their class, half with another."""
    from geo_dfm.synthetic import CLASS_NAMES, render_scene

    folder = tmp_path_factory.mktemp("filter")
    scene = render_scene(384, 384, 61, classes=("water", "forest", "bare soil", "town"))
    rows, per_class = [], {}
    for row in range(0, 320 + 1, 64):
        for col in range(0, 320 + 1, 64):
            block = scene.truth[row : row + 64, col : col + 64]
            counts = np.bincount(block.ravel(), minlength=256)[:6]
            name = CLASS_NAMES[int(counts.argmax())]
            if counts.max() < 0.95 * 64 * 64 or per_class.get(name, 0) >= 4:
                continue
            per_class[name] = per_class.get(name, 0) + 1
            path = folder / f"{name.replace(' ', '_')}_{row}_{col}.png"
            Image.fromarray(scene.image[row : row + 64, col : col + 64]).save(path)
            wrong = "runway" if len(rows) % 2 else name
            rows.append((path.name, f"an aerial image of {wrong}.", name))
    frame = pd.DataFrame(rows, columns=["image_path", "caption", "truth"])
    frame.to_csv(folder / "pairs.csv", index=False)
    return folder, frame


def _scores(frame, folder):
    from geo_dfm.models.factory import load_encoder

    encoder = load_encoder(model="toy", device="cpu")
    images = encoder.encode_images(
        [np.asarray(Image.open(folder / p).convert("RGB")) for p in frame.image_path]
    )
    prompts = encoder.encode_texts([*RS, *OTHER])
    logits = 100.0 * images.astype(np.float64) @ prompts.T.astype(np.float64)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    rs = weights[:, : len(RS)].sum(1) / weights.sum(1)
    similarity = (images * encoder.encode_texts(list(frame.caption))).sum(1)
    return rs, similarity


def test_filter_keeps_exactly_the_pairs_above_both_thresholds(chips, tmp_path):
    folder, frame = chips
    rs, similarity = _scores(frame, folder)
    cut = float(np.median(similarity))
    out = tmp_path / "kept"
    assert main(
        ["pairs", "--filter", str(folder / "pairs.csv"), "-o", str(out), "--model", "toy", "--device", "cpu",
         "--rs-prompts", ";".join(RS), "--non-rs-prompts", ";".join(OTHER), "--rs-threshold", "0.5",
         "--min-similarity", f"{cut:.6f}"]
    ) == 0  # fmt: skip
    expected = (rs >= 0.5) & (similarity >= float(f"{cut:.6f}"))
    kept = pd.read_csv(out / "pairs.csv")
    assert [p.rsplit("/", 1)[-1] for p in kept.image_path] == list(frame.image_path[expected])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kept"] == int(expected.sum()) and summary["removed"] == len(frame) - int(expected.sum())
    assert summary["removed_by"].get("not_rs", 0) == int((rs < 0.5).sum())
    assert summary["thresholds"] == {"rs_probability": 0.5, "similarity": pytest.approx(cut, abs=1e-6)}
    scores = pd.read_csv(out / "scores.csv")
    np.testing.assert_allclose(scores.rs_probability, rs, atol=1e-5)
    # the toy model tells its classes apart: RS-prompt classes kept, the others removed as not RS
    assert set(frame.truth[rs >= 0.5]) == set(RS) and set(frame.truth[rs < 0.5]) == set(OTHER)
    wrong = frame.caption.str.contains("runway").to_numpy()
    assert similarity[wrong].mean() < similarity[~wrong].mean()


def test_filtered_shards_are_copied_byte_for_byte(chips, tmp_path):
    from geo_dfm.pairs import write_shards

    folder, frame = chips
    samples = [
        (f"s{i:03d}", {"png": (folder / row.image_path).read_bytes(), "txt": row.caption.encode()})
        for i, row in enumerate(frame.itertuples())
    ]
    write_shards(samples, tmp_path / "in", per_shard=5)
    out = tmp_path / "kept"
    assert main(
        ["pairs", "--filter", str(tmp_path / "in"), "-o", str(out), "--model", "toy", "--device", "cpu",
         "--rs-prompts", ";".join(RS), "--non-rs-prompts", ";".join(OTHER)]
    ) == 0  # fmt: skip
    rs, _ = _scores(frame, folder)
    members = {}
    for shard in sorted((out / "shards").glob("kept-*.tar")):
        with tarfile.open(shard) as tar:
            members.update({m.name: tar.extractfile(m).read() for m in tar})
    expected = {f"s{i:03d}" for i in np.flatnonzero(rs >= 0.5)}
    assert {name.split(".")[0] for name in members} == expected
    for key, parts in samples:
        if key in expected:
            assert members[f"{key}.png"] == parts["png"] and members[f"{key}.txt"] == parts["txt"]


def test_filter_refuses_bad_thresholds_with_no_output(chips, tmp_path):
    folder, _ = chips
    out = tmp_path / "kept"
    assert main(["pairs", "--filter", str(folder / "pairs.csv"), "-o", str(out), "--model", "toy", "--rs-threshold", "2"]) == 2  # fmt: skip
    assert main(["pairs", "--filter", str(folder / "missing.csv"), "-o", str(out), "--model", "toy"]) == 2
    assert not out.exists()
