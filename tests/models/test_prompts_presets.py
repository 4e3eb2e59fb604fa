"""Prompt template sets and label presets (no model needed)."""

from __future__ import annotations

import pytest

from geo_dfm.errors import InputError
from geo_dfm.models.presets import get_label_preset, list_label_presets
from geo_dfm.models.prompts import fill_templates, get_templates, list_template_sets, normalize_class_name


def test_rs105_has_105_distinct_templates_with_the_spec_examples():
    templates = get_templates("rs105")
    assert len(templates) == 105 == len(set(templates))
    assert all(t.count("{}") == 1 for t in templates)
    # examples and structure from ../shared/specs/models.md
    assert "a low resolution aerial image of the {}." in templates
    assert "an aerial image of a nice {}." in templates
    assert "a remote sensing image of many {}." in templates
    assert "a satellite image of a hard to see {}." in templates
    assert "a black and white satellite image of a {}." in templates
    assert "a remote sensing image of the cool {}." in templates
    for kind in ("remote sensing image", "aerial image", "satellite image"):
        assert sum(kind in t for t in templates) == 35
    assert not any(t.startswith("an remote") or t.startswith("a aerial") for t in templates)


def test_published_prompt_sets_and_none():
    assert get_templates("remoteclip") == ["a satellite photo of {}."]
    assert get_templates("skyclip") == ["a satellite photo of {}.", "a satellite image of {}"]
    assert get_templates("none") == ["{}"]
    assert set(list_template_sets()) == {"rs105", "remoteclip", "skyclip", "none"}


def test_user_templates_from_a_list_a_string_and_a_file(tmp_path):
    assert get_templates(["a photo of {}", " {} from above "]) == ["a photo of {}", "{} from above"]
    assert get_templates("an orthophoto of {}") == ["an orthophoto of {}"]
    path = tmp_path / "templates.txt"
    path.write_text("# my prompts\nan orthophoto of {}.\n\n{} seen from a drone\n", encoding="utf-8")
    assert get_templates(str(path)) == ["an orthophoto of {}.", "{} seen from a drone"]
    assert get_templates(path) == ["an orthophoto of {}.", "{} seen from a drone"]


@pytest.mark.parametrize("bad", [["no placeholder"], ["{} and {}"], ["a {0} photo {}"], []])
def test_bad_user_templates_are_input_errors(bad):
    with pytest.raises(InputError, match="template"):
        get_templates(bad)


def test_bad_template_file_names_the_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a photo of {}\na photo\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.txt:2"):
        get_templates(str(path))
    with pytest.raises(InputError, match="neither a template set"):
        get_templates("rs106")


def test_class_names_are_normalised_as_the_benchmarks_do():
    assert normalize_class_name("AnnualCrop") == "annualcrop"
    assert normalize_class_name("baseball_diamond") == "baseball diamond"
    assert normalize_class_name("Storage Tanks") == "storage tanks"
    assert normalize_class_name("road/street") == "road street"
    assert fill_templates("Bare Land", ["an aerial image of a {}."]) == ["an aerial image of a bare land."]


def test_label_presets_have_the_dataset_class_counts():
    assert {name: len(get_label_preset(name)) for name in list_label_presets()} == {
        "aid": 30,
        "resisc45": 45,
        "eurosat": 10,
        "landcover": len(get_label_preset("landcover")),
    }
    for name in list_label_presets():
        labels = get_label_preset(name)
        assert len(set(map(normalize_class_name, labels))) == len(labels)
    assert get_label_preset("EuroSAT")[0] == "AnnualCrop"
    assert "baseball_diamond" in get_label_preset("resisc45")
    assert "Storage Tanks" in get_label_preset("aid")
    assert len(get_label_preset("landcover")) >= 8


def test_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="resisc45"):
        get_label_preset("resisc")
