"""Circular-aperture photometry with a local annulus background (photutils).

:func:`aperture_photometry` sums circular apertures
(`photutils.aperture.aperture_photometry`), subtracts a sigma-clipped median
background per pixel measured in an annulus around each source
(`photutils.aperture.ApertureStats`), applies an aperture correction, and,
for JWST surface-brightness images, converts to Jy and AB magnitudes.
:func:`measure_aperture_correction` measures that correction on the frame's
own bright, isolated stars (a two-point curve of growth).
"""

import warnings
from typing import NamedTuple

import numpy as np

from ..errors import InputError
from .detect import (_add_sky_columns, _as_image, _as_same_shape, _bad_pixels,
                     _check_number, _check_wcs)

__all__ = ["aperture_photometry", "measure_aperture_correction", "ApertureCorrection",
           "FLAG_OUTSIDE", "FLAG_PARTIAL", "FLAG_MASKED", "FLAG_NO_BACKGROUND"]

#: ``flags`` bit: the position is off the frame or not finite (the row is NaN).
FLAG_OUTSIDE = 1
#: ``flags`` bit: the aperture runs off the edge of the frame.
FLAG_PARTIAL = 2
#: ``flags`` bit: the aperture holds bad (masked or non-finite) pixels.
FLAG_MASKED = 4
#: ``flags`` bit: the annulus has too few good pixels for a local background.
FLAG_NO_BACKGROUND = 8

#: The AB magnitude zero point, in Jy.
AB_ZERO_POINT_JY = 3631.0

# Fewer good annulus pixels than this and the local background is not used.
_MIN_ANNULUS_PIXELS = 10
# Names under which a table may carry positions, in order of preference.
_POSITION_COLUMNS = (("x_centroid", "y_centroid"), ("x_fit", "y_fit"),
                     ("x_center", "y_center"), ("x", "y"))
# The error of a median is sqrt(pi/2) times that of a mean, for Gaussian noise.
_MEDIAN_ERROR_FACTOR = np.sqrt(np.pi / 2)


class ApertureCorrection(NamedTuple):
    """An aperture correction measured by :func:`measure_aperture_correction`."""

    value: float
    """Multiply a flux in the small aperture by this to get the flux in the
    reference aperture."""
    uncertainty: float
    """Its 1-sigma uncertainty (scatter over the stars / sqrt(n_stars))."""
    n_stars: int
    """The number of stars it was measured on."""


# --------------------------------------------------------------------------
# Inputs.

def _parse_positions(positions):
    """Return ``(xy, table)``: an (N, 2) float array, and the input table or None."""
    from astropy.table import Table

    if isinstance(positions, Table):
        for xname, yname in _POSITION_COLUMNS:
            if xname in positions.colnames and yname in positions.colnames:
                x = _column_values(positions[xname])
                y = _column_values(positions[yname])
                return np.column_stack([x, y]).reshape(-1, 2), positions
        raise InputError("positions must be an (N, 2) array of (x, y) or a table with "
                         "x_centroid and y_centroid columns; got a table with columns "
                         f"{', '.join(positions.colnames) or 'none'}", param="positions")
    if positions is None:
        raise InputError("positions must be an (N, 2) array of (x, y) or a table; got None",
                         param="positions")
    xy = np.asarray(getattr(positions, "value", positions))
    if xy.dtype.kind not in "biuf":
        raise InputError(f"positions must hold numbers; got dtype {xy.dtype}",
                         param="positions")
    if xy.size == 0:
        return np.zeros((0, 2)), None
    if xy.ndim == 1 and xy.shape[0] == 2:
        xy = xy[np.newaxis, :]
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"positions must be an (N, 2) array of (x, y); got shape {xy.shape}",
                         param="positions")
    return xy.astype(np.float64), None


def _column_values(column):
    """A table column as a float array, masked entries NaN."""
    values = np.ma.asarray(getattr(column, "value", column)).astype(np.float64)
    return np.ma.filled(values, np.nan)


