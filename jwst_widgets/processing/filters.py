"""Noise reduction: Gaussian, median, astropy and bilateral filters.

Every filter here is NaN- and mask-aware: a pixel that is not finite, or that
``mask`` flags, is never used as a neighbour and never spreads into the pixels
around it. Each output pixel is computed from the valid pixels of its window
only, and pixels of the window that fall outside the image do not count either
(so the edges are not darkened or brightened by padding).

The public entry point is :func:`reduce_noise`; :data:`METHODS` lists the
filters it knows.
"""

import functools
import math
from numbers import Integral, Real

import numpy as np

from ..errors import InputError, describe_choices

__all__ = ["METHODS", "KERNEL_SIZE_MAX", "SIGMA_MAX", "reduce_noise", "robust_noise"]

#: The filters :func:`reduce_noise` knows, in the order a menu shows them.
METHODS = ("gaussian", "median", "astropy_gaussian", "bilateral")

#: The largest ``kernel_size`` (window side, pixels) of the median and
#: bilateral filters.
KERNEL_SIZE_MAX = 15

#: The largest ``sigma`` (pixels) of the Gaussian and bilateral filters.
SIGMA_MAX = 10.0

# Pixels per block of rows for the chunked median and bilateral filters:
# small enough that a chunk's working arrays stay in the CPU cache.
_CHUNK_PIXELS = 1 << 15


