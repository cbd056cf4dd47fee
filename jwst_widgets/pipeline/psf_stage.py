"""The ``psf_photometry`` stage: its function, its declaration, and its file readers.

The stage chooses PSF stars from the detection catalog, builds the PSF (an
ePSF, an analytic profile, or a PSF file the user has), fits every detected
source (or iterates: fit, subtract, find, fit), and measures the aperture
correction on the frame's own stars
(:func:`jwst_widgets.processing.psf.psf_photometry`). Its products:

============== =================================================================
``catalog``    photutils' fit columns, ``flux_total`` (+ Jy, AB mag, RA/Dec)
``model``      the image of the fitted sources (float32)
``residual``   data − model (float32, bad pixels NaN)
``psf``        the PSF image (oversampled; ``psf_oversampling`` samples/px)
``psf_stars``  the PSF stars used (``id, x, y, flux, snr`` ...)
``psf_result`` the whole :class:`~jwst_widgets.processing.psf.PSFPhotometryResult`
============== =================================================================

Encircled energy: the ePSF is normalised over its stamp, and the aperture
correction measured on the frame reaches ``reference_radius``; what lies
beyond needs the instrument's encircled energy, which the data cannot give.
``ee_table`` names a table of it (STScI publishes them per JWST filter), or
a PSF file large enough carries it; without either, fluxes are within
``reference_radius`` and the stage says so.

Bad pixels: besides the image's mask (DO_NOT_USE, NaN), pixels the DQ flags
SATURATED, HOT or WARM are left out of the fits (``mask_hot_pixels``): JWST
cal files leave hot pixels in the data, and one beside a star hides it from
the finder and biases its fit.

Two small pieces of shared state live here, both for the widgets: a bounded
memo of built PSFs (a fitting parameter change re-fits without rebuilding
the ePSF), and :data:`PROGRESS`, where a running fit reports how far it is.
"""

import hashlib
import os
import threading
import weakref

import numpy as np

from .._lru import LRUCache
from ..errors import InputError
from .core import StageOutput
from .schema import Param, StageSpec

__all__ = ["PSF_PHOTOMETRY", "psf_photometry_stage", "read_psf_file", "read_ee_table",
           "parse_ids", "format_ids", "PROGRESS", "ProgressHub"]

STAGE = "psf_photometry"
#: JWST DQ bits of pixels a PSF fit leaves out besides DO_NOT_USE (SATURATED, HOT, WARM).
FIT_DQ_BITS = 2 | 2048 | 4096