def _check_annulus(radius, annulus_inner, annulus_outer, shape):
    """Validate the aperture and annulus radii against each other and the frame."""
    context = f" pixels for a {shape[1]}x{shape[0]} image"
    largest = min(shape) / 2
    radius = _check_number(radius, "radius", low=0.0, low_open=True, high=largest,
                           context=context)
    if (annulus_inner is None) != (annulus_outer is None):
        raise InputError("annulus_inner and annulus_outer must both be given, or both be "
                         f"None for no local background; got {annulus_inner!r} and "
                         f"{annulus_outer!r}", param="annulus_inner")
    if annulus_inner is None:
        return radius, None, None
    annulus_inner = _check_number(annulus_inner, "annulus_inner", low=radius, low_open=True,
                                  high=largest, context=f" (larger than radius){context}")
    annulus_outer = _check_number(annulus_outer, "annulus_outer", low=annulus_inner,
                                  low_open=True, high=largest,
                                  context=f" (larger than annulus_inner){context}")
    return radius, annulus_inner, annulus_outer


def _check_sigma_clip(sigma_clip):
    if sigma_clip is None or sigma_clip == 0:
        return None
    return _check_number(sigma_clip, "sigma_clip", low=1.0, high=100.0)


def _check_correction(aperture_correction):
    """A positive number, or a (value, uncertainty[, n_stars]) tuple."""
    if isinstance(aperture_correction, tuple):
        if len(aperture_correction) < 2:
            raise InputError("aperture_correction must be a number or a (value, uncertainty) "
                             f"pair; got {aperture_correction!r}", param="aperture_correction")
        value = _check_number(aperture_correction[0], "aperture_correction", low=0.0,
                              low_open=True)
        error = _check_number(aperture_correction[1], "aperture_correction", low=0.0)
        return value, error
    value = _check_number(aperture_correction, "aperture_correction", low=0.0, low_open=True)
    return value, 0.0


def _jansky_factor(unit, pixar_sr):
    """The factor from a summed data value to Jy, or None when there is none."""
    import astropy.units as u

    if unit is None:
        return None
    if unit.is_equivalent(u.Jy):
        return float(unit.to(u.Jy))
    if unit.is_equivalent(u.MJy / u.sr) and pixar_sr is not None:
        return float(unit.to(u.MJy / u.sr)) * pixar_sr * 1e6
    return None


def _add_ab_columns(table, flux, flux_err, unit, pixar_sr):
    """Add ``flux_jy``, ``flux_jy_err``, ``mag_ab``, ``mag_ab_err`` when the unit allows.

    ``flux`` and ``flux_err`` are summed data values (plain arrays); magnitudes
    of non-positive fluxes are NaN.
    """
    import astropy.units as u

    factor = _jansky_factor(unit, pixar_sr)
    if factor is None:
        return
    flux_jy = np.asarray(flux, float) * factor
    flux_jy_err = np.asarray(flux_err, float) * factor
    positive = flux_jy > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mag = np.where(positive, -2.5 * np.log10(flux_jy / AB_ZERO_POINT_JY), np.nan)
        mag_err = np.where(positive, 2.5 / np.log(10) * flux_jy_err / flux_jy, np.nan)
    table["flux_jy"] = flux_jy * u.Jy
    table["flux_jy_err"] = flux_jy_err * u.Jy
    table["mag_ab"] = mag * u.mag
    table["mag_ab_err"] = mag_err * u.mag


# --------------------------------------------------------------------------
# The measurement.

