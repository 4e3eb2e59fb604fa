"""Fixtures: the trained toy encoder and a miniature ``rs5m_test_data`` (synthetic content)."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo_dfm.evaluation.synthetic_data import write_miniature_test_data


@pytest.fixture(scope="session")
def test_data_dir(tmp_path_factory) -> Path:
    return write_miniature_test_data(tmp_path_factory.mktemp("rs5m") / "rs5m_test_data")


@pytest.fixture(scope="session")
def toy_encoder(toy_model_path):
    from geo_dfm.models.factory import load_encoder

    return load_encoder("toy", device="cpu")
