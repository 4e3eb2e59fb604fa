"""Image–text pairs for fine-tuning: reading every format, making pairs from map labels, RS filtering.

- :func:`open_pairs` — CSV/Parquet tables (RSICD/RSITMD style, GB18030 too), captioned ImageFolders,
  WebDataset-style tar shards (streamed); the result feeds :func:`geo_dfm.training.train_contrastive`.
- :mod:`geo_dfm.pairs.from_labels` — chips over labelled polygons of a map, captioned from templates.
- :mod:`geo_dfm.pairs.rs_filter` — the RS5M filtering step (CLIP scores against RS / non-RS prompts).
"""

from geo_dfm.pairs.captions import CaptionMaker, caption
from geo_dfm.pairs.files import FilePairs, PairRecord
from geo_dfm.pairs.images import decode_image, read_image
from geo_dfm.pairs.shards import ShardPairs, ShardWriter, write_shards
from geo_dfm.pairs.sources import PairsFormat, PairSource, open_pairs

__all__ = [
    "CaptionMaker",
    "FilePairs",
    "PairRecord",
    "PairSource",
    "PairsFormat",
    "ShardPairs",
    "ShardWriter",
    "caption",
    "decode_image",
    "open_pairs",
    "read_image",
    "write_shards",
]