def _measure(arr, bad, error, xy, radius, annulus_inner, annulus_outer, sigma_clip):
    """Aperture sums and local backgrounds of the positions on the frame.

    Returns a dict of float arrays of length N (NaN where not measured) and
    an int ``flags`` array.
    """
    from astropy.stats import SigmaClip
    from photutils.aperture import (ApertureStats, CircularAnnulus, CircularAperture,
                                    aperture_photometry)

    n = len(xy)
    ny, nx = arr.shape
    out = {name: np.full(n, np.nan) for name in
           ("aperture_sum", "aperture_sum_err", "aperture_area", "annulus_median",
            "annulus_std", "annulus_n_pixels")}
    flags = np.zeros(n, dtype=np.int32)
    x, y = xy[:, 0], xy[:, 1]
    with np.errstate(invalid="ignore"):
        on_frame = (np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < nx - 0.5)
                    & (y >= -0.5) & (y < ny - 0.5))
    flags[~on_frame] |= FLAG_OUTSIDE
    with np.errstate(invalid="ignore"):
        partial = on_frame & ((x - radius < -0.5) | (x + radius > nx - 0.5)
                              | (y - radius < -0.5) | (y + radius > ny - 0.5))
    flags[partial] |= FLAG_PARTIAL
    if not on_frame.any():
        return out, flags

    good_xy = xy[on_frame]
    use_mask = bad if bad.any() else None
    aperture = CircularAperture(good_xy, r=radius)
    phot = aperture_photometry(arr, aperture, error=error, mask=use_mask, method="exact")
    out["aperture_sum"][on_frame] = np.asarray(phot["aperture_sum"], dtype=float)
    if error is not None:
        out["aperture_sum_err"][on_frame] = np.asarray(phot["aperture_sum_err"], dtype=float)
    area = np.asarray(aperture.area_overlap(arr, mask=use_mask), dtype=float)
    out["aperture_area"][on_frame] = area
    if use_mask is not None:
        full = np.asarray(aperture.area_overlap(arr), dtype=float)
        holed = np.zeros(n, dtype=bool)
        holed[on_frame] = area < full - 1e-9
        flags[holed] |= FLAG_MASKED

    if annulus_inner is not None:
        annulus = CircularAnnulus(good_xy, r_in=annulus_inner, r_out=annulus_outer)
        clip = None if sigma_clip is None else SigmaClip(sigma=sigma_clip, maxiters=10)
        with warnings.catch_warnings():
            # An annulus entirely masked or off the frame gives NaN: flagged below.
            warnings.simplefilter("ignore", RuntimeWarning)
            stats = ApertureStats(arr, annulus, mask=use_mask, sigma_clip=clip)
            median = np.atleast_1d(np.asarray(stats.median, dtype=float))
            std = np.atleast_1d(np.asarray(stats.std, dtype=float))
            count = np.atleast_1d(np.asarray(getattr(stats.center_aper_area, "value",
                                                     stats.center_aper_area), dtype=float))
        count = np.where(np.isfinite(count), count, 0.0)
        few = count < _MIN_ANNULUS_PIXELS
        median[few] = np.nan
        std[few] = np.nan
        out["annulus_median"][on_frame] = median
        out["annulus_std"][on_frame] = std
        out["annulus_n_pixels"][on_frame] = count
        no_bkg = np.zeros(n, dtype=bool)
        no_bkg[on_frame] = few
        flags[no_bkg] |= FLAG_NO_BACKGROUND
    return out, flags


def _fluxes(measured, error_given, with_annulus, correction, correction_err):
    """Background-subtracted, corrected fluxes and their errors."""
    area = measured["aperture_area"]
    if with_annulus:
        local_bkg = measured["annulus_median"]
        # The error of the local background per pixel, times the area it is
        # subtracted over (fully correlated within the aperture).
        with np.errstate(invalid="ignore", divide="ignore"):
            bkg_err = (_MEDIAN_ERROR_FACTOR * measured["annulus_std"]
                       / np.sqrt(measured["annulus_n_pixels"]))
        sum_err = (measured["aperture_sum_err"] if error_given
                   else np.sqrt(area) * measured["annulus_std"])
    else:
        local_bkg = np.where(np.isnan(measured["aperture_sum"]), np.nan, 0.0)
        bkg_err = np.zeros_like(area)
        sum_err = measured["aperture_sum_err"]
    raw = measured["aperture_sum"] - local_bkg * area
    raw_err = np.hypot(sum_err, area * bkg_err)
    flux = raw * correction
    flux_err = np.hypot(raw_err * correction, raw * correction_err)
    return {"aperture_sum_err": sum_err, "local_bkg": local_bkg, "flux": flux,
            "flux_err": flux_err}


