"""The geo-dfm dock panel: pick a raster, say what to look for, press Run, get styled layers.

The choices (modes, methods, presets and their classes, models) come from what the geo-dfm worker
reports (:mod:`geo_dfm_qgis.capabilities`), remembered between sessions. The panel scrolls, so it
fits small screens; every input has a tooltip; problems are shown next to the input they concern.
"""

from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsFieldProxyModel,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsUnitTypes,
    QgsVectorLayer,
)
from qgis.gui import (
    QgsDockWidget,
    QgsFieldComboBox,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsRasterBandComboBox,
)
from qgis.PyQt.QtCore import Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.checks import SceneShape, band_problems, chip_problems
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.jobs import ChipChoice, JobSpec, ModelChoice, Problem, split_lines
from geo_dfm_qgis.links import help_url
from geo_dfm_qgis.run_folders import new_run_folder
from geo_dfm_qgis.sources import (
    bands_text,
    folder_rasters,
    layer_problem,
    shown_bands,
    vector_file,
    write_selected_features,
)
from geo_dfm_qgis.task import GeoDfmTask, ModelDownloadTask, WorkerHolder

PROJECT_SCOPE = "geo_dfm_qgis"
EXTENT_WHOLE, EXTENT_CANVAS, EXTENT_SELECTED = range(3)
PROBLEM_STYLE = "color: #b00020;"
MULTI_SCENE_MODES = ("search", "annotate")
QUERY_MODES = ("localize", "search", "annotate")
LABEL_MODES = ("classify", "annotate")
MODE_NAMES = {
    "localize": "Localize",
    "classify": "Classify",
    "search": "Search",
    "annotate": "Annotate (batch)",
    "finetune": "Fine-tune",
}
ADAPTER_ROLE = Qt.ItemDataRole.UserRole + 1  # model choice items of fine-tuned adapters: {"model", "adapter"}
DEFAULT_STEPS = 100


