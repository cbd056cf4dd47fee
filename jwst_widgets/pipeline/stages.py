"""The declarations of the processing stages.

Each stage is one function ``f(image, products, **params) -> StageOutput``
that calls the pure functions of :mod:`jwst_widgets.processing`, plus one
:class:`~jwst_widgets.pipeline.schema.StageSpec`. Adding a stage is one
function and one declaration here, and one line in :data:`STAGES`.
"""

import numpy as np

from ..errors import InputError
from .core import StageOutput
from .psf_stage import PSF_PHOTOMETRY
from .schema import Param, StageSpec

__all__ = ["STAGES"]


def _min_side(image):
    return min(image.data.shape)


def _finite_mean(a):
    a = np.asarray(a)
    return float(np.nanmedian(a)) if a.ndim else float(a)


def _renamed(exc, stage, names, message=None):
    """An InputError from a processing function, restated with the stage's parameter names."""
    param = names.get(exc.param, exc.param)
    text = message or exc.message
    for old, new in names.items():
        if new is not None:
            text = text.replace(old, new)
    return InputError(text if text.startswith(stage) else f"{stage}: {text}", param=param,
                      stage=stage)


def _check_noise(level, stage):
    """Refuse a noise level that makes a threshold meaningless (a constant image)."""
    if not np.isfinite(level):
        raise InputError(f"{stage}: the image's noise could not be estimated (values too "
                         "large for float32 arithmetic?): nothing can be detected relative to "
                         "it", stage=stage)
    if level <= 0:
        raise InputError(f"{stage}: the image's noise is zero (a constant image?): a threshold "
                         "in units of the noise is meaningless", stage=stage)


# -- background_subtraction ---------------------------------------------------
def background_subtraction(image, products, *, box_size, filter_size, sigma_clip, estimator):
    from ..processing.background import estimate_background

    try:
        res = estimate_background(image.data, mask=image.mask, box_size=box_size,
                                  filter_size=filter_size, sigma_clip=sigma_clip,
                                  estimator=estimator)
    except InputError as exc:
        if exc.param != "exclude_percentile":
            raise
        raise _renamed(exc, "background_subtraction", {"exclude_percentile": "box_size"},
                       "every box has too many masked or non-finite pixels for an estimate: "
                       "use a larger box_size, or mask fewer pixels") from None
    data = np.subtract(image.data, res.background, dtype=np.float32)
    msg = (f"background median {res.background_median:.4g}, "
           f"rms median {res.background_rms_median:.4g}")
    return StageOutput(
        image.replace(data=data),
        {"background": res.background, "background_rms": res.background_rms,
         "background_median": res.background_median,
         "background_rms_median": res.background_rms_median,
         # detection's unit of threshold, made once here: a median of the whole
         # map (~40 ms at 2048²) at every threshold change was half its time
         "background_rms_level": _finite_mean(res.background_rms)},
        (msg,))


def _check_background(params, image):
    side = _min_side(image)
    if side < 4:
        ny, nx = image.data.shape
        raise InputError(f"background_subtraction: the {nx}x{ny} image is smaller than the "
                         "smallest box (4 pixels): no background can be estimated on it",
                         stage="background_subtraction")
    if params["box_size"] > side:
        ny, nx = image.data.shape
        raise InputError(f"background_subtraction: box_size must be between 4 and {side} "
                         f"pixels for a {nx}x{ny} image; got {params['box_size']}",
                         param="box_size", stage="background_subtraction")


BACKGROUND = StageSpec(
    name="background_subtraction",
    category="preprocessing",
    description="Estimate a 2-D background (mesh of sigma-clipped boxes) and subtract it",
    func=background_subtraction,
    check=_check_background,
    outputs=("background", "background_rms"),
    params=[
        Param("box_size", "integer", 50, min=4, max=1024, step=1, unit="px", pixel_length=True,
              expensive=True, doc="size of the boxes in which the background is estimated"),
        Param("filter_size", "integer", 3, min=1, max=15, step=2, odd=True,
              doc="median filter window over the mesh of boxes (odd)"),
        Param("sigma_clip", "float", 3.0, min=1.0, max=10.0, step=0.1, unit="sigma",
              doc="sigma-clipping threshold for pixels in each box"),
        Param("estimator", "string", "median",
              choices=("median", "mean", "sextractor", "mode", "biweight"),
              doc="statistic of the clipped pixels in a box"),
    ],
)


# -- noise_reduction ------------------------------------------------------------
def noise_reduction(image, products, *, method, kernel_size, sigma, range_sigma):
    from ..processing.filters import reduce_noise

    data = reduce_noise(image.data, method=method, kernel_size=kernel_size, sigma=sigma,
                        range_sigma=range_sigma, mask=image.mask)
    return StageOutput(image.replace(data=data), {}, ())


