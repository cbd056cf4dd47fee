"""PSF photometry: choose PSF stars, build or fit a PSF model, fit every source.

Thin, validated wrappers around :mod:`photutils.psf` (photutils 3 names
throughout), in four steps that can be used one by one or together through
:func:`psf_photometry`:

1. :func:`select_psf_stars` picks bright, unsaturated, isolated point sources
   from a detection catalog (S/N and flux range, distance from neighbours,
   edges and bad pixels, a concentration cut that drops galaxies, hot pixels
   and blends).
2. :func:`build_epsf` stacks them into an oversampled empirical PSF with
   `photutils.psf.EPSFBuilder`; :func:`analytic_psf` fits a circular
   Gaussian or a Moffat profile to them instead; :func:`image_psf` wraps a
   PSF image the user has (for example from STScI's PSF tools).
3. :func:`fit_psf` fits the model at given positions with
   `photutils.psf.PSFPhotometry`, or finds, fits, subtracts and repeats with
   `photutils.psf.IterativePSFPhotometry` (crowded fields), and makes the
   model and residual images.
4. :func:`measure_psf_aperture_correction` turns PSF fluxes (relative to the
   PSF stamp's normalisation) into fluxes within a large radius, measured on
   the frame's own bright stars with their neighbours subtracted; an
   encircled-energy table (:func:`encircled_energy`) carries them to total.

Steps 1 and 2 live in :mod:`jwst_widgets.processing.psf_models` and are
imported here. Catalogs are `~astropy.table.QTable` s with photutils' fit columns; nothing
found is a zero-row table with the same columns.
"""

import dataclasses

import numpy as np

from ..errors import InputError, describe_choices
from .detect import _add_sky_columns, _as_image, _as_same_shape, _bad_pixels, _check_number, \
    _check_wcs
from .photometry import ApertureCorrection, _add_ab_columns, _check_unit, _parse_positions
from .psf_models import (PSF_KINDS, SMOOTHING_KERNELS, STAR_COLUMNS, PSFBuild, _ids_of,
                         _odd_size, _quiet, analytic_psf, build_epsf, encircled_energy,
                         image_psf, psf_fwhm, select_psf_stars)

__all__ = ["select_psf_stars", "build_epsf", "analytic_psf", "image_psf", "fit_psf",
           "measure_psf_aperture_correction", "encircled_energy", "psf_fwhm",
           "psf_photometry", "PSFBuild", "PSFFit", "PSFPhotometryResult", "PSF_KINDS",
           "SMOOTHING_KERNELS", "FIT_COLUMNS", "STAR_COLUMNS",
           "make_model_image"]

#: photutils' PSFPhotometry output columns (``iter_detected`` is added in iterative mode).
FIT_COLUMNS = ("id", "group_id", "group_size", "local_bkg", "x_init", "y_init", "flux_init",
               "x_fit", "y_fit", "flux_fit", "x_err", "y_err", "flux_err", "n_pixels_fit",
               "qfit", "cfit", "reduced_chi2", "flags")

# Sources per PSFPhotometry call when fitting in chunks (progress and cancel
# are checked between chunks; groups are never split).
_CHUNK = 256
# The largest model stamp (native pixels) drawn into model images: a PSF file
# of 257 px would cost 66,000 evaluations per source for 1 % of the light.
_MODEL_SHAPE_MAX = 101


# --------------------------------------------------------------------------
# 3. Fitting.

@dataclasses.dataclass(frozen=True, eq=False)
class PSFFit:
    """The result of :func:`fit_psf`.

    Attributes
    ----------
    table : QTable
        photutils' columns (`FIT_COLUMNS`, plus ``iter_detected`` in
        iterative mode), one row per source.
    model : ndarray
        The image of the fitted sources (float32, the data's shape).
    residual : ndarray
        ``data - model`` (float32; bad pixels NaN).
    psf_model : astropy model
        The PSF model that was fitted.
    """

    table: object
    model: np.ndarray
    residual: np.ndarray
    psf_model: object = None


def _psf_phot(psf_model, fit_shape, *, aperture_radius, local_background, grouper=None,
              fitter_maxiters=100, xy_bounds=None):
    from photutils.background import LocalBackground
    from photutils.psf import PSFPhotometry

    bkg = LocalBackground(*local_background) if local_background is not None else None
    return PSFPhotometry(psf_model, fit_shape, grouper=grouper, aperture_radius=aperture_radius,
                         local_bkg_estimator=bkg, fitter_maxiters=fitter_maxiters,
                         xy_bounds=xy_bounds, progress_bar=False)


def _empty_fit_table(psf_model, fit_shape, aperture_radius, iterative):
    """A zero-row table with the exact columns photutils gives."""
    from astropy.table import QTable

    yy, xx = np.mgrid[:31, :31]
    m = psf_model.copy()
    m.x_0, m.y_0, m.flux = 15.0, 15.0, 100.0
    img = m(xx, yy)
    phot = _psf_phot(psf_model, fit_shape, aperture_radius=aperture_radius,
                     local_background=None)
    with _quiet():
        t = phot(img, init_params=QTable({"x": [15.0], "y": [15.0]}))
    t = QTable(t)[:0]
    if iterative:
        t["iter_detected"] = np.zeros(0, dtype=int)
    return t


