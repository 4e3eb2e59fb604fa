"""Text-to-image for remote sensing: the published GeoRSSD checkpoints through ``diffusers``.

- :mod:`geo_dfm.generate.registry`: one :class:`GeneratorSpec` per published pipeline folder
  (no heavy imports; separate from the CLIP registry in :mod:`geo_dfm.models.registry`).
- :mod:`geo_dfm.generate.weights`: finding a pipeline folder in the Hugging Face cache, downloading
  only that folder, and the offline error that says how to get it.
- :mod:`geo_dfm.generate.backend`: the image boundary — :class:`TextToImage` (prompts + seeds → RGB
  uint8 images) and its diffusers implementation.
- :mod:`geo_dfm.generate.prompt_filter`: the RS CLIP filter (own prompt must win by a margin).
- :mod:`geo_dfm.generate.pairs`: the ``pairs.csv`` format shared with fine-tuning.

``diffusers`` is an optional extra (``pip install 'geo-dfm[generate]'``); nothing here imports it
before a generation actually runs.
"""
