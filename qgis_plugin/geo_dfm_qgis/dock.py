"""The geo-dfm dock panel: pick a raster, say what to look for, press Run, get styled layers.

The choices (modes, methods, presets and their classes, models) come from what the geo-dfm worker
reports (:mod:`geo_dfm_qgis.capabilities`), remembered between sessions. The panel scrolls, so it
fits small screens; every input has a tooltip; problems are shown next to the input they concern.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox, QgsRasterBandComboBox
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
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.capabilities import Capabilities
from geo_dfm_qgis.i18n import tr
from geo_dfm_qgis.jobs import ChipChoice, JobSpec, ModelChoice, Problem, split_lines
from geo_dfm_qgis.links import help_url
from geo_dfm_qgis.run_folders import new_run_folder
from geo_dfm_qgis.sources import bands_text, layer_problem, shown_bands
from geo_dfm_qgis.task import GeoDfmTask, ModelDownloadTask, WorkerHolder

PROJECT_SCOPE = "geo_dfm_qgis"
EXTENT_WHOLE, EXTENT_CANVAS, EXTENT_SELECTED = range(3)
PROBLEM_STYLE = "color: #b00020;"


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
        form.addRow(tr("Raster layer"), self.layer_combo)
        form.addRow("", self._problem_label("scene", body))
        self.mode_combo = QComboBox(body)
        self.mode_combo.setObjectName("mode")
        self.mode_combo.setToolTip(
            tr(
                "Localize: a heatmap per text query. Classify: a zero-shot label per chip. Search: the chips that best match a text."
            )
        )
        self.mode_combo.currentIndexChanged.connect(self._update_mode)
        form.addRow(tr("Mode"), self.mode_combo)
        self.method_combo = QComboBox(body)
        self.method_combo.setObjectName("method")
        form.addRow(tr("Method"), self.method_combo)
        layout.addLayout(form)

        self.texts = QStackedWidget(body)
        self.queries = QPlainTextEdit(body)
        self.queries.setObjectName("queries")
        self.queries.setPlaceholderText(tr("One query per line, e.g.\nairport runway\nharbour with boats"))
        self.queries.setToolTip(tr("What to look for, one text query per line"))
        self.queries.setMinimumHeight(60)
        self.queries.setMaximumHeight(160)
        self.texts.addWidget(self.queries)
        self.texts.addWidget(self._labels_page(body))
        layout.addWidget(self.texts)
        layout.addWidget(self._problem_label("queries", body))
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
        layout.addLayout(row)
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
        self.overlap = QLineEdit("0.25", box)
        self.overlap.setObjectName("overlap")
        self.overlap.setToolTip(
            tr("Overlap between chips: fraction (0.25), percent (25%), pixels (32px) or metres (10m)")
        )
        form.addRow(tr("Overlap"), self.overlap)
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
        _refill(self.mode_combo, [(tr(mode.capitalize()), mode) for mode in caps.modes])
        presets = [(tr("(custom labels)"), "")] + [
            (tr("preset: {name}").format(name=name), name) for name in caps.preset_names
        ]
        _refill(self.preset_combo, presets)
        current_model = self.model_combo.currentText()
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for info in caps.models:
            self.model_combo.addItem(info.name)
            self.model_combo.setItemData(
                self.model_combo.count() - 1,
                info.description or info.architecture,
                Qt.ItemDataRole.ToolTipRole,
            )
        self.model_combo.setEditText(current_model)
        self.model_combo.blockSignals(False)
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
    def _update_mode(self) -> None:
        mode = self.mode_combo.currentData()
        self.texts.setCurrentIndex(1 if mode == "classify" else 0)
        methods = self.capabilities.choices(mode or "", "method")
        _refill(self.method_combo, [(str(m), m) for m in methods])
        self.method_combo.setEnabled(bool(methods))
        self.method_combo.setToolTip(
            self.capabilities.help(mode or "", "method") or tr("How chip scores become a map")
        )
        preset = self.preset_combo.currentData() or ""
        self._show_labels(preset)
        self.top_k.setEnabled(mode == "search")
        self.aoi_layer.setEnabled(self.extent_combo.currentIndex() == EXTENT_SELECTED)
        self._update_model_notice()

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
        for combo in self.band_combos:
            combo.setLayer(layer if isinstance(layer, QgsRasterLayer) else None)
            combo.setBand(-1)  # not set: the bands the layer's style shows

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
        """The job the widgets describe, and what stops it from running.

        Selected features are written to a temporary GeoPackage for geo-dfm (which reprojects
        them); the map canvas extent becomes a bounding box in the layer's CRS.
        """
        layer = self.layer_combo.currentLayer()
        problems: list[Problem] = []
        scene_problem = layer_problem(layer)
        if scene_problem:
            problems.append(Problem("scene", scene_problem))
        scene = "" if scene_problem else layer.source()
        mode = self.mode_combo.currentData() or "localize"
        aoi = bands = ""
        if scene:
            aoi, extent_problem = self._aoi(layer)
            if extent_problem:
                problems.append(Problem("extent", extent_problem))
            bands, bands_problem = self.selected_bands(layer)
            if bands_problem:
                problems.append(Problem("bands", bands_problem))
        spec = JobSpec(
            mode=mode,
            scenes=(scene,),
            output=new_run_folder(settings.output_folder(), mode),
            queries=split_lines(self.queries.toPlainText()),
            labels=tuple(self.labels()),
            preset=self.preset_combo.currentData() or "",
            method=self.method_combo.currentData() or "",
            top_k=self.top_k.value(),
            model=ModelChoice(
                name=self.model_combo.currentText().strip(),
                weights=self.weights.filePath(),
                adapter=self.adapter.filePath(),
            ),
            chips=ChipChoice(
                chip_size=self.chip_size.text(),
                overlap=self.overlap.text(),
                gsd=self.gsd.value() or None,
                bands=bands,
                aoi=aoi,
            ),
        )
        problems += [p for p in spec.problems() if not (p.field == "scene" and scene_problem)]
        return spec, problems

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
        self.progress_bar.setValue(0)
        self.log(tr("Running {mode} → {output}").format(mode=spec.mode, output=spec.output))
        task = GeoDfmTask(spec, self.workers)
        task.eventReceived.connect(self.on_event)
        task.capabilitiesReceived.connect(self.on_capabilities)
        task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
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

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "stage":
            self.log(f"{event.get('stage')}…")
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
        if task is None:
            return
        if success:
            self.progress_bar.setValue(100)
            self.log(tr("Added {count} layers.").format(count=len(task.added_layers)))
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
        }
        for key, value in values.items():
            settings.write(f"panel/{key}", value)
        layer = self.layer_combo.currentLayer()
        QgsProject.instance().writeEntry(PROJECT_SCOPE, "layer", layer.id() if layer else "")

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
        layer_id, found = QgsProject.instance().readEntry(PROJECT_SCOPE, "layer", "")
        layer = QgsProject.instance().mapLayer(layer_id) if found and layer_id else None
        if layer is not None:
            self.layer_combo.setLayer(layer)
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


def write_selected_features(layer: QgsVectorLayer) -> str:
    """Write a layer's selected features to a temporary GeoPackage (geo-dfm reprojects it)."""
    path = os.path.join(tempfile.mkdtemp(prefix="geo-dfm-aoi-"), "aoi.gpkg")
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.onlySelectedFeatures = True
    write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or (
        QgsVectorFileWriter.writeAsVectorFormatV2
    )
    result = write(layer, path, QgsProject.instance().transformContext(), options)
    error = result[0] if isinstance(result, tuple) else result
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise OSError(f"cannot write the selected features of {layer.name()} to {path}: {result}")
    return path