def reduce_noise(data, *, method="gaussian", kernel_size=3, sigma=1.0,
                 range_sigma=3.0, mask=None):
    """Smooth an image to reduce its noise, ignoring bad pixels.

    Parameters
    ----------
    data : array_like
        The 2-D image. It is not modified.
    method : {'gaussian', 'median', 'astropy_gaussian', 'bilateral'}, optional
        The filter (see Notes).
    kernel_size : int or None, optional
        The side of the square window, in pixels: odd, between 1 and
        :data:`KERNEL_SIZE_MAX`. Used by ``'median'`` and ``'bilateral'``;
        ignored by the Gaussian filters, whose extent follows ``sigma``.
        For ``'bilateral'``, None derives the window from ``sigma``
        (``2 * ceil(2 * sigma) + 1``, at most :data:`KERNEL_SIZE_MAX`).
    sigma : float, optional
        The standard deviation of the Gaussian kernel in pixels, between 0
        and :data:`SIGMA_MAX` (the spatial scale for ``'bilateral'``).
        Ignored by ``'median'``.
    range_sigma : float, optional
        For ``'bilateral'`` only: the intensity scale of the filter, in
        units of the image's pixel-to-pixel noise (see :func:`robust_noise`).
        Neighbours that differ from the centre pixel by much more than
        ``range_sigma`` times the noise get almost no weight, which keeps
        edges and point sources sharp. Must be positive.
    mask : array_like of bool, optional
        True where a pixel is bad and must not be used. Non-finite pixels
        are always treated as bad.

    Returns
    -------
    ndarray of float32
        The filtered image, the same shape as ``data``.

    Raises
    ------
    jwst_widgets.errors.InputError
        For a bad ``method``, ``kernel_size``, ``sigma``, ``range_sigma``,
        ``data`` or ``mask``; its ``param`` names the culprit.

    Notes
    -----
    What each method computes (a pixel is *valid* when it is finite and not
    masked; the window is clipped at the image edges):

    ======================  ========================================  =============
    method                  at valid pixels                           at bad pixels
    ======================  ========================================  =============
    ``gaussian``            normalised convolution: the Gaussian-     NaN
                            weighted mean of the valid pixels
                            (``scipy.ndimage.gaussian_filter`` of
                            ``data * w`` divided by that of ``w``,
                            ``w`` = 1 at valid pixels, 0 elsewhere)
    ``median``              the median of the valid pixels of the     NaN
                            ``kernel_size`` window (the mean of the
                            two middle values when their number is
                            even)
    ``astropy_gaussian``    ``astropy.convolution.convolve`` with     NaN
                            ``Gaussian2DKernel(sigma)`` and
                            ``nan_treatment='interpolate'``: the
                            same weighted mean as ``gaussian``, with
                            astropy's kernel (8 sigma wide)
    ``bilateral``           the mean of the valid pixels of the       NaN
                            window weighted by
                            ``exp(-r**2 / (2 sigma**2))`` in space
                            and ``exp(-d**2 / (2 s**2))`` in value,
                            where ``d`` is the difference to the
                            centre pixel and ``s`` is
                            ``range_sigma * robust_noise(data)``
    ======================  ========================================  =============

    Holes are never filled: a pixel that was bad on input is NaN on output,
    whatever the method, so the set of bad pixels does not change (use
    :func:`astropy.convolution.interpolate_replace_nans` to fill holes).
    ``sigma=0`` (Gaussian and bilateral) and ``kernel_size=1`` (median and
    bilateral) return the input unchanged apart from that rule and the
    conversion to float32. A bilateral filter of an image without noise
    (robust noise 0) is also the identity.

    The median is exact: a compare-exchange network (Knuth's merge exchange,
    pruned to the middle element) evaluated on whole rows of pixels for
    windows without bad pixels, and a sort of the valid values for the
    windows that hold bad pixels or cross the image edge. Both it and the
    bilateral filter work through the image in blocks of rows, so their
    memory use does not grow with the window.

    The cost of ``astropy_gaussian`` grows as ``sigma**2`` (a direct
    convolution); ``gaussian`` is separable and fast at any ``sigma``.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.filters import reduce_noise
    >>> rng = np.random.default_rng(0)
    >>> frame = rng.normal(100.0, 5.0, (256, 256)).astype(np.float32)
    >>> frame[10, 10] = np.nan
    >>> smooth = reduce_noise(frame, method="gaussian", sigma=2.0)
    >>> smooth.dtype, bool(np.isnan(smooth[10, 10])), bool(np.isnan(smooth[10, 11]))
    (dtype('float32'), True, False)
    >>> bool(np.nanstd(smooth) < np.nanstd(frame) / 3)
    True
    >>> cleaned = reduce_noise(frame, method="median", kernel_size=5)
    """
    method = _check_method(method)
    work = _as_float32_image(data)
    valid = _valid_pixels(work, mask)

    if method == "median":
        size = _check_kernel_size(kernel_size, method)
        return _median(work, valid, size)

    sigma = _check_sigma(sigma, method)
    if method == "gaussian":
        return _gaussian(work, valid, sigma)
    if method == "astropy_gaussian":
        return _astropy_gaussian(work, valid, sigma)

    if kernel_size is None:
        size = min(2 * math.ceil(2.0 * sigma) + 1, KERNEL_SIZE_MAX)
    else:
        size = _check_kernel_size(kernel_size, method)
    range_sigma = _check_range_sigma(range_sigma)
    return _bilateral(work, valid, sigma, size, range_sigma)


