"""The job registry and parameter objects: one description of every job for the CLI, worker and plugin."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from geo_dfm.errors import InputError
from geo_dfm.jobs.params import (
    ChipParams,
    ModelParams,
    param,
    params_from_mapping,
    params_from_options,
    params_schema,
)
from geo_dfm.jobs.registry import JOBS, describe_jobs, get_job


@dataclass(frozen=True)
class ExampleParams:
    scene: str = param(help="The scene.")
    queries: tuple[str, ...] = param(help="Texts.")
    method: str = param("blend", help="How.", choices=("blend", "selo"))
    decimate: int | None = param(None, help="Factor.")
    threshold: float = param(0.5)
    exact: bool = param(False)
    chips: ChipParams = field(default_factory=ChipParams)
    model: ModelParams = field(default_factory=ModelParams)


def test_schema_describes_names_types_defaults_choices_and_nesting():
    schema = {entry["name"]: entry for entry in params_schema(ExampleParams)}
    assert schema["scene"] == {
        "name": "scene",
        "type": "string",
        "default": None,
        "required": True,
        "choices": None,
        "help": "The scene.",
    }
    assert schema["queries"]["type"] == "array" and schema["queries"]["required"]
    assert schema["method"]["choices"] == ["blend", "selo"] and schema["method"]["default"] == "blend"
    assert schema["decimate"]["type"] == "integer" and not schema["decimate"]["required"]
    assert schema["threshold"]["type"] == "number" and schema["exact"]["type"] == "boolean"
    chips = {entry["name"]: entry for entry in schema["chips"]["fields"]}
    assert schema["chips"]["type"] == "object" and chips["edge"]["choices"] == ["shift", "pad"]
    assert schema["model"]["default"]["batch_size"] == 32
    json.dumps(schema)  # JSON-ready


def test_params_from_plain_data_check_names_and_types():
    params = params_from_mapping(
        ExampleParams,
        {
            "scene": "a.tif",
            "queries": ["water", "forest"],
            "decimate": 4,
            "threshold": 1,
            "model": {"name": "toy"},
        },
    )
    assert params.queries == ("water", "forest") and params.threshold == 1.0 and params.model.name == "toy"
    assert params.chips == ChipParams()
    with pytest.raises(InputError, match="queries: missing required parameter"):
        params_from_mapping(ExampleParams, {"scene": "a.tif"})
    with pytest.raises(InputError, match="colour: unknown parameter"):
        params_from_mapping(ExampleParams, {"scene": "a", "queries": [], "colour": 1})
    with pytest.raises(InputError, match="decimate: must be an integer"):
        params_from_mapping(ExampleParams, {"scene": "a", "queries": [], "decimate": "4"})
    with pytest.raises(InputError, match="exact: must be true or false"):
        params_from_mapping(ExampleParams, {"scene": "a", "queries": [], "exact": 1})
    with pytest.raises(InputError, match=r"model\.batch_size: must be an integer"):
        params_from_mapping(ExampleParams, {"scene": "a", "queries": [], "model": {"batch_size": 2.5}})
    with pytest.raises(InputError, match="queries: must be a list"):
        params_from_mapping(ExampleParams, {"scene": "a", "queries": "water"})


def test_params_from_flat_cli_options_fill_nested_objects():
    options = {"scene": "a.tif", "queries": ["w"], "chip_size": "100m", "model_name": "toy", "batch_size": 8}
    params = params_from_options(ExampleParams, options, {"model.name": "model_name"})
    assert params.chips.chip_size == "100m" and params.model.name == "toy" and params.model.batch_size == 8
    assert params.queries == ("w",) and params.method == "blend"


def test_every_registered_job_has_a_schema_and_a_run_function():
    described = describe_jobs()
    assert {"chips", "localize", "classify", "search", "list-models", "download-model"} <= set(described)
    for name, entry in JOBS.items():
        assert callable(entry.run), name
        assert described[name]["summary"]
        json.dumps(described[name])
    localize = {f["name"]: f for f in described["localize"]["params"]}
    assert localize["method"]["choices"] == ["blend", "selo", "dense"]
    classify = {f["name"]: f for f in described["classify"]["params"]}
    assert classify["method"]["choices"] == ["blend", "dense"]
    assert {f["name"] for f in localize["chips"]["fields"]} >= {"chip_size", "overlap", "bands", "aoi"}
    with pytest.raises(InputError, match="unknown job 'nope'"):
        get_job("nope")


def test_list_models_job_reports_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    from geo_dfm.progress import Progress

    summary = get_job("list-models").run(get_job("list-models").make_params({}), Progress())
    by_name = {m["name"]: m for m in summary["models"]}
    assert by_name["toy"]["downloaded"] and not by_name["georsclip-vit-b-32"]["downloaded"]
    assert by_name["georsclip-vit-b-32"]["default"]