NOISE = StageSpec(
    name="noise_reduction",
    category="filtering",
    description="Smooth the image (Gaussian, median, NaN-safe convolution or bilateral)",
    func=noise_reduction,
    params=[
        Param("method", "string", "gaussian",
              choices=("gaussian", "median", "astropy_gaussian", "bilateral"),
              doc="the filter"),
        Param("kernel_size", "integer", 3, min=1, max=15, step=2, odd=True, unit="px",
              pixel_length=True, doc="window of the median and bilateral filters (odd)"),
        Param("sigma", "float", 1.0, min=0.0, max=10.0, step=0.1, unit="px", pixel_length=True,
              doc="standard deviation of the Gaussian kernels"),
        Param("range_sigma", "float", 3.0, min=0.1, max=50.0, step=0.1, unit="noise",
              doc="bilateral filter: intensity scale, in units of the image noise"),
    ],
)


# -- enhancement ----------------------------------------------------------------
def enhancement(image, products, *, interval, stretch, contrast, percentile, vmin, vmax,
                asinh_a, log_a, power):
    from ..processing.enhance import enhance

    data = enhance(image.data, interval=interval, stretch=stretch, contrast=contrast,
                   percentile=percentile, vmin=vmin, vmax=vmax, asinh_a=asinh_a, log_a=log_a,
                   power=power, mask=image.mask)
    return StageOutput(image.replace(data=data, unit=None, error=None), {},
                       ("values are now display values in [0, 1], without unit",))


def _check_enhancement(params, image):
    if params["interval"] == "manual":
        vmin, vmax = params["vmin"], params["vmax"]
        if vmin is None or vmax is None:
            raise InputError("enhancement: interval 'manual' needs both vmin and vmax",
                             param="vmin" if vmin is None else "vmax", stage="enhancement")
        if vmin >= vmax:
            raise InputError(f"enhancement: vmin must be below vmax; got vmin={vmin:g}, "
                             f"vmax={vmax:g}", param="vmin", stage="enhancement")


ENHANCE = StageSpec(
    name="enhancement",
    category="enhancement",
    description="Map values to [0, 1] through an interval and a stretch (for display)",
    func=enhancement,
    check=_check_enhancement,
    params=[
        Param("interval", "string", "zscale", choices=("zscale", "minmax", "percentile", "manual"),
              doc="how the limits are chosen"),
        Param("stretch", "string", "asinh",
              choices=("linear", "sqrt", "log", "asinh", "power", "histeq"),
              doc="the mapping of [0, 1] to [0, 1]"),
        Param("contrast", "float", 0.25, min=0.01, max=1.0, step=0.01, doc="zscale contrast"),
        Param("percentile", "float", 99.5, min=50.0, max=100.0, step=0.1, unit="%",
              doc="percentile interval: the central fraction of pixels kept"),
        Param("vmin", "float", None, nullable=True, doc="manual interval: lower limit"),
        Param("vmax", "float", None, nullable=True, doc="manual interval: upper limit"),
        Param("asinh_a", "float", 0.1, min=0.001, max=1.0, step=0.001,
              doc="asinh stretch: the transition from linear to logarithmic"),
        Param("log_a", "float", 1000.0, min=1.0, max=100000.0, step=1.0,
              doc="log stretch: the strength of the logarithm"),
        Param("power", "float", 2.0, min=0.1, max=10.0, step=0.1, doc="power stretch: the exponent"),
    ],
)


# -- source_detection -------------------------------------------------------------
def _noise(image, products):
    """Return (data relative to the background, rms map or scalar, its median, messages)."""
    rms = products.get("background_rms")
    if rms is not None:
        level = products.get("background_rms_level")
        return image.data, rms, _finite_mean(rms) if level is None else level, ()
    from ..processing.background import global_background

    median, sigma = global_background(image.data, mask=image.mask)
    data = np.subtract(image.data, np.float32(median), dtype=np.float32)
    return data, sigma, float(sigma), (
        f"no background stage before detection: used the global sigma-clipped "
        f"median {median:.4g} and rms {sigma:.4g}",)


