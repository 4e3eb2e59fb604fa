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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from tile_tools.chip import Chip, GridImage
from tile_tools.errors import InputError
from tile_tools.mask_overview import MaskOverview
from tile_tools.pixel_grid import PixelGrid
from tile_tools.stretch import STRETCH_MODES, Stretch, percentile_stretch

MAX_GRID_PIXELS = 100_000_000_000  # working-grid pixels (≈ 316 000² px); the reader's max_grid_pixels
MAX_PREVIEW_PIXELS = 4096 * 4096  # read_image_on: the largest grid read whole


def utm_crs_for(lon: float, lat: float) -> CRS:
    """The WGS 84 / UTM zone CRS containing (lon, lat) (standard 6° zones, no Norway exceptions;
    longitudes beyond ±180° are wrapped)."""
    lon = (lon + 180.0) % 360.0 - 180.0
    zone = min(60, max(1, int(math.floor((lon + 180.0) / 6.0)) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def unwrapped_degrees(crs: CRS | None, bounds: tuple[float, float, float, float]) -> CRS | None:
    """For a degree CRS whose scene spells longitudes past ±180° (179…181°, or −181…−179°): the same CRS
    with PROJ's ``+lon_wrap``, to warp from (GDAL's inverse transform otherwise wraps the longitudes
    beyond the antimeridian back into ±180°, off the scene's pixels, and that part is lost). ``None``
    when not needed."""
    if crs is None or not crs.is_geographic:
        return None
    west, _, east, _ = bounds
    if east > 180.0:
        wrap = 180
    elif west < -180.0:
        wrap = -180
    else:
        return None
    return CRS.from_proj4(f"{crs.to_proj4()} +lon_wrap={wrap}")


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
    return os.fspath(path)


def gdal_error_detail(exc: BaseException) -> str:
    """The most telling line GDAL gave for ``exc`` (rasterio keeps it in the exception chain: block and
    offset of a failed read), on one line."""
    messages: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text and "See previous exception" not in text:
            messages.append(text)
        current = current.__cause__ or current.__context__
    telling = [m for m in messages if "offset" in m or "block" in m.lower()]
    return (telling or messages or ["unknown reason"])[0]


class SceneReader:
    """Read chips from one scene. Use as a context manager (or call :meth:`close`).

    ``bands``: 1-based indexes for RGB (three) or grey (one, repeated); default: the bands whose
    colour interpretation is red/green/blue, else 1-2-3, else band 1 as grey (alpha bands ignored).
    ``stretch``: ``auto`` (percentile for non-8-bit data, untouched 8-bit), ``percentile`` or ``none``.
    ``gsd``: target ground resolution in metres. ``read_raw``: chips also carry every source band in
    the source dtype. ``metric``: a metric parameter will be used (reproject degree scenes to UTM).
    ``xyz_zoom``/``tile_size``: work on the XYZ tiles of that zoom. A folder path is read as a local
    slippy-map tile folder ``z/x/y.png|jpg`` (see :mod:`tile_tools.xyz`). URLs and GDAL virtual paths
    (``/vsizip//…``, ``/vsicurl/…``) are passed to GDAL verbatim: give them as ``str``.
    ``max_grid_pixels``: a working grid with more pixels is refused before it is built.
    ``before_reading``: called with the reader once ``grid`` and ``source_grid`` are known, before any
    pixel is read (``plan_chips`` checks its plan limits and the AOI there); its error closes the reader.

    Errors: bad parameters are :class:`InputError` naming the keyword (``stretch``, ``gsd``, …); a file
    GDAL cannot open or read (truncated, corrupt) is an :class:`InputError` naming the file and, where
    GDAL says, the block/offset, at open time and at chip-read time (also in prefetch threads).
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
        max_grid_pixels: int = MAX_GRID_PIXELS,
        before_reading: Callable[[SceneReader], None] | None = None,
    ) -> None:
        self.path = path
        self.scene = _scene_name(path)
        if stretch not in STRETCH_MODES:
            raise InputError(
                "stretch", f"unknown stretch {stretch!r}; choose from {', '.join(STRETCH_MODES)}"
            )
        if gsd is not None and not gsd > 0:
            raise InputError("gsd", f"ground resolution must be positive, got {gsd}")
        if tile_size < 1:
            raise InputError("tile_size", f"tile size must be positive, got {tile_size}")
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
        self._max_grid_pixels = max_grid_pixels
        self._gsd = gsd
        self._local = threading.local()
        self._handles: list[Any] = []
        self._lock = threading.Lock()
        self._overview: MaskOverview | None = None
        self.xyz_origin: tuple[int, int] | None = None  # (x, y) of the top-left tile in XYZ mode
        self.xyz_wraps = False  # XYZ grid across the antimeridian (tile x numbers wrap)

        self._source_path = self._resolve_source(path)
        src = self._open_source()
        try:
            self._inspect(src, bands)
            self._warp = self._plan_working_grid(src, gsd, metric)
            self._check_grid_size()
            if before_reading is not None:
                before_reading(self)
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

    @contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        """Turn GDAL read failures (truncated or corrupt files) into an InputError naming the file."""
        try:
            yield
        except RasterioError as exc:
            raise InputError(
                self.path,
                f"cannot read {what}: the file may be truncated or corrupt ({gdal_error_detail(exc)})",
            ) from exc

    def _check_grid_size(self) -> None:
        pixels = self.grid.width * self.grid.height
        if pixels <= self._max_grid_pixels:
            return
        source = self.source_grid
        why = f"a {self._gsd:g} m gsd makes" if self._gsd else "the working grid of"
        raise InputError(
            "max_grid_pixels",
            f"{self.scene}: {why} this {source.width:,}×{source.height:,} px scene a "
            f"{self.grid.width:,}×{self.grid.height:,} px grid ({pixels:.3g} pixels), above the limit of "
            f"{self._max_grid_pixels:.3g}; use a coarser gsd (or an XYZ zoom lower), or raise max_grid_pixels",
        )

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
            from tile_tools.xyz import WEB_MERCATOR, xyz_grid

            self._needs_crs("XYZ tiling")
            lnglat = transform_bounds(source.crs, "EPSG:4326", *source.bounds, densify_pts=21)
            grid, origin = xyz_grid(lnglat, self.xyz_zoom, self.tile_size, source=self.path)
            self.xyz_origin = origin
            self.xyz_wraps = grid.crs != WEB_MERCATOR
            return self._warp_onto(grid, {})
        if gsd is None and not metric:
            self.grid = source
            return None
        self._needs_crs("a size in metres or a gsd" if metric else "a gsd")
        dst_crs = source.crs
        unwrapped = unwrapped_degrees(source.crs, source.bounds)
        src_options: dict[str, Any] = {} if unwrapped is None else {"src_crs": unwrapped}
        if source.crs.is_geographic:
            lon0, lat0, lon1, lat1 = transform_bounds(source.crs, "EPSG:4326", *source.bounds, densify_pts=21)
            if lon0 > lon1:  # across the antimeridian
                lon1 += 360.0
            dst_crs = utm_crs_for((lon0 + lon1) / 2.0, (lat0 + lat1) / 2.0)
        if dst_crs == source.crs and gsd is None:
            self.grid = source
            return None
        unit = metres_per_unit(dst_crs)
        if unit is None:
            raise InputError(self.path, f"the CRS {dst_crs} has no linear unit; cannot use metres")
        if gsd is not None:
            res = gsd / unit
        else:  # GDAL's own suggested resolution for the real (possibly rotated or sheared) source transform
            with WarpedVRT(src, crs=dst_crs, **src_options) as suggested:
                res = suggested.transform.a
        # the extent: the whole footprint (GDAL's suggested size is rounded to whole pixels, which can cut
        # up to half a pixel off the scene's right and bottom edges)
        if dst_crs == source.crs:
            left, bottom, right, top = source.bounds  # all four corners: exact for rotated transforms
        else:
            left, bottom, right, top = transform_bounds(source.crs, dst_crs, *source.bounds, densify_pts=21)
        transform = Affine(res, 0.0, left, 0.0, -res, top)
        width = max(1, math.ceil((right - left) / res - 1e-9))
        height = max(1, math.ceil((top - bottom) / res - 1e-9))
        return self._warp_onto(PixelGrid(int(width), int(height), transform, dst_crs), src_options)

    def _warp_onto(self, grid: PixelGrid, src_options: dict[str, Any]) -> dict[str, Any]:
        """Make ``grid`` the working grid; its WarpedVRT parameters."""
        self.grid = grid
        return {"crs": grid.crs, "transform": grid.transform, "width": grid.width, "height": grid.height} | (
            src_options
        )

    def _make_working(self, src: Any, grid: PixelGrid | None = None) -> Any:
        """The working dataset over ``src``: ``src`` itself, or a WarpedVRT onto the working grid (or onto
        ``grid``, a coarser grid of the same extent, so GDAL warps only that many pixels)."""
        if self._warp is None:
            return src
        options: dict[str, Any] = dict(self._warp, resampling=self._resampling)
        if grid is not None:
            options.update(transform=grid.transform, width=grid.width, height=grid.height)
        if src.nodata is None and self.alpha_band is None:
            options["add_alpha"] = True  # the warped VRT then marks pixels outside the source invalid
        return WarpedVRT(src, **options)

    def _handles_of_thread(self) -> tuple[Any, Any]:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            src = self._open_source()
            handles = (src, self._make_working(src))
            self._local.handles = handles
            with self._lock:
                self._handles.append(handles)
        return handles

    def _dataset(self) -> Any:
        """The working dataset of the calling thread (opened on first use)."""
        return self._handles_of_thread()[1]

    def _read_whole_on(
        self, grid: PixelGrid, indexes: list[int] | None
    ) -> tuple[np.ndarray | None, np.ndarray]:
        """(bands of ``indexes`` or None, valid mask) of the whole working extent on ``grid`` (the working grid
        or a coarser grid starting at its origin), nearest-neighbour: ``out_shape`` reads of the source
        (GDAL overviews) or a WarpedVRT made on ``grid`` itself, never a warp of the full working grid."""
        src, working = self._handles_of_thread()
        if self._warp is None or grid == self.grid:
            shape = (grid.height, grid.width)
            data = None
            if indexes is not None:
                data = working.read(indexes, out_shape=(len(indexes), *shape), resampling=Resampling.nearest)
            mask = working.dataset_mask(out_shape=shape, resampling=Resampling.nearest) > 0
            return data, mask
        with self._make_working(src, grid) as coarse:
            data = None if indexes is None else coarse.read(indexes)
            return data, coarse.dataset_mask() > 0

    def _coarse_grid(self, max_size: int) -> PixelGrid:
        """The working extent at ≤ ``max_size`` px on the long side (the working grid itself when it fits)."""
        height, width = self._decimated_shape(max_size)
        if (height, width) == self.grid.shape:
            return self.grid
        scale = Affine.scale(self.grid.width / width, self.grid.height / height)
        return PixelGrid(width, height, self.grid.transform @ scale, self.grid.crs)

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
        return _bounded_shape(self.grid.height, self.grid.width, max_size)

    def _check_valid_data(self) -> None:
        if self.valid_mask_overview().any():
            return
        if self._warp is not None:  # valid source pixels, but no working-grid pixel centre among them?
            src = self._handles_of_thread()[0]
            height, width = _bounded_shape(src.height, src.width, self._mask_max_size)
            with self._reading("the valid-data mask"):
                source_valid = src.dataset_mask(
                    out_shape=(height, width), resampling=Resampling.nearest
                ).any()
            if source_valid:
                res = " × ".join(f"{r:.4g}" for r in self.grid.res)
                raise InputError(
                    self.path,
                    f"the scene is smaller than one pixel of its {self.grid.width}×{self.grid.height} px working "
                    f"grid ({res} {self.grid.crs.linear_units if self.grid.crs else 'px'} pixels): no pixel "
                    "centre falls inside it; use a finer gsd",
                )
        raise InputError(self.path, "no valid data (every pixel is nodata or masked)")

    def valid_mask_overview(self) -> MaskOverview:
        """The valid-data :class:`MaskOverview` of the working grid, at ≤ ``mask_max_size`` px on the long
        side (exact up to that size; larger scenes use GDAL overviews when present). Computed once."""
        if self._overview is None:
            floats = self._rgb_indexes if self.dtype.kind == "f" else None
            with self._reading("the valid-data mask"):
                data, mask = self._read_whole_on(self._coarse_grid(self._mask_max_size), floats)
            if data is not None:
                mask &= np.isfinite(data).all(axis=0)
            self._overview = MaskOverview(mask, self.grid)
        return self._overview

    def valid_fraction(self, window: Window) -> float:
        """Fraction of ``window`` holding valid data (exact up to ``mask_max_size``; outside grid = invalid)."""
        return self.valid_mask_overview().valid_fraction(window)

    def valid_fractions(self, windows: np.ndarray) -> np.ndarray:
        """(N,) valid fractions of an (N, 4) ``col_off, row_off, width, height`` array (or a WindowArray)."""
        return self.valid_mask_overview().valid_fractions(getattr(windows, "array", windows))

    def _compute_stretch(self, mode: str) -> Stretch:
        if mode == "none" or (mode == "auto" and self.dtype == np.uint8):
            return Stretch()
        indexes = self._rgb_indexes
        with self._reading("a sample for the stretch"):
            sample, valid = self._read_whole_on(self._coarse_grid(self._sample_max_size), indexes)
        assert sample is not None
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
    def _to_image(
        self, data: np.ndarray, mask: np.ndarray, indexes: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """bands×H×W source data of ``indexes`` → (H×W×3 uint8 image, 0 where invalid; updated mask)."""
        rgb = data[[indexes.index(b) for b in self.bands]]
        if self.dtype.kind == "f":
            mask = mask & np.isfinite(rgb).all(axis=0)
            rgb = np.nan_to_num(rgb, nan=0.0, posinf=0.0, neginf=0.0)
        image = self.stretch.apply(rgb)
        image = np.where(mask, image, 0).astype(np.uint8).transpose(1, 2, 0)
        return np.ascontiguousarray(image), mask

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
        inner = window.intersection(Window(0, 0, grid.width, grid.height)) if _meets(window, grid) else None
        if inner is not None:
            inner = inner.round_offsets().round_lengths()
            r0, c0 = int(inner.row_off) - row, int(inner.col_off) - col
            rows, cols = slice(r0, r0 + int(inner.height)), slice(c0, c0 + int(inner.width))
            with self._reading(f"the pixels of window {window_text(window)}"):
                data[:, rows, cols] = ds.read(indexes, window=inner)
                mask[rows, cols] = ds.dataset_mask(window=inner) > 0
        image, mask = self._to_image(data, mask, indexes)
        tile = self._tile_of(window)
        transform, crs = grid.window_transform(window), grid.crs
        if tile is not None and self.xyz_wraps:
            from tile_tools.xyz import WEB_MERCATOR, tile_transform

            transform, crs = tile_transform(tile, self.tile_size), WEB_MERCATOR
        return Chip(
            image=image,
            mask=mask,
            window=window,
            transform=transform,
            crs=crs,
            scale=max(width, height),
            raw=data if self.read_raw else None,
            tile=tile,
            scene=self.scene,
        )

    def read_image_on(self, grid: PixelGrid, max_pixels: int = MAX_PREVIEW_PIXELS) -> GridImage:
        """The scene's 8-bit RGB on ``grid``, a decimated version of the working grid
        (``reader.grid.decimated(f)``, at most ``max_pixels``), for previews and overlays.

        Each output pixel is the nearest-neighbour resample of the working-grid pixels of its cell
        (rasterio ``out_shape`` reads, so GDAL overviews are used when present; the full-resolution scene
        is never read into memory). Returns ``GridImage(image (h, w, 3) uint8, mask (h, w) bool, grid)``.
        """
        factor = self.grid.decimation_to(grid)
        if grid.width * grid.height > max_pixels:
            raise ValueError(
                f"a {grid.width}×{grid.height} preview is above {max_pixels} pixels; decimate more"
            )
        indexes = self._rgb_indexes
        if self._warp is not None:  # warp straight onto the coarse grid
            with self._reading("a decimated image"):
                data, mask = self._read_whole_on(grid, indexes)
            assert data is not None
            image, mask = self._to_image(data, mask, indexes)
            return GridImage(image, mask, grid)
        data = np.zeros((len(indexes), grid.height, grid.width), dtype=self.dtype)
        mask = np.zeros((grid.height, grid.width), dtype=bool)
        ds = self._dataset()
        full_w, full_h = self.grid.width // factor, self.grid.height // factor
        rest_w, rest_h = self.grid.width - full_w * factor, self.grid.height - full_h * factor
        # whole cells, then the partial cells of the last column, the last row and the corner
        parts = [
            (0, 0, full_w, full_h, full_w * factor, full_h * factor),
            (full_w, 0, grid.width - full_w, full_h, rest_w, full_h * factor),
            (0, full_h, full_w, grid.height - full_h, full_w * factor, rest_h),
            (full_w, full_h, grid.width - full_w, grid.height - full_h, rest_w, rest_h),
        ]
        with self._reading("a decimated image"):
            for out_col, out_row, out_w, out_h, src_w, src_h in parts:
                if min(out_w, out_h, src_w, src_h) <= 0:
                    continue
                source = Window(out_col * factor, out_row * factor, src_w, src_h)
                rows, cols = slice(out_row, out_row + out_h), slice(out_col, out_col + out_w)
                shape = (out_h, out_w)
                data[:, rows, cols] = ds.read(
                    indexes, window=source, out_shape=(len(indexes), *shape), resampling=Resampling.nearest
                )
                mask[rows, cols] = (
                    ds.dataset_mask(window=source, out_shape=shape, resampling=Resampling.nearest) > 0
                )
        image, mask = self._to_image(data, mask, indexes)
        return GridImage(image, mask, grid)

    def _tile_of(self, window: Window) -> Any:
        if self.xyz_origin is None:
            return None
        size = self.tile_size
        if window.width != size or window.height != size or window.col_off % size or window.row_off % size:
            return None
        import mercantile

        x0, y0 = self.xyz_origin
        x = (x0 + int(window.col_off) // size) % (2**self.xyz_zoom)
        return mercantile.Tile(x, y0 + int(window.row_off) // size, self.xyz_zoom)


def _bounded_shape(height: int, width: int, max_size: int) -> tuple[int, int]:
    """(rows, columns) of a height × width raster shrunk to at most ``max_size`` on its long side."""
    factor = max(1.0, max(width, height) / max_size)
    return max(1, round(height / factor)), max(1, round(width / factor))


def _meets(window: Window, grid: PixelGrid) -> bool:
    return (
        window.col_off < grid.width
        and window.row_off < grid.height
        and window.col_off + window.width > 0
        and window.row_off + window.height > 0
    )


def window_text(window: Window) -> str:
    """``"col,row,width,height"`` (the summaries' window notation)."""
    return f"{int(window.col_off)},{int(window.row_off)},{int(window.width)},{int(window.height)}"


def open_scene(path: str | os.PathLike[str], **options: Any) -> SceneReader:
    """Open ``path`` as a :class:`SceneReader` (same keyword options)."""
    return SceneReader(path, **options)
