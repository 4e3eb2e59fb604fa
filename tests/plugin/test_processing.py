"""The Processing algorithms through processing.run() / runAndLoadResults() on synthetic scenes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.qgis]


@pytest.fixture
def provider(qgis_app, qgis_processing, plugin_settings, qgis_new_project):
    from qgis.core import QgsApplication

    from geo_dfm_qgis.processing_provider.provider import GeoDfmProvider

    registry = QgsApplication.processingRegistry()
    provider = GeoDfmProvider()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


def project_groups() -> dict[str, list]:
    """``{group name: [layers, top first]}`` of the current project's layer tree."""
    from qgis.core import QgsLayerTreeGroup, QgsProject

    root = QgsProject.instance().layerTreeRoot()
    return {
        node.name(): [child.layer() for child in node.findLayers()]
        for node in root.children()
        if isinstance(node, QgsLayerTreeGroup)
    }


def visible(layer) -> bool:
    from qgis.core import QgsProject

    return QgsProject.instance().layerTreeRoot().findLayer(layer.id()).isVisible()


def test_every_algorithm_has_a_group_help_for_each_parameter_and_a_help_link(provider):
    algorithms = provider.algorithms()
    assert {a.name() for a in algorithms} == {
        "localize",
        "classify",
        "search",
        "annotate",
        "finetune",
        "chips",
    }
    for algorithm in algorithms:
        assert algorithm.group() and algorithm.groupId(), algorithm.name()
        assert algorithm.helpUrl().startswith("https://github.com/geo-dfm/geo-dfm/blob/main/docs/qgis.md#")
        assert algorithm.shortHelpString()
        missing = [p.name() for p in algorithm.parameterDefinitions() if not p.help()]
        assert missing == [], (algorithm.name(), missing)
    groups = {a.name(): a.group() for a in algorithms}
    assert groups["localize"] == groups["classify"]
    assert len({groups[name] for name in ("localize", "search", "annotate", "finetune", "chips")}) == 5


def test_presets_methods_and_models_are_given_by_name(provider, small_scene):
    from qgis.core import QgsProcessingContext

    context = QgsProcessingContext()
    classify = provider.algorithm("classify")
    ok, message = classify.checkParameterValues(
        {"INPUT": str(small_scene), "PRESET": "landcover", "MODEL": "toy", "OUTPUT": "/tmp/x"}, context
    )
    assert ok, message
    localize = provider.algorithm("localize")
    ok, message = localize.checkParameterValues(
        {"INPUT": str(small_scene), "QUERIES": "water", "METHOD": "selo", "OUTPUT": "/tmp/x"}, context
    )
    assert ok, message
    ok, _ = localize.checkParameterValues(
        {"INPUT": str(small_scene), "QUERIES": "water", "METHOD": "no-such-method", "OUTPUT": "/tmp/x"},
        context,
    )
    assert not ok


