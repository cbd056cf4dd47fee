"""Source detection: point sources (DAOFIND, IRAF starfind) and segmentation.

Thin, validated wrappers around :mod:`photutils.detection` and
:mod:`photutils.segmentation` (photutils 3 names throughout). The functions
take background-subtracted arrays and return astropy ``QTable`` catalogs with
photutils' own columns, 0-based pixel positions, and ``ra``/``dec`` when a
WCS is given. Nothing found is a zero-row table with the same columns, never
``None``.

Bad pixels (``mask`` True, or non-finite) are handled the same way by both
detectors: they are filled from their good neighbours before the image is
searched, so a source with a few bad pixels keeps its shape (and a source
whose core is bad is still found where it is); regions too large to fill
are excluded from the search. Filled pixels never enter a measured flux.

The point-source catalogs are photutils' own, row for row and value for
value, computed several times faster (`._starfind`): the peaks above the
threshold are found without photutils' whole-image peak search, and the
threshold-independent work (filling, convolution) is cached for the frames
searched last (`_PREPARED`, bounded), so a new threshold is cheap.
"""

import dataclasses
import functools
import warnings

import numpy as np

from ..errors import InputError, describe_choices
from . import _starfind

__all__ = ["find_point_sources", "find_segments", "SegmentationResult",
           "POINT_SOURCE_METHODS", "DEFAULT_SHAPE_RANGES"]

#: The point-source finders of :func:`find_point_sources`.
POINT_SOURCE_METHODS = ("daofind", "iraf")

#: Each finder's own default (sharpness_range, roundness_range) (photutils').
DEFAULT_SHAPE_RANGES = {"daofind": ((0.2, 1.0), (-1.0, 1.0)),
                        "iraf": ((0.5, 2.0), (0.0, 0.2))}

# Fraction of the Gaussian weight that good neighbours must carry for a bad
# pixel to be filled from them; below this the pixel stays excluded.
_MIN_FILL_WEIGHT = 0.02


# --------------------------------------------------------------------------
# Checks shared with the photometry module.

def _as_image(data, name="data"):
    """Return ``data`` as a native-byte-order 2-D float array (no copy if possible)."""
    arr = np.asarray(getattr(data, "value", data))
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D image; got an array of shape {arr.shape}",
                         param=name)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold numbers; got dtype {arr.dtype}", param=name)
    if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
        arr = arr.astype(np.float64)
    elif not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if min(arr.shape) < 2:
        raise InputError(f"{name} must be at least 2x2 pixels; got shape {arr.shape}", param=name)
    return arr


def _as_same_shape(value, shape, name, *, kind="float"):
    """Return an optional array that must match the image's shape."""
    if value is None:
        return None
    arr = np.asarray(getattr(value, "value", value))
    if arr.shape != shape:
        raise InputError(f"{name} must have the image's shape {shape}; got {arr.shape}",
                         param=name)
    if kind == "bool":
        return arr.astype(bool, copy=False)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"{name} must hold numbers; got dtype {arr.dtype}", param=name)
    if arr.dtype.kind != "f" or arr.dtype.itemsize < 4:
        return arr.astype(np.float64)
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def _bad_pixels(arr, mask, error=None):
    """The pixels not to use: ``mask``, non-finite data, non-finite error."""
    bad = ~np.isfinite(arr)
    if mask is not None:
        bad |= mask
    if error is not None:
        bad |= ~np.isfinite(error)
    return bad


def _check_number(value, name, *, low=None, high=None, low_open=False, integer=False,
                  allow_none=False, context=""):
    """Return ``value`` as a float (or int) within bounds, else raise InputError."""
    if value is None and allow_none:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, (bool, np.bool_)) or not np.isscalar(value):
        raise InputError(f"{name} must be {kind}; got {value!r}", param=name)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be {kind}; got {value!r}", param=name) from None
    if not np.isfinite(number) or (integer and number != int(number)):
        raise InputError(f"{name} must be {kind}; got {value!r}", param=name)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and number > high
    if too_low or too_high:
        if low is not None and high is not None:
            allowed = f"between {low:g} and {high:g}" if not low_open else \
                f"greater than {low:g} and at most {high:g}"
        elif low is not None:
            allowed = f"greater than {low:g}" if low_open else f"at least {low:g}"
        else:
            allowed = f"at most {high:g}"
        raise InputError(f"{name} must be {allowed}{context}; got {value!r}", param=name)
    return int(number) if integer else number


def _check_range(value, name):
    """A ``(lower, upper)`` pair with lower <= upper, or None."""
    if value is None:
        return None
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a (lower, upper) pair of numbers or None; "
                         f"got {value!r}", param=name) from None
    if np.isnan(lo) or np.isnan(hi) or lo > hi:
        raise InputError(f"{name} must be a (lower, upper) pair with lower <= upper; "
                         f"got {value!r}", param=name)
    return (lo, hi)