# -- shared state for the widgets -----------------------------------------------------
class ProgressHub:
    """Where running fits report progress; listeners are held weakly.

    ``subscribe(callback)`` with ``callback(image_key, done, total)``; a
    bound method is held by a weak reference, so a closed panel is not
    kept alive.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._listeners = []

    def subscribe(self, callback):
        ref = weakref.WeakMethod(callback) if hasattr(callback, "__self__") else \
            (lambda cb=callback: cb)
        with self._lock:
            self._listeners.append(ref)

    def report(self, key, done, total):
        with self._lock:
            alive = [r for r in self._listeners if r() is not None]
            self._listeners = alive
            callbacks = [r() for r in alive]
        for cb in callbacks:
            if cb is not None:
                try:
                    cb(key, done, total)
                except Exception:  # a listener's problem must not stop a fit
                    pass


#: Progress of running PSF fits (``subscribe(callback(image_key, done, total))``).
PROGRESS = ProgressHub()


#: Built PSFs by (image, PSF parameters): a fitting parameter re-fits without rebuilding.
_PSF_MEMO = LRUCache(8)
#: The parameters that decide the PSF (the others only change the fit).
PSF_PARAMS = ("psf_model", "psf_file", "stamp_size", "oversampling", "smoothing",
              "epsf_iterations", "subtract_neighbours", "min_snr", "max_snr", "peak_max",
              "min_separation", "max_stars", "exclude_stars", "include_stars",
              "mask_hot_pixels")


# -- ids as text ----------------------------------------------------------------------
def parse_ids(text, name):
    """``"3, 17 42"`` -> ``[3, 17, 42]``; raises InputError naming ``name``."""
    if text is None or not str(text).strip():
        return []
    out = []
    for part in str(text).replace(",", " ").split():
        try:
            out.append(int(part))
        except ValueError:
            raise InputError(f"{STAGE}: {name} must be source ids separated by commas; got "
                             f"{text!r}", param=name, stage=STAGE) from None
    return out


def format_ids(ids):
    """``[42, 3, 3]`` -> ``"3, 42"`` (sorted, unique)."""
    return ", ".join(str(i) for i in sorted({int(i) for i in ids}))


# -- files ----------------------------------------------------------------------------
def read_psf_file(path):
    """Read a PSF from a FITS file as a :class:`~jwst_widgets.processing.psf.PSFBuild`.

    An STPSF/WebbPSF grid or an STDPSF grid becomes a
    `~photutils.psf.GriddedPSFModel`; a 2-D image (the first image HDU, with
    ``OVERSAMP`` or ``DET_SAMP`` giving its oversampling, 1 otherwise)
    becomes an `~photutils.psf.ImagePSF` normalised over its stamp.
    """
    from astropy.io import fits

    from ..processing.psf import PSFBuild, image_psf, psf_fwhm

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{STAGE}: psf_file {path!r} does not exist", param="psf_file",
                         stage=STAGE)
    try:
        with fits.open(path) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim in (2, 3)), None)
            if hdu is None:
                raise InputError(f"{STAGE}: psf_file {path!r} holds no PSF image",
                                 param="psf_file", stage=STAGE)
            data = np.array(hdu.data, dtype=np.float64)
            header = hdu.header.copy()
    except OSError as exc:
        raise InputError(f"{STAGE}: psf_file {path!r} is not a readable FITS file ({exc})",
                         param="psf_file", stage=STAGE) from None
    oversampling = int(header.get("OVERSAMP", header.get("DET_SAMP", 1)) or 1)
    if data.ndim == 3:
        from photutils.psf import GriddedPSFModel

        model = None
        for fmt in ("webbpsf", "stdpsf"):
            try:
                model = GriddedPSFModel.read(path, format=fmt)
                break
            except Exception:  # not this format
                continue
        if model is None:
            raise InputError(f"{STAGE}: psf_file {path!r} is a cube but not an STPSF/WebbPSF "
                             "or STDPSF grid", param="psf_file", stage=STAGE)
        image = np.asarray(model.data).mean(axis=0)
        os_ = int(np.atleast_1d(model.oversampling)[0])
        image = image * (os_ ** 2 / image.sum())
        return PSFBuild(model=model, kind="grid", image=image, oversampling=os_,
                        fwhm=psf_fwhm(image, oversampling=os_))
    try:
        return image_psf(data, oversampling=min(max(oversampling, 1), 8))
    except InputError as exc:
        raise InputError(f"{STAGE}: psf_file {path!r}: {exc.message}", param="psf_file",
                         stage=STAGE) from None


def read_ee_table(path):
    """Read an encircled-energy table: ``(radii in px, fractions)``.

    Any table astropy reads (ECSV, CSV, FITS) with a radius column
    (``radius``, ``r``, ``radius_pix``) in pixels and an encircled-energy
    column (``ee``, ``encircled_energy``, ``fraction``).
    """
    from astropy.table import Table

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"{STAGE}: ee_table {path!r} does not exist", param="ee_table",
                         stage=STAGE)
    try:
        fmt = "ascii.ecsv" if path.endswith(".ecsv") else None
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:
        raise InputError(f"{STAGE}: ee_table {path!r} could not be read as a table ({exc})",
                         param="ee_table", stage=STAGE) from None
    names = {c.lower(): c for c in table.colnames}
    rcol = next((names[c] for c in ("radius", "r", "radius_pix", "radius_px") if c in names),
                None)
    ecol = next((names[c] for c in ("ee", "encircled_energy", "fraction") if c in names), None)
    if rcol is None or ecol is None:
        raise InputError(f"{STAGE}: ee_table {path!r} needs a 'radius' (pixels) and an 'ee' "
                         f"column; it has {', '.join(table.colnames)}", param="ee_table",
                         stage=STAGE)
    radii = np.asarray(getattr(table[rcol], "value", table[rcol]), float)
    values = np.asarray(getattr(table[ecol], "value", table[ecol]), float)
    return radii, values


# -- the stage ------------------------------------------------------------------------
def _catalog_digest(catalog):
    from ..pipeline.outputs import catalog_xy

    h = hashlib.sha1()
    try:
        x, y = catalog_xy(catalog)
    except InputError:
        return "none"
    h.update(np.ascontiguousarray(x, float).tobytes())
    h.update(np.ascontiguousarray(y, float).tobytes())
    if "id" in catalog.colnames:
        h.update(np.ascontiguousarray(np.asarray(catalog["id"]), np.int64).tobytes())
    return h.hexdigest()[:16]


def _psf_key(image, catalog, params):
    return (image.key, _catalog_digest(catalog), tuple(params[p] for p in PSF_PARAMS))


def _background_rms(products):
    rms = products.get("background_rms")
    return None if rms is None else rms


def psf_photometry_stage(image, products, *, psf_model, psf_file, stamp_size, oversampling,
                         smoothing, epsf_iterations, subtract_neighbours, min_snr, max_snr,
                         peak_max, min_separation, max_stars, exclude_stars, include_stars,
                         fit_shape, group_separation, mode, maxiters, threshold_sigma,
                         local_background, annulus_inner, annulus_outer, aperture_correction,
                         reference_radius, ee_table, region, mask_hot_pixels):
    """The ``psf_photometry`` stage (see the module's docstring)."""
    from ..processing import psf as P

    params = dict(locals())
    catalog = products["catalog"]
    exclude = parse_ids(exclude_stars, "exclude_stars")
    include = parse_ids(include_stars, "include_stars")
    data, mask, error = image.data, image.mask, image.error
    rms = _background_rms(products)
    messages = []
    dq = image.meta.get("dq")
    if mask_hot_pixels and dq is not None and np.shape(dq) == data.shape:
        flagged = (np.asarray(dq).astype(np.int64) & FIT_DQ_BITS) != 0
        if flagged.any():
            mask = mask | flagged
            messages.append(f"{int(flagged.sum())} pixels flagged hot, warm or saturated "
                            "left out")
    if rms is None:
        messages.append("no background stage before: the image is taken as "
                        "background-subtracted")

    key = _psf_key(image, catalog, params)
    build = _PSF_MEMO.get(key)
    file_build = None
    if psf_model == "file":
        if not psf_file:
            raise InputError(f"{STAGE}: psf_model 'file' needs psf_file (a FITS PSF)",
                             param="psf_file", stage=STAGE)
        file_build = build or read_psf_file(psf_file)
        build = file_build
    ee = None
    if ee_table:
        ee = read_ee_table(ee_table)
    elif psf_model == "file" and file_build is not None and file_build.kind == "image":
        half = (file_build.image.shape[0] - 1) / (2 * file_build.oversampling)
        if half >= 1.5 * reference_radius:
            radii = np.linspace(0.5, half, 40)
            ee = (radii, file_build.encircled_energy(radii))

    def progress(done, total):
        PROGRESS.report(image.key, done, total)

    kind = "epsf" if psf_model == "file" else psf_model
    threshold = None
    if mode == "iterative":
        level = float(np.nanmedian(rms)) if rms is not None else _robust_rms(data, mask)
        threshold = threshold_sigma * level
    try:
        result = P.psf_photometry(
            data, catalog, psf=kind, size=stamp_size, oversampling=oversampling,
            smoothing=smoothing, epsf_maxiters=epsf_iterations,
            subtract_neighbours=subtract_neighbours, min_snr=min_snr, max_snr=max_snr,
            peak_max=peak_max, min_separation=min_separation, max_stars=max_stars,
            exclude=exclude, include=include, fit_shape=fit_shape,
            group_separation=group_separation, iterative=mode == "iterative",
            maxiters=maxiters, threshold=threshold,
            local_background=(annulus_inner, annulus_outer) if local_background else None,
            aperture_correction=aperture_correction, reference_radius=reference_radius,
            encircled_energy=ee, error=error, mask=mask, background_rms=rms, wcs=image.wcs,
            unit=image.unit, pixar_sr=image.meta.get("pixar_sr"), region=region,
            psf_build=build, progress=progress)
    except InputError as exc:
        if exc.stage is None:
            exc.stage = STAGE
            msg = exc.message if exc.message.startswith(STAGE) else f"{STAGE}: {exc.message}"
            exc.args = (msg,)
        raise
    if build is None:
        _PSF_MEMO.put(key, result.psf)
    messages.extend(result.messages)
    if image.unit is None:
        messages.append("the image has no unit: fluxes are in data units")
    psf = result.psf
    out = {"catalog": result.catalog, "model": result.model, "residual": result.residual,
           "psf": np.asarray(psf.image, np.float32), "psf_oversampling": psf.oversampling,
           "psf_fwhm": psf.fwhm, "psf_stars": psf.stars, "psf_result": result}
    return StageOutput(image, out, tuple(messages))


def _robust_rms(data, mask):
    from astropy.stats import mad_std

    good = np.isfinite(data) & ~mask
    return float(mad_std(data[good])) if good.any() else 1.0


def _check(params, image):
    stage = STAGE
    if params["psf_model"] == "file" and not params["psf_file"]:
        raise InputError(f"{stage}: psf_model 'file' needs psf_file (a FITS PSF image or grid)",
                         param="psf_file", stage=stage)
    side = min(image.data.shape)
    if params["stamp_size"] > side:
        raise InputError(f"{stage}: stamp_size must be at most {side} pixels for a "
                         f"{image.data.shape[1]}x{image.data.shape[0]} image; got "
                         f"{params['stamp_size']}", param="stamp_size", stage=stage)
    if params["fit_shape"] > params["stamp_size"]:
        raise InputError(f"{stage}: fit_shape must be at most stamp_size "
                         f"({params['stamp_size']} px); got {params['fit_shape']}",
                         param="fit_shape", stage=stage)
    if params["local_background"] and params["annulus_outer"] <= params["annulus_inner"]:
        raise InputError(f"{stage}: annulus_outer must be larger than annulus_inner "
                         f"({params['annulus_inner']:g} px); got {params['annulus_outer']:g}",
                         param="annulus_outer", stage=stage)
    if params["max_snr"] is not None and params["max_snr"] <= params["min_snr"]:
        raise InputError(f"{stage}: max_snr must be larger than min_snr "
                         f"({params['min_snr']:g}); got {params['max_snr']:g}",
                         param="max_snr", stage=stage)
    if 2 * params["reference_radius"] + 2 > side:
        raise InputError(f"{stage}: reference_radius must be below {(side - 2) / 2:g} px for "
                         f"this image; got {params['reference_radius']:g}",
                         param="reference_radius", stage=stage)
    for name in ("exclude_stars", "include_stars"):
        parse_ids(params[name], name)


PSF_PHOTOMETRY = StageSpec(
    name=STAGE,
    category="photometry",
    description="PSF-fitting photometry: PSF stars, ePSF (or analytic/file PSF), fit, "
                "residual, aperture correction",
    func=psf_photometry_stage,
    check=_check,
    outputs=("catalog", "model", "residual", "psf", "psf_stars"),
    needs=("catalog",),
    uses=("background_rms",),
    preview=False,  # a PSF fit on a binned frame (an undersampled PSF) tells nothing
    params=[
        Param("psf_model", "string", "epsf", choices=("epsf", "gaussian", "moffat", "file"),
              expensive=True,
              doc="empirical PSF from the stars, an analytic profile fitted to them, or a file"),
        Param("psf_file", "string", None, nullable=True,
              doc="psf_model 'file': a FITS PSF image (OVERSAMP keyword) or STPSF/STDPSF grid"),
        Param("stamp_size", "integer", 25, min=7, max=201, step=2, odd=True, unit="px",
              expensive=True, doc="side of the PSF star cut-outs and of the ePSF"),
        Param("oversampling", "integer", 3, min=1, max=8, step=1, expensive=True,
              doc="ePSF samples per pixel"),
        Param("smoothing", "string", "quadratic", choices=("quartic", "quadratic", "none"),
              expensive=True, doc="ePSF smoothing kernel at each build iteration"),
        Param("epsf_iterations", "integer", 10, min=1, max=50, step=1, expensive=True,
              doc="the most ePSF build iterations"),
        Param("subtract_neighbours", "boolean", True, expensive=True,
              doc="rebuild the ePSF with the PSF stars' neighbours fitted and subtracted"),
        Param("min_snr", "float", 30.0, min=1.0, max=1e5, step=1.0, expensive=True,
              doc="PSF stars: the least S/N"),
        Param("max_snr", "float", None, min=1.0, max=1e7, step=1.0, nullable=True,
              expensive=True, doc="PSF stars: the highest S/N (empty: no limit)"),
        Param("peak_max", "float", None, nullable=True, expensive=True,
              doc="PSF stars: drop those with a pixel above this (saturation; empty: none)"),
        Param("min_separation", "float", None, min=0.0, max=500.0, step=0.5, unit="px",
              nullable=True, expensive=True,
              doc="PSF stars: the least distance to another source (empty: half of "
                  "stamp_size with subtract_neighbours, else stamp_size)"),
        Param("max_stars", "integer", 100, min=1, max=2000, step=1, expensive=True,
              doc="PSF stars: at most this many, the brightest"),
        Param("exclude_stars", "string", "", expensive=True,
              doc="PSF stars: source ids never to use, comma-separated"),
        Param("include_stars", "string", "", expensive=True,
              doc="PSF stars: source ids to use whatever the cuts, comma-separated"),
        Param("fit_shape", "integer", 5, min=3, max=51, step=2, odd=True, unit="px",
              expensive=True, doc="side of the box of pixels fitted around each source"),
        Param("group_separation", "float", 0.0, min=0.0, max=50.0, step=0.5, unit="px",
              expensive=True, doc="fit sources closer than this together (0: each alone)"),
        Param("mode", "string", "positions", choices=("positions", "iterative"),
              expensive=True,
              doc="fit at the detected positions, or fit-subtract-find-repeat (crowded fields)"),
        Param("maxiters", "integer", 3, min=1, max=10, step=1, expensive=True,
              doc="iterative mode: the most find-and-fit rounds"),
        Param("threshold_sigma", "float", 5.0, min=0.5, max=1000.0, step=0.1, unit="sigma",
              expensive=True, doc="iterative mode: the finder's threshold in background rms"),
        Param("local_background", "boolean", False, expensive=True,
              doc="subtract a local background per source from an annulus"),
        Param("annulus_inner", "float", 8.0, min=0.5, max=400.0, step=0.5, unit="px",
              doc="local background: inner radius of the annulus"),
        Param("annulus_outer", "float", 12.0, min=1.0, max=500.0, step=0.5, unit="px",
              doc="local background: outer radius of the annulus"),
        Param("aperture_correction", "string", "auto", choices=("auto", "none"),
              doc="'auto': scale fluxes to reference_radius from the frame's bright stars"),
        Param("reference_radius", "float", 20.0, min=1.0, max=500.0, step=0.5, unit="px",
              doc="aperture correction: the large radius it reaches"),
        Param("ee_table", "string", None, nullable=True,
              doc="encircled-energy table (radius in px, ee) for the light beyond "
                  "reference_radius (empty: fluxes are within reference_radius)"),
        Param("mask_hot_pixels", "boolean", True, expensive=True,
              doc="leave out pixels the DQ flags hot, warm or saturated (not only DO_NOT_USE)"),
        Param("region", "box", None, nullable=True,
              doc="[x0, x1, y0, y1]: fit only the sources in this box (a preview)"),
    ],
)