def robust_noise(data, *, mask=None, max_samples=1_000_000):
    """Estimate the pixel-to-pixel noise of an image, robustly.

    The MAD standard deviation of the differences between horizontally
    adjacent valid pixels, divided by sqrt(2):
    ``1.4826 * median(|d - median(d)|) / sqrt(2)``. For white noise this is
    its standard deviation; unlike the MAD of the pixel values themselves,
    it is not inflated by a background gradient, extended emission or a
    step, whose few large differences the median ignores.

    Parameters
    ----------
    data : array_like
        The 2-D image. It is not modified.
    mask : array_like of bool, optional
        True where a pixel is bad.
    max_samples : int, optional
        Above this many differences, evenly spaced rows are used
        (deterministic).

    Returns
    -------
    float
        The noise; NaN when no two adjacent pixels are valid.

    Notes
    -----
    Noise correlated between neighbouring pixels (drizzled ``i2d``
    mosaics) is underestimated by the factor ``sqrt(1 - rho)``, where
    ``rho`` is the correlation of adjacent pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.filters import robust_noise
    >>> rng = np.random.default_rng(1)
    >>> sky = np.linspace(0.0, 500.0, 512)[None, :] + rng.normal(0.0, 2.0, (512, 512))
    >>> round(robust_noise(sky), 1)
    2.0
    """
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise InputError(f"data must be a 2-D image; got an array of shape {arr.shape}",
                         param="data")
    step = max(1, (arr.size // max(int(max_samples), 1)))
    rows = arr[::step]
    valid = np.isfinite(rows)
    if mask is not None:
        valid &= ~np.asarray(mask, dtype=bool)[::step]
    pair = valid[:, 1:] & valid[:, :-1]
    diffs = np.subtract(rows[:, 1:], rows[:, :-1], dtype=np.float64)[pair]
    if diffs.size == 0:
        return float("nan")
    med = np.median(diffs)
    return float(1.482602218505602 * np.median(np.abs(diffs - med)) / math.sqrt(2.0))


# --- validation ---------------------------------------------------------


def _check_method(method):
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise InputError(
            f"method must be one of {describe_choices(METHODS)}; got {method!r}",
            param="method")
    return method.lower()


def _as_float32_image(data):
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise InputError(
            f"data must be a 2-D image; got an array of shape {arr.shape}",
            param="data")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"data must hold numbers; got dtype {arr.dtype}", param="data")
    # No copy when the data are already native float32.
    return np.asarray(arr, dtype=np.float32)


def _valid_pixels(work, mask):
    valid = np.isfinite(work)
    if mask is not None:
        m = np.asarray(mask)
        if m.shape != work.shape:
            raise InputError(
                f"mask must have the shape of the data {work.shape}; got {m.shape}",
                param="mask")
        valid &= ~m.astype(bool, copy=False)
    return valid


def _check_kernel_size(kernel_size, method):
    ok = (isinstance(kernel_size, (Integral, Real)) and not isinstance(kernel_size, bool)
          and math.isfinite(kernel_size) and float(kernel_size).is_integer())
    if not ok or not (1 <= kernel_size <= KERNEL_SIZE_MAX) or int(kernel_size) % 2 == 0:
        raise InputError(
            f"kernel_size must be an odd whole number of pixels between 1 and "
            f"{KERNEL_SIZE_MAX} for the {method} filter; got {kernel_size!r}",
            param="kernel_size")
    return int(kernel_size)


def _check_sigma(sigma, method):
    ok = (isinstance(sigma, Real) and not isinstance(sigma, bool)
          and math.isfinite(sigma) and 0 <= sigma <= SIGMA_MAX)
    if not ok:
        raise InputError(
            f"sigma must be between 0 and {SIGMA_MAX:g} pixels for the {method} "
            f"filter; got {sigma!r}", param="sigma")
    return float(sigma)


def _check_range_sigma(range_sigma):
    ok = (isinstance(range_sigma, Real) and not isinstance(range_sigma, bool)
          and math.isfinite(range_sigma) and range_sigma > 0)
    if not ok:
        raise InputError(
            f"range_sigma must be a positive number (times the image noise); "
            f"got {range_sigma!r}", param="range_sigma")
    return float(range_sigma)


# --- the filters --------------------------------------------------------


def _identity(work, valid):
    out = np.array(work, dtype=np.float32, copy=True)
    out[~valid] = np.nan
    return out


def _gaussian(work, valid, sigma):
    if sigma == 0:
        return _identity(work, valid)
    from scipy.ndimage import gaussian_filter, gaussian_filter1d

    all_valid = bool(valid.all())
    filled = work if all_valid else np.where(valid, work, np.float32(0))
    out = gaussian_filter(filled, sigma, mode="constant", cval=0.0)
    if all_valid:
        # The weight image is separable, the product of two 1-D profiles
        # that differ from 1 only within the kernel radius of the edges.
        radius = int(4.0 * sigma + 0.5)                    # scipy's truncate=4
        wy = gaussian_filter1d(np.ones(work.shape[0], np.float32), sigma, mode="constant")
        wx = gaussian_filter1d(np.ones(work.shape[1], np.float32), sigma, mode="constant")
        for rows in (slice(0, radius), slice(max(radius, work.shape[0] - radius), None)):
            out[rows] /= wy[rows, None]
        for cols in (slice(0, radius), slice(max(radius, work.shape[1] - radius), None)):
            out[:, cols] /= wx[None, cols]
    else:
        weight = gaussian_filter(valid.astype(np.float32), sigma, mode="constant", cval=0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(out, weight, out=out)
        out[~valid] = np.nan
    return out


def _astropy_gaussian(work, valid, sigma):
    if sigma == 0:
        return _identity(work, valid)
    from astropy.convolution import Gaussian2DKernel, convolve

    kernel = Gaussian2DKernel(x_stddev=sigma)
    # Outside the image counts as missing (NaN fill), so edges are normalised
    # like interior holes; preserve_nan keeps holes as holes.
    out = convolve(work, kernel, boundary="fill", fill_value=np.nan,
                   nan_treatment="interpolate", preserve_nan=True, mask=~valid)
    out = np.asarray(out, dtype=np.float32)
    out[~valid] = np.nan
    return out


def _nan_padded(work, valid, radius):
    """The image with bad pixels NaN, padded by ``radius`` NaN on every side."""
    ny, nx = work.shape
    padded = np.full((ny + 2 * radius, nx + 2 * radius), np.nan, dtype=np.float32)
    inner = padded[radius:radius + ny, radius:radius + nx]
    inner[...] = work
    inner[~valid] = np.nan
    return padded


def _row_blocks(n_rows, n_cols):
    step = max(1, _CHUNK_PIXELS // max(n_cols, 1))
    return [(a, min(a + step, n_rows)) for a in range(0, n_rows, step)]


# --- median -------------------------------------------------------------


def _median(work, valid, size):
    if size == 1:
        return _identity(work, valid)
    from scipy.ndimage import maximum_filter

    ny, nx = work.shape
    r = size // 2
    out = np.full((ny, nx), np.nan, dtype=np.float32)
    if ny > 2 * r and nx > 2 * r:
        _median_network(work, size, out[r:ny - r, r:nx - r])

    # Windows that hold a bad pixel or cross the edge: exact median of the
    # valid values. Bad pixels themselves stay NaN.
    near_bad = maximum_filter((~valid).view(np.uint8), size=size, mode="constant", cval=0)
    exact = valid & near_bad.astype(bool)
    exact[:r] = valid[:r]
    exact[ny - r:] = valid[ny - r:]
    exact[:, :r] = valid[:, :r]
    exact[:, nx - r:] = valid[:, nx - r:]
    ys, xs = np.nonzero(exact)
    if ys.size:
        padded = _nan_padded(work, valid, r)
        out[ys, xs] = _median_of_windows(padded, ys, xs, size)
    out[~valid] = np.nan
    return out


def _merge_exchange(n):
    """Knuth's merge-exchange sorting network for n wires (TAOCP 5.2.2 M)."""
    pairs = []
    if n < 2:
        return pairs
    t = math.ceil(math.log2(n))
    p = 1 << (t - 1)
    while p > 0:
        q, r, d = 1 << (t - 1), 0, p
        while True:
            pairs.extend((i, i + d) for i in range(n - d) if i & p == r)
            if q == p:
                break
            d, q, r = q - p, q >> 1, p
        p >>= 1
    return pairs


@functools.lru_cache(maxsize=None)
def _selection_network(n):
    """Compare-exchanges that bring the median of n values to wire n // 2.

    Each item is ``(i, j, keep_min, keep_max)``: after it, wire i holds the
    minimum (when needed later) and wire j the maximum (when needed later).
    """
    needed = {n // 2}
    kept = []
    for i, j in reversed(_merge_exchange(n)):
        keep_min, keep_max = i in needed, j in needed
        if keep_min or keep_max:
            kept.append((i, j, keep_min, keep_max))
            needed.update((i, j))
    return tuple(reversed(kept))


def _median_network(work, size, out):
    """Median over full ``size`` x ``size`` windows into ``out`` (the interior)."""
    network = _selection_network(size * size)
    offsets = [(dy, dx) for dy in range(size) for dx in range(size)]
    n_rows, n_cols = out.shape
    for a, b in _row_blocks(n_rows, n_cols):
        wires = [work[a + dy:b + dy, dx:dx + n_cols] for dy, dx in offsets]
        owned = [False] * len(wires)   # views into work must not be written
        spare = []

        def buffer():
            return spare.pop() if spare else np.empty((b - a, n_cols), np.float32)

        for i, j, keep_min, keep_max in network:
            wi, wj = wires[i], wires[j]
            if keep_max:
                hi = wj if owned[j] else buffer()
                lo = buffer() if keep_min else None
                if lo is not None:
                    np.minimum(wi, wj, out=lo)
                np.maximum(wi, wj, out=hi)
                wires[j], owned[j] = hi, True
                if lo is not None:
                    if owned[i]:
                        spare.append(wi)
                    wires[i], owned[i] = lo, True
            else:
                lo = wi if owned[i] else buffer()
                np.minimum(wi, wj, out=lo)
                wires[i], owned[i] = lo, True
        out[a:b] = wires[len(wires) // 2]


def _median_of_windows(padded, ys, xs, size):
    """Exact NaN-ignoring medians of the windows centred on (ys, xs)."""
    dy, dx = np.divmod(np.arange(size * size), size)
    result = np.empty(ys.size, dtype=np.float32)
    step = max(1, _CHUNK_PIXELS * 8 // (size * size))
    for a in range(0, ys.size, step):
        yy = ys[a:a + step, None] + dy
        xx = xs[a:a + step, None] + dx
        win = padded[yy, xx]
        win.sort(axis=1)                       # NaN sort to the end
        count = np.count_nonzero(~np.isnan(win), axis=1)
        lo = np.take_along_axis(win, ((count - 1) // 2)[:, None], axis=1)[:, 0]
        hi = np.take_along_axis(win, (count // 2)[:, None], axis=1)[:, 0]
        result[a:a + step] = lo + (hi - lo) * np.float32(0.5)
    return result


# --- bilateral ----------------------------------------------------------


def _bilateral(work, valid, sigma, size, range_sigma):
    if sigma == 0 or size == 1:
        return _identity(work, valid)
    noise = robust_noise(work, mask=~valid)
    scale = range_sigma * noise
    if not (math.isfinite(scale) and scale > 0):
        return _identity(work, valid)

    ny, nx = work.shape
    r = size // 2
    padded = _nan_padded(work, valid, r)
    ok = ~np.isnan(padded)
    weight_ok = ok.astype(np.float32)
    np.nan_to_num(padded, copy=False, nan=0.0)

    # differences are taken in units of the range scale, so that neither
    # values near 3e38 nor near 1e-38 leave float32's range when squared
    with np.errstate(over="ignore"):
        scaled = padded / np.float32(scale)
    range_factor = np.float32(-0.5)
    terms = []
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            log_spatial = -(dy * dy + dx * dx) / (2.0 * sigma * sigma)
            terms.append((dy + r, dx + r, np.float32(log_spatial)))

    out = np.empty((ny, nx), dtype=np.float32)
    for a, b in _row_blocks(ny, nx):
        centre = scaled[a + r:b + r, r:r + nx]
        num = np.zeros((b - a, nx), np.float32)
        den = np.zeros((b - a, nx), np.float32)
        w = np.empty((b - a, nx), np.float32)
        for oy, ox, log_spatial in terms:
            neighbour = padded[a + oy:b + oy, ox:ox + nx]
            with np.errstate(over="ignore"):  # a huge difference: weight exp(-inf) = 0
                np.subtract(scaled[a + oy:b + oy, ox:ox + nx], centre, out=w)
                np.square(w, out=w)
            np.multiply(w, range_factor, out=w)
            if log_spatial:
                np.add(w, log_spatial, out=w)
            np.exp(w, out=w)
            np.multiply(w, weight_ok[a + oy:b + oy, ox:ox + nx], out=w)
            np.add(den, w, out=den)
            with np.errstate(over="ignore"):
                np.multiply(w, neighbour, out=w)
                np.add(num, w, out=num)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(num, den, out=out[a:b])
    out[~valid] = np.nan
    return out