def _check_threshold(threshold, shape, bad):
    """A positive scalar, or a 2-D array of the image's shape (positive where usable)."""
    if np.ndim(threshold) == 0:
        return _check_number(threshold, "threshold", low=0.0, low_open=True)
    arr = _as_same_shape(threshold, shape, "threshold")
    usable = ~bad & np.isfinite(arr)
    if np.any(arr[usable] <= 0):
        raise InputError(f"threshold must be positive; the threshold array has values down "
                         f"to {np.min(arr[usable]):g}", param="threshold")
    if np.all(usable | bad):
        return arr
    # A threshold that is not finite on a good pixel: nothing is detected there.
    return np.where(np.isfinite(arr), arr, np.inf)


def _check_wcs(wcs):
    if wcs is not None and not hasattr(wcs, "pixel_to_world"):
        raise InputError(f"wcs must be an astropy WCS (or None); got {type(wcs).__name__}",
                         param="wcs")
    if wcs is not None and getattr(wcs, "has_celestial", True) is False:
        raise InputError("wcs must have celestial axes to give ra and dec", param="wcs")


def _add_sky_columns(table, x, y, wcs):
    """Add ``ra`` and ``dec`` (ICRS, degrees) of 0-based pixel positions to ``table``."""
    if wcs is None:
        return
    import astropy.units as u

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ra = np.full(x.shape, np.nan)
    dec = np.full(x.shape, np.nan)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.any():
        celestial = getattr(wcs, "celestial", wcs)
        sky = celestial.pixel_to_world(x[ok], y[ok])
        if not hasattr(sky, "icrs"):
            raise InputError("wcs must map pixels to sky coordinates to give ra and dec",
                             param="wcs")
        sky = sky.icrs
        ra[ok] = sky.ra.deg
        dec[ok] = sky.dec.deg
    table["ra"] = ra * u.deg
    table["dec"] = dec * u.deg


# --------------------------------------------------------------------------
# Bad-pixel filling.

def _gaussian_weights(sigma):
    """scipy's 1-D Gaussian filter weights (``truncate=4.0``), normalised."""
    radius = int(4.0 * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 / sigma ** 2 * x ** 2)
    return w / w.sum()


def _fill_bad_pixels(arr, bad, sigma):
    """Fill ``bad`` pixels by a Gaussian-weighted mean of good neighbours.

    The numbers of ``gaussian_filter(good * arr) / gaussian_filter(good)``
    (``mode="constant"``, ``truncate=4.0``) at the bad pixels. When the bad
    pixels are few (a NaN border, cosmic rays: `_few_bad_pixels`) only
    their neighbourhoods are read, which is much cheaper than filtering the
    whole frame; for large bad regions the whole frame is filtered.

    Returns ``(filled, unfilled)``: a new array (the input is not touched) and
    the bad pixels too far from any good one to be filled (set to 0 in
    ``filled``).
    """
    dtype = np.result_type(arr.dtype, np.float32)
    filled = np.where(bad, 0, arr).astype(dtype, copy=False)
    w = _gaussian_weights(sigma)
    ys, xs = np.divmod(np.flatnonzero(bad), bad.shape[1])
    if _few_bad_pixels(ys.size, bad.size, w.size):
        weight, total = _gaussian_sums_at(filled, bad, ys, xs, w)
    else:
        from scipy import ndimage

        weight = ndimage.gaussian_filter((~bad).astype(dtype), sigma, mode="constant",
                                         truncate=4.0)[ys, xs]
        total = ndimage.gaussian_filter(filled, sigma, mode="constant", truncate=4.0)[ys, xs]
    fill = weight >= _MIN_FILL_WEIGHT
    filled[ys[fill], xs[fill]] = total[fill] / weight[fill]
    unfilled = np.zeros(bad.shape, dtype=bool)
    unfilled[ys[~fill], xs[~fill]] = True
    return filled, unfilled


def _few_bad_pixels(n_bad, size, width):
    """Whether reading around each bad pixel is cheaper than filtering the frame
    (about 4 times the work of a filter of ``width`` pixels per bad pixel and
    per filter tap, against 2 filter passes per pixel)."""
    return 2 * n_bad * width <= size


def _gaussian_sums_at(values, bad, ys, xs, w):
    """The Gaussian-weighted sums of good pixels and of ``values`` around ``(ys, xs)``.

    ``values`` is 0 on bad pixels; beyond the edges everything is 0. The
    filter is applied as two 1-D passes: along x at the pixels within its
    reach of a bad pixel along y (each once), then along y at the bad
    pixels. Element-wise operations only (no BLAS), so the same input
    always gives the same bits.
    """
    ny, nx = values.shape
    r = w.size // 2
    width = nx + 2 * r
    padded = np.zeros((ny + 2 * r, width), dtype=values.dtype)
    padded[r:ny + r, r:nx + r] = values
    good = np.zeros(padded.shape, dtype=np.float32)
    np.logical_not(bad, out=good[r:ny + r, r:nx + r], casting="unsafe")
    centres = (ys + r) * width + (xs + r)
    needed = np.zeros(padded.size, dtype=bool)
    for dy in range(-r, r + 1):
        needed[centres + dy * width] = True
    rows = np.flatnonzero(needed)                     # sorted
    row_good = np.zeros(rows.size)
    row_values = np.zeros(rows.size)
    for dx in range(-r, r + 1):
        row_good += w[dx + r] * good.ravel()[rows + dx]
        row_values += w[dx + r] * padded.ravel()[rows + dx]
    weight = np.zeros(ys.size)
    total = np.zeros(ys.size)
    for dy in range(-r, r + 1):
        at = np.searchsorted(rows, centres + dy * width)
        weight += w[dy + r] * row_good[at]
        total += w[dy + r] * row_values[at]
    return weight, total


