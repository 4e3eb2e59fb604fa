"""Label presets: benchmark class lists (as the datasets name their class folders) and map classes.

AID and RESISC45 names are those of the GeoRSCLIP evaluation data (``rs5m_test_data``), EuroSAT
those of the EuroSAT RGB folders. Prompts normalise them (``_``/``/`` → space, lower case), so
``"AnnualCrop"`` is sent as ``"annualcrop"`` exactly as in the paper's protocol.
"""

from __future__ import annotations

import difflib

from geo_dfm.errors import InputError

LABEL_PRESETS: dict[str, tuple[str, ...]] = {
    "aid": (
        "Airport",
        "Bare Land",
        "Baseball Field",
        "Beach",
        "Bridge",
        "Center",
        "Church",
        "Commercial",
        "Dense Residential",
        "Desert",
        "Farmland",
        "Forest",
        "Industrial",
        "Meadow",
        "Medium Residential",
        "Mountain",
        "Park",
        "Parking",
        "Playground",
        "Pond",
        "Port",
        "Railway Station",
        "Resort",
        "River",
        "School",
        "Sparse Residential",
        "Square",
        "Stadium",
        "Storage Tanks",
        "Viaduct",
    ),
    "resisc45": (
        "airplane",
        "airport",
        "baseball_diamond",
        "basketball_court",
        "beach",
        "bridge",
        "chaparral",
        "church",
        "circular_farmland",
        "cloud",
        "commercial_area",
        "dense_residential",
        "desert",
        "forest",
        "freeway",
        "golf_course",
        "ground_track_field",
        "harbor",
        "industrial_area",
        "intersection",
        "island",
        "lake",
        "meadow",
        "medium_residential",
        "mobile_home_park",
        "mountain",
        "overpass",
        "palace",
        "parking_lot",
        "railway",
        "railway_station",
        "rectangular_farmland",
        "river",
        "roundabout",
        "runway",
        "sea_ice",
        "ship",
        "snowberg",
        "sparse_residential",
        "stadium",
        "storage_tank",
        "tennis_court",
        "terrace",
        "thermal_power_station",
        "wetland",
    ),
    "eurosat": (
        "AnnualCrop",
        "Forest",
        "HerbaceousVegetation",
        "Highway",
        "Industrial",
        "Pasture",
        "PermanentCrop",
        "Residential",
        "River",
        "SeaLake",
    ),
    # Practical land cover for maps: broad classes a CLIP model separates well from above.
    "landcover": (
        "water",
        "forest",
        "grassland",
        "farmland",
        "wetland",
        "bare soil",
        "residential area",
        "industrial area",
        "road",
        "airport",
        "snow and ice",
    ),
}


def list_label_presets() -> list[str]:
    """Names accepted by :func:`get_label_preset`."""
    return list(LABEL_PRESETS)


def get_label_preset(name: str) -> list[str]:
    """The class labels of preset ``name`` (aid, resisc45, eurosat, landcover)."""
    key = name.strip().lower()
    if key not in LABEL_PRESETS:
        close = difflib.get_close_matches(key, list(LABEL_PRESETS), n=2, cutoff=0.5)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise InputError(
            "--preset", f"unknown label preset {name!r}{hint}; choose from {', '.join(LABEL_PRESETS)}"
        )
    return list(LABEL_PRESETS[key])