def aperture_photometry(data, positions, *, radius=4.0, annulus_inner=8.0, annulus_outer=12.0,
                        sigma_clip=3.0, error=None, mask=None, wcs=None, unit=None,
                        pixar_sr=None, aperture_correction=1.0):
    """Measure circular-aperture fluxes with a local annulus background.

    Parameters
    ----------
    data : 2-D array
        The image (background-subtracted or not: the annulus takes the local
        background out either way).
    positions : (N, 2) array or `~astropy.table.Table`
        The (x, y) centres, 0-based pixels; or a catalog with
        ``x_centroid``/``y_centroid`` columns (or ``x_fit``/``y_fit``,
        ``x_center``/``y_center``, ``x``/``y``), such as the output of
        :func:`~jwst_widgets.processing.detect.find_point_sources`. A table's
        ``id`` and other columns are kept: the output is the catalog plus the
        photometry columns (a catalog column whose name the photometry uses,
        such as DAOFIND's ``flux``, is renamed with a ``_detection`` suffix).
    radius : float, optional
        The aperture radius in pixels.
    annulus_inner, annulus_outer : float or None, optional
        The radii of the background annulus, ``radius < annulus_inner <
        annulus_outer``; both None for no local background (``local_bkg`` is
        then 0: use that on background-subtracted data only).
    sigma_clip : float or None, optional
        The clipping level in sigma for the annulus median (None or 0: plain
        median).
    error : 2-D array, optional
        The 1-sigma error of each pixel (the ERR extension). Without it,
        ``aperture_sum_err`` is estimated from the annulus' scatter (sky
        noise only: no source noise).
    mask : 2-D bool array, optional
        True where a pixel is bad. Non-finite pixels are always bad. Bad
        pixels are left out of the sums and areas (and flagged).
    wcs : astropy.wcs.WCS, optional
        When given, ``ra`` and ``dec`` (ICRS, degrees) columns are added.
    unit : str or astropy.units.Unit, optional
        The unit of ``data``. With a surface brightness (MJy/sr, as JWST
        images) and ``pixar_sr``, or a flux density per pixel (Jy, nJy ...),
        the output has ``flux_jy``, ``flux_jy_err``, ``mag_ab`` and
        ``mag_ab_err``.
    pixar_sr : float, optional
        The solid angle of a pixel in steradians (JWST's ``PIXAR_SR``).
    aperture_correction : float or (float, float), optional
        The factor from the aperture flux to the total flux, or ``(value,
        uncertainty)`` such as the result of
        :func:`measure_aperture_correction` (its uncertainty then adds to
        ``flux_err``).

    Returns
    -------
    table : `~astropy.table.QTable`
        One row per position: ``id, x_center, y_center, aperture_sum,
        aperture_sum_err, annulus_median, local_bkg`` (per pixel),
        ``aperture_area`` (pix², good pixels only), ``flux`` (= (sum −
        local_bkg × area) × aperture_correction), ``flux_err``, ``flags``
        (bits `FLAG_OUTSIDE`, `FLAG_PARTIAL`, `FLAG_MASKED`,
        `FLAG_NO_BACKGROUND`), then ``flux_jy, flux_jy_err, mag_ab,
        mag_ab_err`` and ``ra, dec`` when they apply. Columns carry ``unit``.
        A position off the frame gives a NaN row with `FLAG_OUTSIDE`; no
        positions give a zero-row table. ``meta`` records radius, annulus,
        sigma_clip and aperture correction.

    Raises
    ------
    jwst_widgets.errors.InputError
        For a bad parameter value; the message names it.

    Notes
    -----
    The flux error adds in quadrature the error of the sum (from ``error``)
    and that of the subtracted background, ``area × sqrt(pi/2) × σ_annulus /
    sqrt(n_annulus)``; with a ``(value, uncertainty)`` aperture correction,
    its relative uncertainty too. AB magnitudes are ``-2.5 log10(flux_jy /
    3631)``, NaN for a flux that is not positive. The input arrays and table
    are not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.photometry import aperture_photometry
    >>> yy, xx = np.mgrid[:64, :64]
    >>> star = np.exp(-((xx - 30) ** 2 + (yy - 32) ** 2) / (2 * 1.5 ** 2))
    >>> image = 10.0 + 1000 * star / star.sum()
    >>> table = aperture_photometry(image, [(30, 32)], radius=6, annulus_inner=10,
    ...                             annulus_outer=15)
    >>> round(float(table["local_bkg"][0]), 3), round(float(table["flux"][0]))
    (10.0, 1000)
    """
    import astropy.units as u
    from astropy.table import QTable

    arr = _as_image(data)
    shape = arr.shape
    radius, annulus_inner, annulus_outer = _check_annulus(radius, annulus_inner,
                                                          annulus_outer, shape)
    sigma_clip = _check_sigma_clip(sigma_clip)
    correction, correction_err = _check_correction(aperture_correction)
    error = _as_same_shape(error, shape, "error")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    unit = _check_unit(unit)
    pixar_sr = _check_number(pixar_sr, "pixar_sr", low=0.0, low_open=True, allow_none=True)
    _check_wcs(wcs)
    xy, source = _parse_positions(positions)
    bad = _bad_pixels(arr, mask, error)

    measured, flags = _measure(arr, bad, error, xy, radius, annulus_inner, annulus_outer,
                               sigma_clip)
    derived = _fluxes(measured, error is not None, annulus_inner is not None,
                      correction, correction_err)

    def with_unit(values):
        return values * unit if unit is not None else values

    table = QTable()
    table["id"] = _ids(source, len(xy))
    table["x_center"] = xy[:, 0]
    table["y_center"] = xy[:, 1]
    table["aperture_sum"] = with_unit(measured["aperture_sum"])
    table["aperture_sum_err"] = with_unit(derived["aperture_sum_err"])
    table["annulus_median"] = with_unit(measured["annulus_median"])
    table["local_bkg"] = with_unit(derived["local_bkg"])
    table["aperture_area"] = measured["aperture_area"] * u.pix ** 2
    table["flux"] = with_unit(derived["flux"])
    table["flux_err"] = with_unit(derived["flux_err"])
    table["flags"] = flags

    _add_ab_columns(table, derived["flux"], derived["flux_err"], unit, pixar_sr)
    _add_sky_columns(table, xy[:, 0], xy[:, 1], wcs)

    table.meta.update({
        "radius": radius, "annulus_inner": annulus_inner, "annulus_outer": annulus_outer,
        "sigma_clip": sigma_clip, "aperture_correction": correction,
        "aperture_correction_err": correction_err,
        "unit": unit.to_string() if unit is not None else None, "pixar_sr": pixar_sr,
    })
    if source is not None:
        table = _join_source(source, table)
    return table


