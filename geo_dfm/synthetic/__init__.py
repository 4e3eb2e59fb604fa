"""A synthetic world in which the answer is known: georeferenced land-cover scenes and a toy model.

- :func:`make_scene` writes a scene (RGB GeoTIFF) with its truth raster and truth polygons.
- :data:`LANDCOVER_CLASSES` / :data:`CLASS_NAMES`: the classes (water, forest, farmland, town,
  bare soil, runway), their synonyms and :func:`sample_caption` (the captions the toy model learns).
- :func:`ensure_toy_model` trains (once, cached) the tiny open_clip model ``geo-dfm-toy``.
"""

from geo_dfm.synthetic.classes import (
    CLASS_NAMES,
    LANDCOVER_CLASSES,
    NODATA_CLASS,
    RS105_TEMPLATES,
    LandCoverClass,
    landcover_class,
    sample_caption,
)
from geo_dfm.synthetic.layout import LAYOUTS
from geo_dfm.synthetic.render import RenderedScene, render_scene
from geo_dfm.synthetic.scene import SyntheticScene, make_scene, truth_polygons
from geo_dfm.synthetic.toy_model import (
    TOY_MODEL_NAME,
    TRAINING_SEED_START,
    ensure_toy_model,
    toy_model_file,
)

__all__ = [
    "CLASS_NAMES",
    "LANDCOVER_CLASSES",
    "LAYOUTS",
    "NODATA_CLASS",
    "RS105_TEMPLATES",
    "TOY_MODEL_NAME",
    "TRAINING_SEED_START",
    "LandCoverClass",
    "RenderedScene",
    "SyntheticScene",
    "ensure_toy_model",
    "landcover_class",
    "make_scene",
    "render_scene",
    "sample_caption",
    "toy_model_file",
    "truth_polygons",
]
