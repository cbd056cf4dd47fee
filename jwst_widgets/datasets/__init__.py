"""Bundled sample images and the synthetic NIRCam-like generator.

Real samples (``data/ATTRIBUTION.md`` says where they come from and how to
acknowledge them):

============================ =================================================
name                         what
============================ =================================================
``hst_abell2744``            HST WFC3/IR F105W, Abell 2744 (Frontier Fields),
                             400x400: cD galaxy, cluster members, a spiky star,
                             lensed arcs; e-/s with WCS
``hst_abell2744_group``      the same mosaic, 100x100: a blended group of
                             galaxies (a deblending case)
``jwst_fgs_acq1``            real JWST flight data: FGS guider, FGS_ACQ1 ramp
                             (6 integrations x 2 groups x 128 x 128, DN); loads
                             as the last-minus-first group of integration 0
============================ =================================================

Synthetic samples, generated on first use and cached (deterministic):

=============================== ==============================================
``nircam_like``                 2048x2048 NIRCam-like F200W ``cal`` frame
                                (seed 0) with stars, galaxies, spikes, stripes
``nircam_like_1k``              the same at 1024x1024 (quick demos)
=============================== ==============================================
"""

import os

__all__ = ["SAMPLES", "sample_path", "load_sample", "nircam_like", "cache_dir",
           "SyntheticFrame", "SyntheticTruth", "nircam_psf", "NircamPSF", "NIRCAM_FILTERS",
           "DQ_FLAGS"]

_LAZY = {"SyntheticFrame": "synthetic", "SyntheticTruth": "synthetic", "DQ_FLAGS": "synthetic",
         "nircam_psf": "psf", "NircamPSF": "psf", "NIRCAM_FILTERS": "psf"}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

_HERE = os.path.join(os.path.dirname(__file__), "data")

#: name -> (file or None for synthetic, one-line description)
SAMPLES = {
    "hst_abell2744": ("abell_2744_cd_galaxy_f105w.fits.gz",
                      "HST WFC3/IR F105W Abell 2744, 400x400: cD galaxy, arcs, a spiky star"),
    "hst_abell2744_group": ("abell_2744_group_of_galaxies_f105w.fits.gz",
                            "HST WFC3/IR F105W Abell 2744, 100x100: a blended galaxy group"),
    "jwst_fgs_acq1": ("jwst_fgs_acq1_program1019.fits",
                      "JWST FGS guider ramp (program 1019): a saturated star with spikes"),
    "nircam_like": (None, "synthetic NIRCam F200W cal frame, 2048x2048 (seed 0)"),
    "nircam_like_1k": (None, "synthetic NIRCam F200W cal frame, 1024x1024 (seed 0)"),
}

_SYNTHETIC = {"nircam_like": {"shape": (2048, 2048), "seed": 0},
              "nircam_like_1k": {"shape": (1024, 1024), "seed": 0}}


def cache_dir():
    """Where generated samples are kept (``$JWST_WIDGETS_CACHE`` or ~/.cache/jwst-widgets)."""
    base = os.environ.get("JWST_WIDGETS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "jwst-widgets")
    os.makedirs(base, exist_ok=True)
    return base


def sample_path(name):
    """Return the path of a sample's FITS file (generating a synthetic one on first use).

    Examples
    --------
    >>> from jwst_widgets import datasets
    >>> os.path.basename(datasets.sample_path("hst_abell2744"))
    'abell_2744_cd_galaxy_f105w.fits.gz'
    """
    from ..errors import InputError, describe_choices

    if name not in SAMPLES:
        raise InputError(f"no sample named {name!r}; the samples are "
                         f"{describe_choices(list(SAMPLES))}")
    filename, _ = SAMPLES[name]
    if filename is not None:
        return os.path.join(_HERE, filename)
    kwargs = _SYNTHETIC[name]
    ny, nx = kwargs["shape"]
    path = os.path.join(cache_dir(), f"{name}_{nx}x{ny}_seed{kwargs['seed']}_v2_cal.fits")
    if not os.path.exists(path):
        nircam_like(**kwargs).write(path)
    return path


def load_sample(name):
    """Load a sample by name as an :class:`~jwst_widgets.io.Image`.

    Examples
    --------
    >>> from jwst_widgets import datasets
    >>> datasets.load_sample("hst_abell2744").data.shape
    (400, 400)
    """
    from ..io import load_image

    image = load_image(sample_path(name))
    return image.replace(origin=name, key=image.key)


def nircam_like(shape=(2048, 2048), seed=0, **kwargs):
    """A synthetic NIRCam-like frame and its truth tables.

    See :func:`jwst_widgets.datasets.synthetic.nircam_like` for the options.
    """
    from .synthetic import nircam_like as _nircam_like
    return _nircam_like(shape=shape, seed=seed, **kwargs)