def _check_unit(unit):
    if unit is None:
        return None
    import astropy.units as u

    try:
        return u.Unit(unit)
    except (TypeError, ValueError):
        raise InputError(f"unit must be an astropy unit such as 'MJy/sr'; got {unit!r}",
                         param="unit") from None


def _ids(source, n):
    if source is not None and "id" in source.colnames:
        return np.asarray(source["id"])
    return np.arange(1, n + 1, dtype=np.int64)


def _join_source(source, phot):
    """The source catalog's columns, then the photometry's (conflicts renamed)."""
    from astropy.table import QTable

    out = QTable()
    out["id"] = phot["id"]
    taken = set(phot.colnames)
    for name in source.colnames:
        if name == "id" or (name in ("ra", "dec") and "ra" in taken):
            continue
        new = name if name not in taken else f"{name}_detection"
        out[new] = source[name].copy()
    for name in phot.colnames:
        if name != "id":
            out[name] = phot[name]
    out.meta.update(source.meta)
    out.meta.update(phot.meta)
    return out


# --------------------------------------------------------------------------
# Aperture correction.

def measure_aperture_correction(data, positions, *, radius, reference_radius,
                                annulus_inner=None, annulus_outer=None, sigma_clip=3.0,
                                mask=None, error=None, isolation=None, min_snr=20.0,
                                max_stars=50, min_stars=3):
    """Measure the aperture correction on the frame's bright, isolated stars.

    For each star the flux within ``reference_radius`` is divided by the
    flux within ``radius`` (both with the same local background, from an
    annulus outside the reference aperture); the correction is the
    sigma-clipped mean of these ratios, its uncertainty their scatter over
    the square root of their number.

    Parameters
    ----------
    data : 2-D array
        The image.
    positions : (N, 2) array or `~astropy.table.Table`
        Star positions (0-based pixels), or a catalog with
        ``x_centroid``/``y_centroid`` columns. Every position counts as a
        neighbour when isolation is judged.
    radius : float
        The photometry aperture radius in pixels.
    reference_radius : float
        The large radius taken as "total" (the curve of growth should be
        flat there); larger than ``radius``.
    annulus_inner, annulus_outer : float, optional
        The background annulus, outside ``reference_radius``; by default
        from ``1.25 × reference_radius`` to ``1.25 × reference_radius + max(5,
        0.5 × reference_radius)``.
    sigma_clip : float or None, optional
        The clipping level of the annulus median and of the mean over stars.
    mask : 2-D bool array, optional
        True where a pixel is bad; a star with a bad pixel within
        ``reference_radius`` is not used.
    error : 2-D array, optional
        The 1-sigma error of each pixel, for the S/N selection (without it,
        the annulus scatter is used).
    isolation : float, optional
        A star with another position closer than this (pixels) is not used;
        by default ``annulus_outer``.
    min_snr : float, optional
        The least S/N (within ``radius``) of a star to use.
    max_stars : int, optional
        Use at most this many of the brightest stars that qualify.
    min_stars : int, optional
        The fewest stars that make a measurement.

    Returns
    -------
    correction : `ApertureCorrection`
        ``(value, uncertainty, n_stars)``; pass it as
        ``aperture_correction`` to :func:`aperture_photometry`.

    Raises
    ------
    jwst_widgets.errors.InputError
        For a bad parameter value, or when fewer than ``min_stars`` stars
        qualify (``param="positions"``; the message says how many did and why).

    Notes
    -----
    The correction reaches the flux within ``reference_radius``, not the
    total: multiply by the encircled energy's inverse at that radius (from
    the instrument's PSF model) if the wings beyond it matter. Light of the
    star's own wings in the annulus raises the local background slightly
    and lowers both fluxes; a wide reference radius keeps that small.

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.photometry import measure_aperture_correction
    >>> yy, xx = np.mgrid[:200, :200]
    >>> positions = [(40, 40), (100, 50), (160, 40), (50, 150), (150, 150)]
    >>> image = sum(1e4 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0 ** 2))
    ...             for x, y in positions)
    >>> image = image + np.random.default_rng(0).normal(0, 1, image.shape)
    >>> corr = measure_aperture_correction(image, positions, radius=3, reference_radius=12)
    >>> corr.n_stars, round(corr.value, 2)  # a Gaussian of sigma^2 = 4 + 1/12 (pixel)
    (5, 1.5)
    """
    from astropy.stats import sigma_clip as sigma_clip_values

    arr = _as_image(data)
    shape = arr.shape
    radius = _check_number(radius, "radius", low=0.0, low_open=True)
    reference_radius = _check_number(reference_radius, "reference_radius", low=radius,
                                     low_open=True, context=" (larger than radius)")
    if annulus_inner is None and annulus_outer is None:
        annulus_inner = 1.25 * reference_radius
        annulus_outer = annulus_inner + max(5.0, 0.5 * reference_radius)
    if annulus_inner is None or annulus_outer is None:
        raise InputError("annulus_inner and annulus_outer must both be given or both be None; "
                         f"got {annulus_inner!r} and {annulus_outer!r}", param="annulus_inner")
    context = f" pixels for a {shape[1]}x{shape[0]} image"
    annulus_inner = _check_number(annulus_inner, "annulus_inner", low=reference_radius,
                                  high=min(shape) / 2,
                                  context=f" (at least reference_radius){context}")
    annulus_outer = _check_number(annulus_outer, "annulus_outer", low=annulus_inner,
                                  low_open=True, high=min(shape) / 2,
                                  context=f" (larger than annulus_inner){context}")
    sigma_clip = _check_sigma_clip(sigma_clip)
    isolation = _check_number(annulus_outer if isolation is None else isolation, "isolation",
                              low=0.0)
    min_snr = _check_number(min_snr, "min_snr", low=0.0)
    max_stars = _check_number(max_stars, "max_stars", low=1, integer=True)
    min_stars = _check_number(min_stars, "min_stars", low=1, integer=True)
    error = _as_same_shape(error, shape, "error")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    xy, _ = _parse_positions(positions)
    bad = _bad_pixels(arr, mask, error)

    finite = np.all(np.isfinite(xy), axis=1)
    xy = xy[finite]
    ny, nx = shape
    inside = ((xy[:, 0] - annulus_outer >= -0.5) & (xy[:, 0] + annulus_outer <= nx - 0.5)
              & (xy[:, 1] - annulus_outer >= -0.5) & (xy[:, 1] + annulus_outer <= ny - 0.5))
    isolated = _isolated(xy, isolation)

    small, small_flags = _measure(arr, bad, error, xy, radius, annulus_inner, annulus_outer,
                                  sigma_clip)
    big, big_flags = _measure(arr, bad, error, xy, reference_radius, annulus_inner,
                              annulus_outer, sigma_clip)
    small_flux = _fluxes(small, error is not None, True, 1.0, 0.0)
    big_flux = _fluxes(big, error is not None, True, 1.0, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = small_flux["flux"] / small_flux["flux_err"]
        ratio = big_flux["flux"] / small_flux["flux"]
    clean = (small_flags | big_flags) == 0
    usable = inside & isolated & clean & np.isfinite(ratio) & (small_flux["flux"] > 0)
    bright = usable & (snr >= min_snr)
    chosen = np.flatnonzero(bright)
    chosen = chosen[np.argsort(-small_flux["flux"][chosen])][:max_stars]
    if len(chosen) < min_stars:
        raise InputError(
            f"measuring an aperture correction needs at least {min_stars} bright isolated "
            f"stars; of {len(finite)} positions, {int((inside & isolated).sum())} are isolated "
            f"and away from the edges, {int(usable.sum())} have no bad pixels, and "
            f"{int(bright.sum())} have S/N >= {min_snr:g}", param="positions")
    ratios = ratio[chosen]
    if sigma_clip is not None and len(ratios) >= 3:
        ratios = sigma_clip_values(ratios, sigma=sigma_clip, maxiters=10, masked=False)
    n_used = len(ratios)
    mean = float(np.mean(ratios))
    std = float(np.std(ratios, ddof=1)) if n_used > 1 else 0.0
    return ApertureCorrection(mean, std / np.sqrt(n_used), n_used)


def _isolated(xy, distance):
    """True for positions with no other position closer than ``distance``."""
    if len(xy) < 2 or distance <= 0:
        return np.ones(len(xy), dtype=bool)
    from scipy.spatial import cKDTree

    nearest, _ = cKDTree(xy).query(xy, k=2)
    return nearest[:, 1] >= distance