def _check_local_background(local_background, fit_shape):
    if local_background is None:
        return None
    try:
        inner, outer = (float(v) for v in local_background)
    except (TypeError, ValueError):
        inner = outer = float("nan")
    if not (np.isfinite(inner) and np.isfinite(outer) and 0 < inner < outer):
        raise InputError("local_background must be None or (inner, outer) annulus radii in "
                         f"pixels with 0 < inner < outer; got {local_background!r}",
                         param="local_background")
    return inner, outer


def fit_psf(data, positions, psf, *, fit_shape=5, group_separation=0.0, iterative=False,
            maxiters=3, threshold=None, finder_fwhm=None, aperture_radius=None,
            local_background=None, error=None, mask=None, fitter_maxiters=100,
            region=None, progress=None, cancel=None):
    """Fit a PSF model to sources: at given positions, or iteratively (crowded fields).

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    positions : `~astropy.table.Table` or (N, 2) array
        The starting positions (a detection catalog: its ``id`` is kept).
    psf : PSFBuild or astropy model
        The PSF (:func:`build_epsf`, :func:`analytic_psf`,
        :func:`image_psf`, or any photutils PSF model).
    fit_shape : int, optional
        The side of the box of pixels fitted around each source (odd).
    group_separation : float, optional
        Sources closer than this (pixels) are fitted together
        (`~photutils.psf.SourceGrouper`); 0 fits each alone.
    iterative : bool, optional
        Use `~photutils.psf.IterativePSFPhotometry` (mode ``'new'``): fit,
        subtract, find what the residual still holds with DAOFIND, fit that,
        up to ``maxiters`` times. Needs ``threshold``.
    maxiters : int, optional
        Iterations of the iterative mode.
    threshold : float, optional
        The DAOFIND threshold of the iterative mode (data units).
    finder_fwhm : float, optional
        The DAOFIND kernel FWHM; the PSF's FWHM by default.
    aperture_radius : float, optional
        The radius of the aperture of the initial fluxes; the PSF's FWHM by
        default.
    local_background : (float, float), optional
        Annulus radii of a local background per source
        (`~photutils.background.LocalBackground`); None: none (the data are
        background-subtracted).
    error : 2-D array, optional
        The 1-sigma error of each pixel: the fit weights and ``flux_err``.
    mask : 2-D bool array, optional
        True where a pixel is bad; non-finite pixels always are.
    fitter_maxiters : int, optional
        The fitter's most iterations per source.
    region : [x0, x1, y0, y1], optional
        Fit only the starting positions inside this box (a preview).
    progress : callable, optional
        ``progress(done, total)`` after each chunk of sources.
    cancel : callable, optional
        Called between chunks; when it returns True the fit stops with
        :class:`~jwst_widgets.errors.Cancelled`.

    Returns
    -------
    PSFFit
        ``table`` (photutils' columns; zero rows when there is nothing to
        fit), ``model`` and ``residual`` images.

    Notes
    -----
    Given positions are fitted in chunks of whole groups, each by its own
    `~photutils.psf.PSFPhotometry` call with the groups fixed beforehand:
    every group is fitted independently, so the numbers are those of one
    call over all sources, and progress and cancellation are checked
    between chunks. The input arrays are not modified.

    Examples
    --------
    >>> import numpy as np
    >>> from photutils.psf import CircularGaussianPRF
    >>> from jwst_widgets.processing.psf import fit_psf
    >>> yy, xx = np.mgrid[:64, :64]
    >>> psf = CircularGaussianPRF(fwhm=2.5)
    >>> image = CircularGaussianPRF(flux=500, x_0=30.3, y_0=20.6, fwhm=2.5)(xx, yy)
    >>> fit = fit_psf(image, np.array([[30.0, 21.0]]), psf)
    >>> round(float(fit.table["flux_fit"][0]), 1), round(float(fit.table["x_fit"][0]), 2)
    (500.0, 30.3)
    """
    from astropy.table import QTable, vstack
    from photutils.psf import SourceGrouper

    from ..errors import Cancelled

    arr = _as_image(data)
    shape = arr.shape
    model = psf.model if isinstance(psf, PSFBuild) else psf
    if not hasattr(model, "evaluate"):
        raise InputError(f"psf must be a PSFBuild or a photutils PSF model; got "
                         f"{type(psf).__name__}", param="psf")
    default_radius = max(1.5, psf.fwhm) if isinstance(psf, PSFBuild) else 3.0
    fit_shape = _odd_size(fit_shape, "fit_shape", low=3, high=min(shape) | 1)
    group_separation = _check_number(group_separation, "group_separation", low=0.0)
    maxiters = _check_number(maxiters, "maxiters", low=1, high=20, integer=True)
    aperture_radius = _check_number(default_radius if aperture_radius is None
                                    else aperture_radius, "aperture_radius", low=0.0,
                                    low_open=True)
    local_background = _check_local_background(local_background, fit_shape)
    fitter_maxiters = _check_number(fitter_maxiters, "fitter_maxiters", low=1, integer=True)
    error = _as_same_shape(error, shape, "error")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    bad = _bad_pixels(arr, mask, error)
    if iterative:
        threshold = _check_number(threshold, "threshold", low=0.0, low_open=True)
        finder_fwhm = _check_number(finder_fwhm if finder_fwhm is not None else
                                    (psf.fwhm if isinstance(psf, PSFBuild) else 2.0),
                                    "finder_fwhm", low=0.5, high=min(shape) / 4)
    xy, table = _parse_positions(positions)
    ids = _ids_of(table, len(xy))
    keep = np.all(np.isfinite(xy), axis=1) if len(xy) else np.zeros(0, bool)
    if region is not None:
        x0, x1, y0, y1 = (float(v) for v in region)
        keep &= (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)
    xy, ids = xy[keep], ids[keep]

    values = np.where(bad, 0.0, arr)
    use_mask = bad if bad.any() else None
    use_error = np.where(bad, 1.0, error) if error is not None else None
    grouper = SourceGrouper(group_separation) if group_separation > 0 else None

    if not len(xy) and not iterative:
        table_out = _empty_fit_table(model, fit_shape, aperture_radius, False)
        return PSFFit(table_out, np.zeros(shape, np.float32),
                      np.where(bad, np.nan, arr).astype(np.float32), model)

    if iterative:
        from photutils.detection import DAOStarFinder
        from photutils.psf import IterativePSFPhotometry
        from photutils.background import LocalBackground

        finder = DAOStarFinder(threshold, finder_fwhm)
        bkg = LocalBackground(*local_background) if local_background is not None else None
        phot = IterativePSFPhotometry(model, fit_shape, finder, grouper=grouper,
                                      aperture_radius=aperture_radius,
                                      local_bkg_estimator=bkg, maxiters=maxiters, mode="new",
                                      fitter_maxiters=fitter_maxiters, progress_bar=False)
        init = QTable({"id": ids, "x": xy[:, 0], "y": xy[:, 1]}) if len(xy) else None
        if progress is not None:
            progress(0, 1)
        with _quiet():
            result = phot(values, mask=use_mask, error=use_error, init_params=init)
        if progress is not None:
            progress(1, 1)
        if result is None:
            out = _empty_fit_table(model, fit_shape, aperture_radius, True)
        else:
            out = QTable(result)
            if region is not None:
                inside = ((out["x_fit"] >= x0) & (out["x_fit"] < x1) & (out["y_fit"] >= y0)
                          & (out["y_fit"] < y1)) | (out["iter_detected"] == 1)
                out = out[inside]
    else:
        init = QTable({"id": ids, "x": xy[:, 0], "y": xy[:, 1]})
        if grouper is not None:
            init["group_id"] = np.asarray(grouper(init["x"], init["y"]), dtype=np.int64)
        else:
            init["group_id"] = np.arange(1, len(init) + 1, dtype=np.int64)
        # chunks of whole groups, in group order
        order = np.argsort(np.asarray(init["group_id"]), kind="stable")
        init = init[order]
        gid = np.asarray(init["group_id"])
        starts = np.flatnonzero(np.r_[True, gid[1:] != gid[:-1]])
        bounds, begin = [], 0
        for s in starts[1:]:
            if s - begin >= _CHUNK:
                bounds.append((begin, s))
                begin = s
        bounds.append((begin, len(init)))
        parts = []
        done = 0
        if progress is not None:
            progress(0, len(init))
        for a, b in bounds:
            if cancel is not None and cancel():
                raise Cancelled()
            phot = _psf_phot(model, fit_shape, aperture_radius=aperture_radius,
                             local_background=local_background, fitter_maxiters=fitter_maxiters)
            with _quiet():
                part = phot(values, mask=use_mask, error=use_error, init_params=init[a:b])
            part.meta = {}
            parts.append(QTable(part))
            done = b
            if progress is not None:
                progress(done, len(init))
        with _quiet():
            out = vstack(parts, metadata_conflicts="silent")
        # back to the order of the input positions
        out = out[np.argsort(order, kind="stable")]
        if grouper is None:
            out["group_id"] = np.arange(1, len(out) + 1, dtype=out["group_id"].dtype)
        _set_fit_meta(out, model, fit_shape, group_separation, aperture_radius,
                      local_background)
    out.meta.pop("date", None)
    model_img = make_model_image(shape, model, out)
    residual = np.subtract(arr, model_img, dtype=np.float32)
    residual[bad] = np.nan
    return PSFFit(out, model_img, residual, model)


