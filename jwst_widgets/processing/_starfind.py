"""photutils' DAOStarFinder and IRAFStarFinder, faster, with the same catalogs.

`find_stars` gives what ``finder(data, mask=mask)`` gives for a
`~photutils.detection.DAOStarFinder` or `~photutils.detection.IRAFStarFinder`
(the same rows in the same order, the same ids, columns and values), in a
fraction of the time. photutils spends most of a call in ``find_peaks``:
two ``maximum_filter`` passes over the whole convolved image and a Python
loop over every pixel that is a maximum of a small box but not of the
larger one (thousands of noise peaks), all before the threshold is applied.
Here the threshold comes first: only the pixels above it can be peaks, and
they are compared with their neighbours directly. The convolution is
photutils' own call, so it can be computed once and reused
(:func:`jwst_widgets.processing.detect.find_point_sources` caches it).

This module is private; photutils 3.0 internals it relies on are named
where they are used, each with a fallback to public API.
"""

import hashlib
import warnings

import numpy as np

from .._lru import ByteCache

__all__ = ["convolve", "find_peaks", "find_stars", "ArrayCache", "content_key"]


def convolve(data, kernel):
    """The finders' convolution: ``photutils.utils._convolution._filter_data(data,
    kernel, mode="constant", fill_value=0.0)``, that is ``scipy.ndimage.convolve``
    with zeros beyond the edges (integer data as float64)."""
    from scipy import ndimage

    if np.issubdtype(data.dtype, np.integer):
        data = data.astype(float)
    return ndimage.convolve(data, kernel, mode="constant", cval=0.0)


# --------------------------------------------------------------------------
# Peaks.

def _peak_offsets(radius):
    """The offsets ``(dy, dx)`` at which a pixel must not be exceeded to be a peak.

    photutils' ``find_peaks(..., min_separation=radius)``
    (``_fast_circular_peaks``) keeps a pixel when it equals the maximum of
    its circumscribed box, or of both its inscribed box and its circular
    footprint (``maximum_filter``'s footprint, centred as scipy centres an
    even-sized one). The footprint lies inside the circumscribed box, and
    the inscribed box does too, so the rule is: the maximum of the union of
    the inscribed box and the footprint. (For some radii the "inscribed"
    box pokes out of the circle; photutils' rule, not the circle, is what
    is reproduced.) Returns the offsets of that union without the centre,
    nearest first, or None when the rule does not reduce to this (the
    centre outside the footprint, or the inscribed box outside the
    circumscribed one: only for radii below about 1).
    """
    idx = np.arange(-radius, radius + 1)
    size = len(idx)
    half = size // 2
    xx, yy = np.meshgrid(idx, idx)
    fy, fx = np.nonzero(xx ** 2 + yy ** 2 <= radius ** 2)
    fy, fx = fy - half, fx - half
    if size % 2 == 0:
        half_side = int(np.floor(radius / np.sqrt(2) - 0.5))
    else:
        half_side = int(np.floor(radius / np.sqrt(2)))
    s = max(2 * half_side + 1, 3) // 2
    if not np.any((fy == 0) & (fx == 0)) or s > half or s > size - 1 - half:
        return None
    by, bx = (a.ravel() for a in np.mgrid[-s:s + 1, -s:s + 1])
    offsets = np.unique(np.concatenate([np.column_stack([fy, fx]),
                                        np.column_stack([by, bx])]), axis=0)
    offsets = offsets[np.any(offsets != 0, axis=1)]
    order = np.argsort(np.hypot(offsets[:, 0], offsets[:, 1]), kind="stable")
    return offsets[order, 0], offsets[order, 1]


