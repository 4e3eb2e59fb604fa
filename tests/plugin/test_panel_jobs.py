"""The panel covers every job: dense methods, search over several layers, batch annotate over layers and a
folder, fine-tune from labelled polygons (its adapter then in the model choice); input problems shown
next to their field before any model loads. Runs go through the module's real geo-dfm worker with the
toy model on tiny scenes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.plugin.panel_helpers import add_raster, click, group_names, save_screenshot, type_into, write_scene

pytestmark = pytest.mark.qgis


def set_mode(dock, mode: str) -> None:
    index = dock.mode_combo.findData(mode)
    assert index >= 0, (mode, [dock.mode_combo.itemData(i) for i in range(dock.mode_combo.count())])
    dock.mode_combo.setCurrentIndex(index)


def set_method(dock, method: str) -> None:
    index = dock.method_combo.findData(method)
    assert index >= 0, (method, [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())])
    dock.method_combo.setCurrentIndex(index)


def shown_problem(dock, field: str) -> str:
    label = dock.field_problems[field]
    return label.text() if not label.isHidden() else ""


def refused(dock) -> bool:
    """Run was pressed and nothing started (no task, so no worker request and no model load)."""
    click(dock.run_button)
    return dock.task is None and "Cannot run" in dock.log_view.toPlainText()


def run_and_wait(dock, wait_until, timeout: float = 240) -> str:
    click(dock.run_button)
    assert dock.task is not None, dock.log_view.toPlainText()
    wait_until(lambda: dock.task is None, timeout=timeout)
    return dock.log_view.toPlainText()


def group_layers(name: str) -> list:
    from qgis.core import QgsProject

    group = QgsProject.instance().layerTreeRoot().findGroup(name)
    assert group is not None, (name, group_names())
    return [node.layer() for node in group.findLayers()]


def job_schema(methods=(), params=()):
    fields = [{"name": "method", "type": "string", "choices": list(methods)}] if methods else []
    return {"summary": "", "params": fields + [{"name": name} for name in params]}


@pytest.fixture
def schema(dock):
    """The panel fed with a protocol-2 ``ready`` describing every panel job and the toy model (64 px
    input), without starting a worker."""
    from geo_dfm_qgis.capabilities import Capabilities

    ready = {
        "event": "ready",
        "protocol": 2,
        "jobs": {
            "localize": job_schema(["blend", "selo", "dense"]),
            "classify": job_schema(["blend", "dense"]),
            "search": job_schema(),
            "annotate": job_schema(["blend", "selo"], ["labels", "preset"]),
            "pairs": job_schema(),
            "finetune": job_schema(["lora", "ia3"]),
        },
        "presets": {"landcover": ["water", "forest"]},
        "model_info": [{"name": "toy", "input_size": 64, "downloaded": True}],
    }
    caps = Capabilities.from_ready(ready)
    dock.apply_capabilities(caps)
    dock.model_combo.setEditText("toy")
    return caps


# --- choices from the registry schema -----------------------------------------------------------------
def test_modes_and_methods_follow_the_workers_job_schemas(dock):
    """A method the registry adds (here an invented one) shows without a plugin change; modes need all
    their jobs (fine-tune: pairs and finetune)."""
    from geo_dfm_qgis.capabilities import Capabilities

    def job(methods):
        return {"summary": "", "params": [{"name": "method", "type": "string", "choices": methods}]}

    ready = {
        "event": "ready",
        "protocol": 2,
        "jobs": {
            "localize": job(["blend", "selo", "dense", "brand-new"]),
            "classify": job(["blend", "dense"]),
            "annotate": job(["blend", "selo"]),
            "finetune": job(["lora", "ia3"]),
        },
    }
    dock.apply_capabilities(Capabilities.from_ready(ready))
    modes = [dock.mode_combo.itemData(i) for i in range(dock.mode_combo.count())]
    assert modes == ["localize", "classify", "annotate"]  # no search job; fine-tune lacks `pairs`
    set_mode(dock, "localize")
    assert [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())] == [
        "blend",
        "selo",
        "dense",
        "brand-new",
    ]
    set_mode(dock, "classify")
    assert [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())] == ["blend", "dense"]
    ready["jobs"]["pairs"] = {"summary": "", "params": []}
    dock.apply_capabilities(Capabilities.from_ready(ready))
    set_mode(dock, "finetune")
    assert [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())] == ["lora", "ia3"]
    assert dock.finetune_box.isVisibleTo(dock) and not dock.queries.isVisibleTo(dock)


@pytest.mark.slow
def test_the_real_worker_offers_dense_and_every_panel_job(dock, worker_capabilities):
    caps = worker_capabilities
    modes = [dock.mode_combo.itemData(i) for i in range(dock.mode_combo.count())]
    assert {"localize", "classify", "search", "annotate", "finetune"} <= set(modes)
    for mode, job in (("localize", "localize"), ("classify", "classify"), ("finetune", "finetune")):
        set_mode(dock, mode)
        shown = [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())]
        assert shown == list(caps.choices(job, "method")) and shown, mode
    set_mode(dock, "localize")
    assert "dense" in [dock.method_combo.itemData(i) for i in range(dock.method_combo.count())]


# --- problems next to their field, before any model loads ---------------------------------------------
def test_chip_size_and_overlap_problems_show_next_to_their_fields(dock, schema, small_scene):
    dock.layer_combo.setLayer(add_raster(small_scene))  # 96×64 px at 10 m
    type_into(dock.queries, "water")
    dock.chip_size.setText("500")
    assert refused(dock)
    assert "500 px chip is larger than scene (96×64 px)" in shown_problem(dock, "chip_size")
    assert "at most 64 px" in shown_problem(dock, "chip_size")
    dock.chip_size.setText("1km")
    assert refused(dock) and "pixels (224) or metres (100m)" in shown_problem(dock, "chip_size")
    dock.chip_size.setText("700m")  # 70 px at 10 m/px: still larger than 64 px
    assert refused(dock) and "70 px chip" in shown_problem(dock, "chip_size")
    dock.chip_size.setText("320m")  # 32 px
    dock.overlap.setText("100%")
    assert refused(dock) and shown_problem(dock, "chip_size") == ""
    assert "no step between chips" in shown_problem(dock, "overlap")
    dock.overlap.setText("32px")
    assert refused(dock) and "no step between 32 px chips" in shown_problem(dock, "overlap")
    dock.overlap.setText("8px")
    assert dock.job_spec()[1] == []


def test_bands_a_ticked_layer_lacks_are_shown_next_to_the_bands(dock, schema, tmp_path):
    from qgis.core import QgsProject

    one = add_raster(write_scene(tmp_path / "one.tif", 1), "one band")
    six = add_raster(write_scene(tmp_path / "six.tif", 6), "six bands")  # added last: on top of the tree
    set_mode(dock, "search")
    assert dock.scenes_box.isVisibleTo(dock) and not dock.layer_combo.isVisibleTo(dock)
    type_into(dock.queries, "water")
    dock.set_checked_layers([six, one])
    assert dock.band_combos[0].layer() is six  # the band choices follow the first ticked layer
    for combo, band in zip(dock.band_combos, (4, 3, 2), strict=True):
        combo.setBand(band)
    assert refused(dock)
    assert shown_problem(dock, "bands") == "one band has 1 band; band 4 does not exist"
    dock.set_checked_layers([six])
    assert "64 px chip is larger than six bands (48×32 px)" in dict(
        (p.field, p.message) for p in dock.job_spec()[1]
    ).get("chip_size", "")  # no chip size: the model's input size (64 px for the toy model) is checked
    dock.chip_size.setText("16")
    spec, problems = dock.job_spec()
    assert problems == [] and spec.chips.bands == "4,3,2" and spec.scenes == (six.source(),)
    dock.set_checked_layers([])
    assert refused(dock) and "tick at least one raster layer" in shown_problem(dock, "scenes")
    QgsProject.instance().removeMapLayer(one.id())
    assert dock.scenes_list.count() == 1  # the list follows the project


def test_annotate_and_finetune_inputs_are_checked_before_the_run(dock, schema, small_scene, tmp_path):
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsProject, QgsRectangle, QgsVectorLayer
    from qgis.PyQt.QtCore import QVariant

    set_mode(dock, "annotate")
    empty = tmp_path / "no-rasters"
    empty.mkdir()
    (empty / "notes.txt").write_text("not a raster")
    dock.scene_folder.setFilePath(str(empty))
    assert refused(dock)
    assert "holds no raster files" in shown_problem(dock, "scenes")
    assert "queries" in shown_problem(dock, "queries") or "labels" in shown_problem(dock, "queries")

    scene = add_raster(small_scene)  # 500000..500960 E, 4649360..4650000 N (EPSG:32633)
    set_mode(dock, "finetune")
    dock.layer_combo.setLayer(scene)
    far_away = QgsVectorLayer("Polygon?crs=EPSG:32633", "far labels", "memory")
    far_away.dataProvider().addAttributes([QgsField("landcover", QVariant.String)])
    far_away.updateFields()
    feature = QgsFeature(far_away.fields())
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(600000, 4700000, 600500, 4700500)))
    feature["landcover"] = "water"
    far_away.dataProvider().addFeatures([feature])
    QgsProject.instance().addMapLayer(far_away)
    dock.label_layer.setLayer(far_away)
    dock.label_field.setField("")
    assert refused(dock)
    assert shown_problem(dock, "label_layer") == "the polygons of far labels do not overlap scene"
    assert "choose the field" in shown_problem(dock, "label_field")
    dock.label_field.setField("landcover")
    _, problems = dock.job_spec()
    assert [p.field for p in problems] == ["label_layer"]


# --- runs ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dense_localize_and_dense_classify_runs_add_their_layers_with_progress_during_model_load(
    dock, worker_capabilities, synthetic_scene, toy_model_path, wait_until
):
    import rasterio
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer

    scene = synthetic_scene("dense", width=64, height=64, seed=7)
    layer = add_raster(scene.path)
    dock.layer_combo.setLayer(layer)
    dock.model_combo.setEditText("toy")
    set_mode(dock, "localize")
    set_method(dock, "dense")
    type_into(dock.queries, "water")
    click(dock.run_button)
    seen = []  # (stage, busy) as the panel shows them, after it handled each event
    dock.task.eventReceived.connect(
        lambda event: (
            event.get("event") == "stage"
            and seen.append((event["stage"], dock.progress_bar.maximum() == 0, dock.stage_label.text()))
        )
    )
    assert dock.progress_bar.maximum() == 0 and dock.stage_label.text()  # busy while the worker starts
    wait_until(lambda: dock.task is None, timeout=240)
    log = dock.log_view.toPlainText()
    assert "Added 2 layers." in log, log
    assert ("load model", True, "load model…") in seen, seen
    assert dock.progress_bar.maximum() == 100 and dock.progress_bar.value() == 100
    regions, heatmap = group_layers("geo-dfm localize: water")
    with rasterio.open(heatmap.source()) as written, rasterio.open(scene.path) as source:
        assert written.crs == source.crs
        summary = json.loads(Path(heatmap.source()).with_name("summary.json").read_text())
    assert summary["parameters"]["method"] == "dense"

    set_mode(dock, "classify")
    set_method(dock, "dense")
    dock.preset_combo.setCurrentIndex(0)
    dock.set_labels(["water", "forest", "town"])
    log = run_and_wait(dock, wait_until)
    assert "Failed" not in log, log
    layers = group_layers("geo-dfm classify: water, forest, town")
    classes = next(lyr for lyr in layers if isinstance(lyr, QgsRasterLayer))
    assert isinstance(classes.renderer(), QgsPalettedRasterRenderer)
    summary = json.loads(Path(classes.source()).with_name("summary.json").read_text())
    assert summary["parameters"]["method"] == "dense"


@pytest.mark.slow
def test_search_across_two_layers_ranks_chips_of_both(
    dock, worker_capabilities, synthetic_scene, toy_model_path, wait_until
):
    first = add_raster(synthetic_scene("north", width=96, height=96, seed=8).path, "north")
    second = add_raster(synthetic_scene("south", width=96, height=96, seed=9).path, "south")
    set_mode(dock, "search")
    dock.set_checked_layers([first, second])
    dock.model_combo.setEditText("toy")
    type_into(dock.queries, "water")
    dock.chip_size.setText("32")
    dock.top_k.setValue(200)  # every chip of both scenes
    log = run_and_wait(dock, wait_until)
    assert "Added 1 layers." in log, log
    (results,) = group_layers("geo-dfm search: water")
    scenes = {feature["scene"] for feature in results.getFeatures()}
    assert {Path(s).name for s in scenes} == {"north.tif", "south.tif"}
    ranks = [feature["rank"] for feature in results.getFeatures()]
    assert sorted(ranks) == list(range(1, len(ranks) + 1))


@pytest.mark.slow
def test_annotate_over_a_folder_and_a_layer_adds_the_batch_layers(
    dock, worker_capabilities, synthetic_scene, toy_model_path, wait_until, tmp_path
):
    folder = tmp_path / "tiles"
    folder.mkdir()
    for name, seed in (("a", 11), ("b", 12)):
        scene = synthetic_scene(name, width=64, height=64, seed=seed)
        shutil.move(scene.path, folder / f"{name}.tif")
    layer = add_raster(synthetic_scene("c", width=64, height=64, seed=13).path, "c")
    set_mode(dock, "annotate")
    dock.set_checked_layers([layer])
    dock.scene_folder.setFilePath(str(folder))
    dock.model_combo.setEditText("toy")
    dock.chip_size.setText("32")
    type_into(dock.queries, "water")
    dock.preset_combo.setCurrentIndex(0)
    dock.set_labels(["water", "forest"])
    spec, problems = dock.job_spec()
    assert problems == [] and len(spec.scenes) == 3
    log = run_and_wait(dock, wait_until)
    assert "Failed" not in log, log
    layers = group_layers("geo-dfm annotate: water, water, forest")
    names = {lyr.name(): lyr for lyr in layers}
    assert {"hot regions: water", "heatmap mosaic: water", "label regions", "class mosaic", "scenes"} <= set(
        names
    )
    assert names["scenes"].featureCount() == 3
    assert all(lyr.isValid() and lyr.crs().authid() == "EPSG:32633" for lyr in layers)


@pytest.mark.slow
def test_finetune_from_labelled_polygons_puts_its_adapter_in_the_model_choice(
    dock, worker_capabilities, synthetic_scene, toy_model_path, wait_until, qgis_iface, artifacts_dir
):
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    from geo_dfm_qgis.dock import GeoDfmDock

    scene = synthetic_scene("train", width=96, height=96, seed=14)
    layer = add_raster(scene.path, "train")
    labels = QgsVectorLayer(f"{scene.truth_path}|layername=truth", "truth", "ogr")
    assert labels.isValid()
    QgsProject.instance().addMapLayer(labels)
    set_mode(dock, "finetune")
    dock.layer_combo.setLayer(layer)
    dock.label_layer.setLayer(labels)
    dock.label_field.setField("class_name")
    dock.model_combo.setEditText("toy")
    set_method(dock, "lora")
    dock.steps.setValue(2)
    dock.chip_size.setText("32")
    before = dock.model_entries()
    log = run_and_wait(dock, wait_until, timeout=300)
    assert "Failed" not in log, log
    assert "is now in the model choice" in log
    (added,) = [entry for entry in dock.model_entries() if entry not in before]
    assert added.startswith("toy + finetune-") and dock.model_combo.currentText() == added
    model = dock.model_choice()
    assert model.name == "toy" and (Path(model.adapter) / "adapter_config.json").is_file()
    card = json.loads((Path(model.adapter) / "model_card.json").read_text())
    assert card["method"] == "lora" and card["training"]["steps_done"] == 2
    (chips,) = group_layers("geo-dfm pairs: class_name")
    assert chips.featureCount() > 0
    save_screenshot(dock, artifacts_dir, "qgis-panel-finetune.png")

    again = GeoDfmDock(qgis_iface, dock.workers)  # remembered for the next session
    try:
        assert added in again.model_entries()
    finally:
        again.deleteLater()

    small = add_raster(synthetic_scene("use", width=64, height=64, seed=15).path, "use")
    set_mode(dock, "localize")
    dock.layer_combo.setLayer(small)
    type_into(dock.queries, "water")
    log = run_and_wait(dock, wait_until)  # the adapter loads in geo-dfm and maps the scene
    assert log.rstrip().endswith("Added 2 layers."), log
    (heatmap,) = [lyr for lyr in group_layers("geo-dfm localize: water") if isinstance(lyr, QgsRasterLayer)]
    summary = json.loads(Path(heatmap.source()).with_name("summary.json").read_text())
    assert Path(summary["model"]["adapter"]) == Path(model.adapter)


@pytest.mark.slow
def test_cancel_during_an_annotate_run_adds_nothing(
    dock, worker_capabilities, synthetic_scene, toy_model_path, wait_until
):
    layers = [
        add_raster(synthetic_scene(f"t{i}", width=256, height=256, seed=20 + i).path, f"t{i}")
        for i in range(2)
    ]
    set_mode(dock, "annotate")
    dock.set_checked_layers(layers)
    dock.model_combo.setEditText("toy")
    dock.chip_size.setText("16")
    type_into(dock.queries, "forest")
    before = group_names()
    click(dock.run_button)
    output = Path(dock.task.spec.output)

    def cancel_on_first_progress(event):
        task = dock.task
        if event.get("event") == "progress" and task is not None and not task.isCanceled():
            click(dock.cancel_button)

    dock.task.eventReceived.connect(cancel_on_first_progress)
    wait_until(lambda: dock.task is None, timeout=240)
    assert "Cancelled; nothing was added." in dock.log_view.toPlainText()
    assert group_names() == before
    assert not output.exists() or not (output / "annotations.gpkg").exists()
    assert dock.progress_bar.maximum() == 100 and dock.run_button.isEnabled()
