"""2-D background and background-RMS maps (the mesh method of SourceExtractor
and photutils' `~photutils.background.Background2D`).

The image is cut into boxes; in each box the finite, unmasked pixels are
sigma clipped and a background estimator and the standard deviation are
computed; boxes with too many rejected pixels are excluded and filled by
inverse-distance weighting from their neighbours; the low-resolution mesh is
median filtered and resized to the image with a cubic spline.

The algorithm and the results are those of photutils 3 ``Background2D`` with
the matching estimator classes (see `ESTIMATORS`); the computation is
different, and an order of magnitude faster:

* boxes are processed a mesh row at a time, in cache-sized pieces, with one
  copy of their pixels (which also converts big-endian or memory-mapped
  input);
* each box's pixels are sorted once; sigma clipping then needs no passes
  over the pixels (a clipped set of sorted values is a contiguous run, found
  by binary search; medians are lookups; the sums for the standard
  deviation are taken once and updated by subtracting what each iteration
  clipped);
* the median filter of the mesh is vectorised;
* the cubic-spline resize (`scipy.ndimage.zoom` with ``grid_mode=True``,
  ``mode='reflect'``, as photutils uses) is evaluated as two separable
  4-tap products, which gives the same numbers as ``zoom`` without its
  per-pixel cost.
"""

import dataclasses
import numbers

import numpy as np

from jwst_widgets.errors import InputError, describe_choices
from jwst_widgets.processing import stats as _stats

__all__ = ["ESTIMATORS", "BackgroundResult", "estimate_background",
           "global_background"]

#: Background estimators, in the order the widgets list them. Each is
#: computed on the sigma-clipped pixels of a box, as photutils'
#: ``MedianBackground``, ``MeanBackground``, ``SExtractorBackground``,
#: ``ModeEstimatorBackground`` (3 median - 2 mean) and
#: ``BiweightLocationBackground`` (c = 6). The RMS is the standard deviation
#: (``StdBackgroundRMS``), or the biweight scale (c = 9,
#: ``BiweightScaleBackgroundRMS``) for ``"biweight"``.
ESTIMATORS = ("median", "mean", "sextractor", "mode", "biweight")

#: Minimum box side, in pixels.
MIN_BOX = 4

#: Target number of pixels handled at once when computing box statistics.
_PIECE = 1 << 19