def _set_fit_meta(table, model, fit_shape, group_separation, aperture_radius, local_background):
    table.meta.update({"psf_class": "PSFPhotometry", "psf_model": type(model).__name__,
                       "fit_shape": fit_shape, "group_separation": group_separation,
                       "aperture_radius": aperture_radius,
                       "local_background": local_background})


def make_model_image(shape, psf_model, table):
    """The image of fitted sources (photutils' ``make_model_image``), float32."""
    from astropy.table import QTable
    from photutils.datasets import make_model_image as _make

    xs = np.asarray(table["x_fit"], float) if len(table) else np.zeros(0)
    ys = np.asarray(table["y_fit"], float) if len(table) else np.zeros(0)
    fs = np.asarray(getattr(table["flux_fit"], "value", table["flux_fit"]), float) \
        if len(table) else np.zeros(0)
    ok = np.isfinite(xs) & np.isfinite(ys) & np.isfinite(fs)
    if not ok.any():
        return np.zeros(shape, np.float32)
    x_name = getattr(psf_model, "x_name", "x_0")
    y_name = getattr(psf_model, "y_name", "y_0")
    flux_name = getattr(psf_model, "flux_name", "flux")
    params = QTable({x_name: xs[ok], y_name: ys[ok], flux_name: fs[ok]})
    model_shape = None
    box = getattr(psf_model, "bounding_box", None)
    try:
        (ylo, yhi), (xlo, xhi) = box.bounding_box() if box is not None else ((0, 0), (0, 0))
        if max(yhi - ylo, xhi - xlo) > _MODEL_SHAPE_MAX:
            model_shape = (_MODEL_SHAPE_MAX, _MODEL_SHAPE_MAX)
    except (NotImplementedError, TypeError, ValueError, AttributeError):
        model_shape = (_MODEL_SHAPE_MAX, _MODEL_SHAPE_MAX)
    with _quiet():
        img = _make(shape, psf_model, params, x_name=x_name, y_name=y_name,
                    model_shape=model_shape)
    return np.asarray(img, dtype=np.float32)


