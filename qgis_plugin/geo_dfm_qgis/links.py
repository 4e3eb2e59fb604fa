"""Where the plugin's help lives (the panel's Help button, each Processing algorithm's help link)."""

HELP_URL = "https://github.com/geo-dfm/geo-dfm/blob/main/docs/qgis.md"


def help_url(anchor: str = "") -> str:
    """The guide, or one of its sections (``help_url("processing-localize")``)."""
    return f"{HELP_URL}#{anchor}" if anchor else HELP_URL
