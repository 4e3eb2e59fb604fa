"""``SceneReader``: windowed, nodata-aware reads of any GDAL raster as ``Chip`` objects.

The reader never loads a scene whole. It works on a *working grid* (:attr:`SceneReader.grid`):

- the source grid itself (default);
- a resampled grid at a target ground resolution (``gsd`` in metres), read through a ``WarpedVRT``;
- a UTM grid, picked from the scene centre, when the scene is in degrees and a metric parameter is
  used (``gsd`` or ``metric=True``): metre sizes on degree grids are a classic GIS pitfall;
- the EPSG:3857 grid of the XYZ tiles covering the scene (``xyz_zoom``), one tile per window.

Conversion to 8 bit uses one :class:`~tile_tools.stretch.Stretch` per scene (percentiles of a
decimated read), so a chip's pixels never depend on which other chips are read. Each thread gets
its own dataset handle, so a prefetcher can read in parallel.
"""

from __future__ import annotations

import math
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform, transform_bounds
from rasterio.windows import Window

from tile_tools.chip import Chip
from tile_tools.errors import InputError
from tile_tools.pixel_grid import PixelGrid
from tile_tools.stretch import STRETCH_MODES, Stretch, percentile_stretch


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS containing (lon, lat) (standard 6° zones, no Norway exceptions)."""
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def metres_per_unit(crs: CRS | None) -> float | None:
    """Metres per CRS unit for a projected CRS (1 for metres, 0.3048… for feet); None otherwise."""
    if crs is None or crs.is_geographic:
        return None
    try:
        return float(crs.linear_units_factor[1])
    except Exception:  # CRS without linear units (engineering, unknown)
        return None


def is_virtual_source(text: str) -> bool:
    """A URL, a GDAL ``/vsi…`` path or an inline VRT: passed to GDAL as is, not checked on disk."""
    return "://" in text or text.startswith("/vsi") or text.lstrip().startswith("<")


def _scene_name(path: str | os.PathLike[str]) -> str:
    return str(path)


class SceneReader:
    """Read chips from one scene. Use as a context manager (or call :meth:`close`).

    ``bands``: 1-based indexes for RGB (three) or grey (one, repeated); default: the bands whose
    colour interpretation is red/green/blue, else 1-2-3, else band 1 as grey (alpha bands ignored).
    ``stretch``: ``auto`` (percentile for non-8-bit data, untouched 8-bit), ``percentile`` or ``none``.
    ``gsd``: target ground resolution in metres. ``read_raw``: chips also carry every source band in
    the source dtype. ``metric``: a metric parameter will be used (reproject degree scenes to UTM).
    ``xyz_zoom``/``tile_size``: work on the XYZ tiles of that zoom. A folder path is read as a local
    slippy-map tile folder ``z/x/y.png|jpg`` (see :mod:`tile_tools.xyz`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        bands: tuple[int, ...] | list[int] | None = None,
        stretch: str = "auto",
        gsd: float | None = None,
        read_raw: bool = False,
        *,
        metric: bool = False,
        xyz_zoom: int | None = None,
        tile_size: int = 256,
        resampling: str = "bilinear",
        percentiles: tuple[float, float] = (2.0, 98.0),
        mask_max_size: int = 4096,
        sample_max_size: int = 1024,
    ) -> None:
        self.path = path
        self.scene = _scene_name(path)
        if stretch not in STRETCH_MODES:
            raise InputError(
                "--stretch", f"unknown stretch {stretch!r}; choose from {', '.join(STRETCH_MODES)}"
            )
        if gsd is not None and not gsd > 0:
            raise InputError("--gsd", f"ground resolution must be positive, got {gsd}")
        if tile_size < 1:
            raise InputError("--tile-size", f"tile size must be positive, got {tile_size}")
        try:
            self._resampling = Resampling[resampling]
        except KeyError:
            raise InputError("resampling", f"unknown resampling {resampling!r}") from None
        self.read_raw = read_raw
        self.xyz_zoom = xyz_zoom
        self.tile_size = tile_size
        self._percentiles = percentiles
        self._mask_max_size = mask_max_size
        self._sample_max_size = sample_max_size
        self._local = threading.local()
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        self._valid_cache: tuple[np.ndarray, float, float] | None = None
        self._integral: np.ndarray | None = None
        self.xyz_origin: tuple[int, int] | None = None  # (x, y) of the top-left tile in XYZ mode

        self._source_path = self._resolve_source(path)
        src = self._open_source()
        try:
            self._inspect(src, bands)
            self._warp = self._plan_working_grid(src, gsd, metric)
        except Exception:
            src.close()
            raise
        self._local.handles = (src, self._make_working(src))
        self._handles.append(self._local.handles)
        try:
            self._check_valid_data()
            self.stretch = self._compute_stretch(stretch)
        except Exception:
            self.close()
            raise

    # --- opening ------------------------------------------------------------------------------
    def _resolve_source(self, path: str | os.PathLike[str]) -> str:
        text = str(path)
        if is_virtual_source(text):
            return text
        p = Path(text)
        if not p.exists():
            raise InputError(path, "file not found")
        if p.is_dir():
            from tile_tools.xyz import slippy_folder_vrt

            return slippy_folder_vrt(p)
        return text

    def _open_source(self) -> Any:
        try:
            return rasterio.open(self._source_path)
        except RasterioIOError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else "unknown reason"
            raise InputError(self.path, f"not a raster GDAL can read ({detail})") from None

    def _inspect(self, src: Any, bands: tuple[int, ...] | list[int] | None) -> None:
        if src.width < 1 or src.height < 1 or src.count < 1:
            raise InputError(self.path, f"empty raster ({src.width}×{src.height} px, {src.count} bands)")
        self.count = src.count
        self.dtype = np.dtype(src.dtypes[0])
        self.source_grid = PixelGrid(src.width, src.height, src.transform, src.crs)
        self.nodata = src.nodata
        self.alpha_band = next(
            (i + 1 for i, ci in enumerate(src.colorinterp) if ci == ColorInterp.alpha), None
        )
        self.bands = self._select_bands(src, bands)

    def _select_bands(self, src: Any, bands: tuple[int, ...] | list[int] | None) -> tuple[int, int, int]:
        if bands:
            bands = tuple(int(b) for b in bands)
            for band in bands:
                if not 1 <= band <= src.count:
                    raise InputError(
                        self.path, f"band {band} does not exist (the scene has {src.count} bands)"
                    )
            if len(bands) == 1:
                return (bands[0],) * 3
            if len(bands) != 3:
                raise InputError(self.path, f"give one band (grey) or three (RGB), got {list(bands)}")
            return bands  # type: ignore[return-value]
        interp = list(src.colorinterp)
        wanted = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        if all(ci in interp for ci in wanted):
            return tuple(interp.index(ci) + 1 for ci in wanted)  # type: ignore[return-value]
        data_bands = [i + 1 for i, ci in enumerate(interp) if ci != ColorInterp.alpha] or [1]
        if len(data_bands) >= 3:
            return tuple(data_bands[:3])  # type: ignore[return-value]
        return (data_bands[0],) * 3

    def _needs_crs(self, what: str) -> None:
        if self.source_grid.crs is None:
            raise InputError(self.path, f"the scene has no CRS; {what} needs a georeferenced scene")

    def _plan_working_grid(self, src: Any, gsd: float | None, metric: bool) -> dict[str, Any] | None:
        """Decide the working grid; returns the WarpedVRT parameters, or None to read the source."""
        source = self.source_grid
        if self.xyz_zoom is not None:
            from tile_tools.xyz import xyz_grid

            self._needs_crs("XYZ tiling")
            lnglat = transform_bounds(source.crs, "EPSG:4326", *source.bounds, densify_pts=21)
            grid, origin = xyz_grid(lnglat, self.xyz_zoom, self.tile_size, source=self.path)
            self.xyz_origin = origin
            self.grid = grid
            return {"crs": grid.crs, "transform": grid.transform, "width": grid.width, "height": grid.height}
        if gsd is None and not metric:
            self.grid = source
            return None
        self._needs_crs("a size in metres or --gsd" if metric else "--gsd")
        dst_crs = source.crs
        if source.crs.is_geographic:
            lon0, lat0, lon1, lat1 = transform_bounds(source.crs, "EPSG:4326", *source.bounds)
            dst_crs = utm_crs_for((lon0 + lon1) / 2.0, (lat0 + lat1) / 2.0)
        if dst_crs == source.crs and gsd is None:
            self.grid = source
            return None
        unit = metres_per_unit(dst_crs)
        if unit is None:
            raise InputError(self.path, f"the CRS {dst_crs} has no linear unit; cannot use metres")
        res = None if gsd is None else gsd / unit
        left, bottom, right, top = source.bounds
        if dst_crs == source.crs and source.transform.b == 0 and source.transform.d == 0:
            transform = Affine(res, 0.0, left, 0.0, -res, top)
            width = max(1, math.ceil((right - left) / res - 1e-9))
            height = max(1, math.ceil((top - bottom) / res - 1e-9))
        else:
            transform, width, height = calculate_default_transform(
                source.crs, dst_crs, source.width, source.height, left, bottom, right, top, resolution=res
            )
        self.grid = PixelGrid(int(width), int(height), transform, dst_crs)
        return {"crs": dst_crs, "transform": transform, "width": int(width), "height": int(height)}

    def _make_working(self, src: Any) -> Any:
        if self._warp is None:
            return src
        options: dict[str, Any] = dict(self._warp, resampling=self._resampling)
        if src.nodata is None and self.alpha_band is None:
            options["add_alpha"] = True  # the warped VRT then marks pixels outside the source invalid
        return WarpedVRT(src, **options)

    def _dataset(self) -> Any:
        """The working dataset of the calling thread (opened on first use)."""
        handles = getattr(self._local, "handles", None)
        if handles is None:
            src = self._open_source()
            handles = (src, self._make_working(src))
            self._local.handles = handles
            with self._lock:
                self._handles.append(handles)
        return handles[1]

    def close(self) -> None:
        """Close every handle opened by any thread."""
        with self._lock:
            for src, working in self._handles:
                if working is not src:
                    working.close()
                src.close()
            self._handles.clear()
        self._local = threading.local()

    def __enter__(self) -> SceneReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- scene-wide, computed once ------------------------------------------------------------
    def _decimated_shape(self, max_size: int) -> tuple[int, int]:
        factor = max(1.0, max(self.grid.width, self.grid.height) / max_size)
        return max(1, round(self.grid.height / factor)), max(1, round(self.grid.width / factor))

    def _check_valid_data(self) -> None:
        mask, _, _ = self.valid_mask_overview()
        if not mask.any():
            raise InputError(self.path, "no valid data (every pixel is nodata or masked)")

    def valid_mask_overview(self) -> tuple[np.ndarray, float, float]:
        """(mask, row_scale, col_scale): the valid-data mask at ≤ ``mask_max_size`` px on the long side.

        Overview pixel (i, j) stands for working-grid rows ``i*row_scale … (i+1)*row_scale``. It is exact
        (scales 1.0) for grids up to ``mask_max_size``; larger scenes use GDAL overviews when present.
        """
        if self._valid_cache is None:
            height, width = self._decimated_shape(self._mask_max_size)
            ds = self._dataset()
            mask = ds.dataset_mask(out_shape=(height, width), resampling=Resampling.nearest) > 0
            if self.dtype.kind == "f":
                for index in self._rgb_indexes:
                    mask &= np.isfinite(ds.read(index, out_shape=(height, width)))
            integral = np.zeros((height + 1, width + 1), dtype=np.int64)
            integral[1:, 1:] = mask.cumsum(0).cumsum(1)
            self._integral = integral
            self._valid_cache = (mask, self.grid.height / height, self.grid.width / width)
        return self._valid_cache

    def valid_fraction(self, window: Window) -> float:
        """Fraction of ``window`` holding valid data (exact up to ``mask_max_size``; outside grid = invalid)."""
        mask, row_scale, col_scale = self.valid_mask_overview()
        assert self._integral is not None
        area = float(window.width * window.height)
        if area <= 0:
            return 0.0
        r0 = max(0.0, window.row_off) / row_scale
        r1 = min(self.grid.height, window.row_off + window.height) / row_scale
        c0 = max(0.0, window.col_off) / col_scale
        c1 = min(self.grid.width, window.col_off + window.width) / col_scale
        if r1 <= r0 or c1 <= c0:
            return 0.0
        i0, i1 = math.floor(r0 + 1e-9), max(math.floor(r0 + 1e-9) + 1, math.ceil(r1 - 1e-9))
        j0, j1 = math.floor(c0 + 1e-9), max(math.floor(c0 + 1e-9) + 1, math.ceil(c1 - 1e-9))
        i1, j1 = min(i1, mask.shape[0]), min(j1, mask.shape[1])
        ii = self._integral
        valid = ii[i1, j1] - ii[i0, j1] - ii[i1, j0] + ii[i0, j0]
        inside = (r1 - r0) * row_scale * (c1 - c0) * col_scale
        return float(valid) / ((i1 - i0) * (j1 - j0)) * inside / area

    def _compute_stretch(self, mode: str) -> Stretch:
        if mode == "none" or (mode == "auto" and self.dtype == np.uint8):
            return Stretch()
        height, width = self._decimated_shape(self._sample_max_size)
        ds = self._dataset()
        indexes = self._rgb_indexes
        sample = ds.read(indexes, out_shape=(len(indexes), height, width), resampling=Resampling.nearest)
        valid = ds.dataset_mask(out_shape=(height, width), resampling=Resampling.nearest) > 0
        per_index = percentile_stretch(sample, valid, self._percentiles)
        order = [indexes.index(b) for b in self.bands]
        return Stretch(
            tuple(per_index.low[i] for i in order),  # type: ignore[index]
            tuple(per_index.high[i] for i in order),  # type: ignore[index]
        )

    @property
    def _rgb_indexes(self) -> list[int]:
        return sorted(set(self.bands))

    # --- chips ----------------------------------------------------------------------------------
    def read_chip(self, window: Window) -> Chip:
        """The chip of an integer ``window`` of the working grid; parts outside the grid are invalid."""
        col, row = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        if (col, row, width, height) != (window.col_off, window.row_off, window.width, window.height):
            raise ValueError(f"chip windows must be whole pixels, got {window}")
        window = Window(col, row, width, height)
        grid = self.grid
        ds = self._dataset()
        indexes = list(range(1, self.count + 1)) if self.read_raw else self._rgb_indexes
        data = np.zeros((len(indexes), height, width), dtype=self.dtype)
        if self.nodata is not None and self.read_raw:
            data[...] = np.asarray(self.nodata).astype(self.dtype)
        mask = np.zeros((height, width), dtype=bool)
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + width, grid.width), min(row + height, grid.height)
        if c1 > c0 and r1 > r0:
            inner = Window(c0, r0, c1 - c0, r1 - r0)
            rows, cols = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
            data[:, rows, cols] = ds.read(indexes, window=inner)
            mask[rows, cols] = ds.dataset_mask(window=inner) > 0
        rgb = data[[indexes.index(b) for b in self.bands]]
        if self.dtype.kind == "f":
            mask &= np.isfinite(rgb).all(axis=0)
            rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0)
        image = self.stretch.apply(rgb)
        image = np.where(mask, image, 0).astype(np.uint8).transpose(1, 2, 0)
        return Chip(
            image=np.ascontiguousarray(image),
            mask=mask,
            window=window,
            transform=grid.window_transform(window),
            crs=grid.crs,
            scale=max(width, height),
            raw=data if self.read_raw else None,
            tile=self._tile_of(window),
            scene=self.scene,
        )

    def _tile_of(self, window: Window) -> Any:
        if self.xyz_origin is None:
            return None
        size = self.tile_size
        if window.width != size or window.height != size or window.col_off % size or window.row_off % size:
            return None
        import mercantile

        x0, y0 = self.xyz_origin
        return mercantile.Tile(
            x0 + int(window.col_off) // size, y0 + int(window.row_off) // size, self.xyz_zoom
        )


def open_scene(path: str | os.PathLike[str], **options: Any) -> SceneReader:
    """Open ``path`` as a :class:`SceneReader` (same keyword options)."""
    return SceneReader(path, **options)