# --------------------------------------------------------------------------
# 4. Aperture correction.

def measure_psf_aperture_correction(data, fit, *, reference_radius=20.0, min_snr=50.0,
                                    max_stars=50, isolation=None, annulus=None, mask=None,
                                    min_stars=3, sigma_clip=3.0):
    """The factor from PSF fluxes to the flux within a large radius, on the frame's stars.

    For each bright, well-fitted star, the fitted models of all the other
    sources are subtracted (``residual + own model``), the flux within
    ``reference_radius`` is summed and divided by the star's ``flux_fit``;
    the correction is the sigma-clipped mean of these ratios, its
    uncertainty their scatter over the square root of their number.

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image the fit was made on.
    fit : PSFFit
        The result of :func:`fit_psf` on ``data``.
    reference_radius : float, optional
        The large radius (pixels).
    min_snr : float, optional
        The least ``flux_fit / flux_err`` of a star used.
    max_stars : int, optional
        Use at most this many, the brightest.
    isolation : float, optional
        Drop stars with another fitted source brighter than 1/10 of their
        flux closer than this (their subtraction errors would count);
        ``reference_radius`` by default.
    annulus : (float, float), optional
        Annulus radii of a local background on the neighbour-subtracted
        image; None (the default): no local background (the data are
        background-subtracted, and the star's own wings would bias an
        annulus).
    mask : 2-D bool array, optional
    min_stars : int, optional
        The fewest stars that make a measurement.
    sigma_clip : float, optional
        The clipping level of the mean over stars.

    Returns
    -------
    `~jwst_widgets.processing.photometry.ApertureCorrection`
        ``(value, uncertainty, n_stars)``.

    Raises
    ------
    InputError
        When fewer than ``min_stars`` stars qualify (``param="reference_radius"``).

    Examples
    --------
    >>> import numpy as np
    >>> from photutils.psf import CircularGaussianPRF
    >>> from jwst_widgets.processing.psf import fit_psf, measure_psf_aperture_correction
    >>> yy, xx = np.mgrid[:160, :160]
    >>> xy = np.array([[40.2, 40.7], [120.5, 40.1], [40.9, 120.3], [119.6, 121.0]])
    >>> image = sum(CircularGaussianPRF(flux=1e4, x_0=x, y_0=y, fwhm=3)(xx, yy) for x, y in xy)
    >>> image = image + np.random.default_rng(2).normal(0, 0.5, image.shape)
    >>> fit = fit_psf(image, xy, CircularGaussianPRF(fwhm=3))
    >>> corr = measure_psf_aperture_correction(image, fit, reference_radius=12)
    >>> corr.n_stars, round(corr.value, 2)
    (4, 1.0)
    """
    from astropy.stats import sigma_clip as clip_values
    from photutils.aperture import CircularAnnulus, CircularAperture, ApertureStats

    arr = _as_image(data)
    shape = arr.shape
    reference_radius = _check_number(reference_radius, "reference_radius", low=0.0,
                                     low_open=True, high=min(shape) / 2,
                                     context=f" pixels for a {shape[1]}x{shape[0]} image")
    min_snr = _check_number(min_snr, "min_snr", low=0.0)
    max_stars = _check_number(max_stars, "max_stars", low=1, integer=True)
    min_stars = _check_number(min_stars, "min_stars", low=1, integer=True)
    isolation = _check_number(reference_radius if isolation is None else isolation,
                              "isolation", low=0.0)
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    if annulus is not None:
        annulus = _check_local_background(annulus, 3)
    table = fit.table
    n = len(table)
    if n == 0:
        raise InputError("measuring the aperture correction needs fitted stars; none were "
                         "fitted", param="reference_radius")
    x = np.asarray(table["x_fit"], float)
    y = np.asarray(table["y_fit"], float)
    f = np.asarray(getattr(table["flux_fit"], "value", table["flux_fit"]), float)
    fe = np.asarray(getattr(table["flux_err"], "value", table["flux_err"]), float)
    flags = np.asarray(table["flags"])
    ny, nx = shape
    edge = reference_radius + (annulus[1] if annulus else 0.0) + 1
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = f / fe
        ok = ((flags == 0) & np.isfinite(x) & np.isfinite(y) & (f > 0)
              & (x >= edge) & (x <= nx - 1 - edge) & (y >= edge) & (y <= ny - 1 - edge))
        ok &= np.where(np.isfinite(snr), snr, np.inf if not np.isfinite(fe).any() else 0) \
            >= min_snr
    if ok.any() and n > 1:
        from scipy.spatial import cKDTree

        tree = cKDTree(np.c_[np.where(np.isfinite(x), x, -1e9), np.where(np.isfinite(y), y, -1e9)])
        for i in np.flatnonzero(ok):
            for j in tree.query_ball_point([x[i], y[i]], isolation):
                if j != i and f[j] > 0.1 * f[i]:
                    ok[i] = False
                    break
    chosen = np.flatnonzero(ok)
    chosen = chosen[np.argsort(-f[chosen])][:max_stars]
    if len(chosen) < min_stars:
        raise InputError(f"measuring the aperture correction needs at least {min_stars} bright "
                         f"isolated well-fitted stars away from the edges; {len(chosen)} "
                         f"qualify (lower reference_radius or its min S/N)",
                         param="reference_radius")
    bad = _bad_pixels(arr, mask)
    # each star alone: everything else subtracted
    alone = np.where(bad, 0.0, arr - fit.model)
    alone = alone + make_model_image(shape, fit.psf_model, table[chosen])
    xy = np.c_[x[chosen], y[chosen]]
    ap = CircularAperture(xy, r=reference_radius)
    sums = np.asarray(ap.do_photometry(alone, mask=bad if bad.any() else None,
                                       method="exact")[0], float)
    if annulus is not None:
        stats = ApertureStats(alone, CircularAnnulus(xy, *annulus),
                              mask=bad if bad.any() else None)
        sums = sums - np.asarray(stats.median, float) * np.asarray(
            ap.area_overlap(alone, mask=bad if bad.any() else None), float)
    ratios = sums / f[chosen]
    ratios = ratios[np.isfinite(ratios)]
    if sigma_clip and len(ratios) >= 3:
        ratios = clip_values(ratios, sigma=sigma_clip, maxiters=10, masked=False)
    k = len(ratios)
    if k < min_stars:
        raise InputError(f"measuring the aperture correction needs at least {min_stars} "
                         f"stars; {k} gave a usable ratio", param="reference_radius")
    std = float(np.std(ratios, ddof=1)) if k > 1 else 0.0
    return ApertureCorrection(float(np.mean(ratios)), std / np.sqrt(k), k)


