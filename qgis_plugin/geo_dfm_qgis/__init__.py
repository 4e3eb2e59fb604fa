"""geo-dfm QGIS plugin: a dock panel and Processing algorithms that run geo-dfm out of process.

The plugin never imports geo_dfm, torch or GDAL-Python: it talks to ``geo-dfm worker`` (or runs the
``geo-dfm`` CLI once, for Processing) in the Python environment chosen in its settings.
"""


def classFactory(iface):
    from geo_dfm_qgis.plugin import GeoDfmPlugin

    return GeoDfmPlugin(iface)
