"""geo-dfm: remote-sensing domain foundation models for maps.

Load RS CLIP models (GeoRSCLIP, RemoteCLIP, SkyCLIP, CLIP), label chips zero-shot, build
text-query semantic-localization heatmaps, retrieve chips by text and fine-tune domain
models, on georeferenced scenes chipped and stitched by :mod:`tile_tools`.
"""

__version__ = "0.1.0"