# --------------------------------------------------------------------------
# All together.

@dataclasses.dataclass(frozen=True, eq=False)
class PSFPhotometryResult:
    """The result of :func:`psf_photometry`.

    Attributes
    ----------
    catalog : QTable
        photutils' fit columns (`FIT_COLUMNS`), then ``flux_total,
        flux_total_err`` (``flux_fit`` times the total correction, with its
        uncertainty added), ``flux_jy, flux_jy_err, mag_ab, mag_ab_err``
        when the unit allows, ``ra, dec`` with a WCS. Zero rows when nothing
        was fitted. ``meta`` records the settings and corrections.
    psf : PSFBuild
        The PSF that was fitted.
    fit : PSFFit
        The fit, with the ``model`` and ``residual`` images.
    aperture_correction : ApertureCorrection or None
        From the PSF's normalisation to ``reference_radius`` (None: not
        applied).
    encircled_energy : float or None
        The encircled energy at ``reference_radius`` used to reach the total
        (None: none given; fluxes are then within ``reference_radius``).
    total_correction, total_correction_err : float
        The factor applied to ``flux_fit`` and its 1-sigma uncertainty.
    messages : tuple of str
        Facts in words for a panel.
    """

    catalog: object
    psf: PSFBuild
    fit: PSFFit
    aperture_correction: object = None
    encircled_energy: float = None
    total_correction: float = 1.0
    total_correction_err: float = 0.0
    messages: tuple = ()

    @property
    def model(self):
        return self.fit.model

    @property
    def residual(self):
        return self.fit.residual

    @property
    def stars(self):
        return self.psf.stars


