"""PSF stars and PSF models for :mod:`jwst_widgets.processing.psf`.

:func:`select_psf_stars` picks bright, unsaturated, isolated, star-like
sources; :func:`build_epsf` stacks them into an empirical PSF
(`photutils.psf.EPSFBuilder`); :func:`analytic_psf` fits a Gaussian or a
Moffat profile to them; :func:`image_psf` wraps a PSF image the user has.
Import these from :mod:`jwst_widgets.processing.psf`.
"""

import dataclasses
import warnings

import numpy as np

from ..errors import InputError, describe_choices
from .detect import _as_image, _as_same_shape, _bad_pixels, _check_number
from .photometry import _parse_positions

__all__ = ["select_psf_stars", "build_epsf", "analytic_psf", "image_psf", "psf_fwhm",
           "encircled_energy", "PSFBuild", "PSF_KINDS", "SMOOTHING_KERNELS", "STAR_COLUMNS"]

#: The kinds of PSF model :func:`~jwst_widgets.processing.psf.psf_photometry` makes from the data.
PSF_KINDS = ("epsf", "gaussian", "moffat")
#: The ePSF smoothing kernels of `~photutils.psf.EPSFBuilder` ("none": no smoothing).
SMOOTHING_KERNELS = ("quartic", "quadratic", "none")
#: The columns of the table of PSF stars.
STAR_COLUMNS = ("id", "x", "y", "flux", "peak", "snr", "concentration", "nearest")


def _warnings_quiet():
    """A context that hides photutils' and astropy's chatter during fits."""
    from astropy.utils.exceptions import AstropyUserWarning

    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", AstropyUserWarning)
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
        from photutils.utils.exceptions import NoDetectionsWarning
        warnings.simplefilter("ignore", NoDetectionsWarning)
    except ImportError:  # pragma: no cover
        pass
    return ctx


class _quiet:
    def __enter__(self):
        self._ctx = _warnings_quiet()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def _odd_size(value, name, *, low=3, high=None, context=""):
    value = _check_number(value, name, low=low, high=high, integer=True, context=context)
    if value % 2 == 0:
        raise InputError(f"{name} must be an odd number of pixels; got {value}", param=name)
    return value


def _ids_of(catalog, n):
    if catalog is not None and "id" in catalog.colnames:
        return np.asarray(catalog["id"]).astype(np.int64)
    if catalog is not None and "label" in catalog.colnames:
        return np.asarray(catalog["label"]).astype(np.int64)
    return np.arange(1, n + 1, dtype=np.int64)


def _check_ids(values, name):
    if values is None:
        return set()
    try:
        return {int(v) for v in values}
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a list of source ids (integers); got {values!r}",
                         param=name) from None


# --------------------------------------------------------------------------
# 1. PSF stars.

def _aperture_sums(arr, bad, xy, radius, error=None):
    from photutils.aperture import CircularAperture, aperture_photometry

    if not len(xy):
        return np.zeros(0), np.zeros(0)
    ap = CircularAperture(xy, r=radius)
    with _quiet():
        t = aperture_photometry(arr, ap, mask=bad if bad.any() else None, error=error)
    s = np.asarray(t["aperture_sum"], float)
    e = np.asarray(t["aperture_sum_err"], float) if error is not None else np.full(len(xy),
                                                                                  np.nan)
    return s, e