# --------------------------------------------------------------------------
# Point sources.

def _star_finder(method, *, threshold, fwhm, sharpness_range, roundness_range,
                 peak_max, n_brightest, exclude_border, xycoords=None):
    from photutils.detection import DAOStarFinder, IRAFStarFinder

    finder = DAOStarFinder if method == "daofind" else IRAFStarFinder
    return finder(threshold, fwhm, exclude_border=exclude_border, n_brightest=n_brightest,
                  peak_max=peak_max, xycoords=xycoords, sharpness_range=sharpness_range,
                  roundness_range=roundness_range)


#: The threshold-independent work of `find_point_sources` (bad pixels filled,
#: the image convolved with the finder's kernel) for the frames searched last,
#: so that a new threshold or shape cut on the same data costs only the peak
#: search and the catalog. Keyed by the content of the data and of the bad-pixel
#: map (SHA-1 of their bytes) and the FWHM; at most 256 MiB per process (one
#: 4096x4096 frame takes 128-144 MiB; larger frames are not kept), least
#: recently used first out. ``_PREPARED.clear()`` empties it.
_PREPARED = _starfind.ArrayCache(256 * 2**20)


def _prepare(arr, bad, fwhm, kernel):
    """``(data, search_mask, convolved)``: what the star finders search (cached).

    ``data`` is ``arr`` with its bad pixels filled (`_fill_bad_pixels`, σ
    from ``fwhm``) or ``arr`` itself, ``search_mask`` the bad pixels too far
    from good ones to be filled (or None), ``convolved`` the finders'
    convolution of ``data`` with ``kernel``.
    """
    key = _starfind.content_key(arr, bad, float(fwhm), kernel)
    cached = _PREPARED.get(key)
    if cached is not None:
        filled, search_mask, convolved = cached
        return (arr if filled is None else filled), search_mask, convolved
    data, search_mask = arr, None
    if bad.any():
        sigma = max(fwhm / (2 * np.sqrt(2 * np.log(2))), 1.0)
        data, unfilled = _fill_bad_pixels(arr, bad, sigma)
        search_mask = unfilled if unfilled.any() else None
    if data.dtype == np.float32 and max(-data.min(), data.max()) > 1e18:
        data = data.astype(np.float64)  # the finders' sums of squares overflow float32
    convolved = _starfind.convolve(data, kernel)
    # The caller's array is not kept (it may change): only arrays made here.
    _PREPARED.put(key, (None if data is arr else data, search_mask, convolved))
    return data, search_mask, convolved


def _empty_star_table(method, fwhm):
    """A zero-row table with the exact columns, dtypes and units photutils gives."""
    size = 2 * int(np.ceil(3 * fwhm)) + 9
    c = (size - 1) / 2
    yy, xx = np.mgrid[:size, :size]
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    star = np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * sigma ** 2))
    finder = _star_finder(method, threshold=0.1, fwhm=fwhm, sharpness_range=None,
                          roundness_range=None, peak_max=None, n_brightest=None,
                          exclude_border=False, xycoords=np.array([[c, c]]))
    table = finder(star)
    return table[:0]


