"""The geo-dfm dock panel: pick a raster, say what to look for, press Run, get styled layers."""

from __future__ import annotations

import os
import tempfile
import time
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
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from geo_dfm_qgis import settings
from geo_dfm_qgis.jobs import (
    DEFAULT_MODELS,
    LABEL_PRESETS,
    MODES,
    ChipChoice,
    JobSpec,
    ModelChoice,
    split_lines,
)
from geo_dfm_qgis.task import GeoDfmTask, WorkerHolder

EXTENT_CHOICES = ("Whole layer", "Map canvas extent", "Selected features")
PROJECT_SCOPE = "geo_dfm_qgis"
CUSTOM_LABELS = "(custom labels)"


class GeoDfmDock(QgsDockWidget):
    """Dock panel: layer, mode, queries or labels, model, chipping, extent, Run/Cancel, progress, log."""

    def __init__(self, iface, workers: WorkerHolder, parent=None) -> None:
        super().__init__("geo-dfm", parent)
        self.setObjectName("GeoDfmDock")
        self.iface = iface
        self.workers = workers
        self.task: GeoDfmTask | None = None
        self._build()
        self.restore_state()
        self._update_mode()

    # --- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        form = QFormLayout()
        self.layer_combo = QgsMapLayerComboBox(body)
        self.layer_combo.setObjectName("layer")
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Raster layer", self.layer_combo)
        self.mode_combo = QComboBox(body)
        self.mode_combo.setObjectName("mode")
        for mode in MODES:
            self.mode_combo.addItem(mode.capitalize(), mode)
        self.mode_combo.currentIndexChanged.connect(self._update_mode)
        form.addRow("Mode", self.mode_combo)
        layout.addLayout(form)

        self.texts = QStackedWidget(body)
        self.queries = QPlainTextEdit(body)
        self.queries.setObjectName("queries")
        self.queries.setPlaceholderText("One query per line, e.g.\nairport runway\nharbour with boats")
        self.texts.addWidget(self.queries)
        self.texts.addWidget(self._labels_page(body))
        layout.addWidget(self.texts)
        layout.addWidget(self._model_box(body))
        layout.addWidget(self._chips_box(body))

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", body)
        self.run_button.setObjectName("run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.setObjectName("cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setObjectName("progress")
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.log_view = QPlainTextEdit(body)
        self.log_view.setObjectName("log")
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(2000)
        layout.addWidget(self.log_view)
        self.setWidget(body)

    def _labels_page(self, parent: QWidget) -> QWidget:
        page = QWidget(parent)
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        self.preset_combo = QComboBox(page)
        self.preset_combo.setObjectName("preset")
        self.preset_combo.addItem(CUSTOM_LABELS, "")
        for preset in LABEL_PRESETS:
            self.preset_combo.addItem(f"preset: {preset}", preset)
        self.preset_combo.currentIndexChanged.connect(self._update_mode)
        layout.addWidget(self.preset_combo)
        self.labels_list = QListWidget(page)
        self.labels_list.setObjectName("labels")
        layout.addWidget(self.labels_list)
        row = QHBoxLayout()
        self.label_edit = QLineEdit(page)
        self.label_edit.setObjectName("new_label")
        self.label_edit.setPlaceholderText("new label, e.g. water")
        self.label_edit.returnPressed.connect(self.add_label_from_edit)
        row.addWidget(self.label_edit)
        for text, slot in (
            ("Add", self.add_label_from_edit),
            ("Remove", self.remove_selected_labels),
            ("Load…", self.load_labels),
            ("Save…", self.save_labels),
        ):
            button = QPushButton(text, page)
            button.setObjectName(f"labels_{text.strip('…').lower()}")
            button.clicked.connect(slot)
            row.addWidget(button)
        layout.addLayout(row)
        return page

    def _model_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Model", parent)
        form = QFormLayout(box)
        self.model_combo = QComboBox(box)
        self.model_combo.setObjectName("model")
        self.model_combo.setEditable(True)
        self.model_combo.addItems(DEFAULT_MODELS)
        self.model_combo.setToolTip("A registered model (geo-dfm models list) or an open_clip architecture")
        form.addRow("Model", self.model_combo)
        self.weights = QgsFileWidget(box)
        self.weights.setObjectName("weights")
        self.weights.setFilter("Checkpoints (*.pt *.pth *.bin *.safetensors)")
        form.addRow("Custom weights", self.weights)
        self.adapter = QgsFileWidget(box)
        self.adapter.setObjectName("adapter")
        self.adapter.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        form.addRow("Adapter", self.adapter)
        return box

    def _chips_box(self, parent: QWidget) -> QGroupBox:
        box = QGroupBox("Chips and extent", parent)
        form = QFormLayout(box)
        self.chip_size = QLineEdit(box)
        self.chip_size.setObjectName("chip_size")
        self.chip_size.setPlaceholderText("model input size (e.g. 224 or 100m)")
        form.addRow("Chip size", self.chip_size)
        self.overlap = QLineEdit("0.25", box)
        self.overlap.setObjectName("overlap")
        self.overlap.setToolTip("Fraction (0.25), percent (25%), pixels (32px) or metres (10m)")
        form.addRow("Overlap", self.overlap)
        self.gsd = QDoubleSpinBox(box)
        self.gsd.setObjectName("gsd")
        self.gsd.setRange(0.0, 10000.0)
        self.gsd.setDecimals(2)
        self.gsd.setSuffix(" m/px")
        self.gsd.setSpecialValueText("native")
        form.addRow("GSD", self.gsd)
        self.top_k = QSpinBox(box)
        self.top_k.setObjectName("top_k")
        self.top_k.setRange(1, 10000)
        self.top_k.setValue(20)
        form.addRow("Top k (search)", self.top_k)
        self.extent_combo = QComboBox(box)
        self.extent_combo.setObjectName("extent")
        self.extent_combo.addItems(EXTENT_CHOICES)
        self.extent_combo.currentIndexChanged.connect(self._update_mode)
        form.addRow("Extent", self.extent_combo)
        self.aoi_layer = QgsMapLayerComboBox(box)
        self.aoi_layer.setObjectName("aoi_layer")
        self.aoi_layer.setFilters(QgsMapLayerProxyModel.Filter.PolygonLayer)
        form.addRow("Selected from", self.aoi_layer)
        return box

    def _update_mode(self) -> None:
        mode = self.mode_combo.currentData()
        self.texts.setCurrentIndex(1 if mode == "classify" else 0)
        custom = not self.preset_combo.currentData()
        self.labels_list.setEnabled(custom)
        self.label_edit.setEnabled(custom)
        self.top_k.setEnabled(mode == "search")
        self.aoi_layer.setEnabled(self.extent_combo.currentIndex() == 2)

    # --- labels -------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        return [self.labels_list.item(i).text().strip() for i in range(self.labels_list.count())]

    def set_labels(self, labels: list[str]) -> None:
        self.labels_list.clear()
        for label in labels:
            self.add_label(label)

    def add_label(self, label: str) -> None:
        label = label.strip()
        if label and label not in self.labels():
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
        path = path or QFileDialog.getOpenFileName(self, "Load labels", "", "Text files (*.txt)")[0]
        if path:
            with open(path, encoding="utf-8") as handle:
                self.set_labels(list(split_lines(handle.read())))

    def save_labels(self, path: str = "") -> None:
        path = path or QFileDialog.getSaveFileName(self, "Save labels", "labels.txt", "Text files (*.txt)")[0]
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("\n".join(self.labels()) + "\n")

    # --- running ------------------------------------------------------------------------------
    def job_spec(self) -> JobSpec:
        """The job the widgets describe (the AOI is written to a file if features are selected)."""
        layer = self.layer_combo.currentLayer()
        scene = layer.source() if isinstance(layer, QgsRasterLayer) and layer.providerType() == "gdal" else ""
        mode = self.mode_combo.currentData()
        output = os.path.join(settings.output_folder(), f"{mode}-{time.strftime('%Y%m%d-%H%M%S')}")
        return JobSpec(
            mode=mode,
            scene=scene,
            output=output,
            queries=split_lines(self.queries.toPlainText()),
            labels=tuple(self.labels()),
            preset=self.preset_combo.currentData() or "",
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
                aoi=self._aoi(layer) if scene else "",
            ),
        )

    def _aoi(self, layer: QgsRasterLayer) -> str:
        choice = self.extent_combo.currentIndex()
        if choice == 1 and self.iface is not None and self.iface.mapCanvas() is not None:
            canvas = self.iface.mapCanvas()
            to_layer = QgsCoordinateTransform(
                canvas.mapSettings().destinationCrs(), layer.crs(), QgsProject.instance()
            )
            extent = to_layer.transformBoundingBox(canvas.extent()).intersect(layer.extent())
            if extent.isEmpty():
                return ""
            return ",".join(
                repr(v) for v in (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
            )
        if choice == 2:
            aoi_layer = self.aoi_layer.currentLayer()
            if isinstance(aoi_layer, QgsVectorLayer) and aoi_layer.selectedFeatureCount():
                return write_selected_features(aoi_layer)
        return ""

    def run(self) -> None:
        """Start a background task for the current settings (Run button)."""
        if self.task is not None:
            return
        spec = self.job_spec()
        problems = spec.problems()
        if self.extent_combo.currentIndex() == 2 and not spec.chips.aoi:
            problems.append("select features in the extent layer (or choose another extent)")
        if problems:
            self.log("Cannot run: " + "; ".join(problems))
            return
        self.save_state()
        self.progress_bar.setValue(0)
        self.log(f"Running {spec.mode} → {spec.output}")
        task = GeoDfmTask(spec, self.workers)
        task.eventReceived.connect(self.on_event)
        task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        task.ended.connect(self.on_task_ended)
        self.task = task
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        QgsApplication.taskManager().addTask(task)

    def cancel(self) -> None:
        """Cancel button: the worker stops the job at its next step (or is killed)."""
        if self.task is not None:
            self.log("Cancelling…")
            self.task.cancel()

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "stage":
            self.log(f"{event.get('stage')}…")
        elif kind == "log":
            self.log(f"{event.get('level', '')}: {event.get('message', '')}")
        elif kind == "error":
            self.log(f"error ({event.get('code')}): {event.get('message', '')}")
        elif kind == "result":
            self.log("done")

    def on_task_ended(self, success: bool) -> None:
        task, self.task = self.task, None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        client = self.workers.current
        if client is not None and client.ready_info and client.ready_info.get("models"):
            self.set_models(list(client.ready_info["models"]))
        if success and task is not None:
            self.progress_bar.setValue(100)
            self.log(f"Added {len(task.added_layers)} layers.")
        elif task is not None and task.isCanceled():
            self.progress_bar.setValue(0)
            self.log("Cancelled; nothing was added.")
        elif task is not None:
            self.progress_bar.setValue(0)
            self.log(f"Failed: {task.error_message}")
            if self.iface is not None and self.iface.messageBar() is not None:
                self.iface.messageBar().pushWarning("geo-dfm", task.error_message.splitlines()[0][:200])

    def log(self, text: str) -> None:
        self.log_view.appendPlainText(text)

    def set_models(self, names: list[str]) -> None:
        """Offer the worker's registry names (keeps what the user typed)."""
        current = self.model_combo.currentText()
        self.model_combo.clear()
        self.model_combo.addItems(names)
        self.model_combo.setEditText(current)

    # --- state --------------------------------------------------------------------------------
    def save_state(self) -> None:
        values = {
            "mode": self.mode_combo.currentData(),
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
        index = self.mode_combo.findData(read("panel/mode", "localize"))
        self.mode_combo.setCurrentIndex(max(0, index))
        self.queries.setPlainText(read("panel/queries", ""))
        self.set_labels(list(split_lines(read("panel/labels", ""))))
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(read("panel/preset", ""))))
        model = read("panel/model", "")
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

    def closeEvent(self, event) -> None:
        self.save_state()
        super().closeEvent(event)


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