def select_psf_stars(data, catalog, *, size=25, min_snr=30.0, max_snr=None, flux_range=None,
                     peak_max=None, min_separation=None, edge_distance=None, max_stars=100,
                     concentration_clip=3.0, fwhm=None, mask=None, error=None,
                     background_rms=None, exclude=None, include=None):
    """Choose bright, unsaturated, isolated stars for building a PSF.

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    catalog : `~astropy.table.Table` or (N, 2) array
        The detected sources (for example from
        :func:`~jwst_widgets.processing.detect.find_point_sources`): every
        row counts as a neighbour; ``id`` identifies the rows.
    size : int, optional
        The side of the PSF cut-outs in pixels (odd).
    min_snr, max_snr : float, optional
        The S/N range of the stars kept (S/N of the flux within ``1.5 ×
        fwhm``; from ``error`` when given, else from ``background_rms``).
    flux_range : (float, float), optional
        The range of that flux.
    peak_max : float, optional
        Drop stars with a pixel above this within the core (saturation).
    min_separation : float, optional
        Drop stars with another source closer than this (pixels); the
        cut-out size by default.
    edge_distance : float, optional
        The least distance from the frame's edge (pixels); half the cut-out
        by default. A star with a bad pixel within its cut-out is dropped.
    max_stars : int, optional
        Keep at most this many, the brightest.
    concentration_clip : float or None, optional
        Drop stars whose concentration (flux within ``0.75 × fwhm`` over flux
        within ``2 × fwhm``) is more than this many robust sigma from the
        median of the candidates: galaxies, hot pixels, blends. None: no cut.
    fwhm : float, optional
        The stars' FWHM in pixels (for the apertures above); measured on the
        candidates by default.
    mask : 2-D bool array, optional
        True where a pixel is bad; non-finite pixels always are.
    error : 2-D array, optional
        The 1-sigma error of each pixel (ERR).
    background_rms : float or 2-D array, optional
        The background noise, used for the S/N when ``error`` is not given
        (a robust estimate from the image otherwise).
    exclude, include : iterable of int, optional
        Catalog ids to drop whatever they are, or to keep whatever they are
        (if they are on the frame and have no bad pixel in their cut-out).

    Returns
    -------
    stars : `~astropy.table.QTable`
        ``id, x, y, flux, peak, snr, concentration, nearest`` for the chosen
        stars, brightest first; zero rows when none qualify. ``meta`` has
        ``n_candidates`` and the number dropped by each cut (``rejected``).

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.psf import select_psf_stars
    >>> yy, xx = np.mgrid[:128, :128]
    >>> xy = [(30, 30), (90, 35), (40, 95), (96, 96), (36, 34)]
    >>> image = sum(f * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / 2.0)
    ...             for (x, y), f in zip(xy, [500, 400, 300, 200, 100]))
    >>> image = image + np.random.default_rng(0).normal(0, 1, image.shape)
    >>> stars = select_psf_stars(image, np.array(xy, float), size=15, min_snr=20,
    ...                          background_rms=1.0)
    >>> sorted(stars["id"].tolist())  # the 1st and the 5th are too close together
    [2, 3, 4]
    """
    from astropy.table import QTable

    arr = _as_image(data)
    shape = arr.shape
    size = _odd_size(size, "size", low=5, high=min(shape),
                     context=f" for a {shape[1]}x{shape[0]} image")
    min_snr = _check_number(min_snr, "min_snr", low=0.0)
    max_snr = _check_number(max_snr, "max_snr", low=min_snr, allow_none=True,
                            context=" (at least min_snr)")
    if flux_range is not None:
        try:
            flo, fhi = (float(v) for v in flux_range)
        except (TypeError, ValueError):
            flo = fhi = float("nan")
        if not (np.isfinite(flo) and np.isfinite(fhi) and flo < fhi):
            raise InputError(f"flux_range must be a (low, high) pair with low < high; "
                             f"got {flux_range!r}", param="flux_range")
    peak_max = _check_number(peak_max, "peak_max", allow_none=True)
    half = size // 2
    min_separation = _check_number(size if min_separation is None else min_separation,
                                   "min_separation", low=0.0)
    edge_distance = _check_number(half if edge_distance is None else edge_distance,
                                  "edge_distance", low=0.0)
    max_stars = _check_number(max_stars, "max_stars", low=1, integer=True)
    if concentration_clip is not None:
        concentration_clip = _check_number(concentration_clip, "concentration_clip",
                                           low=0.0, low_open=True)
    fwhm = _check_number(fwhm, "fwhm", low=0.5, high=size / 2, allow_none=True,
                         context=f" pixels for {size}-pixel cut-outs")
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    error = _as_same_shape(error, shape, "error")
    exclude, include = _check_ids(exclude, "exclude"), _check_ids(include, "include")
    xy, table = _parse_positions(catalog)
    ids = _ids_of(table, len(xy))
    bad = _bad_pixels(arr, mask, error)

    n = len(xy)
    ny, nx = shape
    rejected = {}

    def cut(keep, reason, where):
        dropped = where & ~keep
        rejected[reason] = rejected.get(reason, 0) + int(dropped.sum())
        return where & keep

    finite = np.all(np.isfinite(xy), axis=1) if n else np.zeros(0, bool)
    x = np.where(finite, xy[:, 0], -1e9) if n else np.zeros(0)
    y = np.where(finite, xy[:, 1], -1e9) if n else np.zeros(0)
    lo = max(edge_distance, half)
    forced = np.isin(ids, list(include)) if include else np.zeros(n, bool)
    ok = cut(finite & (x >= lo) & (x <= nx - 1 - lo) & (y >= lo) & (y <= ny - 1 - lo),
             "edge", np.ones(n, bool))
    ok = cut(~np.isin(ids, list(exclude)) if exclude else np.ones(n, bool), "excluded", ok)
    nearest = _nearest(xy)
    ok = cut((nearest >= min_separation) | forced, "crowded", ok)
    # No bad pixel within the cut-out.
    if bad.any() and ok.any():
        from scipy.ndimage import maximum_filter
        near_bad = maximum_filter(bad, size=size, mode="constant")
        ix = np.clip(np.round(x).astype(int), 0, nx - 1)
        iy = np.clip(np.round(y).astype(int), 0, ny - 1)
        ok = cut(~near_bad[iy, ix], "bad_pixels", ok)
    cand = np.flatnonzero(ok)
    if fwhm is None:
        fwhm = _fwhm_of_stars(arr, bad, xy[cand], size) if len(cand) else 2.0
    r_in, r_core = 0.75 * fwhm, 1.5 * fwhm
    s_in, _ = _aperture_sums(arr, bad, xy[cand], r_in)
    s_core, e_core = _aperture_sums(arr, bad, xy[cand], r_core, error)
    s_out, _ = _aperture_sums(arr, bad, xy[cand], 2 * fwhm)
    if error is None:
        rms = background_rms
        if rms is None:
            from astropy.stats import mad_std
            rms = mad_std(arr[~bad]) if (~bad).any() else 1.0
        rms = np.asarray(rms, float)
        if rms.ndim == 2:
            rms = rms[np.clip(np.round(y[cand]).astype(int), 0, ny - 1),
                      np.clip(np.round(x[cand]).astype(int), 0, nx - 1)]
        e_core = rms * np.sqrt(np.pi) * r_core
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = s_core / e_core
        conc = s_in / s_out
    peak = np.full(len(cand), np.nan)
    for k, i in enumerate(cand):
        ix, iy = int(round(x[i])), int(round(y[i]))
        r = max(1, int(np.ceil(fwhm)))
        peak[k] = np.nanmax(arr[iy - r:iy + r + 1, ix - r:ix + r + 1])
    keep = np.isfinite(snr) & (snr >= min_snr)
    if max_snr is not None:
        keep &= snr <= max_snr
    if flux_range is not None:
        keep &= (s_core >= flo) & (s_core <= fhi)
    local = np.zeros(n, bool)
    local[cand] = keep
    ok2 = cut(local | forced, "snr_or_flux", ok)
    local[cand] = peak <= peak_max if peak_max is not None else True
    ok2 = cut(local | forced, "saturated", ok2)
    if concentration_clip is not None:
        sel = np.isin(cand, np.flatnonzero(ok2))
        values = conc[sel & np.isfinite(conc)]
        if len(values) >= 5:
            med = np.median(values)
            spread = 1.4826 * np.median(np.abs(values - med))
            spread = max(spread, 0.01 * abs(med))
            local[cand] = np.abs(conc - med) <= concentration_clip * spread
            ok2 = cut(local | forced, "not_star_like", ok2)
    chosen_local = np.flatnonzero(np.isin(cand, np.flatnonzero(ok2)))
    chosen_local = chosen_local[np.argsort(-s_core[chosen_local], kind="stable")]
    forced_first = np.isin(ids[cand[chosen_local]], list(include)) if include else \
        np.zeros(len(chosen_local), bool)
    chosen_local = np.concatenate([chosen_local[forced_first], chosen_local[~forced_first]])
    if len(chosen_local) > max_stars:
        rejected["max_stars"] = len(chosen_local) - max_stars
        chosen_local = chosen_local[:max_stars]
    rows = cand[chosen_local]
    out = QTable()
    out["id"] = ids[rows]
    out["x"] = xy[rows, 0]
    out["y"] = xy[rows, 1]
    out["flux"] = s_core[chosen_local]
    out["peak"] = peak[chosen_local]
    out["snr"] = snr[chosen_local]
    out["concentration"] = conc[chosen_local]
    out["nearest"] = nearest[rows]
    out.meta.update({"n_candidates": int(n), "rejected": rejected, "size": size,
                     "fwhm": float(fwhm), "min_snr": min_snr,
                     "min_separation": min_separation})
    return out