@pytest.mark.slow
def test_a_failing_run_raises_with_geo_dfms_message(provider, small_scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    commands = []

    class Recording(QgsProcessingFeedback):
        def pushCommandInfo(self, info):  # the command line, as the Processing log shows it
            commands.append(info)

    with pytest.raises(QgsProcessingException) as raised:
        processing.run(
            "geodfm:chips",
            {"INPUT": str(small_scene), "CHIP_SIZE": "12 parsecs", "OUTPUT": str(tmp_path / "c")},
            feedback=Recording(),
        )
    message = str(raised.value)  # geo-dfm's own words, passed on
    assert "exit code 2" in message and "--chip-size" in message and "12 parsecs" in message
    assert "--chip-size '12 parsecs'" in commands[0] or "--chip-size 12 parsecs" in commands[0]
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_cancel_fails_the_run_and_leaves_no_output(provider, small_scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.progressChanged.connect(lambda _value: feedback.cancel())
    with pytest.raises(QgsProcessingException, match="Cancelled"):  # qgis_process then exits non-zero
        processing.run(
            "geodfm:chips",
            {
                "INPUT": str(small_scene),
                "CHIP_SIZE": "8",
                "OVERLAP": "0",
                "OUTPUT": str(tmp_path / "cancelled"),
            },
            feedback=feedback,
        )
    assert feedback.isCanceled()
    assert not (tmp_path / "cancelled").exists()


@pytest.mark.slow
def test_chip_scene_writes_chips_and_loads_their_footprints(provider, small_scene, tmp_path):
    import processing
    import rasterio
    from qgis.core import QgsProcessingFeedback, QgsVectorLayer

    feedback = QgsProcessingFeedback()
    progress = []
    feedback.progressChanged.connect(progress.append)
    result = processing.runAndLoadResults(
        "geodfm:chips",
        {"INPUT": str(small_scene), "CHIP_SIZE": "32", "OVERLAP": "0", "OUTPUT": str(tmp_path / "chips")},
        feedback=feedback,
    )
    index = QgsVectorLayer(result["INDEX"], "index", "ogr")
    assert index.isValid() and index.crs().authid() == "EPSG:32633"
    assert index.featureCount() == 3 * 2  # 96×64 px in 32 px chips without overlap
    chip_files = sorted((tmp_path / "chips" / "chips").glob("*.tif"))
    assert len(chip_files) == 6
    with rasterio.open(chip_files[0]) as chip:
        assert chip.crs.to_epsg() == 32633 and (chip.width, chip.height) == (32, 32)
    assert progress and max(progress) == pytest.approx(100.0)
    assert json.loads((tmp_path / "chips" / "summary.json").read_text())["chips"] == 6
    ((footprints,),) = project_groups().values()
    assert footprints.featureCount() == 6 and footprints.crs().authid() == "EPSG:32633"


@pytest.mark.slow
def test_localize_loads_one_styled_heatmap_and_hot_region_layer_per_query(
    provider, synthetic_scene, toy_model_path, tmp_path
):
    import processing
    import rasterio
    from affine import Affine
    from qgis.core import QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

    scene = synthetic_scene("localize", width=160, height=128, seed=7)
    result = processing.runAndLoadResults(
        "geodfm:localize",
        {
            "INPUT": str(scene.path),
            "QUERIES": "water\nforest",
            "MODEL": "toy",
            "OUTPUT": str(tmp_path / "loc"),
        },
    )
    summary = json.loads(Path(result["SUMMARY"]).read_text())
    assert summary["queries"] == ["water", "forest"]
    assert result["HEATMAP"] == summary["outputs"]["heatmaps"]["water"]
    assert result["HEATMAPS"] == [summary["outputs"]["heatmaps"][q] for q in ("water", "forest")]
    with rasterio.open(result["HEATMAP"]) as heatmap:
        factor = heatmap.transform.a / scene.transform.a  # chip-level maps are decimated by default
        assert factor >= 1 and factor == int(factor)
        assert heatmap.crs == scene.crs and heatmap.transform.almost_equals(
            scene.transform @ Affine.scale(factor)
        )
        assert (heatmap.width, heatmap.height) == (-(-160 // int(factor)), -(-128 // int(factor)))

    (layers,) = project_groups().values()  # one group for the run, in the panel's order
    assert [type(layer) for layer in layers] == [QgsVectorLayer, QgsRasterLayer] * 2
    assert [layer.name() for layer in layers] == [
        "hot regions: water",
        "heatmap: water",
        "hot regions: forest",
        "heatmap: forest",
    ]
    assert [visible(layer) for layer in layers] == [True, True, False, False]
    regions = layers[::2]
    assert (
        sum(r.featureCount() for r in regions)
        == QgsVectorLayer(result["REGIONS"], "all", "ogr").featureCount()
    )
    for query, layer in zip(("water", "forest"), regions, strict=True):
        assert {f["query"] for f in layer.getFeatures()} <= {query}
        assert layer.crs().authid() == "EPSG:32633" and layer.labelsEnabled()
    for heatmap in layers[1::2]:
        assert isinstance(heatmap.renderer(), QgsSingleBandPseudoColorRenderer)
        items = heatmap.renderer().shader().rasterShaderFunction().colorRampItemList()
        assert items[0].color.alpha() == 0 and 0 < heatmap.renderer().opacity() < 1


@pytest.mark.slow
def test_classify_with_a_preset_loads_the_class_raster_under_its_label_polygons(
    provider, synthetic_scene, toy_model_path, tmp_path
):
    import processing
    import rasterio
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    scene = synthetic_scene("classify", width=128, height=128, seed=8)
    result = processing.runAndLoadResults(
        "geodfm:classify",
        {"INPUT": str(scene.path), "PRESET": "landcover", "MODEL": "toy", "OUTPUT": str(tmp_path / "cls")},
    )
    summary = json.loads(Path(result["SUMMARY"]).read_text())
    assert summary["labels"][:2] == ["water", "forest"] and len(summary["labels"]) >= 5  # the preset's
    with rasterio.open(result["CLASSES"]) as classes:
        assert classes.crs == scene.crs and classes.dtypes[0] == "uint8"
        colormap = classes.colormap(1)
    (layers,) = project_groups().values()
    regions, chips, class_layer = layers
    assert isinstance(class_layer, QgsRasterLayer) and class_layer.source() == result["CLASSES"]
    renderer = class_layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer) and renderer.opacity() < 1
    styled = {c.label: c.color.getRgb()[:3] for c in renderer.classes()}
    assert set(styled) == set(summary["labels"])
    for value, label in enumerate(summary["labels"]):
        assert styled[label] == colormap[value][:3]  # the colours of the file's colour table
    assert visible(regions) and not visible(chips) and visible(class_layer)
    assert regions.crs().authid() == "EPSG:32633" and regions.labelsEnabled()
    assert {c.value() for c in regions.renderer().categories()} <= set(summary["labels"])


@pytest.mark.slow
def test_search_loads_ranked_footprints(provider, synthetic_scene, toy_model_path, tmp_path):
    import processing
    from qgis.core import QgsVectorLayer

    scene = synthetic_scene("search", width=128, height=128, seed=9)
    result = processing.runAndLoadResults(
        "geodfm:search",
        {
            "INPUTS": [str(scene.path)],
            "QUERY": "water",
            "TOP_K": 5,
            "MODEL": "toy",
            "OUTPUT": str(tmp_path / "found.gpkg"),
        },
    )
    assert result["OUTPUT"] == str(tmp_path / "found.gpkg")
    results = QgsVectorLayer(result["RESULTS"], "results", "ogr")
    assert results.isValid() and results.crs().authid() == "EPSG:32633"
    ranks = sorted(f["rank"] for f in results.getFeatures())
    assert ranks == list(range(1, len(ranks) + 1)) and 1 <= len(ranks) <= 5
    scores = [f["score"] for f in sorted(results.getFeatures(), key=lambda f: f["rank"])]
    assert scores == sorted(scores, reverse=True)
    assert Path(result["INDEX"]).is_dir() and any(Path(result["INDEX"]).iterdir())  # reused by later searches
    ((loaded,),) = project_groups().values()
    assert loaded.name() == "search: water" and loaded.featureCount() == len(ranks) and loaded.labelsEnabled()


def test_finetune_runs_pairs_then_finetune_into_one_folder(provider, synthetic_scene, tmp_path):
    """The two geo-dfm commands it runs (what `geo-dfm pairs` / `geo-dfm finetune` take), built before
    anything runs; an output folder holding other files is refused."""
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProject, QgsVectorLayer

    scene = synthetic_scene("train", width=96, height=96, seed=3)
    labels = QgsVectorLayer(f"{scene.truth_path}|layername=truth", "truth", "ogr")
    QgsProject.instance().addMapLayer(labels)
    algorithm = provider.algorithm("finetune")
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = tmp_path / "tuned"
    parameters = {
        "INPUT": str(scene.path),
        "LABELS": labels.id(),
        "LABEL_FIELD": "class_name",
        "STEPS": 3,
        "MODEL": "toy",
        "CHIP_SIZE": "32",
        "OUTPUT": str(out),
    }
    ok, message = algorithm.checkParameterValues(parameters, context)
    assert ok, message
    pairs, train = algorithm.job_spec(parameters, context).calls()
    assert pairs.argv[:9] == (
        "pairs",
        str(scene.path),
        str(scene.truth_path),
        "--label-field",
        "class_name",
        "-o",
        f"{out}/pairs",
        "--layer",
        "truth",
    )
    assert pairs.argv[pairs.argv.index("--chip-size") + 1] == "32"
    assert train.argv[:5] == ("finetune", "--pairs", f"{out}/pairs/pairs.csv", "-o", f"{out}/adapter")
    assert train.argv[train.argv.index("--steps") + 1] == "3" and "--model" in train.argv
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(QgsProcessingException, match="not empty"):
        algorithm.job_spec(parameters, context)


@pytest.mark.slow
def test_annotate_over_a_folder_and_a_layer_loads_the_batch_layers(
    provider, synthetic_scene, toy_model_path, tmp_path
):
    import shutil

    import processing
    from qgis.core import QgsRasterLayer, QgsSingleBandPseudoColorRenderer, QgsVectorLayer

    folder = tmp_path / "tiles"
    folder.mkdir()
    scene = synthetic_scene("a", width=64, height=64, seed=31)
    shutil.move(scene.path, folder / "a.tif")
    other = synthetic_scene("b", width=64, height=64, seed=32)
    result = processing.runAndLoadResults(
        "geodfm:annotate",
        {
            "INPUTS": [str(other.path)],
            "FOLDER": str(folder),
            "QUERIES": "water",
            "MODEL": "toy",
            "CHIP_SIZE": "32",
            "OUTPUT": str(tmp_path / "batch"),
        },
    )  # localize only, to keep it short: classify in a batch runs in the panel test
    summary = json.loads(Path(result["SUMMARY"]).read_text())
    assert summary["scenes"]["done"] == 2 and summary["scenes"]["failed"] == 0
    scenes = QgsVectorLayer(result["SCENES"], "scenes", "ogr")
    assert scenes.isValid() and scenes.featureCount() == 2
    assert QgsVectorLayer(result["HOTSPOTS"], "h", "ogr").isValid() and result["REGIONS"] is None
    (layers,) = project_groups().values()  # one group per run, styled as the panel styles them
    names = {layer.name(): layer for layer in layers}
    assert set(names) == {"hot regions: water", "heatmap mosaic: water", "scenes"}
    assert names["hot regions: water"].labelsEnabled()
    heatmap = names["heatmap mosaic: water"]
    assert isinstance(heatmap, QgsRasterLayer) and heatmap.source() in result["MOSAICS"]
    assert isinstance(heatmap.renderer(), QgsSingleBandPseudoColorRenderer)
    assert all(layer.crs().authid() == "EPSG:32633" for layer in layers)


def test_annotate_sends_labels_or_a_preset_and_queries_as_geo_dfm_annotate_takes_them(provider, tmp_path):
    from qgis.core import QgsProcessingContext, QgsProcessingException

    from tests.plugin.panel_helpers import write_scene

    folder = tmp_path / "tiles"
    folder.mkdir()
    for name in ("b.tif", "a.TIF"):
        write_scene(folder / name, 3)
    (folder / "readme.txt").write_text("not a scene")
    algorithm = provider.algorithm("annotate")
    context = QgsProcessingContext()
    parameters = {
        "FOLDER": str(folder),
        "QUERIES": "water\nairport",
        "LABELS": "water, town",
        "OUTPUT": "/tmp/o",
    }
    (call,) = algorithm.job_spec(parameters, context).calls()
    assert call.argv[:5] == ("annotate", str(folder / "a.TIF"), str(folder / "b.tif"), "-o", "/tmp/o")
    assert call.argv[5:11] == ("--queries", "water", "--queries", "airport", "--labels", "water,town")
    (preset,) = algorithm.job_spec({**parameters, "PRESET": "landcover"}, context).calls()
    assert preset.argv[preset.argv.index("--preset") + 1] == "landcover" and "--labels" not in preset.argv
    with pytest.raises(QgsProcessingException, match="holds no raster files"):
        algorithm.job_spec({**parameters, "FOLDER": str(tmp_path)}, context)