def _ee_value(ee, radius):
    """The encircled energy at ``radius`` from a callable, a (radii, values) pair or a table."""
    if ee is None:
        return None
    if callable(ee):
        value = float(ee(radius))
    else:
        try:
            radii, values = ee
            radii = np.asarray(radii, float)
            values = np.asarray(values, float)
        except (TypeError, ValueError):
            raise InputError("encircled_energy must be a callable, or (radii, values) "
                             f"arrays; got {type(ee).__name__}", param="encircled_energy") \
                from None
        if radii.ndim != 1 or radii.shape != values.shape or len(radii) < 2:
            raise InputError("encircled_energy (radii, values) must be two 1-D arrays of the "
                             "same length (at least 2)", param="encircled_energy")
        if not radii.min() <= radius <= radii.max():
            raise InputError(f"encircled_energy table covers {radii.min():g} to "
                             f"{radii.max():g} px; reference_radius {radius:g} px is outside",
                             param="encircled_energy")
        order = np.argsort(radii)
        value = float(np.interp(radius, radii[order], values[order]))
    if not 0 < value <= 1:
        raise InputError(f"encircled energy at {radius:g} px must be in (0, 1]; got {value:g}",
                         param="encircled_energy")
    return value


def _neighbour_model(arr, bad, error, catalog_xy, stars, psf, size, fit_shape,
                     group_separation):
    """The fitted models of the sources around the PSF stars (not the stars themselves)."""
    from scipy.spatial import cKDTree

    sxy = np.c_[np.asarray(stars["x"], float), np.asarray(stars["y"], float)]
    good = np.all(np.isfinite(catalog_xy), axis=1)
    cxy = catalog_xy[good]
    if not len(cxy) or not len(sxy):
        return np.zeros(arr.shape, np.float32)
    reach = size / np.sqrt(2) + fit_shape
    tree = cKDTree(cxy)
    near = set()
    for lst in tree.query_ball_point(sxy, reach):
        near.update(lst)
    near = np.array(sorted(near), dtype=int)
    if not len(near):
        return np.zeros(arr.shape, np.float32)
    fit = fit_psf(arr, cxy[near], psf, fit_shape=fit_shape, group_separation=group_separation,
                  error=error, mask=bad)
    d, _ = cKDTree(sxy).query(np.c_[np.nan_to_num(fit.table["x_fit"], nan=-1e9),
                                    np.nan_to_num(fit.table["y_fit"], nan=-1e9)])
    others = fit.table[d > 1.0]
    return make_model_image(arr.shape, psf.model, others)