def _nearest(xy):
    if len(xy) < 2:
        return np.full(len(xy), np.inf)
    from scipy.spatial import cKDTree

    good = np.all(np.isfinite(xy), axis=1)
    out = np.full(len(xy), np.inf)
    if good.sum() >= 2:
        dist, _ = cKDTree(xy[good]).query(xy[good], k=2)
        out[good] = dist[:, 1]
    return out


def _fwhm_of_stars(arr, bad, xy, size):
    """A median FWHM of the brightest few positions (photutils' fit_fwhm)."""
    from photutils.psf import fit_fwhm

    if not len(xy):
        return 2.0
    peaks = arr[np.clip(np.round(xy[:, 1]).astype(int), 0, arr.shape[0] - 1),
                np.clip(np.round(xy[:, 0]).astype(int), 0, arr.shape[1] - 1)]
    order = np.argsort(-np.nan_to_num(peaks, nan=-np.inf))[:30]
    shape = min(size, 9) | 1
    with _quiet():
        values = np.asarray(fit_fwhm(np.where(bad, 0.0, arr), xypos=xy[order], fit_shape=shape,
                                     mask=bad if bad.any() else None), float)
    values = values[np.isfinite(values) & (values > 0.5) & (values < size / 2)]
    return float(np.median(values)) if len(values) else 2.0


