"""Finding weights in the caches, failing fast and clearly offline, and `geo-dfm models`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from geo_dfm.cli.main import main
from geo_dfm.errors import WeightsNotFoundError
from geo_dfm.models.checkpoints import cached_weights, hf_cache_dir, resolve_weights
from geo_dfm.models.registry import get_model_spec, list_model_specs


def test_offline_missing_weights_fail_fast_with_one_clear_message():
    from geo_dfm.models.factory import load_encoder

    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        load_encoder("georsclip-vit-b-32")
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    message = str(info.value)
    assert "ckpt/RS5M_ViT-B-32.pt" in message and "huggingface.co/Zilun/GeoRSCLIP" in message
    assert str(hf_cache_dir()) in message and "HF_HUB_OFFLINE" in message
    assert "geo-dfm models download georsclip-vit-b-32" in message and "--weights PATH" in message


def test_no_network_without_the_offline_flag_also_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError, match="127.0.0.1 is not reachable"):
        resolve_weights(get_model_spec("remoteclip-vit-b-32"))
    assert time.perf_counter() - start < 2.0


def test_zip_release_message_says_where_the_member_goes():
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(get_model_spec("skyclip-vit-l-14"))
    message = str(info.value)
    assert "SkyCLIP_ViT_L14_top30pct.zip" in message and "unzip it" in message
    assert str(Path(os.environ["GEO_DFM_CACHE"]) / "weights" / "skyclip-vit-l-14" / "epoch_20.pt") in message


def test_a_file_in_a_temporary_hf_cache_is_found(hf_cache_placer):
    cache = Path(os.environ["HF_HUB_CACHE"])
    assert hf_cache_dir() == cache
    spec = get_model_spec("georsclip-vit-l-14")
    assert cached_weights(spec) is None
    placed = hf_cache_placer(cache, spec.hf_repo, spec.filename, b"weights")
    assert resolve_weights(spec) == placed
    # open_clip tag entries prefer the safetensors file when both are there
    clip = get_model_spec("clip-vit-b-32-openai")
    pickle_file = hf_cache_placer(cache, clip.hf_repo, "open_clip_pytorch_model.bin", b"x")
    assert cached_weights(clip) == pickle_file
    safe = hf_cache_placer(cache, clip.hf_repo, "open_clip_model.safetensors", b"y")
    assert cached_weights(clip) == safe


def test_models_list_and_info(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for spec in list_model_specs():
        assert spec.name in out
    assert "georsclip-vit-b-32 *" in out
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == {spec.name for spec in list_model_specs()}
    assert main(["models", "info", "georsclip-vit-l-14-336", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["architecture"] == "ViT-L-14-336-quickgelu" and info["input_size"] == 336
    assert info["quick_gelu"] is True and info["local_file"] is None
    assert main(["models", "info", "remoteclip-rn50"]) == 0
    assert "RemoteCLIP-RN50.pt" in capsys.readouterr().out


def test_models_download_offline_and_cached(capsys, hf_cache_placer):
    assert main(["models", "download", "georsclip-vit-b-32"]) == 2
    assert "geo-dfm models download georsclip-vit-b-32" in capsys.readouterr().err
    assert main(["models", "info", "no-such-model"]) == 2
    assert "unknown model" in capsys.readouterr().err
    spec = get_model_spec("georsclip-vit-b-32")
    placed = hf_cache_placer(Path(os.environ["HF_HUB_CACHE"]), spec.hf_repo, spec.filename, b"w")
    assert main(["models", "download", "georsclip-vit-b-32"]) == 0
    assert capsys.readouterr().out.strip() == f"georsclip-vit-b-32\t{placed}"


def test_zip_release_is_unpacked_to_the_cache(tmp_path):
    import dataclasses
    import zipfile

    from geo_dfm.models.checkpoints import _download_archive

    archive = tmp_path / "SkyCLIP_ViT_B32_top50pct.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("SkyCLIP_ViT_B32_top50pct/params.txt", "lr: 1e-9")
        zf.writestr("SkyCLIP_ViT_B32_top50pct/epoch_20.pt", b"checkpoint bytes")
    spec = dataclasses.replace(get_model_spec("skyclip-vit-b-32"), url=archive.as_uri())
    counts = []
    target = _download_archive(spec, lambda done, total: counts.append((done, total)))
    assert counts and counts[-1] == (archive.stat().st_size, archive.stat().st_size)  # progress in bytes
    assert target == Path(os.environ["GEO_DFM_CACHE"]) / "weights" / "skyclip-vit-b-32" / "epoch_20.pt"
    assert target.read_bytes() == b"checkpoint bytes"
    assert [p.name for p in target.parent.iterdir()] == ["epoch_20.pt"]  # no zip or temp files left
    assert cached_weights(get_model_spec("skyclip-vit-b-32")) == target