@dataclasses.dataclass(frozen=True, eq=False)
class BackgroundResult:
    """A background model: full-resolution maps and the mesh they come from.

    Attributes
    ----------
    background : ndarray
        The background map, the image's shape; float32 (float64 for float64
        data). Finite everywhere, also under masked pixels.
    background_rms : ndarray
        The background RMS (noise) map, same shape and dtype.
    background_median : float
        Median of the (filled, filtered) background mesh.
    background_rms_median : float
        Median of the (filled, filtered) RMS mesh.
    background_mesh : ndarray
        The low-resolution background (one value per box), after filling of
        excluded boxes and median filtering.
    background_rms_mesh : ndarray
        The same for the RMS.
    n_pixels_mesh : ndarray of int
        Pixels used per box (finite, unmasked, kept by the clipping).
    excluded_mesh : ndarray of bool
        Boxes excluded (too many pixels masked, non-finite or clipped) and
        filled from their neighbours.
    box_size : tuple of int
        ``(ny, nx)`` box size used.
    filter_size : tuple of int
        ``(ny, nx)`` median filter size used on the mesh.
    estimator : str
        The estimator used (one of `ESTIMATORS`).
    """

    background: np.ndarray
    background_rms: np.ndarray
    background_median: float
    background_rms_median: float
    background_mesh: np.ndarray
    background_rms_mesh: np.ndarray
    n_pixels_mesh: np.ndarray
    excluded_mesh: np.ndarray
    box_size: tuple
    filter_size: tuple
    estimator: str


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def _pair(name, value):
    """``value`` as an ``(ny, nx)`` pair of ints, or InputError."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    try:
        items = tuple(value)
    except TypeError:
        items = ()
    if (len(items) == 2 and all(isinstance(v, numbers.Integral)
                                and not isinstance(v, bool) for v in items)):
        return (int(items[0]), int(items[1]))
    raise InputError(
        f"{name} must be a whole number of pixels or a (ny, nx) pair of them; "
        f"got {value!r}", param=name)


def _check_box_size(box_size, shape):
    by, bx = _pair("box_size", box_size)
    ny, nx = shape
    if not (MIN_BOX <= by <= ny and MIN_BOX <= bx <= nx):
        upper = min(ny, nx) if by == bx else None
        got = by if by == bx and not isinstance(box_size, (tuple, list)) else (by, bx)
        if upper is not None and upper >= MIN_BOX:
            allowed = f"between {MIN_BOX} and {upper} pixels"
        else:
            allowed = (f"at least {MIN_BOX} pixels and at most the image size "
                       f"along each axis")
        raise InputError(
            f"box_size must be {allowed} for a {ny}x{nx} image; got {got}",
            param="box_size")
    return by, bx


def _check_filter_size(filter_size):
    fy, fx = _pair("filter_size", filter_size)
    if fy < 1 or fx < 1 or fy % 2 == 0 or fx % 2 == 0:
        raise InputError(
            f"filter_size must be an odd whole number >= 1 (1 = no "
            f"filtering), or a (ny, nx) pair of them; got {filter_size!r}",
            param="filter_size")
    return fy, fx


def _check_percentile(value):
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not 0 <= value <= 100):
        raise InputError(
            f"exclude_percentile must be between 0 and 100 (percent of a "
            f"box's pixels that may be masked or clipped); got {value!r}",
            param="exclude_percentile")
    return float(value)


def _check_estimator(estimator):
    if estimator not in ESTIMATORS:
        raise InputError(
            f"estimator must be {describe_choices(ESTIMATORS)}; "
            f"got {estimator!r}", param="estimator")
    return estimator


# ---------------------------------------------------------------------------
# Box statistics
# ---------------------------------------------------------------------------

def _box_rows(data, mask, y0, h, ky, x0, w, kx, dtype):
    """Copy ``ky x kx`` boxes of ``h x w`` pixels whose corner is ``(y0, x0)``
    into a ``(ky*kx, h*w)`` array of ``dtype`` (one box per row, in mesh
    order), non-finite and masked pixels set to NaN, each row sorted.

    Returns ``(rows, n_valid)``. The copy is the only one made of the data
    (it also converts big-endian or memory-mapped input).
    """
    src = data[y0:y0 + ky * h, x0:x0 + kx * w].reshape(ky, h, kx, w)
    rows = np.empty((ky * kx, h * w), dtype=dtype)
    np.copyto(rows.reshape(ky, kx, h, w), src.transpose(0, 2, 1, 3),
              casting="unsafe")
    bad = np.isfinite(rows)
    np.logical_not(bad, out=bad)
    if mask is not None:
        msrc = mask[y0:y0 + ky * h, x0:x0 + kx * w].reshape(ky, h, kx, w)
        bad.reshape(ky, kx, h, w)[...] |= msrc.transpose(0, 2, 1, 3)
    if bad.any():
        nbad = np.count_nonzero(bad, axis=1)
        rows[bad] = np.nan
    else:
        nbad = np.zeros(ky * kx, dtype=np.intp)
    rows.sort(axis=1)
    return rows, rows.shape[1] - nbad


def _biweight_rows(x, lo, hi, median):
    """Biweight location (c=6) and scale (c=9) of each row's range."""
    n = hi - lo
    mad = _stats._mad_sorted_rows(x, lo, hi, median)
    cols = np.arange(x.shape[1])[None, :]
    inside = (cols >= lo[:, None]) & (cols < hi[:, None])
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(inside, x.astype(np.float64) - median[:, None], 0.0)
        q = d * d
        u6 = q / (6.0 * mad[:, None]) ** 2
        w = np.where(inside & (u6 < 1.0), (1.0 - u6) ** 2, 0.0)
        location = median + (d * w).sum(axis=1) / w.sum(axis=1)
        u9 = q / (9.0 * mad[:, None]) ** 2
        keep = inside & (u9 < 1.0)
        t = np.where(keep, 1.0 - u9, 0.0)
        f1 = (q * t ** 4).sum(axis=1)
        f2 = (t * (1.0 - 5.0 * u9)).sum(axis=1)
        scale = np.sqrt(n * f1 / (f2 * f2))
    zero = ~(mad > 0)
    location = np.where(zero, median, location)
    scale = np.where(zero, 0.0, scale)
    return location, scale