# --------------------------------------------------------------------------
# 2. The PSF model.

@dataclasses.dataclass(frozen=True, eq=False)
class PSFBuild:
    """A PSF model and how it was made.

    Attributes
    ----------
    model : astropy model
        The photutils PSF model (`~photutils.psf.ImagePSF`,
        `~photutils.psf.CircularGaussianPRF`, `~photutils.psf.MoffatPSF`
        or `~photutils.psf.GriddedPSFModel`), flux 1 at (0, 0).
    kind : str
        ``"epsf"``, ``"gaussian"``, ``"moffat"`` or ``"image"``.
    image : ndarray
        The PSF as an image (oversampled by ``oversampling``), summing to
        ``oversampling**2`` over its stamp.
    oversampling : int
    fwhm : float
        Its FWHM in native pixels.
    stars : QTable or None
        The stars it was built from (``id, x, y`` ...), the ones the
        builder kept.
    n_excluded : int
        Stars the builder left out (fits that failed).
    """

    model: object
    kind: str
    image: np.ndarray
    oversampling: int
    fwhm: float
    stars: object = None
    n_excluded: int = 0

    def encircled_energy(self, radius):
        """The fraction of the stamp's light within ``radius`` native pixels."""
        return encircled_energy(self.image, radius, oversampling=self.oversampling)