class GeoDfmDock(QgsDockWidget):
    """Dock panel: layer, mode, queries or labels, model, chipping, bands, extent, Run/Cancel,
    progress and log."""

    capabilitiesChanged = pyqtSignal(object)  # Capabilities reported by a worker

    def __init__(self, iface, workers: WorkerHolder, parent=None) -> None:
        super().__init__(tr("geo-dfm"), parent)
        self.setObjectName("GeoDfmDock")
        self.iface = iface
        self.workers = workers
        self.task: GeoDfmTask | None = None
        self.download_task: ModelDownloadTask | None = None
        self.capabilities = settings.capabilities()
        self.field_problems: dict[str, QLabel] = {}
        self._build()
        self.apply_capabilities(self.capabilities)
        self.restore_state()
        self._update_mode()

    # --- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        scroll = QScrollArea(self)
        scroll.setObjectName("scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        body = QWidget(scroll)
        layout = QVBoxLayout(body)
        form = QFormLayout()
        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setObjectName("layer")
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.layer_combo.setToolTip(
            tr("The raster to analyse: a file GDAL reads (GeoTIFF, COG, VRT, JPEG2000…)")
        )
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self.layer_label = QLabel(tr("Raster layer"), body)
        form.addRow(self.layer_label, self.layer_combo)
        form.addRow("", self._problem_label("scene", body))
        self.mode_combo = QComboBox(body)
        self.mode_combo.setObjectName("mode")
        self.mode_combo.setToolTip(
            tr(
                "Localize: a heatmap per text query. Classify: a zero-shot label per chip. Search: the chips "
                "of several layers that best match a text. Annotate: classify and/or localize many scenes "
                "(layers or a folder). Fine-tune: adapt the model to your labelled polygons."
            )
        )
        self.mode_combo.currentIndexChanged.connect(self._update_mode)
        form.addRow(tr("Mode"), self.mode_combo)
        self.method_combo = QComboBox(body)
        self.method_combo.setObjectName("method")
        form.addRow(tr("Method"), self.method_combo)
        form.addRow("", self._problem_label("method", body))
        layout.addLayout(form)

        layout.addWidget(self._scenes_box(body))
        layout.addWidget(self._finetune_box(body))
        self.queries = QPlainTextEdit(body)
        self.queries.setObjectName("queries")
        self.queries.setPlaceholderText(tr("One query per line, e.g.\nairport runway\nharbour with boats"))
        self.queries.setToolTip(tr("What to look for, one text query per line"))
        self.queries.setMinimumHeight(60)
        self.queries.setMaximumHeight(160)
        layout.addWidget(self.queries)
        layout.addWidget(self._problem_label("queries", body))
        self.labels_page = self._labels_page(body)
        layout.addWidget(self.labels_page)
        layout.addWidget(self._problem_label("labels", body))
        layout.addWidget(self._model_box(body))
        layout.addWidget(self._chips_box(body))

        buttons = QHBoxLayout()
        self.run_button = QPushButton(tr("Run"), body)
        self.run_button.setObjectName("run")
        self.run_button.setToolTip(tr("Run geo-dfm in the background; results arrive as a layer group"))
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton(tr("Cancel"), body)
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setToolTip(tr("Stop the run at its next step; nothing is added"))
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.help_button = QPushButton(tr("Help"), body)
        self.help_button.setObjectName("help")
        self.help_button.setToolTip(tr("Open the geo-dfm QGIS guide in the web browser"))
        self.help_button.clicked.connect(self.open_help)
        for button in (self.run_button, self.cancel_button, self.help_button):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setObjectName("progress")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setToolTip(tr("Progress of the current run"))
        layout.addWidget(self.progress_bar)
        self.stage_label = QLabel(body)
        self.stage_label.setObjectName("stage")
        self.stage_label.setWordWrap(True)
        self.stage_label.setToolTip(tr("What geo-dfm is doing now (loading the model, encoding chips…)"))
        layout.addWidget(self.stage_label)
        self.log_view = QPlainTextEdit(body)
        self.log_view.setObjectName("log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        self.log_view.setMinimumHeight(60)
        self.log_view.setToolTip(tr("What geo-dfm reports while it runs"))
        layout.addWidget(self.log_view)
        for combo in body.findChildren(QComboBox):  # long layer or model names must not widen the panel
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(3 if combo in self.band_combos else 6)
        for form in body.findChildren(QFormLayout):  # narrow panel: labels above their fields
            form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        scroll.setWidget(body)
        self.setWidget(scroll)

    def _problem_label(self, field: str, parent: QWidget) -> QLabel:
        label = QLabel(parent)
        label.setObjectName(f"problem_{field}")
        label.setStyleSheet(PROBLEM_STYLE)
        label.setWordWrap(True)
        label.hide()
        self.field_problems[field] = label
        return label

    def _scenes_box(self, parent: QWidget) -> QGroupBox:
        """Search and annotate: several raster layers (checked) and, for annotate, a folder of rasters."""
        box = QGroupBox(tr("Scenes"), parent)
        box.setObjectName("scenes_box")
        form = QFormLayout(box)
        self.scenes_list = QListWidget(box)
        self.scenes_list.setObjectName("scenes")
        self.scenes_list.setToolTip(tr("Tick the raster layers to process together"))
        self.scenes_list.setMinimumHeight(50)
        self.scenes_list.setMaximumHeight(120)
        self.scenes_list.itemChanged.connect(self._scenes_changed)
        form.addRow(tr("Layers"), self.scenes_list)
        self.scene_folder = QgsFileWidget(box)
        self.scene_folder.setObjectName("scene_folder")
        self.scene_folder.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.scene_folder.setToolTip(
            tr("Annotate: every raster file in this folder (GeoTIFF, VRT, JPEG2000…), with the ticked layers")
        )
        self.folder_label = QLabel(tr("Folder"), box)
        form.addRow(self.folder_label, self.scene_folder)
        form.addRow("", self._problem_label("scenes", box))
        project = QgsProject.instance()
        project.layersAdded.connect(self.refresh_scene_list)
        project.layersRemoved.connect(self.refresh_scene_list)
        self.scenes_box = box
        return box

    def _finetune_box(self, parent: QWidget) -> QGroupBox:
        """Fine-tune: the labelled polygons, their label field and the training length."""
        box = QGroupBox(tr("Training labels"), parent)
        box.setObjectName("finetune_box")
        form = QFormLayout(box)
        self.label_layer = QgsMapLayerComboBox(box)
        self.label_layer.setObjectName("label_layer")
        self.label_layer.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.label_layer.setToolTip(
            tr("Polygons whose attribute names the class under them (any CRS; geo-dfm reprojects them)")
        )
        form.addRow(tr("Labelled polygons"), self.label_layer)
        form.addRow("", self._problem_label("label_layer", box))
        self.label_field = QgsFieldComboBox(box)
        self.label_field.setObjectName("label_field")
        self.label_field.setFilters(QgsFieldProxyModel.Filter.String)
        self.label_field.setAllowEmptyFieldName(True)
        self.label_field.setToolTip(tr("The attribute holding each polygon's class name"))
        self.label_layer.layerChanged.connect(self.label_field.setLayer)
        self.label_field.setLayer(self.label_layer.currentLayer())
        form.addRow(tr("Label field"), self.label_field)
        form.addRow("", self._problem_label("label_field", box))
        self.steps = QSpinBox(box)
        self.steps.setObjectName("steps")
        self.steps.setRange(1, 1000000)
        self.steps.setValue(DEFAULT_STEPS)
        self.steps.setToolTip(tr("Optimizer steps of the fine-tune (more: longer, closer fit)"))
        form.addRow(tr("Training steps"), self.steps)
        hint = QLabel(tr("The adapter it writes appears in the model choice."), box)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(mid);")
        form.addRow("", hint)
        self.finetune_box = box
        return box

    def _labels_page(self, parent: QWidget) -> QWidget:
        page = QWidget(parent)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.preset_combo = QComboBox(page)
        self.preset_combo.setObjectName("preset")
        self.preset_combo.setToolTip(tr("A ready-made class list, or your own labels"))
        self.preset_combo.currentIndexChanged.connect(self._update_mode)
        layout.addWidget(self.preset_combo)
        self.labels_list = QListWidget(page)
        self.labels_list.setObjectName("labels")
        self.labels_list.setToolTip(tr("The classes to choose from (double-click to edit your own)"))
        self.labels_list.setMinimumHeight(60)
        layout.addWidget(self.labels_list)
        row = QHBoxLayout()
        self.label_edit = QLineEdit(page)
        self.label_edit.setObjectName("new_label")
        self.label_edit.setPlaceholderText(tr("new label, e.g. water"))
        self.label_edit.setToolTip(tr("Type a class name and press Enter"))
        self.label_edit.returnPressed.connect(self.add_label_from_edit)
        row.addWidget(self.label_edit)
        file_row = QHBoxLayout()
        self.label_buttons = []
        for name, text, tip, slot in (
            ("add", tr("Add"), tr("Add the typed label"), self.add_label_from_edit),
            ("remove", tr("Remove"), tr("Remove the selected labels"), self.remove_selected_labels),
            ("load", tr("Load…"), tr("Read labels from a text file, one per line"), self.load_labels),
            ("save", tr("Save…"), tr("Write the labels to a text file"), self.save_labels),
        ):
            button = QPushButton(text, page)
            button.setObjectName(f"labels_{name}")
            button.setToolTip(tip)
            button.clicked.connect(slot)
            (row if name == "add" else file_row).addWidget(button)
            self.label_buttons.append(button)
        layout.addLayout(row)
        layout.addLayout(file_row)
        self._custom_labels: list[str] = []
        return page

    def _model_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox(tr("Model"), parent)
        form = QFormLayout(box)
        self.model_combo = QComboBox(box)
        self.model_combo.setObjectName("model")
        self.model_combo.setEditable(True)
        self.model_combo.setToolTip(
            tr("A registered model (see geo-dfm settings → Models…) or an open_clip architecture")
        )
        self.model_combo.currentTextChanged.connect(self._update_model_notice)
        form.addRow(tr("Model"), self.model_combo)
        form.addRow("", self._problem_label("model", box))
        notice = QWidget(box)
        notice_row = QHBoxLayout(notice)
        notice_row.setContentsMargins(0, 0, 0, 0)
        self.model_notice = QLabel(notice)
        self.model_notice.setObjectName("model_notice")
        self.model_notice.setWordWrap(True)
        self.model_notice.setStyleSheet(PROBLEM_STYLE)
        self.download_button = QPushButton(tr("Download"), notice)
        self.download_button.setObjectName("download_model")
        self.download_button.setToolTip(
            tr("Download the model's weights in the background (Hugging Face cache)")
        )
        self.download_button.clicked.connect(self.download_model)
        notice_row.addWidget(self.model_notice, 1)
        notice_row.addWidget(self.download_button)
        self.model_notice_row = notice
        notice.hide()
        form.addRow("", notice)
        self.weights = QgsFileWidget(box)
        self.weights.setObjectName("weights")
        self.weights.setFilter(tr("Checkpoints (*.pt *.pth *.bin *.safetensors)"))
        self.weights.setToolTip(tr("Optional: a checkpoint file for the model (.pt, .pth, .safetensors)"))
        form.addRow(tr("Custom weights"), self.weights)
        self.adapter = QgsFileWidget(box)
        self.adapter.setObjectName("adapter")
        self.adapter.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.adapter.setToolTip(tr("Optional: a fine-tuned adapter folder applied on top of the model"))
        form.addRow(tr("Adapter"), self.adapter)
        return box

    def _chips_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox(tr("Chips, bands and extent"), parent)
        form = QFormLayout(box)
        self.chip_size = QLineEdit(box)
        self.chip_size.setObjectName("chip_size")
        self.chip_size.setPlaceholderText(tr("model input size (e.g. 224 or 100m)"))
        self.chip_size.setToolTip(
            tr("Chip size in pixels (224) or metres (100m); empty = the model's input size")
        )
        form.addRow(tr("Chip size"), self.chip_size)
        form.addRow("", self._problem_label("chip_size", box))
        self.overlap = QLineEdit("0.25", box)
        self.overlap.setObjectName("overlap")
        self.overlap.setToolTip(
            tr("Overlap between chips: fraction (0.25), percent (25%), pixels (32px) or metres (10m)")
        )
        form.addRow(tr("Overlap"), self.overlap)
        form.addRow("", self._problem_label("overlap", box))
        self.gsd = QDoubleSpinBox(box)
        self.gsd.setObjectName("gsd")
        self.gsd.setRange(0.0, 10000.0)
        self.gsd.setDecimals(2)
        self.gsd.setSuffix(" m/px")
        self.gsd.setSpecialValueText(tr("native"))
        self.gsd.setToolTip(tr("Resample the scene to this ground resolution first; native = as stored"))
        form.addRow(tr("GSD"), self.gsd)
        bands = QWidget(box)
        bands_row = QHBoxLayout(bands)
        bands_row.setContentsMargins(0, 0, 0, 0)
        self.band_combos = []
        for colour in ("red", "green", "blue"):
            combo = QgsRasterBandComboBox(bands)
            combo.setObjectName(f"band_{colour}")
            combo.setShowNotSetOption(True)
            combo.setToolTip(
                tr("The band the model sees as {colour} (not set: the bands the layer's style shows)").format(
                    colour=tr(colour)
                )
            )
            bands_row.addWidget(combo)
            self.band_combos.append(combo)
        form.addRow(tr("Bands (R, G, B)"), bands)
        bands_hint = QLabel(tr("Not set: as the layer's style shows them"), box)
        bands_hint.setWordWrap(True)
        bands_hint.setStyleSheet("color: palette(mid);")
        form.addRow("", bands_hint)
        form.addRow("", self._problem_label("bands", box))
        self.top_k = QSpinBox(box)
        self.top_k.setObjectName("top_k")
        self.top_k.setRange(1, 10000)
        self.top_k.setValue(20)
        self.top_k.setToolTip(tr("Search: how many best-matching chips to return per query"))
        form.addRow(tr("Top k (search)"), self.top_k)
        self.extent_combo = QComboBox(box)
        self.extent_combo.setObjectName("extent")
        self.extent_combo.addItems([tr("Whole layer"), tr("Map canvas extent"), tr("Selected features")])
        self.extent_combo.setToolTip(tr("Which part of the layer to process"))
        self.extent_combo.currentIndexChanged.connect(self._update_mode)
        form.addRow(tr("Extent"), self.extent_combo)
        self.aoi_layer = QgsMapLayerComboBox(box)
        self.aoi_layer.setObjectName("aoi_layer")
        self.aoi_layer.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        self.aoi_layer.setToolTip(tr("The polygon layer whose selected features bound the area to process"))
        form.addRow(tr("Selected from"), self.aoi_layer)
        form.addRow("", self._problem_label("extent", box))
        return box

    # --- capabilities -------------------------------------------------------------------------
    def apply_capabilities(self, caps: Capabilities) -> None:
        """Fill the choices from what geo-dfm reports (keeps the current selections)."""
        self.capabilities = caps
        _refill(self.mode_combo, [(tr(MODE_NAMES.get(mode, mode.capitalize())), mode) for mode in caps.modes])
        presets = [(tr("(custom labels)"), "")] + [
            (tr("preset: {name}").format(name=name), name) for name in caps.preset_names
        ]
        _refill(self.preset_combo, presets)
        self.fill_models()
        for widget, job, path in (
            (self.chip_size, "localize", "chips.chip_size"),
            (self.overlap, "localize", "chips.overlap"),
            (self.gsd, "localize", "chips.gsd"),
        ):
            help_text = caps.help(job, path)
            if help_text:
                widget.setToolTip(help_text)
        self._update_mode()

    def on_capabilities(self, caps: Capabilities) -> None:
        """A worker said ready: use and remember what it reports."""
        changed = caps != self.capabilities
        settings.store_capabilities(caps)
        self.apply_capabilities(caps)
        if changed:
            self.capabilitiesChanged.emit(caps)

    # --- state of the form --------------------------------------------------------------------
    def fill_models(self) -> None:
        """The registered models, then the adapters fine-tuned from the panel (keeps the typed text)."""
        current_model = self.model_combo.currentText()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for info in self.capabilities.models:
            self.model_combo.addItem(info.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1,
                info.description or info.architecture,
                Qt.ItemDataRole.ToolTipRole,
            )
        for entry in settings.adapters():
            self.model_combo.addItem(entry["name"])
            index = self.model_combo.count() - 1
            self.model_combo.setItemData(index, dict(entry), ADAPTER_ROLE)
            self.model_combo.setItemData(
                index,
                tr("{model} with the adapter fine-tuned in {path}").format(
                    model=entry["model"], path=entry["adapter"]
                ),
                Qt.ItemDataRole.ToolTipRole,
            )
        self.model_combo.setEditText(current_model)
        self.model_combo.blockSignals(False)

    def model_entries(self) -> list[str]:
        """The texts of the model choice, in order (registry models, then fine-tuned adapters)."""
        return [self.model_combo.itemText(i) for i in range(self.model_combo.count())]

    def add_adapter(self, name: str, model: str, adapter: str) -> None:
        """Remember a fine-tuned adapter and offer it (selected) in the model choice."""
        settings.add_adapter(name, model, adapter)
        self.fill_models()
        self.model_combo.setEditText(name)

    def model_choice(self) -> ModelChoice:
        """The model the form describes: a registry model or architecture, or a fine-tuned adapter entry
        (its base model with the adapter folder)."""
        text = self.model_combo.currentText().strip()
        index = self.model_combo.findText(text)
        entry = self.model_combo.itemData(index, ADAPTER_ROLE) if index >= 0 else None
        if isinstance(entry, dict) and entry.get("adapter"):
            return ModelChoice(
                name=str(entry.get("model") or ""),
                weights=self.weights.filePath(),
                adapter=str(entry["adapter"]),
            )
        return ModelChoice(name=text, weights=self.weights.filePath(), adapter=self.adapter.filePath())

    def _update_mode(self) -> None:
        mode = self.mode_combo.currentData() or "localize"
        several = mode in MULTI_SCENE_MODES
        self.layer_combo.setVisible(not several)
        self.layer_label.setVisible(not several)
        self.scenes_box.setVisible(several)
        self.scene_folder.setVisible(mode == "annotate")
        self.folder_label.setVisible(mode == "annotate")
        self.finetune_box.setVisible(mode == "finetune")
        self.queries.setVisible(mode in QUERY_MODES)
        self.labels_page.setVisible(mode in LABEL_MODES)
        if several:
            self.refresh_scene_list()
        else:
            self._bind_bands(self.layer_combo.currentLayer())
        job = self.capabilities.form_job(mode)
        methods = self.capabilities.choices(job, "method")
        _refill(self.method_combo, [(str(m), m) for m in methods])
        self.method_combo.setEnabled(bool(methods))
        self.method_combo.setToolTip(
            self.capabilities.help(job, "method") or tr("How chip scores become a map")
        )
        preset = self.preset_combo.currentData() or ""
        self._show_labels(preset)
        self.top_k.setEnabled(mode == "search")
        self.aoi_layer.setEnabled(self.extent_combo.currentIndex() == EXTENT_SELECTED)
        self._update_model_notice()

    def refresh_scene_list(self, *_args) -> None:
        """The project's raster layers in layer-tree order, ticked as before (new layers unticked)."""
        if not hasattr(self, "scenes_list"):
            return
        ticked = set(self.checked_layer_ids())
        self.scenes_list.blockSignals(True)
        self.scenes_list.clear()
        project = QgsProject.instance()
        in_tree = [node.layer() for node in project.layerTreeRoot().findLayers()]
        others = [layer for layer in project.mapLayers().values() if layer not in in_tree]
        for layer in [*in_tree, *others]:  # as the Layers panel lists them, top first
            if not isinstance(layer, QgsRasterLayer):
                continue
            item = QListWidgetItem(layer.name())
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.id() in ticked else Qt.CheckState.Unchecked)
            item.setToolTip(layer.source())
            self.scenes_list.addItem(item)
        self.scenes_list.blockSignals(False)
        self._scenes_changed()

    def checked_layer_ids(self) -> list[str]:
        items = (self.scenes_list.item(i) for i in range(self.scenes_list.count()))
        return [
            item.data(Qt.ItemDataRole.UserRole)
            for item in items
            if item.checkState() == Qt.CheckState.Checked
        ]

    def set_checked_layers(self, layers) -> None:
        """Tick exactly ``layers`` in the scene list (search, annotate)."""
        ids = {layer.id() for layer in layers}
        for i in range(self.scenes_list.count()):
            item = self.scenes_list.item(i)
            state = (
                Qt.CheckState.Checked
                if item.data(Qt.ItemDataRole.UserRole) in ids
                else Qt.CheckState.Unchecked
            )
            item.setCheckState(state)

    def checked_layers(self) -> list[QgsRasterLayer]:
        project = QgsProject.instance()
        return [
            layer for layer in (project.mapLayer(i) for i in self.checked_layer_ids()) if layer is not None
        ]

    def _scenes_changed(self, *_args) -> None:
        """The band choices follow the first ticked layer in the several-scene modes."""
        if (self.mode_combo.currentData() or "") not in MULTI_SCENE_MODES:
            return
        layers = self.checked_layers()
        self._bind_bands(layers[0] if layers else None)

    def _bind_bands(self, layer) -> None:
        """Band choices for ``layer`` (reset to not set when the layer changes)."""
        layer = layer if isinstance(layer, QgsRasterLayer) else None
        for combo in self.band_combos:
            if combo.layer() is not layer:
                combo.setLayer(layer)
                combo.setBand(-1)  # not set: the bands the layer's style shows

    def _show_labels(self, preset: str) -> None:
        """A preset shows its classes (read-only); custom labels are editable."""
        showing_preset = bool(self.labels_list.property("preset"))
        if preset and not showing_preset:
            self._custom_labels = self._list_texts()
        self.labels_list.setProperty("preset", preset)
        if preset:
            classes = self.capabilities.preset_labels(preset)
            self.labels_list.clear()
            if classes:
                for label in classes:
                    self.labels_list.addItem(QListWidgetItem(label))
            else:
                self.labels_list.addItem(tr("(the classes are listed once geo-dfm has started)"))
        elif showing_preset:
            self._fill_custom(self._custom_labels)
        for widget in (self.label_edit, *self.label_buttons[:2]):
            widget.setEnabled(not preset)
        self.labels_list.setToolTip(
            tr("The classes of preset {name}").format(name=preset)
            if preset
            else tr("The classes to choose from (double-click to edit)")
        )

    def _layer_changed(self, layer) -> None:
        if (self.mode_combo.currentData() or "") not in MULTI_SCENE_MODES:
            self._bind_bands(layer)

    def selected_bands(self, layer) -> tuple[str, str]:
        """``(bands, problem)``: the bands chosen for R, G, B as geo-dfm's ``bands`` ("3,2,1", one band
        for grey); none chosen: the bands the layer's style shows at the time of the run."""
        chosen = tuple(combo.currentBand() for combo in self.band_combos)
        if all(band > 0 for band in chosen):
            bands = chosen
        elif any(band > 0 for band in chosen):
            return "", tr("choose all three bands, or none to use the layer's style")
        else:
            bands = shown_bands(layer)
        return bands_text(bands[:1] if len(set(bands)) == 1 else bands), ""

    def _update_model_notice(self, *_args) -> None:
        info = self.capabilities.model(self.model_combo.currentText().strip())
        missing = info is not None and info.downloaded is False and not self.weights.filePath()
        if missing:
            self.show_missing_model(info.name)
        elif self.download_task is None:
            self.model_notice_row.hide()

    def show_missing_model(self, name: str) -> None:
        self.model_notice.setText(tr("{name} is not downloaded yet.").format(name=name))
        self.download_button.setProperty("model", name)
        self.download_button.setEnabled(self.download_task is None)
        self.model_notice_row.show()

    # --- labels -------------------------------------------------------------------------------
    def _list_texts(self) -> list[str]:
        return [self.labels_list.item(i).text().strip() for i in range(self.labels_list.count())]

    def labels(self) -> list[str]:
        """The custom labels (a preset's classes are not custom labels)."""
        return list(self._custom_labels) if self.preset_combo.currentData() else self._list_texts()

    def _fill_custom(self, labels: list[str]) -> None:
        self.labels_list.clear()
        for label in labels:
            self.add_label(label)

    def set_labels(self, labels: list[str]) -> None:
        if self.preset_combo.currentData():
            self._custom_labels = [label.strip() for label in labels if label.strip()]
        else:
            self._fill_custom(labels)

    def add_label(self, label: str) -> None:
        label = label.strip()
        if label and label not in self._list_texts():
            item = QListWidgetItem(label)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.labels_list.addItem(item)

    def add_label_from_edit(self) -> None:
        self.add_label(self.label_edit.text())
        self.label_edit.clear()

    def remove_selected_labels(self) -> None:
        for item in self.labels_list.selectedItems():
            self.labels_list.takeItem(self.labels_list.row(item))

    def load_labels(self, path: str = "") -> None:
        path = path or QFileDialog.getOpenFileName(self, tr("Load labels"), "", tr("Text files (*.txt)"))[0]
        if path:
            with open(path, encoding="utf-8") as handle:
                self.set_labels(list(split_lines(handle.read())))

    def save_labels(self, path: str = "") -> None:
        path = (
            path
            or QFileDialog.getSaveFileName(self, tr("Save labels"), "labels.txt", tr("Text files (*.txt)"))[0]
        )
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n".join(self.labels()) + "\n")

    # --- running ------------------------------------------------------------------------------
    def job_spec(self) -> tuple[JobSpec, list[Problem]]:
        """The job the widgets describe, and what stops it from running — all found here, before
        geo-dfm loads a model: unreadable layers, chip size and overlap against the scenes, bands the
        scenes lack, extents that miss the scene, label polygons that miss it, missing fields.

        Selected features are written to a temporary GeoPackage for geo-dfm (which reprojects
        them); the map canvas extent becomes a bounding box in the layer's CRS.
        """
        mode = self.mode_combo.currentData() or "localize"
        problems: list[Problem] = []
        layers, scenes = self._scenes(mode, problems)
        aoi = bands = ""
        first = layers[0] if layers else None
        if first is not None:
            aoi, extent_problem = self._aoi(first)
            if extent_problem:
                problems.append(Problem("extent", extent_problem))
            bands, bands_problem = self.selected_bands(first)
            if bands_problem:
                problems.append(Problem("bands", bands_problem))
            else:
                problems += band_problems(bands, [scene_shape(layer) for layer in layers])
        model = self.model_choice()
        method = self.method_combo.currentData() or ""
        chip_size = self.chip_size.text().strip()
        if mode == "finetune" and not chip_size:  # pairs default to 224 px: use the model's input size
            info = self.capabilities.model(model.name)
            chip_size = str(info.input_size) if info is not None and info.input_size else ""
        problems += chip_problems(
            chip_size,
            self.overlap.text(),
            [scene_shape(layer) for layer in layers],
            default_chip=self._default_chip(model),
            gsd=self.gsd.value() or None,
            whole_scene_window=method == "selo",
        )
        label_layer = label_field = ""
        if mode == "finetune":
            label_layer, label_field = self._training_labels(first, problems)
        spec = JobSpec(
            mode=mode,
            scenes=tuple(scenes),
            output=new_run_folder(settings.output_folder(), mode),
            queries=split_lines(self.queries.toPlainText()) if mode in QUERY_MODES else (),
            labels=tuple(self.labels()) if mode in LABEL_MODES else (),
            preset=(self.preset_combo.currentData() or "") if mode in LABEL_MODES else "",
            method=method,
            top_k=self.top_k.value(),
            label_layer=label_layer,
            label_field=label_field,
            steps=self.steps.value() if mode == "finetune" else None,
            model=model,
            chips=ChipChoice(
                chip_size=chip_size,
                overlap=self.overlap.text(),
                gsd=self.gsd.value() or None,
                bands=bands,
                aoi=aoi,
            ),
        )
        known = {p.field for p in problems}
        problems += [p for p in spec.problems() if p.field not in known]  # the form's own words first
        return spec, problems

    def _scenes(self, mode: str, problems: list[Problem]) -> tuple[list[QgsRasterLayer], list[str]]:
        """The layers (for checks) and the scene sources of the run."""
        if mode not in MULTI_SCENE_MODES:
            layer = self.layer_combo.currentLayer()
            problem = layer_problem(layer)
            if problem:
                problems.append(Problem("scene", problem))
                return [], [""]
            return [layer], [layer.source()]
        layers = self.checked_layers()
        for layer in layers:
            problem = layer_problem(layer)
            if problem:
                problems.append(Problem("scenes", problem))
        files: list[str] = []
        folder = self.scene_folder.filePath() if mode == "annotate" else ""
        if folder:
            files = folder_rasters(folder)
            if not files:
                problems.append(Problem("scenes", tr("{folder} holds no raster files").format(folder=folder)))
        if not layers and not files and not folder:
            problems.append(
                Problem(
                    "scenes",
                    tr("tick at least one raster layer")
                    if mode == "search"
                    else tr("tick raster layers or choose a folder of rasters"),
                )
            )
        readable = [layer for layer in layers if not layer_problem(layer)]
        return readable, [layer.source() for layer in readable] + files

    def _default_chip(self, model: ModelChoice) -> int | None:
        """The chip size geo-dfm uses when none is given: the model's input size (when the worker said)."""
        info = self.capabilities.model(model.name or settings.default_model())
        return info.input_size if info is not None else None

    def _training_labels(self, scene: QgsRasterLayer | None, problems: list[Problem]) -> tuple[str, str]:
        """``(labels file, label field)`` of the fine-tune; a layer without a file is written to a
        temporary GeoPackage. Polygons that miss the scene are a problem of the label layer."""
        layer = self.label_layer.currentLayer()
        if not isinstance(layer, QgsVectorLayer) or not layer.isValid():
            problems.append(Problem("label_layer", tr("choose a polygon layer with the labels")))
            return "", ""
        field = self.label_field.currentField()
        if not field:
            problems.append(Problem("label_field", tr("choose the field that holds the class names")))
        elif len({v for v in layer.uniqueValues(layer.fields().indexOf(field)) if v not in (None, "")}) < 1:
            problems.append(Problem("label_field", tr("{field} holds no class names").format(field=field)))
        if scene is not None:
            to_scene = QgsCoordinateTransform(layer.crs(), scene.crs(), QgsProject.instance())
            if not to_scene.transformBoundingBox(layer.extent()).intersects(scene.extent()):
                problems.append(
                    Problem(
                        "label_layer",
                        tr("the polygons of {labels} do not overlap {scene}").format(
                            labels=layer.name(), scene=scene.name()
                        ),
                    )
                )
        return vector_file(layer), field

    def _aoi(self, layer: QgsRasterLayer) -> tuple[str, str]:
        """``(aoi, problem)`` for the extent choice."""
        choice = self.extent_combo.currentIndex()
        if choice == EXTENT_CANVAS:
            canvas = self.iface.mapCanvas() if self.iface is not None else None
            if canvas is None:
                return "", tr("there is no map canvas; choose another extent")
            to_layer = QgsCoordinateTransform(
                canvas.mapSettings().destinationCrs(), layer.crs(), QgsProject.instance()
            )
            extent = to_layer.transformBoundingBox(canvas.extent()).intersect(layer.extent())
            if extent.isEmpty() or extent.width() <= 0 or extent.height() <= 0:
                return "", tr(
                    "the map canvas shows no part of {name}; pan to it or choose another extent"
                ).format(name=layer.name())
            bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
            return ",".join(repr(v) for v in bounds), ""
        if choice == EXTENT_SELECTED:
            aoi_layer = self.aoi_layer.currentLayer()
            if not isinstance(aoi_layer, QgsVectorLayer) or not aoi_layer.selectedFeatureCount():
                return "", tr("select features in the extent layer (or choose another extent)")
            return write_selected_features(aoi_layer), ""
        return "", ""

    def show_problems(self, problems: list[Problem]) -> None:
        """Each problem next to its input (the rest in the log)."""
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            by_field.setdefault(problem.field, []).append(tr(problem.message))
        for field, label in self.field_problems.items():
            messages = by_field.get(field)
            label.setText("; ".join(messages or []))
            label.setVisible(bool(messages))

    def run(self) -> None:
        """Start a background task for the current settings (Run button)."""
        if self.task is not None:
            return
        spec, problems = self.job_spec()
        self.show_problems(problems)
        if problems:
            self.log(tr("Cannot run: ") + "; ".join(tr(p.message) for p in problems))
            return
        self.save_state()
        self.set_busy(tr("starting geo-dfm…"))
        self.log(tr("Running {mode} → {output}").format(mode=spec.mode, output=spec.output))
        task = GeoDfmTask(spec, self.workers)
        task.eventReceived.connect(self.on_event)
        task.capabilitiesReceived.connect(self.on_capabilities)
        task.progressChanged.connect(self.on_progress)
        task.ended.connect(self.on_task_ended)
        self.task = task
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        """Cancel button: the worker stops the job (or the download) at its next step."""
        if self.task is not None:
            self.log(tr("Cancelling…"))
            self.task.cancel()
        elif self.download_task is not None:
            self.log(tr("Cancelling the download…"))
            self.download_task.cancel()

    def set_busy(self, stage: str) -> None:
        """A stage without a known length (starting the worker, loading the model): busy bar + its name."""
        self.progress_bar.setRange(0, 0)
        self.stage_label.setText(stage)

    def on_progress(self, value: float) -> None:
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(int(value))

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "stage":
            stage = str(event.get("stage") or "")
            self.log(f"{stage}…")
            if event.get("total"):
                self.stage_label.setText(tr("{stage}…").format(stage=stage))
                self.progress_bar.setRange(0, 100)
            else:  # loading the model, planning: no fraction to show, but visibly busy
                self.set_busy(tr("{stage}…").format(stage=stage))
        elif kind == "progress" and event.get("total"):
            self.stage_label.setText(
                tr("{stage}: {done} of {total}").format(
                    stage=event.get("stage", ""), done=event.get("done"), total=event.get("total")
                )
            )
        elif kind == "log":
            self.log(f"{event.get('level', '')}: {event.get('message', '')}")
        elif kind == "error":
            self.log(
                tr("error ({code}): {message}").format(
                    code=event.get("code"), message=event.get("message", "")
                )
            )
        elif kind == "result":
            self.log(tr("done"))

    def on_task_ended(self, success: bool) -> None:
        task, self.task = self.task, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 100)
        self.stage_label.clear()
        if task is None:
            return
        if success:
            self.progress_bar.setValue(100)
            self.log(tr("Added {count} layers.").format(count=len(task.added_layers)))
            if task.adapter:
                name = f"{task.base_model} + {os.path.basename(task.spec.output.rstrip('/'))}"
                self.add_adapter(name, task.base_model, task.adapter)
                self.log(tr("The adapter {name} is now in the model choice.").format(name=name))
        elif task.isCanceled():
            self.progress_bar.setValue(0)
            self.log(tr("Cancelled; nothing was added."))
        elif task.missing_model:
            self.progress_bar.setValue(0)
            self.show_missing_model(task.missing_model)
            self.log(task.error_message + " " + tr("Press Download next to the model, then Run again."))
        else:
            self.progress_bar.setValue(0)
            self.log(tr("Failed: {message}").format(message=task.error_message))
            if self.iface is not None and self.iface.messageBar() is not None:
                self.iface.messageBar().pushWarning("geo-dfm", task.error_message.splitlines()[0][:200])

    def download_model(self) -> None:
        """Download button: fetch the missing model in the background (progress and Cancel as for a run)."""
        name = self.download_button.property("model") or self.model_combo.currentText().strip()
        if not name or self.download_task is not None or self.task is not None:
            return
        task = ModelDownloadTask(name, self.workers)
        task.eventReceived.connect(self.on_event)
        task.capabilitiesReceived.connect(self.on_capabilities)
        task.ended.connect(self.on_download_ended)
        self.download_task = task
        self.download_button.setEnabled(False)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # the download reports no fraction: busy indicator
        self.log(tr("Downloading {name}…").format(name=name))
        QgsApplication.taskManager().addTask(task)

    def on_download_ended(self, success: bool) -> None:
        task, self.download_task = self.download_task, None
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(100 if success else 0)
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.download_button.setEnabled(True)
        if task is None:
            return
        if success:
            if task.capabilities is not None:
                self.on_capabilities(task.capabilities)
            self.model_notice_row.hide()
            self.log(tr("{name} downloaded; press Run.").format(name=task.model_name))
        elif task.isCanceled():
            self.log(tr("Download cancelled."))
        else:
            self.log(tr("Download failed: {message}").format(message=task.error_message))

    def open_help(self) -> None:
        QDesktopServices.openUrl(QUrl(help_url()))

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    # --- state --------------------------------------------------------------------------------
    def save_state(self) -> None:
        values = {
            "mode": self.mode_combo.currentData() or "",
            "method": self.method_combo.currentData() or "",
            "queries": self.queries.toPlainText(),
            "labels": "\n".join(self.labels()),
            "preset": self.preset_combo.currentData() or "",
            "model": self.model_combo.currentText(),
            "weights": self.weights.filePath(),
            "adapter": self.adapter.filePath(),
            "chip_size": self.chip_size.text(),
            "overlap": self.overlap.text(),
            "gsd": self.gsd.value(),
            "top_k": self.top_k.value(),
            "extent": self.extent_combo.currentIndex(),
            "scene_folder": self.scene_folder.filePath(),
            "steps": self.steps.value(),
            "label_field": self.label_field.currentField(),
        }
        for key, value in values.items():
            settings.write(f"panel/{key}", value)
        project = QgsProject.instance()
        for key, layer in (
            ("layer", self.layer_combo.currentLayer()),
            ("label_layer", self.label_layer.currentLayer()),
        ):
            project.writeEntry(PROJECT_SCOPE, key, layer.id() if layer else "")
        project.writeEntry(PROJECT_SCOPE, "scenes", ",".join(self.checked_layer_ids()))

    def restore_state(self) -> None:
        read = settings.read
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(read("panel/mode", "localize"))))
        self.queries.setPlainText(read("panel/queries", ""))
        self.preset_combo.setCurrentIndex(0)
        self._fill_custom(list(split_lines(read("panel/labels", ""))))
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(read("panel/preset", ""))))
        method = self.method_combo.findData(read("panel/method", ""))
        if method >= 0:
            self.method_combo.setCurrentIndex(method)
        model = read("panel/model", "") or settings.default_model()
        if model:
            self.model_combo.setEditText(model)
        self.weights.setFilePath(read("panel/weights", ""))
        self.adapter.setFilePath(read("panel/adapter", ""))
        self.chip_size.setText(read("panel/chip_size", ""))
        self.overlap.setText(read("panel/overlap", "0.25"))
        self.gsd.setValue(read("panel/gsd", 0.0, float))
        self.top_k.setValue(read("panel/top_k", 20, int))
        self.extent_combo.setCurrentIndex(read("panel/extent", 0, int))
        self.scene_folder.setFilePath(read("panel/scene_folder", ""))
        self.steps.setValue(read("panel/steps", DEFAULT_STEPS, int))
        project = QgsProject.instance()
        for key, combo in (("layer", self.layer_combo), ("label_layer", self.label_layer)):
            layer_id, found = project.readEntry(PROJECT_SCOPE, key, "")
            layer = project.mapLayer(layer_id) if found and layer_id else None
            if layer is not None:
                combo.setLayer(layer)
        self.label_field.setField(read("panel/label_field", ""))
        ids, found = project.readEntry(PROJECT_SCOPE, "scenes", "")
        self.refresh_scene_list()
        if found and ids:
            self.set_checked_layers([project.mapLayer(i) for i in ids.split(",") if project.mapLayer(i)])
        self._layer_changed(self.layer_combo.currentLayer())

    def closeEvent(self, event) -> None:
        self.save_state()
        super().closeEvent(event)


def _refill(combo: QComboBox, items: list[tuple[str, Any]]) -> None:
    """Replace a combo's items, keeping the selected data when it is still offered."""
    current = combo.currentData()
    combo.blockSignals(True)
    combo.clear()
    for text, data in items:
        combo.addItem(text, data)
    combo.setCurrentIndex(max(0, combo.findData(current)))
    combo.blockSignals(False)


def scene_shape(layer: QgsRasterLayer) -> SceneShape:
    """A raster layer's size, bands and metres per pixel (``None`` when its CRS is not in metres)."""
    metres = QgsUnitTypes.encodeUnit(layer.crs().mapUnits()) == "meters"
    mpp = layer.rasterUnitsPerPixelX() if metres and layer.width() else None
    return SceneShape(layer.name(), layer.width(), layer.height(), layer.bandCount(), mpp)