def _row_statistics(x, nvalid, *, estimator, sigma, maxiters, dtype):
    """Clip each sorted row; return (background, rms, n_kept) per row."""
    nrows = x.shape[0]
    lo = np.zeros(nrows, dtype=np.intp)
    hi = nvalid.astype(np.intp)
    ref = _stats._median_sorted_rows(x, lo, hi)
    ref = np.where(np.isfinite(ref), ref, 0.0)
    sums = _stats._RowSums(x, hi, ref)
    lo, hi = _stats._clip_sorted_rows(x, lo, hi, sums, sigma=sigma,
                                      maxiters=maxiters)
    n = hi - lo
    median64 = _stats._median_sorted_rows(x, lo, hi)
    mean64, std64 = _stats._mean_std(sums, lo, hi)
    # Combine in the data's precision, as photutils' estimators do.
    with np.errstate(invalid="ignore", divide="ignore"):
        med = median64.astype(dtype)
        mean = mean64.astype(dtype)
        std = std64.astype(dtype)
        if estimator == "median":
            bkg = med
        elif estimator == "mean":
            bkg = mean
        elif estimator == "mode":
            bkg = dtype.type(3.0) * med - dtype.type(2.0) * mean
        elif estimator == "sextractor":
            bkg = dtype.type(2.5) * med - dtype.type(1.5) * mean
            use_mean = std == 0
            use_median = (np.abs(mean - med) / std >= 0.3) & ~use_mean
            bkg = np.where(use_mean, mean, np.where(use_median, med, bkg))
        else:  # biweight
            ok = n > 0
            loc = np.full(nrows, np.nan)
            scale = np.full(nrows, np.nan)
            if ok.any():
                loc[ok], scale[ok] = _biweight_rows(
                    x[ok], lo[ok], hi[ok], median64[ok])
            bkg = loc.astype(dtype)
            std = scale.astype(dtype)
    return bkg, std, n


def _pieces(n_image, size, n_full, per_piece):
    """Groups ``(i0, i1, side)`` of mesh cells along one axis: full cells in
    groups of ``per_piece``, then the partial edge cell if any."""
    groups = [(i, min(i + per_piece, n_full), size)
              for i in range(0, n_full, per_piece)]
    if n_full * size < n_image:
        groups.append((n_full, n_full + 1, n_image - n_full * size))
    return groups