def source_detection(image, products, *, method, threshold_sigma, fwhm, sharpness_min,
                     sharpness_max, roundness_min, roundness_max, n_pixels, deblend, n_levels,
                     contrast):
    from ..processing import detect

    data, rms, level, messages = _noise(image, products)
    _check_noise(level, "source_detection")
    if method in ("daofind", "iraf"):
        threshold = threshold_sigma * level
        default_sharp, default_round = detect.DEFAULT_SHAPE_RANGES[method]
        sharp = (default_sharp[0] if sharpness_min is None else sharpness_min,
                 default_sharp[1] if sharpness_max is None else sharpness_max)
        round_ = (default_round[0] if roundness_min is None else roundness_min,
                  default_round[1] if roundness_max is None else roundness_max)
        catalog = detect.find_point_sources(
            data, threshold=threshold, fwhm=fwhm, method=method, mask=image.mask,
            sharpness_range=sharp, roundness_range=round_, wcs=image.wcs)
        out = {"catalog": catalog}
    else:
        threshold = threshold_sigma * np.asarray(rms, dtype=np.float32)
        try:
            seg = detect.find_segments(data, threshold=threshold, n_pixels=n_pixels,
                                       smooth_fwhm=fwhm, deblend=deblend, n_levels=n_levels,
                                       contrast=contrast, mask=image.mask, error=image.error,
                                       wcs=image.wcs)
        except InputError as exc:
            raise _renamed(exc, "source_detection", {"smooth_fwhm": "fwhm"}) from None
        out = {"catalog": seg.catalog, "segmentation": seg.segment_map}
        catalog = seg.catalog
    n = len(catalog)
    messages += (f"{n} source{'s' if n != 1 else ''} found" if n else
                 "no sources found: lower threshold_sigma or check the background",)
    return StageOutput(image, out, messages)


def _check_detection(params, image):
    for lo, hi in (("sharpness_min", "sharpness_max"), ("roundness_min", "roundness_max")):
        if params[lo] is not None and params[hi] is not None and params[lo] >= params[hi]:
            raise InputError(f"source_detection: {lo} must be below {hi}; got "
                             f"{params[lo]:g} and {params[hi]:g}", param=lo,
                             stage="source_detection")


DETECTION = StageSpec(
    name="source_detection",
    category="analysis",
    description="Detect point sources (DAOFIND, IRAF) or extended sources (segmentation)",
    func=source_detection,
    check=_check_detection,
    outputs=("catalog", "segmentation"),
    uses=("background_rms",),
    params=[
        Param("method", "string", "daofind", choices=("daofind", "iraf", "segmentation"),
              doc="point sources (daofind, iraf) or segmentation with deblending"),
        Param("threshold_sigma", "float", 5.0, min=0.5, max=1000.0, step=0.1, unit="sigma",
              doc="detection threshold in units of the background rms"),
        Param("fwhm", "float", 3.0, min=0.5, max=50.0, step=0.1, unit="px", pixel_length=True,
              preview_min=1.5,
              doc="FWHM of the stars (point sources) or of the smoothing kernel (segmentation)"),
        Param("sharpness_min", "float", None, min=-1.0, max=3.0, step=0.05, nullable=True,
              doc="point sources: lower bound on sharpness (empty: the finder's default, "
                  "0.2 daofind, 0.5 iraf)"),
        Param("sharpness_max", "float", None, min=-1.0, max=3.0, step=0.05, nullable=True,
              doc="point sources: upper bound on sharpness (empty: 1.0 daofind, 2.0 iraf)"),
        Param("roundness_min", "float", None, min=-2.0, max=2.0, step=0.05, nullable=True,
              doc="point sources: lower bound on roundness (empty: -1.0 daofind, 0.0 iraf)"),
        Param("roundness_max", "float", None, min=-2.0, max=2.0, step=0.05, nullable=True,
              doc="point sources: upper bound on roundness (empty: 1.0 daofind, 0.2 iraf)"),
        Param("n_pixels", "integer", 10, min=1, max=100000, step=1, unit="px",
              aliases=("npixels",),
              doc="segmentation: the fewest connected pixels a source has"),
        Param("deblend", "boolean", True, doc="segmentation: split blended sources"),
        Param("n_levels", "integer", 32, min=1, max=256, step=1, aliases=("nlevels",),
              doc="deblending: number of multi-threshold levels"),
        Param("contrast", "float", 0.001, min=0.0, max=1.0, step=0.001,
              doc="deblending: the flux fraction a component needs to be separate"),
    ],
)


# -- statistics -----------------------------------------------------------------
def statistics(image, products, *, sigma, maxiters, box):
    from ..processing.stats import robust_statistics

    stats = robust_statistics(image.data, mask=image.mask, box=box, sigma=sigma,
                              maxiters=maxiters)
    return StageOutput(image, {"statistics": stats},
                       (f"median {stats['median']:.4g}, std {stats['std']:.4g} "
                        f"over {stats['n_pixels']} pixels",))


def _check_statistics(params, image):
    box = params["box"]
    if box is not None:
        ny, nx = image.data.shape
        x0, x1, y0, y1 = box
        if x0 >= nx or y0 >= ny or x1 <= 0 or y1 <= 0:
            raise InputError(f"statistics: box {box} lies outside the {nx}x{ny} image",
                             param="box", stage="statistics")


