"""Processing provider and algorithms (toolbox, batch dialog, Model Designer, qgis_process)."""
