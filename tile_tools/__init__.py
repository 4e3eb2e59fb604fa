"""tile_tools: pure-GIS chipping and stitching for geo-dfm (never imports torch).

- reading and chipping scenes: see the chipping modules (``Chip`` value objects, grids, readers)
- stitching chip results back into georeferenced rasters and vector layers
- :mod:`tile_tools.atomic`: atomic file and folder outputs
- :mod:`tile_tools.errors`: :class:`InputError` for bad user input
"""

from tile_tools.atomic import atomic_directory, atomic_file
from tile_tools.errors import InputError, TileToolsError

__all__ = ["InputError", "TileToolsError", "atomic_directory", "atomic_file"]