def build_epsf(data, stars, *, size=25, oversampling=3, smoothing="quadratic", maxiters=10,
               mask=None, subtract=None):
    """Build an empirical PSF from star positions (`photutils.psf.EPSFBuilder`).

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    stars : `~astropy.table.Table` or (N, 2) array
        The PSF stars (:func:`select_psf_stars`), ``x``/``y`` columns.
    size : int, optional
        The side of the cut-outs in pixels (odd); the ePSF covers the same
        area.
    oversampling : int, optional
        The ePSF's samples per pixel (1 to 8).
    smoothing : {'quartic', 'quadratic', 'none'}, optional
        The smoothing kernel applied at each iteration. photutils' defaults
        are oversampling 4 with ``'quartic'``. Measured on a crowded
        NIRCam-like frame (1024², 50 to 100 PSF stars): oversampling 3 with
        ``'quadratic'`` gives PSF fluxes scattering by 0.7 % with no trend
        with S/N; 2 scatters by 1 % with a 2 % trend (the core is too
        coarse); 4 scatters by up to 8 % with 50 stars (too few stars per
        sub-pixel phase) and builds 10 to 30 times slower.
    maxiters : int, optional
        The most build iterations.
    mask : 2-D bool array, optional
        True where a pixel is bad (left out of the stacks).
    subtract : 2-D array, optional
        An image to subtract first (the fitted models of the stars'
        neighbours): the ePSF is built on ``data - subtract``.

    Returns
    -------
    PSFBuild

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.psf import build_epsf
    >>> from photutils.psf import CircularGaussianPRF
    >>> yy, xx = np.mgrid[:200, :200]
    >>> rng = np.random.default_rng(1)
    >>> xy = rng.uniform(20, 180, (30, 2))
    >>> image = sum(CircularGaussianPRF(flux=1000, x_0=x, y_0=y, fwhm=2.5)(xx, yy)
    ...             for x, y in xy)
    >>> psf = build_epsf(image, xy, size=11, oversampling=2, smoothing="quadratic")
    >>> psf.image.shape, round(psf.fwhm, 1)  # pixel-integrated: wider than the 2.5 px profile
    ((23, 23), 2.7)
    """
    from astropy.nddata import NDData
    from astropy.table import QTable
    from photutils.psf import EPSFBuilder, extract_stars

    arr = _as_image(data)
    shape = arr.shape
    size = _odd_size(size, "size", low=5, high=min(shape),
                     context=f" for a {shape[1]}x{shape[0]} image")
    oversampling = _check_number(oversampling, "oversampling", low=1, high=8, integer=True)
    if smoothing not in SMOOTHING_KERNELS:
        raise InputError(f"smoothing must be {describe_choices(SMOOTHING_KERNELS)}; "
                         f"got {smoothing!r}", param="smoothing")
    maxiters = _check_number(maxiters, "maxiters", low=1, high=100, integer=True)
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    if subtract is not None:
        subtract = _as_same_shape(subtract, shape, "subtract")
    xy, table = _parse_positions(stars)
    ids = _ids_of(table, len(xy))
    if len(xy) < 1:
        raise InputError("building an ePSF needs at least one PSF star; got none (lower "
                         "min_snr or min_separation, or check the detection)", param="stars")
    bad = _bad_pixels(arr, mask)
    values = arr - subtract if subtract is not None else arr
    values = np.where(bad, 0.0, values)
    nd = NDData(data=values, mask=bad if bad.any() else None)
    with _quiet():
        extracted = extract_stars(nd, QTable({"x": xy[:, 0], "y": xy[:, 1], "id": ids}),
                                  size=size)
        if len(extracted) < 1:
            raise InputError("no PSF star lies far enough inside the frame for a "
                             f"{size}-pixel cut-out", param="stars")
        builder = EPSFBuilder(oversampling=oversampling,
                              smoothing_kernel=None if smoothing == "none" else smoothing,
                              maxiters=maxiters, progress_bar=False)
        result = builder(extracted)
    epsf = result.epsf
    used = [s for k, s in enumerate(result.fitted_stars.all_stars)
            if k not in set(result.excluded_star_indices)]
    kept = QTable({"id": np.array([s.id_label for s in used], dtype=np.int64),
                   "x": np.array([s.center[0] for s in used]),
                   "y": np.array([s.center[1] for s in used])})
    image = np.asarray(epsf.data, dtype=np.float64)
    return PSFBuild(model=epsf, kind="epsf", image=image, oversampling=oversampling,
                    fwhm=psf_fwhm(image, oversampling=oversampling), stars=kept,
                    n_excluded=int(result.n_excluded_stars))