STATISTICS = StageSpec(
    name="statistics",
    category="analysis",
    description="Robust statistics: sigma-clipped mean/median/std, biweight, MAD std",
    func=statistics,
    check=_check_statistics,
    outputs=("statistics",),
    params=[
        Param("sigma", "float", 3.0, min=0.5, max=10.0, step=0.1, unit="sigma",
              doc="sigma-clipping threshold"),
        Param("maxiters", "integer", 5, min=1, max=100, step=1,
              doc="the most sigma-clipping iterations"),
        Param("box", "box", None, nullable=True,
              doc="[x0, x1, y0, y1] region in pixels (none: the whole image)"),
    ],
)


# -- aperture_photometry --------------------------------------------------------------
def aperture_photometry(image, products, *, radius, annulus_inner, annulus_outer, sigma_clip,
                        aperture_correction, reference_radius):
    from ..processing import photometry

    catalog = products["catalog"]
    messages = ()
    correction = 1.0
    if aperture_correction == "auto" and len(catalog):
        try:
            correction = photometry.measure_aperture_correction(
                image.data, catalog, radius=radius, reference_radius=reference_radius,
                mask=image.mask, error=image.error)
        except InputError as exc:
            raise InputError(f"aperture_photometry: aperture_correction 'auto' could not be "
                             f"measured: {exc.message}", param="aperture_correction",
                             stage="aperture_photometry") from None
        messages += (f"aperture correction to {reference_radius:g} px: {correction.value:.4f} "
                     f"± {correction.uncertainty:.4f} from {correction.n_stars} stars",)
    unit = image.unit
    table = photometry.aperture_photometry(
        image.data, catalog, radius=radius, annulus_inner=annulus_inner,
        annulus_outer=annulus_outer, sigma_clip=sigma_clip, error=image.error,
        mask=image.mask, wcs=image.wcs, unit=unit, pixar_sr=image.meta.get("pixar_sr"),
        aperture_correction=correction)
    if unit is None:
        messages += ("the image has no unit: fluxes are in data units",)
    return StageOutput(image, {"catalog": table}, messages)


def _check_photometry(params, image):
    r, r_in, r_out = params["radius"], params["annulus_inner"], params["annulus_outer"]
    stage = "aperture_photometry"
    if r_in <= r:
        raise InputError(f"{stage}: annulus_inner must be larger than radius ({r:g} px); "
                         f"got {r_in:g}", param="annulus_inner", stage=stage)
    if r_out <= r_in:
        raise InputError(f"{stage}: annulus_outer must be larger than annulus_inner "
                         f"({r_in:g} px); got {r_out:g}", param="annulus_outer", stage=stage)
    side = max(image.data.shape)
    if 2 * r > side:
        raise InputError(f"{stage}: an aperture of radius {r:g} px is larger than the "
                         f"{image.data.shape[1]}x{image.data.shape[0]} frame", param="radius",
                         stage=stage)
    if params["aperture_correction"] == "auto" and params["reference_radius"] <= r:
        raise InputError(f"{stage}: reference_radius must be larger than radius ({r:g} px); "
                         f"got {params['reference_radius']:g}", param="reference_radius",
                         stage=stage)


PHOTOMETRY = StageSpec(
    name="aperture_photometry",
    category="photometry",
    description="Circular-aperture photometry at the catalog's positions, local annulus background",
    func=aperture_photometry,
    check=_check_photometry,
    outputs=("catalog",),
    needs=("catalog",),
    params=[
        Param("radius", "float", 4.0, preview_min=1.0, min=0.5, max=200.0, step=0.1, unit="px",
              pixel_length=True,
              doc="aperture radius"),
        Param("annulus_inner", "float", 8.0, preview_min=1.0, min=0.5, max=400.0, step=0.5,
              unit="px", pixel_length=True, doc="inner radius of the background annulus"),
        Param("annulus_outer", "float", 12.0, preview_min=1.0, min=1.0, max=500.0, step=0.5,
              unit="px", pixel_length=True, doc="outer radius of the background annulus"),
        Param("sigma_clip", "float", 3.0, min=1.0, max=10.0, step=0.1, unit="sigma",
              doc="sigma clipping of the annulus pixels"),
        Param("aperture_correction", "string", "none", choices=("none", "auto"),
              doc="'auto': scale fluxes to total from the frame's bright isolated stars"),
        Param("reference_radius", "float", 20.0, min=1.0, max=500.0, step=0.5, unit="px",
              pixel_length=True, doc="aperture correction: the radius taken as total flux"),
    ],
)


#: Every stage, in the order the registry lists them.
STAGES = (BACKGROUND, NOISE, ENHANCE, DETECTION, STATISTICS, PHOTOMETRY, PSF_PHOTOMETRY)