def psf_photometry(data, catalog, *, psf="epsf", psf_image=None, psf_oversampling=1,
                   size=25, oversampling=3, smoothing="quadratic", epsf_maxiters=10,
                   subtract_neighbours=True, min_snr=30.0, max_snr=None, peak_max=None,
                   min_separation=None, max_stars=100, exclude=None, include=None,
                   fit_shape=5, group_separation=0.0, iterative=False, maxiters=3,
                   threshold=None, local_background=None, aperture_correction="auto",
                   reference_radius=20.0, encircled_energy=None, error=None, mask=None,
                   background_rms=None, wcs=None, unit=None, pixar_sr=None, region=None,
                   psf_build=None, progress=None, cancel=None):
    """PSF photometry in one call: PSF stars, PSF model, fit, corrections, catalog.

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    catalog : `~astropy.table.Table` or (N, 2) array
        The detected sources: the PSF stars are chosen among them and they
        are the starting positions of the fit.
    psf : {'epsf', 'gaussian', 'moffat', 'image'}, optional
        An empirical PSF built from the PSF stars (:func:`build_epsf`), an
        analytic profile fitted to them (:func:`analytic_psf`), or
        ``psf_image`` (:func:`image_psf`).
    psf_image : 2-D array, optional
        The PSF image for ``psf="image"``, sampled ``psf_oversampling``
        times per pixel.
    size, oversampling, smoothing, epsf_maxiters
        The cut-out size and the ePSF's settings (:func:`build_epsf`).
    subtract_neighbours : bool, optional
        Build the ePSF twice: the second time with the models of the PSF
        stars' neighbours (fitted with the first ePSF, 5x5 boxes, no
        grouping) subtracted: a cleaner PSF in crowded fields.
    min_snr, max_snr, peak_max, min_separation, max_stars, exclude, include
        The choice of PSF stars (:func:`select_psf_stars`). ``min_separation``
        defaults to half the cut-out when the neighbours are subtracted (more
        stars: a steadier ePSF), to the whole cut-out otherwise.
    fit_shape, group_separation, iterative, maxiters, threshold, local_background
        The fit (:func:`fit_psf`).
    aperture_correction : 'auto', 'none' or (float, float), optional
        ``'auto'``: measured on the frame's bright stars
        (:func:`measure_psf_aperture_correction`) to ``reference_radius``;
        ``'none'``: fluxes stay relative to the PSF's normalisation; or a
        given ``(value, uncertainty)``.
    reference_radius : float, optional
        The radius of the aperture correction (pixels).
    encircled_energy : callable or (radii, values), optional
        The PSF's encircled energy (fraction of the total flux within a
        radius in pixels), for example STScI's table for the filter; with
        it, fluxes are divided by its value at ``reference_radius`` and are
        total fluxes. Without it they are fluxes within ``reference_radius``.
    error, mask, background_rms
        The 1-sigma error of each pixel (fit weights, ``flux_err``), bad
        pixels, and the background noise (S/N of the PSF stars without
        ``error``).
    wcs, unit, pixar_sr
        For ``ra, dec`` and, with MJy/sr and the pixel area (or a flux
        density unit), ``flux_jy`` and ``mag_ab``.
    region : [x0, x1, y0, y1], optional
        Fit only the sources in this box (a preview); the PSF is built from
        the whole frame.
    psf_build : PSFBuild, optional
        A PSF already built (skips the PSF stars and the build).
    progress, cancel : callable, optional
        See :func:`fit_psf`; ``progress(done, total)`` counts sources.

    Returns
    -------
    PSFPhotometryResult

    Notes
    -----
    The fluxes' chain: ``flux_fit`` is the flux in the PSF model's
    normalisation (an ePSF sums to 1 over its stamp, so it misses the light
    outside the stamp); the aperture correction, measured on the frame's
    own bright stars with their neighbours' models subtracted, takes it to
    the flux within ``reference_radius``; the encircled energy at that
    radius, which the PSF stamp cannot know, takes it to the total. The
    uncertainties of both factors are added to ``flux_total_err``.

    Examples
    --------
    >>> from jwst_widgets import datasets                     # doctest: +SKIP
    >>> from jwst_widgets.processing.detect import find_point_sources  # doctest: +SKIP
    >>> frame = datasets.nircam_like((512, 512), seed=2)       # doctest: +SKIP
    >>> data = frame.image.data - frame.truth.sky               # doctest: +SKIP
    >>> found = find_point_sources(data, threshold=0.05, fwhm=2.2, mask=frame.image.mask)
    ...                                                         # doctest: +SKIP
    >>> result = psf_photometry(data, found, mask=frame.image.mask, error=frame.image.error,
    ...                         min_snr=20)                     # doctest: +SKIP
    >>> result.catalog["flux_total"]                            # doctest: +SKIP
    """
    arr = _as_image(data)
    shape = arr.shape
    if psf not in (*PSF_KINDS, "image"):
        raise InputError(f"psf must be {describe_choices((*PSF_KINDS, 'image'))}; got {psf!r}",
                         param="psf")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    error = _as_same_shape(error, shape, "error")
    unit = _check_unit(unit)
    pixar_sr = _check_number(pixar_sr, "pixar_sr", low=0.0, low_open=True, allow_none=True)
    _check_wcs(wcs)
    if aperture_correction not in ("auto", "none") and not isinstance(aperture_correction,
                                                                      tuple):
        raise InputError("aperture_correction must be 'auto', 'none' or (value, uncertainty); "
                         f"got {aperture_correction!r}", param="aperture_correction")
    xy, table = _parse_positions(catalog)
    bad = _bad_pixels(arr, mask, error)
    messages = []

    if psf_build is not None:
        build = psf_build
    elif len(xy) == 0 and psf != "image":
        # nothing to fit: no PSF can be built either; a placeholder PSF gives the
        # zero-row table its columns, as for every other empty catalog
        yy, xx = np.mgrid[-7:8, -7:8]
        build = image_psf(np.exp(-(xx**2 + yy**2) / (2 * 1.0**2)), oversampling=1)
        messages.append("no sources to fit: nothing was detected before this stage")
        aperture_correction = "none"
    elif psf == "image":
        if psf_image is None:
            raise InputError("psf 'image' needs psf_image (a PSF image)", param="psf_image")
        build = image_psf(psf_image, oversampling=psf_oversampling)
    else:
        if min_separation is None:
            min_separation = size / 2 if (subtract_neighbours and psf == "epsf") else size
        stars = select_psf_stars(arr, catalog, size=size, min_snr=min_snr, max_snr=max_snr,
                                 peak_max=peak_max, min_separation=min_separation,
                                 max_stars=max_stars, mask=bad, error=error,
                                 background_rms=background_rms, exclude=exclude,
                                 include=include)
        if len(stars) == 0:
            rej = ", ".join(f"{k}: {v}" for k, v in stars.meta["rejected"].items() if v)
            raise InputError(f"no PSF star qualifies among {stars.meta['n_candidates']} sources "
                             f"({rej or 'none given'}); lower min_snr or min_separation",
                             param="min_snr")
        if psf == "epsf":
            build = build_epsf(arr, stars, size=size, oversampling=oversampling,
                               smoothing=smoothing, maxiters=epsf_maxiters, mask=bad)
            if subtract_neighbours:
                if cancel is not None and cancel():
                    from ..errors import Cancelled
                    raise Cancelled()
                # fixed settings (not the fit's): the PSF must not depend on them
                others = _neighbour_model(arr, bad, error, xy, stars, build, size,
                                          min(5, size), 0.0)
                build = build_epsf(arr, stars, size=size, oversampling=oversampling,
                                   smoothing=smoothing, maxiters=epsf_maxiters, mask=bad,
                                   subtract=others)
        else:
            build = analytic_psf(arr, stars, kind=psf, size=size, mask=bad,
                                 oversampling=oversampling)
        build = dataclasses.replace(build, stars=_with_star_info(build.stars, stars))
    threshold_value = threshold
    if iterative and threshold_value is None:
        raise InputError("iterative fitting needs threshold (the detection threshold in data "
                         "units)", param="threshold")
    fit = fit_psf(arr, catalog, build, fit_shape=fit_shape, group_separation=group_separation,
                  iterative=iterative, maxiters=maxiters, threshold=threshold_value,
                  local_background=local_background, error=error, mask=bad, region=region,
                  progress=progress, cancel=cancel)

    corr = None
    if isinstance(aperture_correction, tuple):
        value = _check_number(aperture_correction[0], "aperture_correction", low=0.0,
                              low_open=True)
        err = _check_number(aperture_correction[1], "aperture_correction", low=0.0)
        corr = ApertureCorrection(value, err, 0)
    elif aperture_correction == "auto" and region is None:
        corr = measure_psf_aperture_correction(arr, fit, reference_radius=reference_radius,
                                               mask=bad)
        messages.append(f"aperture correction to {reference_radius:g} px: {corr.value:.4f} "
                        f"± {corr.uncertainty:.4f} from {corr.n_stars} stars")
    ee = _ee_value(encircled_energy, reference_radius) if corr is not None else None
    factor = corr.value if corr is not None else 1.0
    factor_rel = (corr.uncertainty / corr.value) if corr is not None else 0.0
    if ee is not None:
        factor /= ee
        messages.append(f"encircled energy at {reference_radius:g} px: {ee:.4f} "
                        f"(fluxes are totals)")
    elif corr is not None:
        messages.append(f"no encircled-energy table: fluxes are within {reference_radius:g} px")
    catalog_out = _final_catalog(fit.table, factor, factor * factor_rel, wcs, unit, pixar_sr)
    catalog_out.meta.update({
        "psf": build.kind, "psf_fwhm": build.fwhm, "psf_oversampling": build.oversampling,
        "n_psf_stars": 0 if build.stars is None else len(build.stars),
        "aperture_correction": None if corr is None else corr.value,
        "aperture_correction_err": None if corr is None else corr.uncertainty,
        "reference_radius": reference_radius, "encircled_energy": ee,
        "total_correction": factor, "region": None if region is None else list(region),
    })
    n = len(catalog_out)
    n_flagged = int(np.count_nonzero(np.asarray(catalog_out["flags"]) != 0)) if n else 0
    messages.insert(0, f"{n} source{'s' if n != 1 else ''} fitted"
                       + (f" ({n_flagged} flagged)" if n_flagged else "")
                       + f"; PSF {build.kind}, FWHM {build.fwhm:.2f} px"
                       + (f" from {len(build.stars)} stars" if build.stars is not None else ""))
    return PSFPhotometryResult(catalog=catalog_out, psf=build, fit=fit, aperture_correction=corr,
                               encircled_energy=ee, total_correction=factor,
                               total_correction_err=factor * factor_rel,
                               messages=tuple(messages))


def _with_star_info(kept, chosen):
    """The stars the builder kept, with the selection's columns."""
    if kept is None:
        return chosen
    rows = np.isin(np.asarray(chosen["id"]), np.asarray(kept["id"]))
    return chosen[rows]


def _final_catalog(fit_table, factor, factor_err, wcs, unit, pixar_sr):
    from astropy.table import QTable

    out = QTable(fit_table, copy=True)
    f = np.asarray(getattr(out["flux_fit"], "value", out["flux_fit"]), float)
    fe = np.asarray(getattr(out["flux_err"], "value", out["flux_err"]), float)
    total = f * factor
    total_err = np.hypot(fe * factor, f * factor_err)

    def with_unit(values):
        return values * unit if unit is not None else values

    out["flux_total"] = with_unit(total)
    out["flux_total_err"] = with_unit(total_err)
    _add_ab_columns(out, total, total_err, unit, pixar_sr)
    _add_sky_columns(out, out["x_fit"], out["y_fit"], wcs)
    out.meta["unit"] = unit.to_string() if unit is not None else None
    out.meta["pixar_sr"] = pixar_sr
    return out