def analytic_psf(data, stars, *, kind="gaussian", size=25, fit_shape=7, mask=None,
                 oversampling=4):
    """A circular Gaussian or Moffat PSF with its width fitted to the PSF stars.

    Each star is fitted with the profile's width (Gaussian: ``fwhm``;
    Moffat: ``alpha`` and ``beta``) free (`photutils.psf.PSFPhotometry`);
    the model takes the median of the fitted values.

    Parameters
    ----------
    data : 2-D array
        The background-subtracted image.
    stars : `~astropy.table.Table` or (N, 2) array
        The PSF stars.
    kind : {'gaussian', 'moffat'}
        `~photutils.psf.CircularGaussianPRF` (pixel-integrated) or
        `~photutils.psf.MoffatPSF`.
    size : int, optional
        The side of the PSF image returned alongside (odd).
    fit_shape : int, optional
        The fitting box of each star (odd).
    mask : 2-D bool array, optional
    oversampling : int, optional
        The oversampling of the PSF image returned alongside.

    Returns
    -------
    PSFBuild

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.psf import analytic_psf
    >>> from photutils.psf import CircularGaussianPRF
    >>> yy, xx = np.mgrid[:100, :100]
    >>> xy = [(20.2, 30.7), (70.5, 40.1), (50.9, 80.3)]
    >>> image = sum(CircularGaussianPRF(flux=1e4, x_0=x, y_0=y, fwhm=3.1)(xx, yy)
    ...             for x, y in xy)
    >>> psf = analytic_psf(image, np.array(xy), kind="gaussian")
    >>> round(float(psf.model.fwhm.value), 2)  # the profile's; psf.fwhm is the pixel-integrated one
    3.1
    """
    from astropy.table import QTable
    from photutils.psf import CircularGaussianPRF, MoffatPSF, PSFPhotometry

    arr = _as_image(data)
    shape = arr.shape
    if kind not in ("gaussian", "moffat"):
        raise InputError(f"kind must be 'gaussian' or 'moffat'; got {kind!r}", param="kind")
    size = _odd_size(size, "size", low=5, high=min(shape))
    fit_shape = _odd_size(fit_shape, "fit_shape", low=3, high=size)
    oversampling = _check_number(oversampling, "oversampling", low=1, high=8, integer=True)
    mask = _as_same_shape(mask, shape, "mask", kind="bool")
    xy, table = _parse_positions(stars)
    if len(xy) < 1:
        raise InputError("fitting an analytic PSF needs at least one PSF star; got none",
                         param="stars")
    bad = _bad_pixels(arr, mask)
    if kind == "gaussian":
        model = CircularGaussianPRF(fwhm=2.0)
        model.fwhm.fixed = False
        model.fwhm.bounds = (0.3, size / 2)
        free = ("fwhm",)
    else:
        model = MoffatPSF(alpha=2.0, beta=2.5)
        model.alpha.fixed = False
        model.beta.fixed = False
        model.alpha.bounds = (0.1, size)
        model.beta.bounds = (1.05, 20.0)
        free = ("alpha", "beta")
    init = QTable({"x": xy[:, 0], "y": xy[:, 1], "id": _ids_of(table, len(xy))})
    phot = PSFPhotometry(model, fit_shape, aperture_radius=max(2.0, fit_shape / 2),
                         progress_bar=False)
    with _quiet():
        res = phot(np.where(bad, 0.0, arr), mask=bad if bad.any() else None, init_params=init)
    good = (np.asarray(res["flags"]) == 0)
    values = {}
    for name in free:
        col = np.asarray(res[f"{name}_fit"], float)
        ok = good & np.isfinite(col)
        if not ok.any():
            ok = np.isfinite(col)
        if not ok.any():
            raise InputError(f"the {kind} PSF could not be fitted to any PSF star",
                             param="stars")
        values[name] = float(np.median(col[ok]))
    if kind == "gaussian":
        final = CircularGaussianPRF(fwhm=values["fwhm"])
    else:
        final = MoffatPSF(alpha=values["alpha"], beta=values["beta"])
    image = _model_image(final, size, oversampling)
    return PSFBuild(model=final, kind=kind, image=image, oversampling=oversampling,
                    fwhm=psf_fwhm(image, oversampling=oversampling),
                    stars=QTable({"id": init["id"], "x": xy[:, 0], "y": xy[:, 1]}))


def _model_image(model, size, oversampling):
    """An analytic model sampled on an oversampled stamp, summing to oversampling**2."""
    n = oversampling * (size - 1) + 1
    c = (n - 1) / 2
    grid = (np.arange(n) - c) / oversampling
    m = model.copy()
    m.x_0 = 0.0
    m.y_0 = 0.0
    m.flux = 1.0
    image = m(grid[None, :], grid[:, None])
    return image * (oversampling ** 2 / image.sum())


