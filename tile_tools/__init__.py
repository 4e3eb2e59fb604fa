"""tile_tools: pure-GIS chipping and stitching for geo-dfm (never imports torch).

- reading and chipping scenes: see the chipping modules (``Chip`` value objects, grids, readers)
- stitching chip results back into georeferenced rasters and vector layers
- :mod:`tile_tools.atomic`: atomic file and folder outputs
- :mod:`tile_tools.errors`: :class:`InputError` for bad user input
"""

from tile_tools.atomic import atomic_directory, atomic_file
from tile_tools.errors import InputError, TileToolsError

__all__ = ["InputError", "TileToolsError", "atomic_directory", "atomic_file"]

# Chipping API (issue 3), imported on first use so `import tile_tools` stays light.
_CHIPPING_EXPORTS = {
    "Chip": "tile_tools.chip",
    "ChipGridSpec": "tile_tools.grid",
    "ChipPlan": "tile_tools.grid",
    "Length": "tile_tools.units",
    "SceneReader": "tile_tools.reader",
    "iter_chip_batches": "tile_tools.prefetch",
    "open_scene": "tile_tools.reader",
    "plan_chips": "tile_tools.grid",
    "plan_windows": "tile_tools.grid",
    "regular_windows": "tile_tools.grid",
    "selo_windows": "tile_tools.grid",
}
__all__ += list(_CHIPPING_EXPORTS)

# Stitching API (issue 4), imported on first use as well.
_STITCHING_EXPORTS = {
    "Block": "tile_tools.blocks",
    "WeightedAccumulator": "tile_tools.accumulate",
    "selo_mean": "tile_tools.accumulate",
    "minmax_normalize": "tile_tools.postprocess",
    "median_filter": "tile_tools.postprocess",
    "gaussian_smooth": "tile_tools.postprocess",
    "selo_postprocess": "tile_tools.postprocess",
    "write_cog": "tile_tools.raster_writers",
    "write_class_raster": "tile_tools.raster_writers",
    "write_preview_png": "tile_tools.raster_writers",
    "write_overlay_png": "tile_tools.raster_writers",
    "heatmap_to_polygons": "tile_tools.vectorize",
    "chip_labels_to_polygons": "tile_tools.vectorize",
    "dissolve_labels": "tile_tools.vectorize",
    # block-wise outputs (issue 11)
    "WeightedBlock": "tile_tools.accumulate",
    "ChannelStats": "tile_tools.block_stats",
    "normalized_blocks": "tile_tools.block_stats",
    "blocks_percentile": "tile_tools.block_stats",
    "LabelBlock": "tile_tools.class_blocks",
    "label_block": "tile_tools.class_blocks",
    "ClassAreas": "tile_tools.class_blocks",
    "CogWriter": "tile_tools.raster_writers",
    "ClassRasterWriter": "tile_tools.raster_writers",
    "PreviewGrid": "tile_tools.preview",
    "PreviewWriter": "tile_tools.preview",
    "HeatRegions": "tile_tools.vectorize",
    "ClassRegions": "tile_tools.vectorize",
    "class_map_to_polygons": "tile_tools.vectorize",
    "SeloMap": "tile_tools.selo_map",
    "selo_postprocess_blocks": "tile_tools.postprocess",
}
__all__ += list(_STITCHING_EXPORTS)


def __getattr__(name: str):
    module = _CHIPPING_EXPORTS.get(name) or _STITCHING_EXPORTS.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'tile_tools' has no attribute {name!r}")