def _mesh_statistics(data, mask, box, *, estimator, sigma, maxiters,
                     threshold, dtype):
    """Background, RMS and kept-pixel count of every box of the mesh.

    Boxes at the top and right edges may be partial (the image need not be a
    whole number of boxes); excluded boxes are NaN. Boxes are processed in
    pieces of about ``_PIECE`` pixels (several mesh rows when they are
    narrow), so the work stays in the cache and numpy's per-call overhead
    is shared by many boxes.
    """
    ny, nx = data.shape
    by, bx = box
    my, mx = -(-ny // by), -(-nx // bx)
    nfull_y, nfull_x = ny // by, nx // bx
    bkg = np.full((my, mx), np.nan, dtype=dtype)
    rms = np.full((my, mx), np.nan, dtype=dtype)
    ngood = np.zeros((my, mx), dtype=np.int64)
    boxes = max(1, _PIECE // (by * bx))
    for ix0, ix1, w in _pieces(nx, bx, nfull_x, boxes):
        kx = ix1 - ix0
        for iy0, iy1, h in _pieces(ny, by, nfull_y, max(1, boxes // kx)):
            ky = iy1 - iy0
            x, nvalid = _box_rows(data, mask, iy0 * by, h, ky, ix0 * bx, w,
                                  kx, dtype)
            b, r, n = _row_statistics(x, nvalid, estimator=estimator,
                                      sigma=sigma, maxiters=maxiters,
                                      dtype=dtype)
            keep = n > threshold
            ngood[iy0:iy1, ix0:ix1] = n.reshape(ky, kx)
            bkg[iy0:iy1, ix0:ix1] = np.where(keep, b, np.nan).reshape(ky, kx)
            rms[iy0:iy1, ix0:ix1] = np.where(keep, r, np.nan).reshape(ky, kx)
    return bkg, rms, ngood


# ---------------------------------------------------------------------------
# Mesh processing
# ---------------------------------------------------------------------------

def _fill_mesh(mesh):
    """Fill NaN boxes by inverse-distance weighting of the good ones.

    As photutils (``ShepardIDWInterpolator``, 10 neighbours, power 1) in
    mesh-index coordinates.
    """
    bad = np.isnan(mesh)
    if not bad.any():
        return mesh
    from photutils.utils import ShepardIDWInterpolator

    good = ~bad
    interp = ShepardIDWInterpolator(np.column_stack(np.nonzero(good)),
                                    mesh[good])
    filled = mesh.copy()
    filled[bad] = interp(np.column_stack(np.nonzero(bad)), n_neighbors=10,
                         power=1.0, eps=0.0, regularization=0.0)
    return filled


def _median_filter_mesh(mesh, size):
    """NaN-ignoring median filter with NaN outside the mesh, vectorised.

    Same as ``scipy.ndimage.generic_filter(mesh, np.nanmedian, size,
    mode='constant', cval=np.nan)``.
    """
    fy, fx = size
    if (fy, fx) == (1, 1):
        return mesh
    padded = np.pad(mesh.astype(np.float64), ((fy // 2,), (fx // 2,)),
                    constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (fy, fx))
    windows = windows.reshape(*mesh.shape, fy * fx)
    # Sorting puts NaNs last; the median of the finite ones is then a lookup.
    ordered = np.sort(windows, axis=-1)
    n = np.count_nonzero(~np.isnan(ordered), axis=-1)
    lo = np.take_along_axis(ordered, ((n - 1) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(ordered, (n // 2)[..., None], axis=-1)[..., 0]
    return (0.5 * (lo + hi)).astype(mesh.dtype)


def _spline_taps(n_in, n_padded, n_out):
    """Indices and weights of the cubic B-spline taps of a 1-D zoom.

    The zoom maps ``n_in`` samples to ``n_padded`` (an integer multiple),
    with ``grid_mode=True`` and ``mode='reflect'`` as in
    `scipy.ndimage.zoom`; only the first ``n_out`` outputs are returned.
    """
    factor = n_in / n_padded
    c = (np.arange(n_out, dtype=np.float64) + 0.5) * factor - 0.5
    f = np.floor(c)
    t = c - f
    t2 = t * t
    t3 = t2 * t
    weights = np.empty((n_out, 4))
    weights[:, 0] = (1.0 - t) ** 3 / 6.0
    weights[:, 1] = (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0
    weights[:, 2] = (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0
    weights[:, 3] = t3 / 6.0
    idx = f.astype(np.intp)[:, None] - 1 + np.arange(4)
    period = 2 * n_in
    idx = np.mod(idx, period)
    idx = np.where(idx >= n_in, period - 1 - idx, idx)
    return idx, weights


def _resize_mesh(mesh, shape, box, dtype):
    """Cubic-spline resize of the mesh to the image, clipped to its range.

    Same numbers as photutils' interpolator, ``scipy.ndimage.zoom(mesh, box,
    order=3, mode='reflect', grid_mode=True)`` cropped to ``shape`` and
    clipped to ``[mesh.min(), mesh.max()]`` (to a few units in the last
    place for float32), evaluated as separable 4-tap sums of the spline
    coefficients: the coefficients are scipy's own ``spline_filter``; the
    taps are the cubic B-spline weights at zoom's sample positions.
    """
    from scipy.ndimage import spline_filter

    lo = mesh.min()
    hi = mesh.max()
    if hi == lo:
        return np.full(shape, lo, dtype=dtype)
    my, mx = mesh.shape
    ny, nx = shape
    by, bx = box
    coef = spline_filter(mesh.astype(np.float64), order=3, mode="reflect",
                         output=np.float64)
    ix, wx = _spline_taps(mx, mx * bx, nx)
    iy, wy = _spline_taps(my, my * by, ny)
    # along x: (my, nx)
    cols = np.zeros((my, nx))
    for k in range(4):
        cols += np.take(coef, ix[:, k], axis=1) * wx[:, k]
    # Accumulate in the output's precision (float32 for float32 data: within
    # a few ulp of zoom's float64 evaluation, at half the memory traffic).
    cols = cols.astype(dtype)
    wy = wy.astype(dtype)
    lo = dtype.type(lo)
    hi = dtype.type(hi)
    # along y: consecutive output rows share their 4 taps (a box at a time);
    # each group is 4 broadcast multiply-adds of mesh rows into the output.
    out = np.empty(shape, dtype=dtype)
    change = np.flatnonzero((iy[1:] != iy[:-1]).any(axis=1)) + 1
    bounds = np.concatenate([[0], change, [ny]])
    band = max(1, (1 << 17) // max(nx, 1))
    tmp = np.empty((band, nx), dtype=dtype)
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        taps = iy[g0]
        for y0 in range(g0, g1, band):
            y1 = min(y0 + band, g1)
            a = out[y0:y1]
            t = tmp[:y1 - y0]
            np.multiply(wy[y0:y1, 0, None], cols[taps[0]], out=a)
            for k in range(1, 4):
                np.multiply(wy[y0:y1, k, None], cols[taps[k]], out=t)
                a += t
            np.clip(a, lo, hi, out=a)
    return out


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def estimate_background(data, *, box_size=50, filter_size=3, sigma_clip=3.0,
                        estimator="median", mask=None, maxiters=10,
                        exclude_percentile=10.0):
    """Estimate a 2-D background and background RMS map (mesh method).

    Parameters
    ----------
    data : array_like (2-D)
        The image. Non-finite pixels (NaN, inf) are never used. Big-endian
        and read-only (memory-mapped) arrays are accepted; the input is not
        modified and is copied only a box row at a time.
    box_size : int or (int, int), optional
        Box side in pixels, or ``(ny, nx)``; at least 4 and at most the
        image size. The image need not be a whole number of boxes: the
        boxes at the top and right edges are then partial (and usually
        excluded, being more than ``exclude_percentile`` percent short).
    filter_size : int or (int, int), optional
        Size of the median filter applied to the mesh of box values; odd,
        1 for no filtering.
    sigma_clip : float, optional
        Clipping threshold in standard deviations (median centre) applied
        to each box before the estimators.
    estimator : str, optional
        One of `ESTIMATORS`: ``"median"``, ``"mean"``, ``"sextractor"``
        (2.5 median - 1.5 mean, or the median when the distribution is
        skewed), ``"mode"`` (3 median - 2 mean) or ``"biweight"`` (biweight
        location; the RMS is then the biweight scale instead of the
        standard deviation).
    mask : array_like of bool, optional
        Same shape as ``data``; True marks pixels (sources, bad pixels) to
        leave out of the box statistics. The maps are still computed there.
    maxiters : int or None, optional
        Maximum number of clipping iterations per box (None: until nothing
        changes).
    exclude_percentile : float, optional
        A box with more than this percentage of its pixels masked,
        non-finite or clipped is excluded and filled from its neighbours.

    Returns
    -------
    BackgroundResult
        The full-resolution ``background`` and ``background_rms`` maps
        (float32, or float64 for float64 data; finite everywhere), their
        mesh medians, and the mesh itself.

    Raises
    ------
    jwst_widgets.errors.InputError
        For data that is not a 2-D numeric image, a mask of another shape,
        a box size outside ``[4, image size]``, an even or non-positive
        filter size, a non-positive ``sigma_clip``, an unknown estimator, an
        ``exclude_percentile`` outside ``[0, 100]``, no usable pixel (all
        non-finite or masked), or every box excluded.

    See Also
    --------
    global_background : a single robust level and noise for the image.

    Notes
    -----
    Results equal photutils 3 ``Background2D(data, box_size,
    mask=mask, filter_size=filter_size, sigma_clip=SigmaClip(sigma_clip,
    maxiters=maxiters), exclude_percentile=exclude_percentile,
    bkg_estimator=..., bkg_rms_estimator=...)`` with the estimator classes
    named in `ESTIMATORS` (to the precision of the data; the clipping
    statistics are accumulated in float64 here), without its warnings about
    non-finite values. Integer images give float32 maps (as photutils);
    float32 images give float32 maps for every estimator (photutils gives
    float64 maps for the biweight estimators).

    The algorithm is SourceExtractor's (Bertin & Arnouts 1996, A&AS 117,
    393), as implemented by photutils (Bradley et al., photutils).

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.background import estimate_background
    >>> rng = np.random.default_rng(0)
    >>> yy, xx = np.mgrid[:256, :256]
    >>> sky = 10.0 + 0.01 * xx                    # a gentle gradient
    >>> image = (sky + rng.normal(0.0, 1.0, sky.shape)).astype(np.float32)
    >>> bkg = estimate_background(image, box_size=32)
    >>> bkg.background.dtype, bkg.background.shape
    (dtype('float32'), (256, 256))
    >>> error = bkg.background - sky              # in units of the noise
    >>> print(f"{np.sqrt(np.mean(error ** 2)):.2f}")
    0.10
    >>> round(bkg.background_rms_median, 1)
    1.0
    """
    arr = _stats._as_image(data)
    m = _stats._as_mask(mask, arr.shape)
    box = _check_box_size(box_size, arr.shape)
    fsize = _check_filter_size(filter_size)
    sigma = _stats._check_sigma(sigma_clip, name="sigma_clip")
    estimator = _check_estimator(estimator)
    maxiters = _stats._check_maxiters(maxiters)
    percentile = _check_percentile(exclude_percentile)
    # As photutils: float64 data are processed in float64, anything else
    # (float32, float16, integers) in float32.
    out_dtype = np.dtype(np.float64 if arr.dtype == np.float64 else np.float32)

    threshold = (1.0 - percentile / 100.0) * box[0] * box[1]
    bkg_mesh, rms_mesh, ngood = _mesh_statistics(
        arr, m, box, estimator=estimator, sigma=sigma, maxiters=maxiters,
        threshold=threshold, dtype=out_dtype)
    bkg_mesh = bkg_mesh.astype(out_dtype, copy=False)
    rms_mesh = rms_mesh.astype(out_dtype, copy=False)
    excluded = np.isnan(bkg_mesh)
    if excluded.all():
        _raise_no_boxes(arr, m, box, percentile)

    bkg_mesh = _median_filter_mesh(_fill_mesh(bkg_mesh), fsize)
    rms_mesh = _median_filter_mesh(_fill_mesh(rms_mesh), fsize)
    background = _resize_mesh(bkg_mesh, arr.shape, box, out_dtype)
    background_rms = _resize_mesh(rms_mesh, arr.shape, box, out_dtype)
    return BackgroundResult(
        background=background,
        background_rms=background_rms,
        background_median=float(np.median(bkg_mesh)),
        background_rms_median=float(np.median(rms_mesh)),
        background_mesh=bkg_mesh,
        background_rms_mesh=rms_mesh,
        n_pixels_mesh=ngood,
        excluded_mesh=excluded,
        box_size=box,
        filter_size=fsize,
        estimator=estimator,
    )


def _raise_no_boxes(arr, mask, box, percentile):
    """Explain why no box could be used."""
    finite = 0
    usable = 0
    rows = max(1, (1 << 20) // arr.shape[1])
    for y in range(0, arr.shape[0], rows):
        ok = np.isfinite(arr[y:y + rows])
        finite += np.count_nonzero(ok)
        if mask is not None:
            ok &= ~mask[y:y + rows]
        usable += np.count_nonzero(ok)
    if finite == 0:
        raise InputError("data has no finite pixel: cannot estimate a "
                         "background", param="data")
    if usable == 0:
        raise InputError("mask excludes every finite pixel: cannot estimate "
                         "a background", param="mask")
    raise InputError(
        f"every {box[0]}x{box[1]} box has more than {percentile:g}% of its "
        f"pixels masked, non-finite or clipped; increase exclude_percentile "
        f"or box_size", param="exclude_percentile")


def global_background(data, *, mask=None, sigma=3.0):
    """A single robust background level and noise for the whole image.

    Parameters
    ----------
    data : array_like (2-D)
        The image; non-finite pixels are ignored.
    mask : array_like of bool, optional
        True marks pixels to ignore.
    sigma : float, optional
        Clipping threshold in standard deviations (5 iterations at most, as
        `astropy.stats.sigma_clipped_stats`).

    Returns
    -------
    median, rms : float
        The sigma-clipped median and standard deviation of the finite,
        unmasked pixels.

    Raises
    ------
    jwst_widgets.errors.InputError
        If ``data`` is not 2-D, the mask has another shape, ``sigma`` is
        not positive, or no pixel is usable.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.background import global_background
    >>> rng = np.random.default_rng(1)
    >>> image = rng.normal(5.0, 0.5, (128, 128))
    >>> image[60:68, 60:68] += 100.0              # a bright source
    >>> level, noise = global_background(image)
    >>> round(level, 1), round(noise, 1)
    (5.0, 0.5)
    """
    sigma = _stats._check_sigma(sigma)
    values, n_nonfinite, n_masked, _ = _stats._sorted_valid(data, mask, None)
    if values.size == 0:
        if n_masked:
            raise InputError("mask excludes every finite pixel: no background "
                             "level can be measured", param="mask")
        raise InputError("data has no finite pixel: no background level can "
                         "be measured", param="data")
    _, median, std, _ = _stats._clipped_stats_sorted(values, sigma=sigma,
                                                     maxiters=5)
    return median, std