def image_psf(psf, *, oversampling=1, normalize=True):
    """Wrap a PSF image (for example from STScI's PSF tools) as a PSF model.

    Parameters
    ----------
    psf : 2-D array
        The PSF, centred on its central sample, sampled ``oversampling``
        times per pixel. An even side is trimmed by one sample.
    oversampling : int, optional
        Samples per native pixel (1 to 8).
    normalize : bool, optional
        Scale it to sum to ``oversampling**2`` (fluxes are then the flux
        within the stamp); False keeps the file's normalisation (a PSF
        whose stamp holds, say, 0.95 of the light then gives total fluxes).

    Returns
    -------
    PSFBuild

    Examples
    --------
    >>> import numpy as np
    >>> from jwst_widgets.processing.psf import image_psf
    >>> yy, xx = np.mgrid[:41, :41]
    >>> psf = image_psf(np.exp(-((xx - 20) ** 2 + (yy - 20) ** 2) / 18.0), oversampling=2)
    >>> round(float(psf.image.sum()), 6), psf.oversampling
    (4.0, 2)
    """
    from photutils.psf import ImagePSF

    arr = np.asarray(getattr(psf, "value", psf), dtype=np.float64)
    if arr.ndim != 2 or min(arr.shape) < 5:
        raise InputError(f"psf must be a 2-D image at least 5x5; got shape {arr.shape}",
                         param="psf")
    if not np.all(np.isfinite(arr)):
        raise InputError("psf must hold only finite values", param="psf")
    oversampling = _check_number(oversampling, "oversampling", low=1, high=8, integer=True)
    ny, nx = arr.shape
    arr = arr[: ny - (1 - ny % 2), : nx - (1 - nx % 2)]
    total = arr.sum()
    if not total > 0:
        raise InputError("psf must have a positive sum", param="psf")
    if normalize:
        arr = arr * (oversampling ** 2 / total)
    model = ImagePSF(arr, oversampling=oversampling)
    return PSFBuild(model=model, kind="image", image=arr, oversampling=oversampling,
                    fwhm=psf_fwhm(arr, oversampling=oversampling))


def psf_fwhm(image, *, oversampling=1):
    """The FWHM of a PSF image in native pixels (area above half the peak, as a circle).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:81, :81]
    >>> sigma = 8.0  # oversampled samples: 2 native pixels at oversampling 4
    >>> g = np.exp(-((xx - 40) ** 2 + (yy - 40) ** 2) / (2 * sigma ** 2))
    >>> round(psf_fwhm(g, oversampling=4), 1)  # 2.3548 * 2
    4.7
    """
    from scipy.ndimage import zoom

    arr = np.asarray(image, float)
    cy, cx = np.unravel_index(np.nanargmax(arr), arr.shape)
    half = min(cy, cx, arr.shape[0] - 1 - cy, arr.shape[1] - 1 - cx, 8 * oversampling)
    cut = arr[cy - half:cy + half + 1, cx - half:cx + half + 1]
    factor = max(1, int(np.ceil(16 / oversampling)))
    fine = zoom(cut, factor, order=1, grid_mode=False) if factor > 1 else cut
    n = cut.shape[0]
    step = (n - 1) / max(n * factor - 1, 1) / oversampling
    area = np.count_nonzero(fine >= fine.max() / 2) * step ** 2
    return float(2 * np.sqrt(area / np.pi))


def encircled_energy(psf, radius, *, oversampling=1):
    """The fraction of a PSF image's light within ``radius`` native pixels of its centre.

    Parameters
    ----------
    psf : 2-D array
        The PSF image, centred on its central sample.
    radius : float or array_like
        Radii in native pixels.
    oversampling : int, optional

    Returns
    -------
    float or ndarray
        Relative to the whole stamp (1 at radii that cover it).

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:101, :101]
    >>> g = np.exp(-((xx - 50) ** 2 + (yy - 50) ** 2) / (2 * 3.0 ** 2))
    >>> round(float(encircled_energy(g, 3.0 * np.sqrt(2 * np.log(2)))), 2)  # half the light
    0.5
    """
    from photutils.aperture import CircularAperture

    arr = np.asarray(psf, float)
    r = np.asarray(radius, float)
    if np.any(~np.isfinite(r)) or np.any(r <= 0):
        raise InputError(f"radius must be positive; got {radius!r}", param="radius")
    cy, cx = (arr.shape[0] - 1) / 2, (arr.shape[1] - 1) / 2
    total = arr.sum()
    flat = r.ravel()
    out = np.array([CircularAperture((cx, cy), r=v * oversampling).do_photometry(
        arr, method="exact")[0][0] for v in flat]) / total
    out = out.reshape(r.shape)
    return float(out) if out.ndim == 0 else out