def find_point_sources(data, *, threshold, fwhm=3.0, method="daofind", mask=None,
                       sharpness_range=None, roundness_range=None,
                       peak_max=None, n_brightest=None, exclude_border=False, wcs=None):
    """Find point sources with DAOFIND or IRAF's starfind (photutils).

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    threshold : float or 2-D array
        The detection threshold in the units of ``data`` (for example
        ``5 * background_rms``): positive; an array must have the image's
        shape. For ``"daofind"`` it is scaled by the kernel as DAOFIND does,
        so it is close to the peak amplitude a source must have.
    fwhm : float, optional
        The FWHM of the Gaussian detection kernel, in pixels (close to the
        PSF's FWHM).
    method : {'daofind', 'iraf'}, optional
        `~photutils.detection.DAOStarFinder` or
        `~photutils.detection.IRAFStarFinder`.
    mask : 2-D bool array, optional
        True where a pixel is bad. Non-finite pixels are always bad.
    sharpness_range, roundness_range : (float, float) or None, optional
        Inclusive bounds on the sharpness and roundness statistics of the
        chosen finder. None (the default) takes the finder's own defaults
        (`DEFAULT_SHAPE_RANGES`): ``(0.2, 1.0)`` and ``(-1.0, 1.0)`` for
        ``"daofind"``, ``(0.5, 2.0)`` and ``(0.0, 0.2)`` for ``"iraf"``, whose
        statistics are defined differently. ``(-np.inf, np.inf)`` for no cut.
    peak_max : float, optional
        Reject sources whose peak pixel is above this (saturated stars).
    n_brightest : int, optional
        Keep only this many sources, the brightest by ``flux``.
    exclude_border : bool, optional
        Reject sources within half a kernel of the image edge.
    wcs : astropy.wcs.WCS, optional
        When given, ``ra`` and ``dec`` (ICRS, degrees) columns are added.

    Returns
    -------
    catalog : `~astropy.table.QTable`
        photutils' columns: for ``"daofind"`` ``id, x_centroid, y_centroid,
        sharpness, roundness1, roundness2, n_pixels, peak, flux, mag,
        daofind_mag``; for ``"iraf"`` ``id, x_centroid, y_centroid, fwhm,
        sharpness, roundness, orientation, n_pixels, peak, flux, mag``;
        0-based pixel positions; then ``ra, dec`` with a WCS. Nothing found
        gives a zero-row table with the same columns. ``meta`` records the
        settings.

    Raises
    ------
    jwst_widgets.errors.InputError
        For a bad parameter value; the message names it.

    Notes
    -----
    Bad pixels are replaced by a Gaussian-weighted mean of their good
    neighbours (σ from ``fwhm``) before the search, so a bad pixel neither
    hides nor invents a source; a region too large to fill is excluded. The
    input arrays are not modified.

    The catalog is exactly the finder's (`~photutils.detection.DAOStarFinder`
    or `~photutils.detection.IRAFStarFinder` on the filled image, with
    ``mask`` the unfilled pixels): the same rows, order, ids and values.
    It is computed faster: photutils searches the whole convolved image for
    local maxima before applying the threshold, while here only the pixels
    above the threshold are examined. The filled and convolved image are
    kept in a small per-process cache (256 MiB at most, keyed by a hash of
    the data, the bad pixels and ``fwhm``), so a new threshold, shape cut
    or ``n_brightest`` on the same data skips them. On a 2048x2048
    NIRCam-like frame a first call takes about a fifth of the time of
    photutils' finder alone, a repeated one about a twentieth
    (``benchmarks/bench_detect.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.detect import find_point_sources
    >>> yy, xx = np.mgrid[:64, :64]
    >>> image = 100 * np.exp(-((xx - 20.3) ** 2 + (yy - 40.6) ** 2) / (2 * 1.3 ** 2))
    >>> image += np.random.default_rng(0).normal(0, 1, image.shape)
    >>> stars = find_point_sources(image, threshold=5.0, fwhm=3.0)
    >>> x, y = float(stars["x_centroid"][0]), float(stars["y_centroid"][0])
    >>> len(stars), round(x, 1), round(y, 1)
    (1, 20.3, 40.6)
    """
    from astropy.table import QTable
    from photutils.utils.exceptions import NoDetectionsWarning

    arr = _as_image(data)
    shape = arr.shape
    if method not in POINT_SOURCE_METHODS:
        raise InputError(f"method must be {describe_choices(POINT_SOURCE_METHODS)}; "
                         f"got {method!r}", param="method")
    fwhm = _check_number(fwhm, "fwhm", low=0.5, high=min(shape) / 4,
                         context=f" pixels for a {shape[1]}x{shape[0]} image")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    bad = _bad_pixels(arr, mask)
    threshold = _check_threshold(threshold, shape, bad)
    default_sharpness, default_roundness = DEFAULT_SHAPE_RANGES[method]
    sharpness_range = _check_range(sharpness_range, "sharpness_range") or default_sharpness
    roundness_range = _check_range(roundness_range, "roundness_range") or default_roundness
    peak_max = _check_number(peak_max, "peak_max", allow_none=True)
    n_brightest = _check_number(n_brightest, "n_brightest", low=1, integer=True,
                                allow_none=True)
    _check_wcs(wcs)

    finder = _star_finder(method, threshold=threshold, fwhm=fwhm,
                          sharpness_range=sharpness_range, roundness_range=roundness_range,
                          peak_max=peak_max, n_brightest=n_brightest,
                          exclude_border=bool(exclude_border))
    arr, search_mask, convolved = _prepare(arr, bad, fwhm, finder.kernel.data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        found = _starfind.find_stars(finder, arr, mask=search_mask, convolved=convolved)
    table = QTable(found) if found is not None else QTable(_empty_star_table(method, fwhm))
    _add_sky_columns(table, table["x_centroid"], table["y_centroid"], wcs)
    table.meta.pop("date", None)  # keep photutils' versions, not a time stamp
    table.meta.update({
        "method": method, "fwhm": fwhm,
        "threshold": threshold if np.ndim(threshold) == 0 else "array",
        "sharpness_range": sharpness_range, "roundness_range": roundness_range,
        "peak_max": peak_max, "n_brightest": n_brightest,
        "exclude_border": bool(exclude_border), "n_bad_pixels": int(bad.sum()),
    })
    return table


# --------------------------------------------------------------------------
# Segmentation.

@dataclasses.dataclass(frozen=True, eq=False)
class SegmentationResult:
    """The result of :func:`find_segments`.

    Attributes
    ----------
    catalog : `~astropy.table.QTable`
        One row per segment: ``id`` (= ``label``) and the default columns of
        `photutils.segmentation.SourceCatalog` (``label, x_centroid,
        y_centroid, bbox_xmin ... bbox_ymax, area, semimajor_axis,
        semiminor_axis, orientation, eccentricity, min_value, max_value,
        segment_flux, segment_flux_err, kron_flux, kron_flux_err``), then
        ``ra, dec`` with a WCS. Zero rows when nothing was found.
    segment_map : ndarray of int32
        The label of each pixel, 0 for background.
    n_sources : int
        The number of segments (the catalog's length).
    """

    catalog: object
    segment_map: np.ndarray
    n_sources: int

    def __repr__(self):
        ny, nx = self.segment_map.shape
        return f"<SegmentationResult {self.n_sources} sources on {nx}x{ny}>"


def _smoothing_kernel(fwhm):
    from photutils.segmentation import make_2dgaussian_kernel

    size = 2 * int(np.ceil(fwhm)) + 1
    return make_2dgaussian_kernel(fwhm, size=size)


def _smooth(arr, bad, fwhm):
    """Convolve with a Gaussian of ``fwhm``, bad pixels interpolated.

    The numbers of ``astropy.convolution.convolve(arr, kernel, mask=bad)``
    (its defaults: zero fill beyond the edges, bad pixels interpolated from
    the kernel-weighted good ones, float64 arithmetic, the result in the
    input's float type), computed as two 1-D passes over reused buffers:
    the kernel is separable, so this is faster, and equal to within float64
    rounding.

    Returns ``(smoothed, unfilled)``: unfilled pixels (no good pixel under the
    kernel) are 0 in ``smoothed``.
    """
    kernel = np.asarray(_smoothing_kernel(fwhm).array, dtype=np.float64)
    total = kernel.sum()
    rows = kernel.sum(axis=1)
    cols = kernel.sum(axis=0) / total
    if not np.allclose(np.outer(rows, cols), kernel, rtol=1e-12, atol=1e-15 * total):
        return _smooth_astropy(arr, bad, kernel)           # not separable: never here
    top = np.empty(arr.shape)
    np.copyto(top, arr)
    scratch = np.empty(arr.shape)
    if bad.any():
        top[bad] = 0.0
        _convolve_separable(top, rows, cols, 0.0, scratch)
        # Beyond the edges astropy fills zeros, which count as good pixels.
        weight = np.empty(arr.shape)
        np.logical_not(bad, out=weight, casting="unsafe")
        _convolve_separable(weight, rows, cols, 1.0, scratch)
        unfilled = weight == 0
        weight[unfilled] = 1.0
        top /= weight
        top[unfilled] = 0.0
    else:
        _convolve_separable(top, rows, cols, 0.0, scratch)
        top /= total
        unfilled = np.zeros(arr.shape, dtype=bool)
    return top.astype(arr.dtype, copy=False), unfilled


def _convolve_separable(values, rows, cols, edge, scratch):
    """Convolve ``values`` (2-D float64) in place with ``outer(rows, cols)``,
    the image taken as ``edge`` beyond its edges; ``scratch`` is a buffer of
    the same shape."""
    from scipy import ndimage

    ndimage.convolve1d(values, cols, axis=1, output=scratch, mode="constant", cval=edge)
    edge = edge * cols.sum()
    # Along the columns in blocks of rows, as sums of shifted rows: contiguous
    # and cache-sized (scipy's pass along axis 0 is three times slower).
    ny, nx = values.shape
    half = rows.size // 2
    taps = rows[::-1]
    block = max(1, (1 << 15) // max(nx, 1))
    term = np.empty((block, nx))
    for y0 in range(0, ny, block):
        y1 = min(y0 + block, ny)
        acc = values[y0:y1]
        acc.fill(0.0)
        for j, weight in enumerate(taps):
            s0, s1 = y0 + j - half, y1 + j - half     # the rows this tap reads
            a0, a1 = max(s0, 0), min(s1, ny)
            if a1 > a0:
                part = term[:a1 - a0]
                np.multiply(scratch[a0:a1], weight, out=part)
                acc[a0 - s0:a1 - s0] += part
            if edge and a0 > s0:
                acc[:a0 - s0] += edge * weight
            if edge and s1 > a1:
                acc[a1 - s0:] += edge * weight
    return values


def _smooth_astropy(arr, bad, kernel):
    """`_smooth` by ``astropy.convolution.convolve`` (any kernel)."""
    from astropy.convolution import convolve
    from astropy.utils.exceptions import AstropyUserWarning

    with warnings.catch_warnings():
        # "NaN values detected post convolution": the unfilled pixels, handled below.
        warnings.simplefilter("ignore", AstropyUserWarning)
        smoothed = convolve(arr, kernel, mask=bad if bad.any() else None)
    unfilled = ~np.isfinite(smoothed)
    if unfilled.any():
        smoothed[unfilled] = 0.0
    return smoothed, unfilled


def _splittable_labels(smoothed, segment_map, n_pixels):
    """The labels that `~photutils.segmentation.deblend_sources` might split.

    Deblending splits a segment only if, at some threshold, its pixels above
    the threshold form two separate groups of ``n_pixels`` or more. Each
    such group holds a pixel that is not below any neighbour of its segment
    (its brightest pixel), so a segment with fewer than two such pixels, or
    fewer than ``2 * n_pixels`` pixels, is returned unchanged by photutils:
    leaving it out of ``deblend_sources(..., labels=...)`` changes nothing,
    and saves photutils' 32 thresholdings of it.
    """
    ny, nx = segment_map.shape
    # Pad by one pixel of background so that neighbours never wrap around.
    seg = np.zeros((ny + 2, nx + 2), dtype=segment_map.dtype)
    seg[1:-1, 1:-1] = segment_map
    seg = seg.reshape(-1)
    inside = np.flatnonzero(seg)
    if inside.size == 0:
        return np.zeros(0, dtype=int)
    values = np.zeros((ny + 2, nx + 2), dtype=smoothed.dtype)
    values[1:-1, 1:-1] = smoothed
    values = values.reshape(-1)
    labels = seg[inside]
    here = values[inside]
    peak = np.ones(inside.size, dtype=bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                near = inside + (dy * (nx + 2) + dx)
                peak &= ~((seg[near] == labels) & (values[near] > here))
    n_peaks = np.bincount(labels[peak], minlength=int(labels.max()) + 1)
    areas = np.bincount(labels, minlength=n_peaks.size)
    return np.flatnonzero((n_peaks >= 2) & (areas >= 2 * n_pixels))


def _deblend(smoothed, segm, n_pixels, n_levels, contrast):
    """`~photutils.segmentation.deblend_sources` of the segments it might split.

    The same segmentation image as photutils deblending every segment (see
    `_splittable_labels`), several times faster: only the segments that
    could split are deblended, and each by `_Deblender`, photutils' own
    algorithm with a faster multi-thresholding.
    """
    from astropy.utils.exceptions import AstropyUserWarning
    from photutils.segmentation import SegmentationImage, deblend_sources

    labels = _splittable_labels(smoothed, segm.data, n_pixels)
    if labels.size == 0:
        return segm
    with warnings.catch_warnings():
        # photutils reports when it switches a source's deblending
        # mode from exponential to linear (faint sources): not a problem.
        warnings.filterwarnings("ignore", category=AstropyUserWarning, message=".*deblend")
        try:
            deblender = _deblender_class()
        except (ImportError, AttributeError):      # photutils' internals moved
            return deblend_sources(smoothed, segm, n_pixels, labels=labels,
                                   n_levels=n_levels, contrast=contrast, progress_bar=False)
        params = deblender.params(n_pixels, n_levels, contrast)
        # What deblend_sources does with each label (photutils 3.0, serial):
        # a split segment's children take new labels after the last one.
        data = segm.data.copy()
        max_label = segm.max_label
        present = np.ones(max_label + 1, dtype=bool)
        for label in labels:
            box = segm.slices[segm.get_index(label)]
            children = deblender(smoothed[box], segm.data[box], label, params).deblend_source()
            if children is not None:
                inside = children > 0
                new = children[inside]
                data[box][inside] = new + max_label
                n_new = np.unique(new).size
                present[label] = False
                present = np.append(present, np.ones(n_new, dtype=bool))
                max_label += n_new
    if present.all():
        return segm
    # Consecutive labels, in the order of the old ones.
    present[0] = False
    relabel = np.zeros(max_label + 1, dtype=data.dtype)
    relabel[present] = np.arange(1, present.sum() + 1, dtype=data.dtype)
    return SegmentationImage(relabel[data])


@functools.cache
def _deblender_class():
    """photutils' single-source deblender, with a faster multi-thresholding.

    photutils thresholds a segment at 32 levels and labels the pixels above
    each one (`_detect_sources`), which is most of its deblending time. This
    subclass gives the same marker images with less work: the levels are
    labelled in one call, levels with fewer than ``2 * n_pixels`` pixels
    above them (which cannot hold two sources) not at all, small components
    are dropped with one ``bincount``, and the parent markers that split are
    found with one ``unique`` instead of one per marker. The watershed and
    the contrast criterion are photutils' own.
    """
    from photutils.segmentation.deblend import _DeblendParams, _SingleSourceDeblender
    from photutils.segmentation.utils import _make_binary_structure
    from scipy.ndimage import label as ndi_label

    class _Deblender(_SingleSourceDeblender):
        footprint3d = np.zeros((3, 3, 3), dtype=int)
        footprint3d[1] = _make_binary_structure(2, 8)

        @staticmethod
        def params(n_pixels, n_levels, contrast):
            return _DeblendParams(n_pixels, _make_binary_structure(2, 8), n_levels,
                                  contrast, "exponential")

        def _levels(self, thresholds):
            """For each threshold in turn, ``_detect_sources(...,
            relabel=False, return_segmimg=False)``: the components of
            ``n_pixels`` or more above it (their labels kept), or None when
            there are fewer than two.

            The levels are labelled together, as the planes of one 3-D
            array with no connection between planes (``ndimage.label``
            numbers components in the order they start, so a plane's labels
            are those of the plane alone plus the count of the planes before
            it). Levels with fewer than ``2 * n_pixels`` pixels above them,
            which cannot hold two sources, are not labelled: they are the
            highest ones.
            """
            inside = np.sort(self.data[self.segment_mask])
            n_above = inside.size - np.searchsorted(inside, thresholds, side="right")
            usable = int(np.count_nonzero(n_above >= 2 * self.n_pixels))
            per_call = max(1, (1 << 21) // self.data.size)
            for start in range(0, usable, per_call):
                levels = thresholds[start:min(start + per_call, usable)]
                stack = self.data[None] > levels[:, None, None]
                stack &= self.segment_mask
                labels, n = ndi_label(stack, structure=self.footprint3d)
                big = np.bincount(labels.ravel(), minlength=n + 1) >= self.n_pixels
                big[0] = False
                last = labels.reshape(len(levels), -1).max(axis=1)
                first = np.concatenate([[0], np.maximum.accumulate(last)[:-1]])
                for k in range(len(levels)):
                    keep = big[first[k] + 1:last[k] + 1] if last[k] > first[k] else big[:0]
                    if np.count_nonzero(keep) < 2:
                        yield None
                        continue
                    image = labels[k]
                    if not keep.all():
                        image[~big[image]] = 0
                    image[image > 0] -= first[k]
                    yield image
            for _ in range(usable, len(thresholds)):
                yield None

        def make_markers(self, *, return_all=False):
            if return_all:                          # photutils' debugging path
                return super().make_markers(return_all=True)
            markers = None
            for upper in self._levels(self.compute_thresholds()):
                if upper is not None:
                    markers = self.make_marker_segment(markers, upper)
            return markers

        def make_marker_segment(self, segment_lower, segment_upper):
            if segment_lower is None:
                return segment_upper
            both = (segment_lower > 0) & (segment_upper > 0)
            base = np.int64(segment_upper.max()) + 1
            pairs = np.unique(segment_lower[both] * base + segment_upper[both])
            parents, n_children = np.unique(pairs // base, return_counts=True)
            split = parents[n_children >= 2]
            if split.size == 0:
                return segment_lower
            markers = segment_lower.astype(bool)
            replace = np.isin(segment_lower, split)
            markers[replace] = segment_upper[replace].astype(bool)
            return ndi_label(markers, structure=self.footprint)[0]

    return _Deblender


def _catalog_columns():
    from photutils.segmentation.catalog import DEFAULT_COLUMNS

    return [name for name in DEFAULT_COLUMNS if name != "sky_centroid"]


def _empty_segment_table(with_error):
    """A zero-row table with the exact columns, dtypes and units photutils gives."""
    from photutils.segmentation import SegmentationImage, SourceCatalog

    data = np.zeros((9, 9))
    data[3:6, 3:6] = 1.0
    segm = SegmentationImage((data > 0).astype(np.int32))
    error = np.ones_like(data) if with_error else None
    table = SourceCatalog(data, segm, convolved_data=data, error=error).to_table(
        columns=_catalog_columns())
    return table[:0]


def find_segments(data, *, threshold, n_pixels=10, smooth_fwhm=2.0, deblend=True,
                  n_levels=32, contrast=0.001, mask=None, error=None, wcs=None,
                  background=None):
    """Find extended sources by image segmentation (photutils), with deblending.

    The image is smoothed with a Gaussian kernel, pixels above ``threshold``
    that form connected groups of at least ``n_pixels`` become segments
    (`~photutils.segmentation.detect_sources`), overlapping sources are split
    by multi-thresholding and watershed
    (`~photutils.segmentation.deblend_sources`), and each segment is measured
    by `~photutils.segmentation.SourceCatalog` on the unsmoothed data.

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    threshold : float or 2-D array
        The detection threshold in the units of ``data``, applied to the
        smoothed image (for example ``1.5 * background_rms``); positive; an
        array must have the image's shape.
    n_pixels : int, optional
        The least number of connected pixels a source must have.
    smooth_fwhm : float or None, optional
        The FWHM in pixels of the Gaussian smoothing kernel (kernel size
        ``2 * ceil(fwhm) + 1``); 0 or None for no smoothing.
    deblend : bool, optional
        Split blended sources.
    n_levels : int, optional
        The number of multi-threshold levels of the deblending.
    contrast : float, optional
        The fraction of a segment's flux a component must have to be split
        off, between 0 and 1 (1 disables deblending).
    mask : 2-D bool array, optional
        True where a pixel is bad. Non-finite pixels are always bad.
    error : 2-D array, optional
        The 1-sigma error of each pixel (the ERR extension), for
        ``segment_flux_err`` and ``kron_flux_err``.
    wcs : astropy.wcs.WCS, optional
        When given, ``ra`` and ``dec`` (ICRS, degrees) columns are added.
    background : float or 2-D array, optional
        The background that was subtracted, passed to ``SourceCatalog``
        for its ``background_*`` properties (it is not subtracted again).

    Returns
    -------
    result : `SegmentationResult`
        ``catalog`` (a `~astropy.table.QTable`, zero rows when nothing is
        found), ``segment_map`` (int32 labels, 0 = background) and
        ``n_sources``.

    Raises
    ------
    jwst_widgets.errors.InputError
        For a bad parameter value; the message names it.

    Notes
    -----
    Bad pixels are interpolated in the smoothed image (astropy ``convolve``),
    so a segment is not cut by a bad pixel, but they are masked for every
    measured quantity. A region too large to interpolate is excluded from
    the segmentation. The input arrays are not modified.

    The segmentation image is photutils' own, computed faster: the
    smoothing is astropy's convolution done as two 1-D passes, and only the
    segments that could split (two local maxima or more) are deblended, by
    photutils' algorithm with its multi-thresholding done in one labelling
    per segment. On a 2048x2048 NIRCam-like frame the segmentation and
    deblending take less time than SEP's ``extract``; with
    `~photutils.segmentation.SourceCatalog`'s measurements (Kron fluxes
    included), about 1.5 times SEP's time (``benchmarks/bench_stages.py``).

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.detect import find_segments
    >>> yy, xx = np.mgrid[:96, :96]
    >>> image = 20 * np.exp(-((xx - 30) ** 2 / 50 + (yy - 60) ** 2 / 18))
    >>> image += np.random.default_rng(1).normal(0, 1, image.shape)
    >>> result = find_segments(image, threshold=1.5, n_pixels=10)
    >>> result.n_sources, result.segment_map.dtype.name
    (1, 'int32')
    >>> round(float(result.catalog["x_centroid"][0]))
    30
    """
    from astropy.table import QTable
    from photutils.segmentation import SourceCatalog, detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    arr = _as_image(data)
    shape = arr.shape
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    error = _as_same_shape(error, shape, "error")
    bad = _bad_pixels(arr, mask, error)
    threshold = _check_threshold(threshold, shape, bad)
    n_pixels = _check_number(n_pixels, "n_pixels", low=1, high=arr.size, integer=True)
    smooth_fwhm = _check_number(0.0 if smooth_fwhm is None else smooth_fwhm, "smooth_fwhm",
                                low=0.0, high=min(shape) / 4,
                                context=f" pixels for a {shape[1]}x{shape[0]} image")
    n_levels = _check_number(n_levels, "n_levels", low=1, high=1000, integer=True)
    contrast = _check_number(contrast, "contrast", low=0.0, high=1.0)
    if background is not None and np.ndim(background) != 0:
        background = _as_same_shape(background, shape, "background")
    elif background is not None:
        background = _check_number(background, "background")
    _check_wcs(wcs)

    if smooth_fwhm > 0:
        smoothed, excluded = _smooth(arr, bad, smooth_fwhm)
    else:
        smoothed, excluded = np.where(bad, 0.0, arr), bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        segm = detect_sources(smoothed, threshold, n_pixels,
                              mask=excluded if excluded.any() else None)

    if segm is None:
        table = QTable(_empty_segment_table(error is not None))
        segment_map = np.zeros(shape, dtype=np.int32)
    else:
        if deblend and contrast < 1:
            segm = _deblend(smoothed, segm, n_pixels, n_levels, contrast)
        values = np.where(bad, 0.0, arr) if bad.any() else arr
        catalog = SourceCatalog(values, segm, convolved_data=smoothed, error=error,
                                mask=bad if bad.any() else None, background=background)
        table = QTable(catalog.to_table(columns=_catalog_columns()))
        segment_map = np.asarray(segm.data, dtype=np.int32)

    table.add_column(np.asarray(table["label"], dtype=np.int64), name="id", index=0)
    _add_sky_columns(table, table["x_centroid"], table["y_centroid"], wcs)
    table.meta.pop("date", None)  # keep photutils' versions, not a time stamp
    table.meta.update({
        "threshold": threshold if np.ndim(threshold) == 0 else "array",
        "n_pixels": n_pixels, "smooth_fwhm": smooth_fwhm, "deblend": bool(deblend),
        "n_levels": n_levels, "contrast": contrast, "n_bad_pixels": int(bad.sum()),
    })
    return SegmentationResult(catalog=table, segment_map=segment_map, n_sources=len(table))