def _exceeded(data, ys, xs, dy, dx):
    """True for each pixel ``(ys, xs)`` exceeded by a pixel at one of the offsets."""
    ny, nx = data.shape
    out = np.empty(ys.size, dtype=bool)
    step = max(1, (1 << 20) // dy.size)
    for start in range(0, ys.size, step):
        y = ys[start:start + step, None] + dy
        x = xs[start:start + step, None] + dx
        inside = (y >= 0) & (y < ny) & (x >= 0) & (x < nx)
        np.clip(y, 0, ny - 1, out=y)
        np.clip(x, 0, nx - 1, out=x)
        higher = data[y, x] > data[ys[start:start + step], xs[start:start + step], None]
        out[start:start + step] = np.any(higher & inside, axis=1)
    return out


def _footprint_offsets(footprint):
    """The offsets of a ``maximum_filter`` footprint, without the centre, nearest first
    (None if the centre is not in it)."""
    fy, fx = np.nonzero(footprint)
    fy, fx = fy - footprint.shape[0] // 2, fx - footprint.shape[1] // 2
    centre = (fy == 0) & (fx == 0)
    if not centre.any():
        return None
    fy, fx = fy[~centre], fx[~centre]
    order = np.argsort(np.hypot(fy, fx), kind="stable")
    return fy[order], fx[order]


def find_peaks(convolved, threshold, radius, *, mask=None, border=None, footprint=None):
    """``photutils.detection.find_peaks(convolved, threshold, mask=mask,
    border_width=border, min_separation=radius)`` (``footprint=footprint``
    instead when ``radius`` is 0), as the star finders call it: the peaks'
    ``(x, y)`` (an Nx2 int array, in photutils' order) or None.

    The pixels above ``threshold`` (a number or an array), not masked and
    not in the border, are found first; each is then compared with its 8
    nearest neighbours, and the few local maxima left with the rest of
    their neighbourhood (`_peak_offsets`). Ties count as peaks, as in
    photutils. Beyond the edges photutils counts zeros, which cannot exceed
    a pixel above a positive threshold; with a threshold that is not
    positive everywhere (or a radius below about 1) photutils' own
    ``find_peaks`` is called.

    A NaN never exceeds a pixel nor passes the threshold, which is what
    photutils' replacement of NaNs by the image minimum (and masking them)
    amounts to.
    """
    offsets = None
    if np.all(np.asarray(threshold) > 0):
        offsets = _peak_offsets(radius) if radius > 0 else _footprint_offsets(footprint)
    if offsets is None:
        return _photutils_peaks(convolved, threshold, radius, mask=mask, border=border,
                                footprint=footprint)
    above = convolved > threshold
    if mask is not None:
        above &= ~mask
    if border is not None:
        by, bx = border
        if by > 0:
            above[:by, :] = False
            above[-by:, :] = False
        if bx > 0:
            above[:, :bx] = False
            above[:, -bx:] = False
    ys, xs = np.divmod(np.flatnonzero(above), convolved.shape[1])
    if ys.size == 0:
        return None
    values = convolved[ys, xs]
    if np.all(values == values[0]) and np.all(convolved == convolved.flat[0]):
        return None                                 # photutils: "Input data is constant"
    dy, dx = offsets
    near = min(8, dy.size)
    for start, stop in ((0, near), (near, dy.size)):
        if start < stop and ys.size:
            keep = ~_exceeded(convolved, ys, xs, dy[start:stop], dx[start:stop])
            ys, xs = ys[keep], xs[keep]
    return np.column_stack([xs, ys]) if ys.size else None


def _photutils_peaks(convolved, threshold, radius, *, mask=None, border=None, footprint=None):
    """photutils' own ``find_peaks``, as the star finders call it."""
    from photutils.detection import find_peaks as photutils_find_peaks
    from photutils.utils.exceptions import NoDetectionsWarning

    how = {"min_separation": radius} if radius > 0 else {"footprint": footprint}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        table = photutils_find_peaks(convolved, threshold, mask=mask, border_width=border,
                                     **how)
    return None if table is None else np.transpose((table["x_peak"], table["y_peak"]))


# --------------------------------------------------------------------------
# Catalogs.

def find_stars(finder, data, *, mask=None, convolved=None, public=False):
    """``finder(data, mask=mask)``, faster, for a DAOStarFinder or an IRAFStarFinder.

    Parameters
    ----------
    finder : `~photutils.detection.DAOStarFinder` or `~photutils.detection.IRAFStarFinder`
        Without ``xycoords`` (it is set on the finder on the public path).
    data : 2-D float array
        The image (no NaN: the finders convolve it).
    mask : 2-D bool array, optional
        Pixels where no peak may be.
    convolved : 2-D array, optional
        ``convolve(data, finder.kernel.data)``, when already computed.
    public : bool, optional
        Measure the catalog through public API (the peaks given to the
        finder as ``xycoords``; it convolves the image once more) instead
        of photutils 3.0's catalog classes (``_DAOStarFinderCatalog``,
        ``_IRAFStarFinderCatalog``), which are used on ``convolved``
        directly. The public path is also taken should those classes move.

    Returns
    -------
    table : `~astropy.table.QTable` or None
        photutils' table, None when nothing is found. photutils'
        ``NoDetectionsWarning`` may be emitted, as by the finder.
    """
    kernel = finder.kernel
    if convolved is None:
        convolved = convolve(data, kernel.data)
    dao = hasattr(finder, "threshold_eff")       # DAOFIND scales the threshold
    threshold = finder.threshold_eff if dao else finder.threshold
    border = (kernel.y_radius, kernel.x_radius) if finder.exclude_border else None
    xypos = find_peaks(convolved, threshold, finder.min_separation, mask=mask, border=border,
                       footprint=kernel.mask.astype(bool))
    if xypos is None:
        return None
    catalog = None if public else _raw_catalog(finder, dao, data, convolved, xypos)
    if catalog is None:
        finder.xycoords = xypos
        return finder(data, mask=mask)
    catalog = catalog.apply_all_filters()
    return None if catalog is None else catalog.to_table()


def _raw_catalog(finder, dao, data, convolved, xypos):
    """What the finder's ``_get_raw_catalog`` makes, or None if photutils moved it."""
    shape = {"sharpness_range": finder.sharpness_range,
             "roundness_range": finder.roundness_range,
             "n_brightest": finder.n_brightest, "peak_max": finder.peak_max}
    try:
        if dao:
            from photutils.detection.daofinder import _DAOStarFinderCatalog

            return _DAOStarFinderCatalog(data, convolved, xypos, finder.threshold,
                                         finder.kernel, scale_threshold=finder.scale_threshold,
                                         **shape)
        from photutils.detection.irafstarfinder import _IRAFStarFinderCatalog

        return _IRAFStarFinderCatalog(data, convolved, xypos, finder.kernel, **shape)
    except (ImportError, TypeError, AttributeError):
        return None


# --------------------------------------------------------------------------
# A small cache of arrays, by content.

def content_key(*parts):
    """A key for arrays (by dtype, shape and a hash of their bytes) and plain values."""
    key = []
    for part in parts:
        if isinstance(part, np.ndarray):
            digest = hashlib.sha1(np.ascontiguousarray(part).view(np.uint8).reshape(-1),
                                  usedforsecurity=False).hexdigest()
            key.append((part.dtype.str, part.shape, digest))
        else:
            key.append(part)
    return tuple(key)


class ArrayCache(ByteCache):
    """A least-recently-used cache of tuples of arrays, bounded in bytes.

    Stored arrays are made read-only. An entry larger than ``max_bytes`` is
    not stored.
    """

    def __init__(self, max_bytes):
        super().__init__(int(max_bytes), size=lambda value: sum(
            v.nbytes for v in value if isinstance(v, np.ndarray)))

    def put(self, key, value):
        for v in value:
            if isinstance(v, np.ndarray):
                v.flags.writeable = False
        super().put(key, value)
