"""Which raster layers geo-dfm can read, and which bands the map shows as red, green and blue.

geo-dfm runs in another process: it can open files and GDAL virtual paths that name something on
disk or on the network, but not QGIS's in-memory datasets (``/vsimem``) or non-GDAL layers (WMS,
XYZ, PostGIS rasters).
"""

from __future__ import annotations

import os
import re
import tempfile

from qgis.core import (
    QgsMapLayer,
    QgsMultiBandColorRenderer,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
    QgsVectorFileWriter,
    QgsVectorLayer,
)

from geo_dfm_qgis.i18n import tr

#: Files a scene folder contributes to a batch run (GDAL rasters, by file name).
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".png", ".jpg", ".jpeg")

_GDAL_PREFIX = re.compile(r"^[A-Za-z0-9_]{2,}:")  # e.g. NETCDF:"file.nc":var, not a drive letter


def source_problem(source: str, name: str) -> str:
    """Why geo-dfm cannot read the GDAL source ``source`` of layer ``name`` ('' when it can)."""
    path = source.split("|", 1)[0]
    if path.startswith("/vsimem/"):
        return tr("{name} exists only in QGIS's memory (/vsimem); save it as a GeoTIFF first").format(
            name=name
        )
    if path.startswith("/vsi") or os.path.exists(path) or _GDAL_PREFIX.match(path):
        return ""
    return tr("{name}: the file {path} does not exist").format(name=name, path=path)


def layer_problem(layer: QgsMapLayer | None) -> str:
    """Why geo-dfm cannot read ``layer`` ('' when it can)."""
    if not isinstance(layer, QgsRasterLayer) or not layer.isValid():
        return tr("choose a raster layer")
    if layer.providerType() != "gdal":
        return tr(
            "{name} is a {provider} layer; geo-dfm reads raster files: save it as a GeoTIFF first "
            "(Export → Save As…)"
        ).format(name=layer.name(), provider=layer.providerType())
    return source_problem(layer.source(), layer.name())


def shown_bands(layer: QgsMapLayer | None) -> tuple[int, ...]:
    """The 1-based bands the layer's style shows as (red, green, blue), or (grey,); () if unknown."""
    if not isinstance(layer, QgsRasterLayer):
        return ()
    renderer = layer.renderer()
    if isinstance(renderer, QgsMultiBandColorRenderer):
        bands = (renderer.redBand(), renderer.greenBand(), renderer.blueBand())
        return bands if all(band > 0 for band in bands) else ()
    if isinstance(renderer, QgsSingleBandGrayRenderer):
        return (renderer.grayBand(),) if renderer.grayBand() > 0 else ()
    if isinstance(renderer, (QgsSingleBandPseudoColorRenderer, QgsPalettedRasterRenderer)):
        return (renderer.band(),) if renderer.band() > 0 else ()
    return ()


def bands_text(bands: tuple[int, ...]) -> str:
    """``(3, 2, 1)`` → ``"3,2,1"`` (geo-dfm's ``bands`` parameter)."""
    return ",".join(str(band) for band in bands)


def folder_rasters(folder: str) -> list[str]:
    """The raster files directly in ``folder`` (by suffix, case-insensitive), sorted by name."""
    if not folder or not os.path.isdir(folder):
        return []
    names = sorted(name for name in os.listdir(folder) if name.lower().endswith(RASTER_SUFFIXES))
    return [os.path.join(folder, name) for name in names if os.path.isfile(os.path.join(folder, name))]


def vector_file(layer: QgsVectorLayer) -> str:
    """An OGR source geo-dfm can open for ``layer``: its own file (``path|layername=…``), else its
    features written to a temporary GeoPackage (memory and database layers)."""
    path = layer.source().split("|", 1)[0]
    if layer.providerType() == "ogr" and os.path.isfile(path):
        return layer.source()
    return write_features(layer, only_selected=False)


def write_selected_features(layer: QgsVectorLayer) -> str:
    """Write a layer's selected features to a temporary GeoPackage (geo-dfm reprojects it)."""
    return write_features(layer, only_selected=True)


def write_features(layer: QgsVectorLayer, only_selected: bool) -> str:
    """Write a layer's (selected) features to a temporary GeoPackage; returns its path."""
    path = os.path.join(
        tempfile.mkdtemp(prefix="geo-dfm-aoi-" if only_selected else "geo-dfm-labels-"), "layer.gpkg"
    )
    options = QgsVectorFileWriter.SaveVectorOptions()
    options.driverName = "GPKG"
    options.onlySelectedFeatures = only_selected
    write = getattr(QgsVectorFileWriter, "writeAsVectorFormatV3", None) or (
        QgsVectorFileWriter.writeAsVectorFormatV2
    )
    result = write(layer, path, QgsProject.instance().transformContext(), options)
    error = result[0] if isinstance(result, tuple) else result
    if error != QgsVectorFileWriter.WriterError.NoError:
        raise OSError(f"cannot write the selected features of {layer.name()} to {path}: {result}")
    return path
